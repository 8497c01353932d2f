import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect, createServer, type Server, type Socket } from "node:net";
import process from "node:process";
import { PassThrough, type Duplex } from "node:stream";
import { REPLY_FOR_FAILURE, startDynamicForward, type DynamicForwardOptions } from "../../src/forward/dynamic.ts";
import type { Listener } from "../../src/forward/listen.ts";
import { createStats, type TrafficStats } from "../../src/forward/stats.ts";
import { createLogger } from "../../src/log.ts";
import { parseCidr, type Cidr } from "../../src/cidr.ts";
import { procPeerLookup, type AcceptedClient, type PeerLookup } from "../../src/platform/peer-lookup.ts";
import type { ChannelFailureKind } from "../../src/ssh/channel-failure.ts";
import { FakeSession, failOpen } from "../helpers/fake-session.ts";
import { RawClient, socks5Open, socks5Reply } from "../helpers/raw-socks.ts";
import { startProcess } from "../helpers/run.ts";

const WAIT_MS = 5000;

// ------------------------------------------------------------------ the far end

/** A loopback TCP echo server standing in for the far end of a channel. */
let echo: Server;
let echoPort = 0;
const echoSockets = new Set<Socket>();

before(async () => {
  echo = createServer((socket) => {
    echoSockets.add(socket);
    socket.once("close", () => echoSockets.delete(socket));
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  echoPort = (echo.address() as { port: number }).port;
});

after(async () => {
  for (const socket of echoSockets) socket.destroy();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

/** A channel that is a real loopback socket to the echo server. */
function echoChannel(): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: echoPort }, () => resolve(socket));
    socket.once("error", reject);
  });
}

interface Forward {
  listener: Listener;
  session: FakeSession;
  stats: TrafficStats;
  lines: string[];
}

const open: Listener[] = [];
after(async () => {
  await Promise.all(open.map((l) => l.close()));
});

/**
 * A -D forward on 127.0.0.1 with a fake session: its channels are
 * PassThroughs until a test sets `session.open`, and its `listenRemote`
 * rejects (-D never asks the server to listen). Clients are looked up only
 * where a test passes `peers` (by default nothing is: refusals name no program).
 */
async function startForward(options: { allowIp?: Cidr[]; json?: boolean; verbosity?: number } & Pick<DynamicForwardOptions, "peers" | "clock" | "nameWaitMs"> = {}): Promise<Forward> {
  const session = new FakeSession();
  const stats = createStats();
  const lines: string[] = [];
  const log = createLogger({ verbosity: options.verbosity ?? 0, json: options.json ?? false, write: (line) => lines.push(line), now: () => new Date(0) });
  const listener = await startDynamicForward({
    label: "-D test",
    hosts: ["127.0.0.1"],
    port: 0,
    session,
    allowIp: options.allowIp ?? [],
    log,
    stats,
    peers: options.peers,
    clock: options.clock,
    ...(options.nameWaitMs !== undefined ? { nameWaitMs: options.nameWaitMs } : {}),
  });
  open.push(listener);
  return { listener, session, stats, lines };
}

/** A PeerLookup whose every client is held by the program `name` says; owners are unknown. */
function programs(name: (client: AcceptedClient) => Promise<string | undefined>): PeerLookup {
  return { ownerOf: async () => undefined, programOf: name };
}

// ------------------------------------------------------------------ a raw SOCKS client

/** A raw SOCKS client on `port`, its waits bounded by WAIT_MS. */
function connectClient(port: number): Promise<RawClient> {
  return RawClient.connect(port, { timeoutMs: WAIT_MS });
}

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");
const port16 = (port: number): number[] => [port >> 8, port & 0xff];

const GREETING = hex("05 01 00");
const METHOD_NO_AUTH = hex("05 00");

function socks5Name(host: string, port: number): Buffer {
  const name = Buffer.from(host, "latin1");
  return Buffer.from([0x05, 0x01, 0x00, 0x03, name.length, ...name, ...port16(port)]);
}
function socks5IPv4(address: number[], port: number): Buffer {
  return Buffer.from([0x05, 0x01, 0x00, 0x01, ...address, ...port16(port)]);
}
function socks5IPv6(address: number[], port: number): Buffer {
  return Buffer.from([0x05, 0x01, 0x00, 0x04, ...address, ...port16(port)]);
}
function socks4(address: number[], port: number, userId = "me"): Buffer {
  return Buffer.from([0x04, 0x01, ...port16(port), ...address, ...Buffer.from(userId), 0x00]);
}
function socks4a(host: string, port: number, userId = "me"): Buffer {
  return Buffer.from([0x04, 0x01, ...port16(port), 0, 0, 0, 1, ...Buffer.from(userId), 0x00, ...Buffer.from(host, "latin1"), 0x00]);
}

