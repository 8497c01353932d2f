/**
 * Which local account and socket are behind a loopback TCP client, from the
 * client's own row in Linux's /proc/net/tcp or /proc/net/tcp6 (proc(5): the
 * row whose local_address is the client's address and rem_address ours; its
 * "uid" and "inode" columns).
 *
 * Ask while the client still holds its socket open: once it closes its end,
 * its row loses its inode (0 in FIN_WAIT and TIME_WAIT) or disappears, and
 * nothing more can be learnt. -D asks only when it refuses a request, before
 * sending the reply, so the refused client is still waiting on its socket;
 * asking for every accepted connection doubled what one costs in CPU. The
 * tables grow with every open connection, so one read at a time serves every
 * client asked for while it was waiting. Any failure (another OS, no /proc, a
 * race) just means "unknown".
 */
import { readFile } from "node:fs/promises";
import { within } from "../deadline.ts";
import { BatchedLookup } from "./batched-lookup.ts";

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
 *
 * @example
 * procNetAddress("127.0.0.1", 9001) // "0100007F:2329"
 */
export function procNetAddress(address: string, port: number): string | null {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  if (v4) {
    const bytes = v4.slice(1, 5).map(Number);
    return bytes.reverse().map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("") + ":" + hexPort;
  }
  if (address === "::1") return "00000000000000000000000001000000:" + hexPort;
  return null;
}

/** One row of /proc/net/tcp{,6}: endpoints in `procNetAddress` form and the owner. */
export interface ProcNetTcpRow {
  local: string;
  remote: string;
  owner: SocketOwner;
}

/** The tcp6 spelling of an IPv4-mapped address starts with these 24 hex digits (::ffff:0:0/96). */
const MAPPED_PREFIX = "0000000000000000FFFF0000";

/**
 * Parse one row; null for the header, short lines and rows without a socket
 * (inode 0: the owner has closed it, so uid says nothing either).
 *
 * @example
 * parseProcNetTcpRow("   3: 0100007F:C350 0100007F:2329 01 00000000:00000000 00:00000000 00000000  1000        0 48121 1 0 20 4 30 10 -1")
 * // { local: "0100007F:C350", remote: "0100007F:2329", owner: { uid: 1000, inode: "48121" } }
 */
export function parseProcNetTcpRow(line: string): ProcNetTcpRow | null {
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  const fields = line.trim().split(/\s+/);
  if (fields.length < 10 || !/^\d+:$/.test(fields[0]!)) return null;
  const uid = Number(fields[7]);
  const inode = fields[9]!;
  if (!Number.isSafeInteger(uid) || !/^\d+$/.test(inode) || inode === "0") return null;
  return { local: unmapped(fields[1]!), remote: unmapped(fields[2]!), owner: { uid, inode } };
}

/** A row's "local remote" endpoints (the two fields after "sl:"), unmapped; null for the header. */
function endpointsOf(line: string): string | null {
  const start = line.indexOf(": ") + 2;
  if (start < 2) return null;
  const gap = line.indexOf(" ", start);
  const end = line.indexOf(" ", gap + 1);
  if (gap < 0 || end < 0) return null;
  return `${unmapped(line.slice(start, gap))} ${unmapped(line.slice(gap + 1, end))}`;
}

/** A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d in tcp6: compare it in its tcp form. */
function unmapped(endpoint: string): string {
  return endpoint.length === 37 && endpoint.startsWith(MAPPED_PREFIX) ? endpoint.slice(MAPPED_PREFIX.length) : endpoint;
}

export interface SocketOwnerLookupOptions {
  /** Where procfs is mounted; tests pass a folder of their own. @default "/proc" */
  procRoot?: string;
  /** Longest wait for an answer; later it is undefined, so whoever awaits it is never held longer. @default 250 */
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

  constructor(options: SocketOwnerLookupOptions = {}) {
    this.#procRoot = options.procRoot ?? "/proc";
    this.#waitMs = options.waitMs ?? 250;
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
    for (const table of ["tcp", "tcp6"]) {
      if (wanted.size === 0) return;
      let text: string;
      try {
        text = await readFile(`${this.#procRoot}/net/${table}`, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n")) {
        // Nearly every row is another socket: compare the endpoints before parsing the rest.
        const endpoints = endpointsOf(line);
        if (endpoints === null || !wanted.has(endpoints)) continue;
        const row = parseProcNetTcpRow(line);
        if (row !== null) found(endpoints, row.owner);
      }
    }
  }
}
