/**
 * Which local account and socket are behind a loopback TCP client, from the
 * client's own row in Linux's /proc/net/tcp or /proc/net/tcp6 (proc(5): the
 * row whose local_address is the client's address and rem_address ours; its
 * "uid" and "inode" columns).
 *
 * Ask while the client still holds its socket open: once it closes its end,
 * its row loses its inode (0 in FIN_WAIT and TIME_WAIT) or disappears, and
 * nothing more can be learnt. The access check (forward/access-gate.ts) asks
 * for every -D connection at its SOCKS request and every -L connection as it
 * is accepted, and that is this module's main cost (see #readTables): the
 * tables grow with every socket on the machine, so one search at a time, on
 * a worker thread, serves every client asked for while it was waiting. Any
 * failure (another OS, no /proc, a race) just means "unknown".
 *
 * The row parser and the endpoint codec serve every /proc/net/{tcp,udp}{,6}
 * reader (leakcheck's resolver-socket poll among them), so there is one of each.
 */
import { formatAddress, mappedIPv4, parseIPv4, parseIPv6 } from "../address.ts";
import { within } from "../deadline.ts";
import { BatchedLookup } from "./batched-lookup.ts";
import { OffLoop } from "./off-loop.ts";

/**
 * A TCP client as the socket we accepted it on names it (`remoteAddress`,
 * `remotePort`, `localAddress`, `localPort`): its address and port, and the
 * local address and port it reached.
 */
export interface AcceptedClient {
  address: string;
  port: number;
  localAddress: string;
  localPort: number;
}

/** The local owner of a client's socket. */
export interface SocketOwner {
  /** proc(5) /proc/net/tcp "uid": the effective UID of the process that created the client's socket. */
  uid: number;
  /** proc(5) /proc/net/tcp "inode": /proc/<pid>/fd/N of the holder links to `socket:[inode]`. */
  inode: string;
}

/**
 * Encode an address:port as /proc/net/tcp writes it: hex, each 32-bit word in
 * host byte order (reversed on the little-endian hosts we run on, x86-64 and
 * arm64), then the port in hex. IPv4-mapped addresses take their IPv4 form.
 * Every IPv6 address is encoded, not only ::1: a local program may reach a
 * -g port through one of this machine's global addresses.
 *
 * @example
 * procNetAddress("127.0.0.1", 9001) // "0100007F:2329"
 * procNetAddress("2001:db8::5", 80) // "B80D0120000000000000000005000000:0050"
 */
