import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  judgeResolverSocket,
  parseResolverSockets,
  resolverSocketFinding,
  ResolverSocketPoller,
  type PollTimer,
  type ProcNetTable,
  type ResolverSocket,
  type ResolverSocketReport,
} from "../../src/platform/resolver-sockets.ts";

// ------------------------------------------------------------------ fixtures, as Linux 6.1 prints the tables

const UDP_HEADER = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            ";
const UDP6_HEADER =
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
const TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     ";
const TCP6_HEADER =
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

/** A table's text: its header, its rows, and the final newline. */
const table = (header: string, ...rows: string[]): string => [header, ...rows, ""].join("\n");

/** A udp or udp6 row; `queues` is tx_queue:rx_queue. */
const udpRow = (sl: number, local: string, remote: string, state: string, uid: number, inode: string, queues = "00000000:00000000"): string =>
  `  ${sl}: ${local} ${remote} ${state} ${queues} 00:00000000 00000000  ${uid}        0 ${inode} 2 00000000756f6e18 0        `;
/** A tcp or tcp6 row of an open socket. */
const tcpRow = (sl: number, local: string, remote: string, state: string, uid: number, inode: string): string =>
  `   ${sl}: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000  ${uid}        0 ${inode} 1 000000000524f777 20 0 0 10 -1                    `;

// Chromium's route probe (8.8.8.8:53), systemd-resolved's stub listener (local port 53: not a lookup),
// curl's lookup through the stub, systemd-resolved's upstream query, an mDNS listener and a LLMNR query.
const UDP = table(
  UDP_HEADER,
  udpRow(242, "020200C0:E9F2", "08080808:0035", "01", 1000, "416041"),
  udpRow(300, "3500007F:0035", "00000000:0000", "07", 991, "21001"),
  udpRow(301, "0100007F:A1B2", "3500007F:0035", "01", 1000, "416100"),
  udpRow(302, "020200C0:C001", "35FFFF0A:0035", "01", 991, "21050"),
  udpRow(303, "00000000:14E9", "00000000:0000", "07", 107, "19000"),
  udpRow(304, "020200C0:C002", "FC0000E0:14EB", "01", 991, "21051"),
);

// A dual-stack socket connected to ::ffff:8.8.4.4 and an IPv6 probe from fd00::2 to 2001:4860:4860::8888.
const UDP6 = table(
  UDP6_HEADER,
  udpRow(6757, "0000000000000000FFFF0000020200C0:C365", "0000000000000000FFFF000004040808:0035", "01", 1000, "416042"),
  udpRow(340, "000000FD000000000000000002000000:AA54", "60480120000060480000000088880000:0035", "01", 1000, "415655"),
);

// systemd-resolved's stub listening on TCP 53, a TCP lookup that has closed into TIME_WAIT (inode 0, uid 0,
// fewer columns), and systemd-resolved's DNS-over-TLS connection to 1.1.1.1:853.
const TCP = table(
  TCP_HEADER,
  tcpRow(0, "3500007F:0035", "00000000:0000", "0A", 991, "416089"),
  "   2: 0100007F:953A 3500007F:0035 06 00000000:00000000 03:00001766 00000000     0        0 0 3 0000000098d8628f                                      ",
  tcpRow(5, "020200C0:D431", "01010101:0355", "01", 991, "22222"),
);

// A TCP lookup to [::1]:53 still connecting.
const TCP6 = table(TCP6_HEADER, tcpRow(0, "00000000000000000000000001000000:80CB", "00000000000000000000000001000000:0035", "02", 1000, "415700"));

/** A socket as parseResolverSockets gives it, with the fields a case changes. */
function socket(overrides: Partial<ResolverSocket>): ResolverSocket {
  return {
    table: "udp",
    protocol: "udp",
    service: "dns",
    local: { address: "192.0.2.2", port: 59890 },
    remote: { address: "8.8.8.8", port: 53 },
    state: "ESTABLISHED",
    txQueue: 0,
    rxQueue: 0,
    uid: 1000,
    inode: "416041",
    ...overrides,
  };
}

// ------------------------------------------------------------------ the parser

