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
 * is accepted, and that is this module's main cost (see tableScanner): the
 * tables grow with every socket on the machine, so one scanner, on a worker
 * thread, reads them for every client waiting, each joining the read under
 * way. Any failure (another OS, no /proc, a race) just means "unknown".
 *
 * The row parser and the endpoint codec serve every /proc/net/{tcp,udp}{,6}
 * reader (leakcheck's resolver-socket poll among them), so there is one of each.
 */
import { formatAddress, mappedIPv4, parseIPv4, parseIPv6 } from "../address.ts";
import { within } from "../deadline.ts";
import { OffLoop, type AgentTools } from "./off-loop.ts";

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

/** What the lookup sends the scanner: the tables, read in this order on every pass, and rows newly wanted. */
export interface ScanRequest {
  paths: string[];
  /**
   * Each key with its needle for each table, "" where that table cannot hold
   * it. A needle is a row's "local remote" endpoints as that table spells
   * them (tcp6 writes an IPv4 client in its ::ffff: form), so a key may have
   * a needle in each table.
   */
  add: Array<[key: string, needles: string[]]>;
}

/** What the scanner posts: rows found, as [key, line], and keys no whole pass has shown. */
export interface ScanReport {
  found: Array<[string, string]>;
  absent: string[];
}

/**
 * The scanner behind every owner lookup, an OffLoop agent (off-loop.ts): it
 * reads the tables over and over while any key is wanted, a few reads a step,
 * and posts each row as it turns up. A key that arrives while a pass is under
 * way joins it at once: its socket existed before the key did, so its row is
 * either still ahead in this pass or behind, and then the next whole pass
 * shows it. A key that neither shows is absent (its client closed). So under
 * steady load a lookup waits about half a pass, where waiting for the next
 * pass to start and then for its row cost one.
 *
 * It must use nothing from outside its own body (off-loop.ts).
 *
 * @example
 * const take = tableScanner((report) => console.log(report), { fs, setImmediate });
 * take({ paths: ["/proc/net/tcp"], add: [["k", ["0100007F:C350 0100007F:2329"]]] });
 * // later: { found: [["k", "   3: 0100007F:C350 0100007F:2329 01 00000000:00000000 00:00000000 00000000  1000        0 48121 1 0 20 4 30 10 -1"]], absent: [] }
 */
export function tableScanner(post: (report: ScanReport) => void, tools: AgentTools): (request: ScanRequest) => void {
  // read(2)s of a table between two looks at the inputs: procfs gives a 4 KiB page each, 27 rows of tcp.
  const readsPerStep = 16;
  let paths: string[] = [];
  /** For each table, needle to key. */
  const wanted: Array<Map<string, string>> = [];
  /** Each wanted key, its needles, and the number of the last pass that must look for it. */
  const keys = new Map<string, { needles: string[]; lastPass: number }>();
  /** The pass under way, or the last one run. */
  let pass = 0;
  /** The table being read, -1 between passes. */
  let table = -1;
  let fd = -1;
  /** The start of a row whose end is in the next read. */
  let partial = "";
  // procfs hands out a page per read(2) however large the buffer; a plain file (the tests' /proc) fills it.
  const buffer = new Uint8Array(64 * 1024);
  const decoder = new TextDecoder("latin1");
  let found: Array<[string, string]> = [];
  let absent: string[] = [];

  const forget = (key: string): void => {
    const entry = keys.get(key);
    keys.delete(key);
    if (entry !== undefined) entry.needles.forEach((needle, index) => needle !== "" && wanted[index]?.delete(needle));
  };
  const closeTable = (): void => {
    if (fd >= 0) {
      try {
        tools.fs.closeSync(fd);
      } catch {
        // Only read from: nothing can be lost.
      }
    }
    fd = -1;
    partial = "";
  };
  /** On to the next table, or to the end of the pass (and the start of another while keys are wanted). */
  const nextTable = (): void => {
    closeTable();
    table += 1;
    if (table < paths.length) return;
    for (const [key, entry] of keys) {
      if (entry.lastPass > pass) continue;
      absent.push(key);
      forget(key);
    }
    table = keys.size > 0 ? 0 : -1;
    if (table === 0) pass += 1;
  };
  /** Each row of `rows` (whole lines) that holds a wanted needle of the table being read. */
  const search = (rows: string): void => {
    const needles = wanted[table]!;
    let start = 0;
    while (start < rows.length && needles.size > 0) {
      const newline = rows.indexOf("\n", start);
      const end = newline < 0 ? rows.length : newline;
      // "   sl: local remote st ...": the pair is the two fields after the colon.
      const colon = rows.indexOf(": ", start);
      if (colon >= 0 && colon < end) {
        const localEnd = rows.indexOf(" ", colon + 2);
        const pairEnd = localEnd < 0 ? -1 : rows.indexOf(" ", localEnd + 1);
        const key = pairEnd < 0 || pairEnd > end ? undefined : needles.get(rows.slice(colon + 2, pairEnd));
        if (key !== undefined) {
          found.push([key, rows.slice(start, end)]);
          forget(key);
        }
      }
      start = end + 1;
    }
  };
  const step = (): void => {
    for (let reads = 0; reads < readsPerStep && table >= 0; reads++) {
      if (keys.size === 0) {
        // Everything found: rest until asked again.
        closeTable();
        table = -1;
        break;
      }
      if (wanted[table]!.size === 0) {
        nextTable();
        continue;
      }
      if (fd < 0) {
        try {
          fd = tools.fs.openSync(paths[table]!, "r");
        } catch {
          nextTable();
          continue;
        }
      }
      let read: number;
      try {
        // Producing each page walks the kernel's TCP hash: these reads are the cost of the access check.
        read = tools.fs.readSync(fd, buffer, 0, buffer.length, null);
      } catch {
        // A table that cannot be read to its end: what was found stands.
        nextTable();
        continue;
      }
      const text = partial + decoder.decode(buffer.subarray(0, read));
      // Rows are whole lines; the last one may continue in the next read.
      const cut = read === 0 ? text.length : text.lastIndexOf("\n") + 1;
      partial = text.slice(cut);
      search(text.slice(0, cut));
      if (read === 0) nextTable();
    }
    if (found.length > 0 || absent.length > 0) {
      post({ found, absent });
      found = [];
      absent = [];
    }
    if (table >= 0) tools.setImmediate(step);
  };

  return (request) => {
    paths = request.paths;
    while (wanted.length < paths.length) wanted.push(new Map());
    for (const [key, needles] of request.add) {
      forget(key);
      // Looked for in the rest of the pass under way and in the whole of the next (between passes: in the next).
      keys.set(key, { needles, lastPass: pass + 1 });
      needles.forEach((needle, index) => needle !== "" && wanted[index]?.set(needle, key));
    }
    if (table >= 0 || keys.size === 0) return;
    table = 0;
    pass += 1;
    tools.setImmediate(step);
  };
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
 * Finds the owners of client sockets, all of them through one scanner (tableScanner).
 *
 * @example
 * const owners = new SocketOwnerLookup();
 * await owners.find({ address: "127.0.0.1", port: 51234, localAddress: "127.0.0.1", localPort: 9001 }) // { uid: 1000, inode: "48121" }
 */
export class SocketOwnerLookup {
  readonly #procRoot: string;
  readonly #waitMs: number;
  /** Everyone waiting, by "<client endpoint> <server endpoint>" in procNetAddress form. */
  readonly #waiting = new Map<string, Array<(owner: SocketOwner | undefined) => void>>();
  readonly #scanner = new OffLoop<ScanRequest, ScanReport>(tableScanner, {
    onOutput: (report) => this.#report(report),
    onRestart: () => {
      for (const key of this.#waiting.keys()) this.#ask(key);
    },
  });

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
    const key = `${local} ${remote}`;
    const answer = new Promise<SocketOwner | undefined>((resolve) => {
      const waiting = this.#waiting.get(key);
      if (waiting !== undefined) {
        waiting.push(resolve);
        return;
      }
      this.#waiting.set(key, [resolve]);
      this.#scanner.busy = true;
      this.#ask(key);
    });
    return within(answer, this.#waitMs);
  }

  /** Have the scanner look for `key` in both tables. */
  #ask(key: string): void {
    const [local, remote] = key.split(" ") as [string, string];
    // An IPv4 client of a dual-stack socket is in tcp6, spelt ::ffff:a.b.c.d.
    const needles = local.length === 13 ? [key, `${MAPPED_PREFIX}${local} ${MAPPED_PREFIX}${remote}`] : ["", key];
    this.#scanner.send({ paths: [`${this.#procRoot}/net/tcp`, `${this.#procRoot}/net/tcp6`], add: [[key, needles]] });
  }

  #report({ found, absent }: ScanReport): void {
    // A row whose socket is closed (inode 0) says nothing of its owner: unknown.
    for (const [key, line] of found) this.#answer(key, parseProcNetTcpRow(line)?.owner);
    for (const key of absent) this.#answer(key, undefined);
  }

  #answer(key: string, owner: SocketOwner | undefined): void {
    const waiting = this.#waiting.get(key);
    if (waiting === undefined) return;
    this.#waiting.delete(key);
    for (const resolve of waiting) resolve(owner);
    if (this.#waiting.size === 0) this.#scanner.busy = false;
  }
}