const SOCKS4_GRANTED = hex("00 5a 0000 00000000");
const SOCKS4_REJECTED = hex("00 5b 0000 00000000");

const IPV6_DOC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/** Greeting, method choice, then the request; returns the connected client. */
function socks5Connect(port: number, request: Buffer): Promise<RawClient> {
  return socks5Open(port, request, { timeoutMs: WAIT_MS });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function assertStats(stats: TrafficStats, expected: Partial<TrafficStats>): void {
  const picked = Object.fromEntries(Object.keys(expected).map((key) => [key, stats[key as keyof TrafficStats]]));
  assert.deepEqual(picked, expected);
}

// ------------------------------------------------------------------ names go out

describe("startDynamicForward: names go through the tunnel", () => {
  test("a SOCKS5 name request opens a channel for that name and replies success, then carries data both ways", async () => {
    const { listener, session, stats, lines } = await startForward();
    session.open = () => echoChannel();
    const client = await socks5Connect(listener.port, socks5Name("example.org", 443));
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.deepEqual(session.calls, [{ host: "example.org", port: 443, origin: { address: "127.0.0.1", port: client.localPort } }]);

    client.write("hello");
    assert.equal((await client.read(5)).toString(), "hello");
    client.write("world!");
    assert.equal((await client.read(6)).toString(), "world!");
    client.end();
    await client.readToEnd();
    await until(() => stats.active === 0 && stats.bytesDown === 11, "the connection to be accounted");
    assertStats(stats, { connections: 1, active: 0, bytesUp: 11, bytesDown: 11, refusals: 0, failures: 0, protocolErrors: 0 });
    assert.deepEqual(lines, [], "an accepted connection logs nothing at the default verbosity");
  });

  test("replies success only after the channel is open", async () => {
    const { listener, session } = await startForward();
    let release: ((channel: Duplex) => void) | undefined;
    session.open = () => new Promise<Duplex>((resolve) => (release = resolve));
    const client = await socks5Connect(listener.port, socks5Name("slow.example", 80));
    await until(() => release !== undefined, "openDirect to be called");
    // Give a wrongly early reply every chance to arrive before checking it did not.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(client.peek().length, 0, `no reply before the channel is confirmed, got ${client.peek().toString("hex")}`);
    release!(new PassThrough());
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    client.destroy();
  });

  test("bytes sent right after the request, before the reply, reach the channel and are counted", async () => {
    const { listener, session, stats } = await startForward();
    session.open = () => echoChannel();
    const client = await connectClient(listener.port);
    client.write(Buffer.concat([GREETING, socks5Name("example.org", 80), Buffer.from("early")]));
    assert.deepEqual(await client.read(2), METHOD_NO_AUTH);
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.equal((await client.read(5)).toString(), "early");
    client.end();
    await client.readToEnd();
    await until(() => stats.active === 0 && stats.connections === 1 && stats.bytesDown === 5, "the connection to be accounted");
    assertStats(stats, { connections: 1, bytesUp: 5, bytesDown: 5 });
  });

  test("a SOCKS4a name request opens a channel for the name and gets 0x5A", async () => {
    const { listener, session } = await startForward();
    const client = await connectClient(listener.port);
    client.write(socks4a("example.org", 8080));
    assert.deepEqual(await client.read(8), SOCKS4_GRANTED);
    assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["example.org", 8080]]);
    client.destroy();
  });
});

// ------------------------------------------------------------------ IP literals are refused

