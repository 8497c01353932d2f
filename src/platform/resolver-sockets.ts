/**
 * leakcheck's resolver probe without capture rights (Linux): which programs
 * hold sockets to a DNS server, from /proc/net/{udp,udp6,tcp,tcp6} (proc(5))
 * and the /proc/<pid>/fd walk of peer-process.ts.
 *
 * What /proc shows and what it cannot:
 * - A row carries its endpoints, state, queue sizes, uid and inode, never the
 *   bytes that went through it, so no name and no proof that a query was sent.
 * - Only connected sockets name their far end. glibc's resolver and Chromium's
 *   built-in one connect() their UDP sockets to the nameserver, so their
 *   lookups show up while a socket lives; a resolver that uses sendto() on an
 *   unconnected socket (musl, for one) shows nothing here.
 * - A socket lives for the few milliseconds of a lookup: a poll catches the
 *   ones alive when it reads. Short ones are missed; capture (with rights) is
 *   the probe that proves a leak, this one only says who uses the resolver.
 * - A browser that asks through nss-resolve talks to systemd-resolved over a
 *   Unix socket: only systemd-resolved's own upstream sockets show then.
 */
import { readFile } from "node:fs/promises";
import { formatAddress, hostPort, isLoopbackAddress, parseIPv4, parseIPv6 } from "../address.ts";
import { cidrContains, parseCidr, type Cidr } from "../cidr.ts";
import { socksAppFromProgram, type ProxyEndpoint } from "../client-setup.ts";
import { within } from "../deadline.ts";
import type { Finding, Severity } from "../leakcheck/findings.ts";
import { SocketProgramFinder } from "./peer-process.ts";
import { decodeProcNetAddress, parseProcNetRow } from "./socket-owner.ts";

/** The four tables, as /proc/net names them. */
export type ProcNetTable = "udp" | "udp6" | "tcp" | "tcp6";

const TABLES: readonly ProcNetTable[] = ["udp", "udp6", "tcp", "tcp6"];

/** The resolver services a far port stands for. */
export type ResolverService = "dns" | "dot" | "mdns" | "llmnr";

/**
 * Far ports that mean a resolver: DNS (RFC 1035), DNS over TLS (RFC 7858),
 * mDNS (RFC 6762) and LLMNR (RFC 4795). The last two are multicast and
 * usually sent from unconnected sockets (invisible here), but a connected one
 * costs nothing to report.
 */
export const RESOLVER_PORTS: Readonly<Record<number, ResolverService>> = { 53: "dns", 853: "dot", 5353: "mdns", 5355: "llmnr" };

/** The kernel's TCP states (include/net/tcp_states.h); UDP uses ESTABLISHED for connected, CLOSE for not. */
const STATES = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"];

export interface SocketEndpoint {
  /** IPv4 dotted or IPv6 per RFC 5952; an IPv4-mapped address in its IPv4 form. */
  address: string;
  port: number;
}

/** A socket whose far end is a resolver port, decoded from one /proc/net row. */
export interface ResolverSocket {
  table: ProcNetTable;
  protocol: "udp" | "tcp";
  service: ResolverService;
  local: SocketEndpoint;
  remote: SocketEndpoint;
  /** The kernel's state name: "ESTABLISHED" (for UDP: connected), "TIME_WAIT", ... */
  state: string;
  txQueue: number;
  rxQueue: number;
  /** Meaningless (0) when `inode` is null. */
  uid: number;
  /** null once the owner has closed the socket (TIME_WAIT, FIN_WAIT2): no program can be found then. */
  inode: string | null;
}

/**
 * The sockets of one /proc/net table whose far port is a resolver's, in row
 * order. The header, malformed rows and every other socket (listeners, a
 * server's own port 53, unconnected UDP) are skipped.
 *
 * @example
 * parseResolverSockets("udp", "  242: 020200C0:E9F2 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 416041 2 00000000756f6e18 0")
 * // [{ table: "udp", protocol: "udp", service: "dns", local: { address: "192.0.2.2", port: 59890 },
 * //    remote: { address: "8.8.8.8", port: 53 }, state: "ESTABLISHED", txQueue: 0, rxQueue: 0, uid: 0, inode: "416041" }]
 */
export function parseResolverSockets(table: ProcNetTable, text: string, ports: Readonly<Record<number, ResolverService>> = RESOLVER_PORTS): ResolverSocket[] {
  const sockets: ResolverSocket[] = [];
  for (const line of text.split("\n")) {
    const row = parseProcNetRow(line);
    if (row === null) continue;
    const remote = decodeProcNetAddress(row.remote);
    const service = remote === null ? undefined : ports[remote.port];
    const local = decodeProcNetAddress(row.local);
    if (remote === null || service === undefined || local === null) continue;
    sockets.push({
      table,
      protocol: table.startsWith("udp") ? "udp" : "tcp",
      service,
      local,
      remote,
      state: STATES[row.state] ?? `0x${row.state.toString(16).toUpperCase().padStart(2, "0")}`,
      txQueue: row.txQueue,
      rxQueue: row.rxQueue,
      uid: row.uid,
      inode: row.inode === "0" ? null : row.inode,
    });
  }
  return sockets;
}