export function procNetAddress(address: string, port: number): string | null {
  const parsed = parseIPv4(address) ?? parseIPv6(address);
  if (parsed === null) return null;
  const bytes = mappedIPv4(parsed) ?? parsed;
  let hex = "";
  for (let word = 0; word < bytes.length; word += 4) {
    for (let i = 3; i >= 0; i--) hex += bytes[word + i]!.toString(16).toUpperCase().padStart(2, "0");
  }
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** One row of /proc/net/tcp{,6}: endpoints in `procNetAddress` form and the owner. */
export interface ProcNetTcpRow {
  local: string;
  remote: string;
  owner: SocketOwner;
}

/**
 * The columns of a /proc/net/{tcp,udp}{,6} row (proc(5); the four tables
 * share their first ten columns), endpoints in `procNetAddress` form with
 * IPv4-mapped ones unmapped. Unlike `ProcNetTcpRow`, rows whose socket is
 * closed are kept: inode "0" (TIME_WAIT, FIN_WAIT2), where uid says nothing.
 */
export interface ProcNetRow {
  local: string;
  remote: string;
  /** "st": the kernel's TCP state number (tcp_states.h), also for UDP: 1 (ESTABLISHED) connected, 7 (CLOSE) not. */
  state: number;
  /** "tx_queue": bytes queued to send (UDP: in the kernel's send buffer). */
  txQueue: number;
  /** "rx_queue": bytes received and not yet read. */
  rxQueue: number;
  uid: number;
  /** "0" once the owner has closed the socket. */
  inode: string;
}

/** The tcp6 spelling of an IPv4-mapped address starts with these 24 hex digits (::ffff:0:0/96). */
const MAPPED_PREFIX = "0000000000000000FFFF0000";

/**
 * Parse one row of any of the four tables, closed sockets included; null for
 * the header, short lines and anything malformed.
 *
 * @example
 * parseProcNetRow("  242: 020200C0:E9F2 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 416041 2 00000000756f6e18 0")
 * // { local: "020200C0:E9F2", remote: "08080808:0035", state: 1, txQueue: 0, rxQueue: 0, uid: 0, inode: "416041" }
 */
export function parseProcNetRow(line: string): ProcNetRow | null {
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  const fields = line.trim().split(/\s+/);
  if (fields.length < 10 || !/^\d+:$/.test(fields[0]!)) return null;
  const queues = /^([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,8})$/.exec(fields[4]!);
  const uid = Number(fields[7]);
  const inode = fields[9]!;
  if (queues === null || !/^[0-9A-Fa-f]{2}$/.test(fields[3]!) || !Number.isSafeInteger(uid) || !/^\d+$/.test(inode)) return null;
  return {
    local: unmapped(fields[1]!),
    remote: unmapped(fields[2]!),
    state: parseInt(fields[3]!, 16),
    txQueue: parseInt(queues[1]!, 16),
    rxQueue: parseInt(queues[2]!, 16),
    uid,
    inode,
  };
}

/**
 * Parse one row; null for the header, short lines and rows without a socket
 * (inode 0: the owner has closed it, so uid says nothing either).
 *
 * @example
 * parseProcNetTcpRow("   3: 0100007F:C350 0100007F:2329 01 00000000:00000000 00:00000000 00000000  1000        0 48121 1 0 20 4 30 10 -1")
 * // { local: "0100007F:C350", remote: "0100007F:2329", owner: { uid: 1000, inode: "48121" } }
 */
export function parseProcNetTcpRow(line: string): ProcNetTcpRow | null {
  const row = parseProcNetRow(line);
  if (row === null || row.inode === "0") return null;
  return { local: row.local, remote: row.remote, owner: { uid: row.uid, inode: row.inode } };
}

/**
 * The address and port a /proc/net endpoint names: the inverse of
 * `procNetAddress` (each 32-bit word in little-endian host order), IPv6 in
 * RFC 5952 spelling, an IPv4-mapped endpoint as its IPv4 address. Null for
 * anything that is not 8 or 32 hex digits, a colon and 4 hex digits.
 *
 * @example
 * decodeProcNetAddress("0100007F:2329") // { address: "127.0.0.1", port: 9001 }
 * decodeProcNetAddress("60480120000060480000000088880000:0035") // { address: "2001:4860:4860::8888", port: 53 }
 */
export function decodeProcNetAddress(endpoint: string): { address: string; port: number } | null {
  const match = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(unmapped(endpoint.toUpperCase()));
  if (match === null) return null;
  const hex = match[1]!;
  const bytes = new Uint8Array(hex.length / 2);
  // Each 32-bit word is printed as the number the host holds it as: on little-endian hosts, its bytes reversed.
  for (let word = 0; word < hex.length / 8; word++) {
    for (let i = 0; i < 4; i++) bytes[word * 4 + i] = parseInt(hex.slice(word * 8 + (3 - i) * 2, word * 8 + (4 - i) * 2), 16);
  }
  return { address: formatAddress(bytes), port: parseInt(match[2]!, 16) };
}

/** A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d in tcp6: compare it in its tcp form. */
function unmapped(endpoint: string): string {
  return endpoint.length === 37 && endpoint.startsWith(MAPPED_PREFIX) ? endpoint.slice(MAPPED_PREFIX.length) : endpoint;
}

/** One search of the tables: for each file, in order, the rows wanted, each as [needle, key]. */
export interface TableSearch {
  files: Array<{ path: string; needles: Array<[needle: string, key: string]> }>;
}

/**
 * The rows of /proc/net/tcp{,6} that hold the wanted endpoint pairs, as
 * [key, line]: at most one line per key, and the search stops as soon as
 * every key has one. A needle is a row's "local remote" endpoints as that
 * table spells them (tcp6 writes an IPv4 client in its ::ffff: form), so a
 * key may have one needle in each table.
 *
 * Runs on a worker thread (off-loop.ts): it must use nothing from outside
 * its own body.
 *
 * @example
 * searchTables({ files: [{ path: "/proc/net/tcp", needles: [["0100007F:C350 0100007F:2329", "k"]] }] }, fs)
 * // [["k", "   3: 0100007F:C350 0100007F:2329 01 00000000:00000000 00:00000000 00000000  1000        0 48121 1 0 20 4 30 10 -1"]]
 */
export function searchTables(search: TableSearch, filesystem: typeof import("node:fs")): Array<[string, string]> {
  const hits: Array<[string, string]> = [];
  const done = new Set<string>();
  const wantedKeys = new Set<string>();
  for (const file of search.files) for (const [, key] of file.needles) wantedKeys.add(key);
  // procfs hands out a page per read(2) however large the buffer.
  const buffer = new Uint8Array(64 * 1024);
  const decoder = new TextDecoder("latin1");
  for (const file of search.files) {
    if (done.size === wantedKeys.size) break;
    let fd: number;
    try {
      fd = filesystem.openSync(file.path, "r");
    } catch {
      continue;
    }
    try {
      let partial = "";
      while (done.size < wantedKeys.size) {
        // Producing each page walks the kernel's TCP hash: this read is the cost of a search.
        const read = filesystem.readSync(fd, buffer, 0, buffer.length, null);
        const text = partial + decoder.decode(buffer.subarray(0, read));
        // Rows are whole lines; the last one may continue in the next page.
        const cut = read === 0 ? text.length : text.lastIndexOf("\n") + 1;
        const rows = text.slice(0, cut);
        partial = text.slice(cut);
        for (const [needle, key] of file.needles) {
          if (done.has(key)) continue;
          // "sl: local remote st ...": one space on each side of the pair.
          const at = rows.indexOf(` ${needle} `);
          if (at < 0) continue;
          const lineEnd = rows.indexOf("\n", at);
          hits.push([key, rows.slice(rows.lastIndexOf("\n", at) + 1, lineEnd < 0 ? rows.length : lineEnd)]);
          done.add(key);
        }
        if (read === 0) break;
      }
    } catch {
      // A table that cannot be read to its end: what was found stands.
    } finally {
      filesystem.closeSync(fd);
    }
  }
  return hits;
}

export interface SocketOwnerLookupOptions {
  /** Where procfs is mounted; tests pass a folder of their own. @default "/proc" */
  procRoot?: string;
  /**
   * Longest wait for an answer; later it is undefined, so whoever awaits it
   * is never held longer. @default 20000: the access check refuses an
   * unanswered client, and with 1,000 transfers running one search took
   * over 3 s (measured, read then on libuv's thread pool), so the wait stays
   * below the 30 s SOCKS handshake deadline but well above that.
   */
  waitMs?: number;
}

/**
 * Finds the owners of client sockets, one read of the tables at a time.
 *
 * @example
 * const owners = new SocketOwnerLookup();
 * await owners.find({ address: "127.0.0.1", port: 51234, localAddress: "127.0.0.1", localPort: 9001 }) // { uid: 1000, inode: "48121" }
 */
export class SocketOwnerLookup {
  readonly #procRoot: string;
  readonly #waitMs: number;
  /** Keyed by "<client endpoint> <server endpoint>" in procNetAddress form. */
  readonly #rows = new BatchedLookup<string, SocketOwner>((wanted, found) => this.#readTables(wanted, found));
  readonly #search = new OffLoop(searchTables);

  constructor(options: SocketOwnerLookupOptions = {}) {
    this.#procRoot = options.procRoot ?? "/proc";
    this.#waitMs = options.waitMs ?? 20_000;
  }

  /** The owner of the client's end of its connection, or undefined if /proc does not show it in time. */
  async find(client: AcceptedClient): Promise<SocketOwner | undefined> {
    // The client's row has its own endpoint as local_address and ours as rem_address.
    const local = procNetAddress(client.address, client.port);
    const remote = procNetAddress(client.localAddress, client.localPort);
    if (local === null || remote === null) return undefined;
    return within(this.#rows.find(`${local} ${remote}`), this.#waitMs);
  }

  async #readTables(wanted: ReadonlySet<string>, found: (key: string, owner: SocketOwner) => void): Promise<void> {
    // Producing the tables walks the kernel's whole TCP hash, a page per
    // read(2): about 4 ms a table for 262,144 buckets on a 24 GiB machine,
    // 30 ms with 14,000 TIME_WAIT rows, and every connection a client closes
    // leaves such a row for a minute. So the search runs on a worker thread
    // (off-loop.ts) and the loop carries traffic meanwhile. Measured before,
    // 50 clients at once through -D: read page by page on libuv's thread
    // pool, 282-652 requests/s, each page waiting for a turn of a busy loop;
    // read on the loop in slices, 559-670, but 100,000 fuzz connections took
    // three times as long; on Deno, asynchronous reads were starved under
    // load and 496 of 500 clients were refused after the wait.
    const tcp: Array<[string, string]> = [];
    const tcp6: Array<[string, string]> = [];
    for (const key of wanted) {
      const [local, remote] = key.split(" ") as [string, string];
      // An IPv4 client of a dual-stack socket is in tcp6, spelt ::ffff:a.b.c.d.
      if (local.length === 13) {
        tcp.push([key, key]);
        tcp6.push([`${MAPPED_PREFIX}${local} ${MAPPED_PREFIX}${remote}`, key]);
      } else {
        tcp6.push([key, key]);
      }
    }
    const search: TableSearch = {
      files: [
        { path: `${this.#procRoot}/net/tcp`, needles: tcp },
        { path: `${this.#procRoot}/net/tcp6`, needles: tcp6 },
      ],
    };
    for (const [key, line] of await this.#search.run(search)) {
      const row = parseProcNetTcpRow(line);
      if (row !== null) found(key, row.owner);
    }
  }
}