describe("startDynamicForward: IP-address requests are refused", () => {
  const FIX_TEXT = ["socks5_remote_dns", "--socks5-hostname", "socks5://"];

  async function refused(request: Buffer, destination: string, version: 4 | 5 = 5) {
    const forward = await startForward();
    let client: RawClient;
    if (version === 5) client = await socks5Connect(forward.listener.port, request);
    else {
      client = await connectClient(forward.listener.port);
      client.write(request);
    }
    const reply = await client.readToEnd();
    assert.deepEqual(reply, version === 5 ? socks5Reply(0x02) : SOCKS4_REJECTED, "the whole refusal reply, then the end of the stream");
    assert.deepEqual(forward.session.calls, [], "no channel is opened for an IP address");
    assert.equal(forward.lines.length, 1, `exactly one log line, got ${JSON.stringify(forward.lines)}`);
    const line = forward.lines[0]!;
    assert.ok(line.includes(destination), `line names the destination ${destination}: ${line}`);
    assert.ok(line.includes(`127.0.0.1:${client.localPort}`), `line names the client address and port: ${line}`);
    for (const fix of FIX_TEXT) assert.ok(line.includes(fix), `line gives the fix ${fix}: ${line}`);
    assertStats(forward.stats, { refusals: 1, connections: 0, failures: 0 });
    client.destroy();
    return line;
  }

  test("one full line per program in 10 s: repeats are counted into the next full line, and every one is refused", async () => {
    let now = 1_000_000;
    let program = "firefox";
    const forward = await startForward({ clock: () => now, peers: programs(async () => program) });
    const refuse = async (): Promise<void> => {
      const client = await socks5Connect(forward.listener.port, socks5IPv4([192, 0, 2, 7], 443));
      assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
      client.destroy();
    };
    await refuse();
    now += 1_000;
    await refuse();
    await refuse();
    assert.equal(forward.lines.length, 1, JSON.stringify(forward.lines));
    // Another app on the same address needs its own fix: it gets its own line at once.
    program = "chromium";
    await refuse();
    assert.equal(forward.lines.length, 2, JSON.stringify(forward.lines));
    assert.match(forward.lines[1]!, /^Warning: Refused SOCKS5 CONNECT to 192\.0\.2\.7:443 from 127\.0\.0\.1:\d+ \(chromium\): .*--proxy-server=socks5:\/\/127\.0\.0\.1:\d+ .*--allow-ip 192\.0\.2\.7$/);
    program = "firefox";
    now += 10_000;
    await refuse();
    assert.equal(forward.lines.length, 3, JSON.stringify(forward.lines));
    assert.match(forward.lines[2]!, /^Warning: Refused SOCKS5 CONNECT to 192\.0\.2\.7:443 from 127\.0\.0\.1:\d+ \(firefox\): .* \(2 more refused since the last such line\)$/);
    assertStats(forward.stats, { refusals: 5, connections: 0, failures: 0 });
  });

  test("a slow /proc lookup does not hold the refusal: the line just names no program", async () => {
    const forward = await startForward({ peers: programs(() => new Promise(() => {})) });
    const client = await socks5Connect(forward.listener.port, socks5IPv4([192, 0, 2, 8], 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.match(forward.lines[0]!, /^Warning: Refused SOCKS5 CONNECT to 192\.0\.2\.8:80 from 127\.0\.0\.1:\d+: /);
    client.destroy();
  });

  test("SOCKS5 IPv4 (ATYP 1): 05 02 00 01 00 00 00 00 00 00, no channel, one line", async () => {
    await refused(socks5IPv4([93, 184, 215, 14], 443), "93.184.215.14:443");
  });

  test("SOCKS5 IPv6 (ATYP 4): the same 10-byte reply", async () => {
    await refused(socks5IPv6(IPV6_DOC, 443), "[2001:db8::1]:443");
  });

  test("SOCKS5 name field holding an IPv4 literal", async () => {
    await refused(socks5Name("10.0.0.1", 80), "10.0.0.1:80");
  });

  test("SOCKS5 name field holding an IPv6 literal", async () => {
    await refused(socks5Name("::1", 80), "[::1]:80");
  });

  /** The address the refusal line's "--allow-ip X" hint names (the line ends with it). */
  function allowHint(line: string): string {
    const match = /To allow this address on purpose: --allow-ip (\S+)$/.exec(line);
    assert.ok(match !== null, `line ends with an --allow-ip hint: ${line}`);
    return match[1]!;
  }

  /** Given back as --allow-ip, the hint lets the very request it was printed for go out. */
  async function hintAllows(hint: string, request: Buffer, expectedHost: string): Promise<void> {
    const forward = await startForward({ allowIp: [parseCidr(hint)] });
    const client = await socks5Connect(forward.listener.port, request);
    assert.deepEqual(await client.read(10), socks5Reply(0x00), `--allow-ip ${hint} lets the request through`);
    assert.deepEqual(forward.session.calls.map((c) => [c.host, c.port]), [[expectedHost, 80]]);
    client.destroy();
  }

  test("SOCKS5 name field holding an inet_aton form (0x7f.1): the hint is the canonical --allow-ip 127.0.0.1", async () => {
    const line = await refused(socks5Name("0x7f.1", 80), "0x7f.1:80");
    assert.equal(allowHint(line), "127.0.0.1");
    await hintAllows(allowHint(line), socks5Name("0x7f.1", 80), "0x7f.1");
  });

  test("SOCKS5 name field holding a single-number inet_aton form (2130706433): the hint is --allow-ip 127.0.0.1", async () => {
    const line = await refused(socks5Name("2130706433", 80), "2130706433:80");
    assert.equal(allowHint(line), "127.0.0.1");
    await hintAllows(allowHint(line), socks5Name("2130706433", 80), "2130706433");
  });

  test("SOCKS5 name field holding an IPv6 literal with a zone (fe80::1%eth0): the hint drops the zone, --allow-ip fe80::1", async () => {
    const line = await refused(socks5Name("fe80::1%eth0", 80), "[fe80::1%eth0]:80");
    assert.equal(allowHint(line), "fe80::1");
    await hintAllows(allowHint(line), socks5Name("fe80::1%eth0", 80), "fe80::1%eth0");
  });

  test("plain SOCKS4 (always an IP address): 0x5B and a line that says so", async () => {
    const line = await refused(socks4([1, 2, 3, 4], 80), "1.2.3.4:80", 4);
    assert.match(line, /plain SOCKS4/);
  });

  test("SOCKS4a name field holding an IPv4 literal: 0x5B", async () => {
    await refused(socks4a("192.168.1.1", 22), "192.168.1.1:22", 4);
  });

  test("the refusal line names the local program when the peer lookup knows it, with that program's fix", async () => {
    const forward = await startForward({ peers: programs(async () => "curl") });
    const client = await socks5Connect(forward.listener.port, socks5IPv4([1, 2, 3, 4], 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.equal(forward.lines.length, 1);
    assert.ok(forward.lines[0]!.includes(`127.0.0.1:${client.localPort} (curl)`), forward.lines[0]);
    assert.match(forward.lines[0]!, /curl --socks5-hostname/);
    client.destroy();
  });

  test("a peer lookup that fails still refuses, with the generic fix", async () => {
    const forward = await startForward({ peers: programs(() => Promise.reject(new Error("EACCES"))) });
    const client = await socks5Connect(forward.listener.port, socks5IPv4([1, 2, 3, 4], 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.equal(forward.lines.length, 1);
    for (const fix of FIX_TEXT) assert.ok(forward.lines[0]!.includes(fix));
    client.destroy();
  });

  test("asks the peer lookup only to name a refusal or a dropped client, once each: never for requests that go out", async () => {
    const asked: string[] = [];
    const peers: PeerLookup = {
      ownerOf: async (client) => (asked.push(`ownerOf ${client.port}`), undefined),
      programOf: async (client) => (asked.push(`programOf ${client.port}`), "curl"),
    };
    const forward = await startForward({ peers, allowIp: [parseCidr("10.0.0.0/8")] });
    const port = forward.listener.port;
    const named = await socks5Connect(port, socks5Name("example.org", 443));
    assert.deepEqual(await named.read(10), socks5Reply(0x00));
    const fourA = await connectClient(port);
    fourA.write(socks4a("example.org", 80));
    assert.deepEqual(await fourA.read(8), SOCKS4_GRANTED);
    const allowed = await socks5Connect(port, socks5IPv4([10, 1, 2, 3], 80));
    assert.deepEqual(await allowed.read(10), socks5Reply(0x00));
    for (const client of [named, fourA, allowed]) client.destroy();
    await until(() => forward.stats.active === 0, "the accepted connections to end");
    assert.deepEqual(asked, [], "nothing is looked up for requests that go out");

    // A dropped client's line is folded per program: the lookup names it.
    const http = await connectClient(port);
    const httpPort = http.localPort;
    http.write("GET  / HTTP/1.1\r\n\r\n");
    await http.readToEnd();
    await until(() => forward.stats.protocolErrors === 1 && forward.lines.some((line) => line.includes("dropped client")), "the protocol-error line");
    assert.deepEqual(asked, [`programOf ${httpPort}`]);
    asked.length = 0;

    const five = await socks5Connect(port, socks5IPv4([192, 0, 2, 1], 443));
    const fivePort = five.localPort;
    assert.deepEqual(await five.readToEnd(), socks5Reply(0x02));
    const four = await connectClient(port);
    const fourPort = four.localPort;
    four.write(socks4([192, 0, 2, 2], 80));
    assert.deepEqual(await four.readToEnd(), SOCKS4_REJECTED);
    assert.deepEqual(asked, [`programOf ${fivePort}`, `programOf ${fourPort}`]);
    const refusals = forward.lines.filter((line) => line.includes("Refused"));
    assert.deepEqual(refusals.map((line) => /^Warning: Refused .* from 127\.0\.0\.1:\d+ \(curl\): /.test(line)), [true, true], refusals.join("\n"));
  });

  test("the program is asked for before the refusal reply is sent, while the client still waits on its socket", async () => {
    let client: RawClient | undefined;
    const seenDuringLookup: string[] = [];
    const forward = await startForward({
      peers: programs(async (asked) => {
        // Time for a reply sent too early to arrive.
        await new Promise((resolve) => setTimeout(resolve, 20));
        seenDuringLookup.push(`${asked.port === client?.localPort} ${client?.received.toString("hex")} ${client?.ended}`);
        return "curl";
      }),
    });
    client = await connectClient(forward.listener.port);
    client.write(GREETING);
    assert.deepEqual(await client.read(2), METHOD_NO_AUTH);
    client.write(socks5IPv4([192, 0, 2, 3], 443));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.deepEqual(seenDuringLookup, ["true 0500 false"], "only the method choice had arrived, and the socket was open");
    assert.match(forward.lines[0]!, /\(curl\): /);
  });

  test("with procPeerLookup(), curl's refusals are named from /proc, each of a parallel burst too", { skip: process.platform === "linux" ? false : "/proc is Linux-only" }, async () => {
    // Bounds far above what a /proc walk takes even on a loaded machine (Deno's
    // walk under the full suite once needed more than the default 1 s): this
    // test is about naming each client, not about how fast.
    const forward = await startForward({ peers: procPeerLookup({ ownerWaitMs: 10_000 }), verbosity: 1, nameWaitMs: 15_000 });
    const proxy = `127.0.0.1:${forward.listener.port}`;
    const runs = Array.from({ length: 6 }, () => startProcess("curl", ["-s", "-m", "20", "--socks5", proxy, "http://192.0.2.9/"]));
    const statuses = await Promise.all(runs.map((run) => run.exited));
    // curl's "proxy handshake" failure: the proxy refused the request.
    assert.deepEqual(statuses.map((status) => status.code), [97, 97, 97, 97, 97, 97]);
    const refusals = forward.lines.filter((line) => line.includes("Refused SOCKS5 CONNECT to 192.0.2.9:80"));
    assert.equal(refusals.length, 6, forward.lines.join("\n"));
    for (const line of refusals) assert.match(line, /from 127\.0\.0\.1:\d+ \(curl\)/);
    assert.equal(refusals.filter((line) => line.startsWith("Warning: ")).length, 1, "one full line, the rest folded");
    assert.equal(forward.stats.refusals, 6);
  });

  test("in --json mode the refusal is one warn-level object with the code, destination and client", async () => {
    const forward = await startForward({ json: true });
    const client = await socks5Connect(forward.listener.port, socks5IPv4([1, 2, 3, 4], 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.equal(forward.lines.length, 1);
    const record = JSON.parse(forward.lines[0]!) as Record<string, unknown>;
    assert.equal(record["time"], "1970-01-01T00:00:00.000Z");
    assert.equal(record["level"], "warn");
    assert.equal(record["event"], "refused");
    assert.equal(record["code"], "SOCKS_IP_REFUSED");
    assert.equal(record["destination"], "1.2.3.4:80");
    assert.equal(record["client"], `127.0.0.1:${client.localPort}`);
    assert.equal(record["program"], null);
    assert.match(String(record["msg"]), /socks5_remote_dns/);
    client.destroy();
  });
});

// ------------------------------------------------------------------ --allow-ip

describe("startDynamicForward: --allow-ip", () => {
  test("an IPv4 literal inside an allowed network goes out, with an 'Allowing' line", async () => {
    const { listener, session, stats, lines } = await startForward({ allowIp: [parseCidr("10.0.0.0/8")] });
    const client = await socks5Connect(listener.port, socks5IPv4([10, 1, 2, 3], 80));
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["10.1.2.3", 80]]);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^Allowing IP destination 10\.1\.2\.3:80 for 127\.0\.0\.1:\d+: it is inside --allow-ip 10\.0\.0\.0\/8\.$/);
    assert.equal(stats.refusals, 0);
    client.destroy();
  });

  test("an allowed IPv6 literal is opened without brackets", async () => {
    const { listener, session, lines } = await startForward({ allowIp: [parseCidr("2001:db8::/32")] });
    const client = await socks5Connect(listener.port, socks5IPv6(IPV6_DOC, 443));
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["2001:db8::1", 443]]);
    assert.match(lines[0]!, /Allowing IP destination \[2001:db8::1\]:443/);
    client.destroy();
  });

  test("an allowed literal in a SOCKS5 name field goes out too", async () => {
    const { listener, session } = await startForward({ allowIp: [parseCidr("::1")] });
    const client = await socks5Connect(listener.port, socks5Name("::1", 8080));
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["::1", 8080]]);
    client.destroy();
  });

  test("a literal outside the allowed networks is still refused", async () => {
    const { listener, session, stats } = await startForward({ allowIp: [parseCidr("10.0.0.0/8")] });
    const client = await socks5Connect(listener.port, socks5IPv4([11, 0, 0, 1], 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x02));
    assert.deepEqual(session.calls, []);
    assert.equal(stats.refusals, 1);
  });
});

// ------------------------------------------------------------------ channel failures

describe("startDynamicForward: channel-open failures map to exact replies", () => {
  const expected: [ChannelFailureKind, number][] = [
    ["refused", 0x05],
    ["unreachable", 0x04],
    ["network-unreachable", 0x03],
    ["prohibited", 0x02],
    ["connection-down", 0x03],
    ["other", 0x01],
  ];

  test("REPLY_FOR_FAILURE maps each failure to its RFC 1928 reply", () => {
    assert.deepEqual(REPLY_FOR_FAILURE, Object.fromEntries(expected));
  });

  for (const [kind, rep] of expected) {
    test(`${kind}: SOCKS5 reply 0x0${rep}, SOCKS4a 0x5B, counted as a failure and logged`, async () => {
      const { listener, session, stats, lines } = await startForward();
      session.open = failOpen(kind, `far end says ${kind}`);
      const five = await socks5Connect(listener.port, socks5Name("target.example", 80));
      assert.deepEqual(await five.readToEnd(), socks5Reply(rep));
      const four = await connectClient(listener.port);
      four.write(socks4a("target.example", 80));
      assert.deepEqual(await four.readToEnd(), SOCKS4_REJECTED);
      assertStats(stats, { failures: 2, connections: 0, refusals: 0 });
      assert.equal(lines.length, 2);
      // sshd says only "open failed" when forwarding is forbidden; the line adds why.
      const why = kind === "prohibited" ? "administratively prohibited by the server (AllowTcpForwarding or PermitOpen): " : "";
      assert.equal(lines[0], `-D test: connect to target.example:80 failed: ${why}far end says ${kind} (SOCKS5 reply 0x0${rep}).`);
      assert.equal(lines[1], `-D test: connect to target.example:80 failed: ${why}far end says ${kind} (SOCKS4 reply 0x5b).`);
    });
  }

  test("repeated failures of one kind fold into one line per 10 s, each one still at -v", async () => {
    let now = 0;
    const quiet = await startForward({ clock: () => now });
    quiet.session.open = failOpen("refused", "Connection refused");
    for (let i = 0; i < 3; i++) {
      const client = await socks5Connect(quiet.listener.port, socks5Name("target.example", 80 + i));
      assert.deepEqual(await client.readToEnd(), socks5Reply(0x05));
    }
    assert.equal(quiet.stats.failures, 3);
    assert.deepEqual(quiet.lines, ["-D test: connect to target.example:80 failed: Connection refused (SOCKS5 reply 0x05)."]);
    now = 10_000;
    const later = await socks5Connect(quiet.listener.port, socks5Name("target.example", 90));
    await later.readToEnd();
    assert.equal(quiet.lines[1], "-D test: connect to target.example:90 failed: Connection refused (SOCKS5 reply 0x05). (2 more failed since the last such line)");
    const verbose = await startForward({ verbosity: 1 });
    verbose.session.open = failOpen("refused", "Connection refused");
    for (let i = 0; i < 2; i++) await (await socks5Connect(verbose.listener.port, socks5Name("target.example", 80))).readToEnd();
    assert.equal(verbose.lines.filter((line) => line.includes("failed: Connection refused")).length, 2);
  });

  test("an error that is not a ChannelOpenError is a general failure (0x01)", async () => {
    const { listener, session, stats } = await startForward();
    session.open = () => Promise.reject(new Error("surprise"));
    const client = await socks5Connect(listener.port, socks5Name("target.example", 80));
    assert.deepEqual(await client.readToEnd(), socks5Reply(0x01));
    assert.equal(stats.failures, 1);
  });
});

// ------------------------------------------------------------------ protocol errors

describe("startDynamicForward: clients dropped for protocol errors", () => {
  /** `count` clients sending a NUL byte, one after another; resolves with their ports when the forward has counted them all. */
  async function garbageClients(forward: Forward, count: number): Promise<number[]> {
    const before = forward.stats.protocolErrors;
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const client = await connectClient(forward.listener.port);
      ports.push(client.localPort);
      client.write(Buffer.from([0x00]));
      await client.readToEnd();
      client.destroy();
    }
    await until(() => forward.stats.protocolErrors === before + count, `${count} more protocol errors to be counted`);
    return ports;
  }

  test("30 bad clients from one address in 10 s: every one is counted, one line is written", async () => {
    const clock = { now: 0 };
    const forward = await startForward({ clock: () => clock.now });
    const ports = await garbageClients(forward, 30);
    await until(() => forward.lines.length > 0, "the protocol-error line");
    assert.deepEqual(forward.lines, [`-D test: dropped client 127.0.0.1:${ports[0]}: not a SOCKS request (first byte 0x00).`]);
    clock.now += 10_000;
    const [last] = await garbageClients(forward, 1);
    await until(() => forward.lines.length === 2, "the next full line");
    assert.equal(forward.lines[1], `-D test: dropped client 127.0.0.1:${last}: not a SOCKS request (first byte 0x00) (29 more dropped since the last such line).`);
  });

  test("at -v each one is written", async () => {
    const forward = await startForward({ verbosity: 1, clock: () => 0 });
    await garbageClients(forward, 5);
    await until(() => forward.lines.filter((line) => line.includes("dropped client")).length === 5, "five lines");
    const dropped = forward.lines.filter((line) => line.includes("dropped client"));
    assert.deepEqual(dropped.map((line) => line.startsWith("debug1: ")), [false, true, true, true, true]);
  });
});