// ------------------------------------------------------------------ the rule

/**
 * The addresses Chromium connects a UDP socket to, port 53, without sending,
 * to learn which local address the default route uses: libwebrtc's
 * kPublicIPv4Host/kPublicIPv6Host (rtc_base/network.cc, port kPublicPort 53)
 * and the host resolver's IPv6 reachability probe (host_resolver_manager.cc).
 */
export const ROUTE_PROBE_ADDRESSES: readonly string[] = ["8.8.8.8", "2001:4860:4860::8888"];

/** Where no public resolver lives: loopback, private, shared, link-local, ULA (RFC 6890 and RFC 4193). */
const NOT_PUBLIC: readonly Cidr[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "::/127",
  "fc00::/7",
  "fe80::/10",
].map((text) => parseCidr(text));

/**
 * How one resolver socket is reported:
 * - `suspect`: a browser's connected UDP socket to a public address, port 53,
 *   nothing queued either way: what Chromium's route probe looks like (info).
 * - `browser-lookup`: a browser's own socket to a resolver: it resolved a
 *   name itself, which one /proc cannot tell (exposure).
 * - `lookup`: any other program's socket (systemd-resolved, libc in a
 *   command-line tool), or a closed one whose owner is gone (info; exposure
 *   for DNS over TLS leaving the machine).
 */
export type ResolverSocketKind = "suspect" | "browser-lookup" | "lookup";

export interface ResolverSocketJudgement {
  kind: ResolverSocketKind;
  severity: Severity;
}

export interface ResolverRuleOptions {
  /** The system's nameservers (resolv.conf), so a route probe to one of them is called out as ambiguous. @default [] */
  nameservers?: readonly string[];
}

/**
 * The "suspect" rule, and why it is never a leak. A connected UDP socket
 * whose far end is 8.8.8.8:53 looks the same in /proc whether Chromium only
 * connect()ed it (no packet leaves: connect() on UDP just picks a route and
 * a source address, which is how Chromium and libwebrtc learn the default
 * local address) or sent a query through it. Two things can be seen:
 * - rx_queue > 0: a reply waits unread. A resolver answers only a query, so
 *   something was sent: not a bare probe.
 * - tx_queue > 0: a datagram is queued to go out: not a bare probe either.
 * So a browser's (Firefox's or Chromium's, by its comm) connected UDP socket,
 * port 53, both queues 0, to a route-probe address or to any public address
 * that is not one of the system's nameservers (where a browser has no reason
 * to send a query: its own resolver uses the configured ones) is `suspect`,
 * reported as info and never as a leak: a query sent and answered between two
 * polls leaves both queues 0 too, so nothing here can prove a lookup, and the
 * canary and capture probes are the ones that do. Every other browser socket
 * to a resolver port (the configured nameserver, TCP, DoT, a queued byte) is
 * the browser resolving something itself, name unknown: `exposure`, with the
 * fix that keeps its names remote. Sockets of every other program are `info`:
 * the system resolver works for everyone, and /proc cannot say for whom. The
 * one exception is DNS over TLS to a far (not loopback) server: `exposure`,
 * as the capture probe reports it (resolver-findings.ts): the network sees
 * this machine resolve outside the tunnel, and that server sees every name.
 *
 * @example
 * judgeResolverSocket(chromiumProbeSocket, "chromium") // { kind: "suspect", severity: "info" }
 * judgeResolverSocket(resolvedUpstreamSocket, "systemd-resolve") // { kind: "lookup", severity: "info" }
 */
export function judgeResolverSocket(socket: ResolverSocket, program: string | undefined, options: ResolverRuleOptions = {}): ResolverSocketJudgement {
  if (!isBrowser(program)) return { kind: "lookup", severity: leavesEncrypted(socket) ? "exposure" : "info" };
  const nameservers = new Set((options.nameservers ?? []).map(canonicalAddress));
  const remote = canonicalAddress(socket.remote.address);
  const probeLike =
    socket.protocol === "udp" &&
    socket.service === "dns" &&
    socket.state === "ESTABLISHED" &&
    socket.txQueue === 0 &&
    socket.rxQueue === 0 &&
    (ROUTE_PROBE_ADDRESSES.includes(remote) || (isPublicAddress(remote) && !nameservers.has(remote)));
  return probeLike ? { kind: "suspect", severity: "info" } : { kind: "browser-lookup", severity: "exposure" };
}