describe("parseResolverSockets", () => {
  test("reads Chromium's connected UDP socket to 8.8.8.8:53 with its endpoints, state, queues, uid and inode", () => {
    assert.deepEqual(parseResolverSockets("udp", UDP)[0], socket({}));
  });

  test("keeps only sockets whose far port is a resolver's: the header, listeners, a server's own port 53 and unconnected UDP are skipped", () => {
    const found = parseResolverSockets("udp", UDP).map((s) => `${s.local.address}:${s.local.port} -> ${s.remote.address}:${s.remote.port} ${s.service} ${s.inode}`);
    assert.deepEqual(found, [
      "192.0.2.2:59890 -> 8.8.8.8:53 dns 416041",
      "127.0.0.1:41394 -> 127.0.0.53:53 dns 416100",
      "192.0.2.2:49153 -> 10.255.255.53:53 dns 21050",
      "192.0.2.2:49154 -> 224.0.0.252:5355 llmnr 21051",
    ]);
  });

  test("decodes an IPv4-mapped udp6 row as its IPv4 addresses and an IPv6 row word by word", () => {
    const found = parseResolverSockets("udp6", UDP6);
    assert.deepEqual(
      found.map((s) => [s.table, s.protocol, s.local, s.remote]),
      [
        ["udp6", "udp", { address: "192.0.2.2", port: 50021 }, { address: "8.8.4.4", port: 53 }],
        ["udp6", "udp", { address: "fd00::2", port: 43604 }, { address: "2001:4860:4860::8888", port: 53 }],
      ],
    );
  });

  test("keeps a TCP lookup closed into TIME_WAIT, with inode null, and names TCP states", () => {
    const found = parseResolverSockets("tcp", TCP);
    assert.deepEqual(found, [
      socket({ table: "tcp", protocol: "tcp", local: { address: "127.0.0.1", port: 38202 }, remote: { address: "127.0.0.53", port: 53 }, state: "TIME_WAIT", uid: 0, inode: null }),
      socket({ table: "tcp", protocol: "tcp", service: "dot", local: { address: "192.0.2.2", port: 54321 }, remote: { address: "1.1.1.1", port: 853 }, uid: 991, inode: "22222" }),
    ]);
    assert.deepEqual(
      parseResolverSockets("tcp6", TCP6).map((s) => [s.local.address, s.remote.address, s.state]),
      [["::1", "::1", "SYN_SENT"]],
    );
  });

  test("reads the queue sizes in hex", () => {
    const [found] = parseResolverSockets("udp", udpRow(1, "020200C0:E9F2", "08080808:0035", "01", 1000, "7", "00000040:00000200"));
    assert.deepEqual([found?.txQueue, found?.rxQueue], [64, 512]);
  });

  test("watches only the ports it is given", () => {
    assert.deepEqual(
      parseResolverSockets("tcp", TCP, { 853: "dot" }).map((s) => s.remote.port),
      [853],
    );
  });

  test("skips truncated and malformed rows without throwing", () => {
    const text = [
      UDP_HEADER,
      "  242: 020200C0:E9F2 08080808:0035 01",
      "  243: 020200C0:E9F2 0808080:0035 01 00000000:00000000 00:00000000 00000000  1000        0 7 2 0 0",
      "  244: 020200C0:E9F2 08080808:0035 01 zz:00000000 00:00000000 00000000  1000        0 7 2 0 0",
      "not a row at all",
    ].join("\n");
    assert.deepEqual(parseResolverSockets("udp", text), []);
  });
});

// ------------------------------------------------------------------ the rule