// ------------------------------------------------------------------ shutdown and early exits

describe("startDynamicForward: closing", () => {
  test("listener.close() destroys live connections and their channels and stops accepting", async () => {
    const { listener, session, stats } = await startForward();
    const client = await socks5Connect(listener.port, socks5Name("example.org", 80));
    assert.deepEqual(await client.read(10), socks5Reply(0x00));
    assert.equal(session.channels.length, 1);
    const port = listener.port;
    await listener.close();
    await client.until(() => client.closed, "the client socket to close");
    await until(() => session.channels[0]!.destroyed, "the channel to be destroyed");
    await until(() => stats.active === 0, "the connection to be accounted");
    await assert.rejects(connectClient(port), (err: NodeJS.ErrnoException) => err.code === "ECONNREFUSED");
  });

  test("a client that leaves while the channel is opening leaves no channel or connection open", async () => {
    const { listener, session, stats } = await startForward();
    let release: ((channel: Duplex) => void) | undefined;
    session.open = () => new Promise<Duplex>((resolve) => (release = resolve));
    const client = await socks5Connect(listener.port, socks5Name("example.org", 80));
    await until(() => release !== undefined, "openDirect to be called");
    client.socket.resetAndDestroy();
    await client.until(() => client.closed, "the client socket to close");
    const channel = new PassThrough();
    release!(channel);
    await until(() => channel.destroyed, "the orphaned channel to be destroyed");
    await until(() => stats.active === 0, "no connection to stay active");
  });
});