export interface ResolverFindingOptions extends ResolverRuleOptions {
  /** The proxy under test, for fixes that must exclude its host. @default 127.0.0.1:1080 */
  proxy?: ProxyEndpoint;
}

const SERVICE_NAMES: Record<ResolverService, string> = { dns: "a DNS", dot: "a DNS-over-TLS", mdns: "an mDNS", llmnr: "an LLMNR" };

/**
 * The finding (probe "resolver") for one socket and the program holding it.
 *
 * @example
 * resolverSocketFinding(chromiumProbeSocket, "chromium").detail
 * // "Suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53 connected with nothing queued; ..."
 */
export function resolverSocketFinding(socket: ResolverSocket, program: string | undefined, options: ResolverFindingOptions = {}): Finding {
  const { kind, severity } = judgeResolverSocket(socket, program, options);
  const path = `${socket.protocol.toUpperCase()} ${hostPort(socket.local.address, socket.local.port)} -> ${hostPort(socket.remote.address, socket.remote.port)}`;
  const state = socket.protocol === "tcp" && socket.state !== "ESTABLISHED" ? ` (${socket.state})` : "";
  const encrypted = leavesEncrypted(socket) ? "; encrypted DNS leaving this machine" : "";
  const service = SERVICE_NAMES[socket.service];
  switch (kind) {
    case "suspect": {
      const nameservers = (options.nameservers ?? []).map(canonicalAddress);
      const ambiguous = nameservers.includes(canonicalAddress(socket.remote.address)) ? ` (${socket.remote.address} is also a configured nameserver, so it may be a lookup)` : "";
      return {
        probe: "resolver",
        severity,
        detail:
          `Suspect, not counted as a lookup: ${program} holds ${path} connected with nothing queued${ambiguous}; ` +
          "Chromium connects such a socket without sending anything to learn its default address, and /proc cannot show sent bytes",
        fix: null,
      };
    }
    case "browser-lookup":
      return {
        probe: "resolver",
        severity,
        detail: `The browser resolves names itself: ${program} holds a socket to ${service} server, ${path}${state}${encrypted}; /proc cannot tell which name (a capture, as root, can)`,
        fix: browserResolverFix(program, options.proxy ?? { host: "127.0.0.1", port: 1080 }),
      };
    case "lookup": {
      const holder = socket.inode === null ? "closed before its program could be named" : `held by ${program ?? "a program leakcheck could not name"}`;
      return {
        probe: "resolver",
        severity,
        detail: `A socket to ${service} server, ${holder}: ${path}${state}${encrypted}`,
        fix: severity === "exposure" ? "nothing to change in the browser; to hide this too, send the system's DNS through the tunnel as well" : null,
      };
    }
  }
}

/** DNS over TLS to a server off this machine: encrypted, but seen leaving. */
function leavesEncrypted(socket: ResolverSocket): boolean {
  return socket.service === "dot" && !isLoopbackAddress(socket.remote.address);
}

/** What keeps a browser from resolving anything itself (the canary probe checks the SOCKS side). */
function browserResolverFix(program: string | undefined, proxy: ProxyEndpoint): string {
  if (socksAppFromProgram(program) === "firefox") {
    return "in Firefox use manual proxy settings (network.proxy.type = 1) with network.proxy.socks5_remote_dns = true, and set network.dns.disablePrefetch = true";
  }
  return `start Chromium with --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE ${proxy.host}"`;
}

function isBrowser(program: string | undefined): boolean {
  const app = socksAppFromProgram(program);
  return app === "firefox" || app === "chromium";
}

/** One spelling per address (RFC 5952, IPv4-mapped as IPv4, zone dropped), so resolv.conf and /proc compare. */
function canonicalAddress(text: string): string {
  const bare = text.replace(/%.*$/, "");
  const bytes = parseIPv4(bare) ?? parseIPv6(bare);
  if (bytes === null) return bare;
  const formatted = formatAddress(bytes);
  return formatted.startsWith("::ffff:") && formatted.includes(".") ? formatted.slice("::ffff:".length) : formatted;
}

function isPublicAddress(address: string): boolean {
  const bytes = parseIPv4(address) ?? parseIPv6(address);
  return bytes !== null && !NOT_PUBLIC.some((cidr) => cidr.family === (bytes.length === 4 ? 4 : 6) && cidrContains(cidr, bytes));
}

// ------------------------------------------------------------------ the poller