describe("judgeResolverSocket: the suspect rule", () => {
  test("Chromium's UDP socket connected to 8.8.8.8:53 with nothing queued is suspect, reported as info, never a leak", () => {
    assert.deepEqual(judgeResolverSocket(socket({}), "chromium"), { kind: "suspect", severity: "info" });
    assert.deepEqual(judgeResolverSocket(socket({ remote: { address: "2001:4860:4860::8888", port: 53 } }), "chrome"), { kind: "suspect", severity: "info" });
  });

  test("a browser's socket to another public address that is not a configured nameserver is suspect too", () => {
    assert.deepEqual(judgeResolverSocket(socket({ remote: { address: "8.8.4.4", port: 53 } }), "firefox-esr", { nameservers: ["10.255.255.53"] }), {
      kind: "suspect",
      severity: "info",
    });
  });

  test("with a reply waiting (rx_queue) or a datagram queued (tx_queue), the browser has sent a query: exposure", () => {
    assert.deepEqual(judgeResolverSocket(socket({ rxQueue: 512 }), "chromium"), { kind: "browser-lookup", severity: "exposure" });
    assert.deepEqual(judgeResolverSocket(socket({ txQueue: 40 }), "chromium"), { kind: "browser-lookup", severity: "exposure" });
  });

  test("a browser's socket to the configured nameserver, to a private address, over TCP or to DoT is exposure", () => {
    const options = { nameservers: ["9.9.9.9", "10.255.255.53"] };
    const cases = [
      socket({ remote: { address: "9.9.9.9", port: 53 } }),
      socket({ remote: { address: "10.255.255.53", port: 53 } }),
      socket({ remote: { address: "192.168.1.1", port: 53 } }),
      socket({ remote: { address: "127.0.0.53", port: 53 } }),
      socket({ table: "tcp", protocol: "tcp" }),
      socket({ table: "tcp", protocol: "tcp", service: "dot", remote: { address: "8.8.8.8", port: 853 } }),
    ];
    assert.deepEqual(
      cases.map((s) => judgeResolverSocket(s, "chromium", options).kind),
      ["browser-lookup", "browser-lookup", "browser-lookup", "browser-lookup", "browser-lookup", "browser-lookup"],
    );
  });

  test("a route-probe address stays suspect even when it is also the configured nameserver, and the detail says it is ambiguous", () => {
    const options = { nameservers: ["8.8.8.8"] };
    assert.equal(judgeResolverSocket(socket({}), "chromium", options).kind, "suspect");
    assert.equal(
      resolverSocketFinding(socket({}), "chromium", options).detail,
      "Suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53 connected with nothing queued " +
        "(8.8.8.8 is also a configured nameserver, so it may be a lookup); " +
        "Chromium connects such a socket without sending anything to learn its default address, and /proc cannot show sent bytes",
    );
  });

  test("systemd-resolved, curl and an unnamed program are info, whatever the address, over plain DNS", () => {
    for (const program of ["systemd-resolve", "curl", undefined]) {
      assert.deepEqual(judgeResolverSocket(socket({}), program), { kind: "lookup", severity: "info" });
      assert.deepEqual(judgeResolverSocket(socket({ rxQueue: 80 }), program), { kind: "lookup", severity: "info" });
    }
  });

  test("no socket of any fixture table is ever a leak, whoever holds it", () => {
    const all = [...parseResolverSockets("udp", UDP), ...parseResolverSockets("udp6", UDP6), ...parseResolverSockets("tcp", TCP), ...parseResolverSockets("tcp6", TCP6)];
    assert.equal(all.length, 9);
    for (const s of all) {
      for (const program of ["chromium", "firefox-esr", "systemd-resolve", undefined]) {
        assert.notEqual(resolverSocketFinding(s, program, { nameservers: ["10.255.255.53"] }).severity, "leak");
      }
    }
  });
});