/** A timer the poller schedules its next sample on; tests pass one they fire themselves. */
export interface PollTimer {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMER: PollTimer = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A new resolver socket, once: what was seen, who held it, and the finding. */
export interface ResolverSocketReport {
  socket: ResolverSocket;
  program: string | undefined;
  finding: Finding;
}

export interface ResolverSocketPollerOptions extends ResolverFindingOptions {
  /** Called once per new socket, in table and row order. */
  onSocket: (report: ResolverSocketReport) => void;
  /** Pause between the end of one sample and the start of the next. @default 250 */
  intervalMs?: number;
  /** Where procfs is mounted; tests pass a folder of their own. @default "/proc" */
  procRoot?: string;
  /** Far ports to watch. @default RESOLVER_PORTS */
  ports?: Readonly<Record<number, ResolverService>>;
  /** Names the program holding an inode. @default a SocketProgramFinder over `procRoot` */
  programs?: { find(inode: string): Promise<string | undefined> };
  /** Longest wait for a program name; a sample never takes much longer. @default 500 */
  programWaitMs?: number;
  /** @default the runtime's setTimeout and clearTimeout */
  timer?: PollTimer;
  /** Sockets reported at most; later ones are counted in `unreported`, so a long --watch stays bounded. @default 1000 */
  maxReports?: number;
}

/**
 * Samples the four tables every `intervalMs` (one sample at a time: the next
 * is scheduled when one ends) and reports each new resolver socket once. A
 * socket is the same while its table, local and far endpoints are (so a TCP
 * connection that closes into TIME_WAIT is not reported again); what was seen
 * is forgotten once it is gone, so memory follows the tables, not the run.
 *
 * @example
 * const poller = new ResolverSocketPoller({ onSocket: ({ finding }) => findings.push(finding), nameservers: ["127.0.0.53"] });
 * poller.start();
 * // ... the test runs ...
 * await poller.stop();
 */
export class ResolverSocketPoller {
  readonly #options: ResolverSocketPollerOptions;
  readonly #procRoot: string;
  readonly #intervalMs: number;
  readonly #programs: { find(inode: string): Promise<string | undefined> };
  readonly #programWaitMs: number;
  readonly #timer: PollTimer;
  readonly #maxReports: number;
  /** Keys of the sockets present at the last sample. */
  #seen = new Set<string>();
  #reported = 0;
  #unreported = 0;
  #running = false;
  #handle: unknown = undefined;
  #current: Promise<unknown> | undefined;

  constructor(options: ResolverSocketPollerOptions) {
    this.#options = options;
    this.#procRoot = options.procRoot ?? "/proc";
    this.#intervalMs = options.intervalMs ?? 250;
    this.#programs = options.programs ?? new SocketProgramFinder({ procRoot: this.#procRoot });
    this.#programWaitMs = options.programWaitMs ?? 500;
    this.#timer = options.timer ?? REAL_TIMER;
    this.#maxReports = options.maxReports ?? 1000;
  }

  /** New sockets seen after `maxReports` was reached, and so not reported. */
  get unreported(): number {
    return this.#unreported;
  }

  /** Samples now, then every `intervalMs` until `stop`. Starting twice does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#tick();
  }

  /** No sample starts after this; resolves when the one under way (if any) has reported. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#handle !== undefined) this.#timer.clearTimeout(this.#handle);
    this.#handle = undefined;
    await this.#current;
  }

  /**
   * One sample: reads the tables, names the holders of new sockets, reports
   * them and returns the reports. For a single look without `start`; while
   * started, the poller's own samples are the only ones that may run.
   */
  async sample(): Promise<ResolverSocketReport[]> {
    const present = new Map<string, ResolverSocket>();
    for (const table of TABLES) {
      let text: string;
      try {
        text = await readFile(`${this.#procRoot}/net/${table}`, "utf8");
      } catch {
        continue; // no IPv6, no /proc
      }
      for (const socket of parseResolverSockets(table, text, this.#options.ports)) {
        present.set(`${table} ${hostPort(socket.local.address, socket.local.port)} ${hostPort(socket.remote.address, socket.remote.port)}`, socket);
      }
    }
    const fresh = [...present].filter(([key]) => !this.#seen.has(key)).map(([, socket]) => socket);
    this.#seen = new Set(present.keys());
    const room = Math.max(0, this.#maxReports - this.#reported);
    this.#unreported += Math.max(0, fresh.length - room);
    const chosen = fresh.slice(0, room);
    this.#reported += chosen.length;
    // Asked together, so the finder's walks are shared; each answer waits at most programWaitMs.
    const programs = await Promise.all(chosen.map((socket) => (socket.inode === null ? undefined : within(this.#programs.find(socket.inode), this.#programWaitMs))));
    const reports = chosen.map((socket, i) => ({ socket, program: programs[i], finding: resolverSocketFinding(socket, programs[i], this.#options) }));
    for (const report of reports) this.#options.onSocket(report);
    return reports;
  }

  #tick(): void {
    this.#handle = undefined;
    if (!this.#running) return;
    this.#current = this.sample().finally(() => {
      if (this.#running) this.#handle = this.#timer.setTimeout(() => this.#tick(), this.#intervalMs);
    });
  }
}