describe("resolverSocketFinding", () => {
  test("Chromium's probe socket is an info finding that says suspect and why, with no fix", () => {
    assert.deepEqual(resolverSocketFinding(socket({}), "chromium"), {
      probe: "resolver",
      severity: "info",
      detail:
        "Suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53 connected with nothing queued; " +
        "Chromium connects such a socket without sending anything to learn its default address, and /proc cannot show sent bytes",
      fix: null,
    });
  });

  test("a Chromium lookup through the configured nameserver names the flag that stops local resolution, excluding the proxy host", () => {
    const found = resolverSocketFinding(socket({ remote: { address: "10.255.255.53", port: 53 } }), "chromium", {
      nameservers: ["10.255.255.53"],
      proxy: { host: "127.0.0.1", port: 9001 },
    });
    assert.deepEqual(found, {
      probe: "resolver",
      severity: "exposure",
      detail: "The browser resolves names itself: chromium holds a socket to a DNS server, UDP 192.0.2.2:59890 -> 10.255.255.53:53; /proc cannot tell which name (a capture, as root, can)",
      fix: 'start Chromium with --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"',
    });
  });

  test("a Firefox lookup names manual proxy settings, remote DNS and no prefetch", () => {
    const found = resolverSocketFinding(socket({ local: { address: "::1", port: 33000 }, remote: { address: "::1", port: 53 } }), "firefox-esr");
    assert.equal(found.detail, "The browser resolves names itself: firefox-esr holds a socket to a DNS server, UDP [::1]:33000 -> [::1]:53; /proc cannot tell which name (a capture, as root, can)");
    assert.equal(found.fix, "in Firefox use manual proxy settings (network.proxy.type = 1) with network.proxy.socks5_remote_dns = true, and set network.dns.disablePrefetch = true");
  });

  test("systemd-resolved's DNS-over-TLS connection to a far server is exposure, as the capture probe reports it; to loopback it is info", () => {
    const [, dot] = parseResolverSockets("tcp", TCP);
    assert.deepEqual(resolverSocketFinding(dot!, "systemd-resolve"), {
      probe: "resolver",
      severity: "exposure",
      detail: "A socket to a DNS-over-TLS server, held by systemd-resolve: TCP 192.0.2.2:54321 -> 1.1.1.1:853; encrypted DNS leaving this machine",
      fix: "nothing to change in the browser; to hide this too, send the system's DNS through the tunnel as well",
    });
    const local = socket({ table: "tcp", protocol: "tcp", service: "dot", local: { address: "127.0.0.1", port: 40000 }, remote: { address: "127.0.0.1", port: 853 } });
    assert.deepEqual(resolverSocketFinding(local, "stubby"), {
      probe: "resolver",
      severity: "info",
      detail: "A socket to a DNS-over-TLS server, held by stubby: TCP 127.0.0.1:40000 -> 127.0.0.1:853",
      fix: null,
    });
  });

  test("a TCP lookup already in TIME_WAIT says it closed before its program could be named; an unnamed open one says so too", () => {
    const [closed] = parseResolverSockets("tcp", TCP);
    assert.equal(resolverSocketFinding(closed!, undefined).detail, "A socket to a DNS server, closed before its program could be named: TCP 127.0.0.1:38202 -> 127.0.0.53:53 (TIME_WAIT)");
    assert.equal(resolverSocketFinding(socket({}), undefined).detail, "A socket to a DNS server, held by a program leakcheck could not name: UDP 192.0.2.2:59890 -> 8.8.8.8:53");
  });
});

// ------------------------------------------------------------------ the poller

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** A /proc of our own with the given tables (a table left out does not exist, as udp6 without IPv6). */
async function fakeProc(): Promise<{ root: string; write: (tables: Partial<Record<ProcNetTable, string>>) => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
  folders.push(root);
  await mkdir(join(root, "net"));
  return {
    root,
    write: async (tables) => {
      for (const [name, text] of Object.entries(tables)) await writeFile(join(root, "net", name), text);
    },
  };
}

/** A timer the test fires by hand; `scheduled` resolves when the poller next schedules a sample. */
class HandTimer implements PollTimer {
  readonly pending = new Map<number, { callback: () => void; ms: number }>();
  readonly delays: number[] = [];
  #next = 0;
  #waiters: Array<() => void> = [];

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = ++this.#next;
    this.pending.set(handle, { callback, ms });
    this.delays.push(ms);
    for (const wake of this.#waiters.splice(0)) wake();
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  scheduled(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Runs the one pending sample and waits until the poller schedules the next. */
  async fire(): Promise<void> {
    assert.equal(this.pending.size, 1, "one sample pending");
    const [[handle, { callback }]] = [...this.pending];
    this.pending.delete(handle);
    const next = this.scheduled();
    callback();
    await next;
  }
}

/** Program names by inode, counting the lookups. */
function programsOf(names: Record<string, string>): { find(inode: string): Promise<string | undefined>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    find: async (inode) => {
      asked.push(inode);
      return names[inode];
    },
  };
}

const PROBE = udpRow(242, "020200C0:E9F2", "08080808:0035", "01", 1000, "416041");
const STUB_LOOKUP = udpRow(301, "0100007F:A1B2", "3500007F:0035", "01", 1000, "416100");
const TCP_OPEN = tcpRow(2, "0100007F:953A", "3500007F:0035", "01", 1000, "416090");
const TCP_CLOSED = "   2: 0100007F:953A 3500007F:0035 06 00000000:00000000 03:00001766 00000000     0        0 0 3 0000000098d8628f";

describe("ResolverSocketPoller with an injected timer", () => {
  test("samples at once, then every intervalMs, and reports each new socket once with its program", async () => {
    const proc = await fakeProc();
    await proc.write({ udp: table(UDP_HEADER, PROBE), tcp: TCP_HEADER });
    const timer = new HandTimer();
    const programs = programsOf({ "416041": "chromium", "416100": "curl" });
    const reports: ResolverSocketReport[] = [];
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer, programs, intervalMs: 100, onSocket: (r) => reports.push(r) });

    const first = timer.scheduled();
    poller.start();
    await first;
    assert.deepEqual(reports.map((r) => [r.program, r.finding.severity, r.socket.inode]), [["chromium", "info", "416041"]]);

    await proc.write({ udp: table(UDP_HEADER, PROBE, STUB_LOOKUP) });
    await timer.fire();
    await timer.fire();
    assert.deepEqual(reports.map((r) => [r.program, r.finding.severity, r.socket.inode]), [
      ["chromium", "info", "416041"],
      ["curl", "info", "416100"],
    ]);
    assert.deepEqual(programs.asked, ["416041", "416100"]);
    assert.deepEqual(timer.delays, [100, 100, 100]);

    await poller.stop();
    assert.equal(timer.pending.size, 0);
  });

  test("a TCP lookup that closes into TIME_WAIT is not reported again; a socket that vanished and came back is new", async () => {
    const proc = await fakeProc();
    await proc.write({ tcp: table(TCP_HEADER, TCP_OPEN), udp: table(UDP_HEADER, STUB_LOOKUP) });
    const timer = new HandTimer();
    const reports: ResolverSocketReport[] = [];
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer, programs: programsOf({ "416090": "curl", "416100": "curl" }), onSocket: (r) => reports.push(r) });
    const first = timer.scheduled();
    poller.start();
    await first;

    await proc.write({ tcp: table(TCP_HEADER, TCP_CLOSED), udp: UDP_HEADER });
    await timer.fire();
    await proc.write({ udp: table(UDP_HEADER, STUB_LOOKUP) });
    await timer.fire();
    await poller.stop();

    assert.deepEqual(
      reports.map((r) => `${r.socket.protocol} ${r.socket.state} ${r.program}`),
      ["udp ESTABLISHED curl", "tcp ESTABLISHED curl", "udp ESTABLISHED curl"],
    );
  });

  test("stops reporting after maxReports and counts the rest as unreported", async () => {
    const proc = await fakeProc();
    await proc.write({ udp: UDP, udp6: UDP6, tcp: TCP, tcp6: TCP6 });
    const reports: ResolverSocketReport[] = [];
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer: new HandTimer(), programs: programsOf({}), maxReports: 3, onSocket: (r) => reports.push(r) });
    assert.equal((await poller.sample()).length, 3);
    assert.equal(reports.length, 3);
    assert.equal(poller.unreported, 6);
  });

  test("reads all four tables in order udp, udp6, tcp, tcp6, and a missing table is skipped", async () => {
    const proc = await fakeProc();
    await proc.write({ udp: UDP, tcp: TCP, tcp6: TCP6 });
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer: new HandTimer(), programs: programsOf({}), onSocket: () => {} });
    assert.deepEqual(
      (await poller.sample()).map((r) => `${r.socket.table} ${r.socket.remote.address}:${r.socket.remote.port}`),
      ["udp 8.8.8.8:53", "udp 127.0.0.53:53", "udp 10.255.255.53:53", "udp 224.0.0.252:5355", "tcp 127.0.0.53:53", "tcp 1.1.1.1:853", "tcp6 ::1:53"],
    );
  });

  test("gives up on a program name after programWaitMs and reports the socket unnamed", async () => {
    const proc = await fakeProc();
    await proc.write({ udp: table(UDP_HEADER, PROBE) });
    const never = { find: () => new Promise<string | undefined>(() => {}) };
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer: new HandTimer(), programs: never, programWaitMs: 20, onSocket: () => {} });
    const [report] = await poller.sample();
    assert.equal(report?.program, undefined);
    assert.equal(report?.finding.detail, "A socket to a DNS server, held by a program leakcheck could not name: UDP 192.0.2.2:59890 -> 8.8.8.8:53");
  });

  test("stop before the first sample has ended lets it report, then schedules nothing", async () => {
    const proc = await fakeProc();
    await proc.write({ udp: table(UDP_HEADER, PROBE) });
    const timer = new HandTimer();
    const reports: ResolverSocketReport[] = [];
    const poller = new ResolverSocketPoller({ procRoot: proc.root, timer, programs: programsOf({ "416041": "chromium" }), onSocket: (r) => reports.push(r) });
    poller.start();
    await poller.stop();
    assert.equal(reports.length, 1);
    assert.equal(timer.pending.size, 0);
    assert.deepEqual(timer.delays, []);
  });
});
