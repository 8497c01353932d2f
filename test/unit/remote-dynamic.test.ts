/**
 * -R with a port alone, without SSH: a fake session hands the forward
 * in-memory "channels" (Duplexes that are not sockets, like ssh2's), a test
 * speaks SOCKS on them byte by byte, and the destinations are loopback
 * servers of the test's own. The real sshd and curl are in
 * test/integration/remote-dynamic.test.ts.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { replyForConnectError, startRemoteDynamicForward, type RemoteDynamicForwardOptions } from "../../src/forward/remote-dynamic.ts";
import { startForward } from "../../src/forward/start.ts";
import type { RunningRemoteForward } from "../../src/forward/remote.ts";
import { createStats, type TrafficStats } from "../../src/forward/stats.ts";
import { parseCidrList } from "../../src/cidr.ts";
import { createLogger } from "../../src/log.ts";
import { TunnelError } from "../../src/errors.ts";
import type { IncomingConnection } from "../../src/ssh/session.ts";
import { FakeSession, refuseListen } from "../helpers/fake-session.ts";
import { closedPort } from "../helpers/targets.ts";
import { waitFor } from "../helpers/wait.ts";
import { memoryPair, type MemoryEnd } from "../helpers/memory-duplex.ts";

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

// ------------------------------------------------------- in-memory channels

/** Resolves (bounded) once `end` has read at least `n` bytes; all of them, as hex. */
async function hexOf(end: MemoryEnd, n: number, what: string): Promise<string> {
  await waitFor(() => end.received.length >= n || end.destroyed, what, () => `received ${end.received.toString("hex")}`);
  return end.received.toString("hex");
}

/** Resolves (bounded) once `end` has read its peer's EOF or both are gone. */
async function closedOrEnded(end: MemoryEnd, what: string): Promise<void> {
  await waitFor(() => end.ended || end.destroyed, what, () => `received ${end.received.toString("hex")}`);
}

/** `[far side, channel]`: the test is the SOCKS client on the far side; `channel` is what accept() returns. */
const channelPair = memoryPair;

// ------------------------------------------------------------- destinations

/** A loopback echo server on 127.0.0.1: the destination a CONNECT reaches from here. */
let echo: Server;
let echoPort = 0;
let echoConnections = 0;
const echoSockets = new Set<Socket>();

before(async () => {
  echo = createServer({ allowHalfOpen: true }, (socket) => {
    echoConnections++;
    echoSockets.add(socket);
    socket.once("close", () => echoSockets.delete(socket));
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  echo.listen(0, "127.0.0.1");
  await once(echo, "listening");
  echoPort = (echo.address() as { port: number }).port;
});

after(async () => {
  for (const socket of echoSockets) socket.destroy();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

// ------------------------------------------------------------------ harness

interface Forward {
  running: RunningRemoteForward;
  session: FakeSession;
  stats: TrafficStats;
  lines: string[];
  /** What the server would do with one connection to the -R port: hand it over as a channel. */
  connect(): [MemoryEnd, MemoryEnd];
  rejected: number;
}

const running: RunningRemoteForward[] = [];
afterEach(async () => {
  while (running.length > 0) await running.pop()!.close();
});

async function startForwardHere(options: Partial<Pick<RemoteDynamicForwardOptions, "allowIp" | "bindAddress" | "port" | "handshakeTimeoutMs">> & { verbosity?: number } = {}): Promise<Forward> {
  let onIncoming: ((connection: IncomingConnection) => void) | undefined;
  const session = new FakeSession({
    listen: async (_address, port, handler) => {
      onIncoming = handler;
      return { port: port === 0 ? 40000 : port, close: async () => {} };
    },
  });
  const stats = createStats();
  const lines: string[] = [];
  const log = createLogger({ verbosity: options.verbosity ?? 0, write: (line) => lines.push(line), now: () => new Date(0) });
  const forward: Forward = {
    running: undefined as unknown as RunningRemoteForward,
    session,
    stats,
    lines,
    rejected: 0,
    connect() {
      const [far, channel] = channelPair();
      assert.ok(onIncoming !== undefined, "the forward registered with listenRemote");
      onIncoming({ from: { address: "127.0.0.1", port: 51234 }, accept: () => channel, reject: () => void forward.rejected++ });
      return [far, channel];
    },
  };
  forward.running = await startRemoteDynamicForward({
    label: `-R ${options.port ?? 1080}`,
    bindAddress: options.bindAddress ?? null,
    port: options.port ?? 1080,
    session,
    allowIp: options.allowIp ?? [],
    log,
    stats,
    ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
  });
  running.push(forward.running);
  return forward;
}

const GREETING = hex("05 01 00");
const METHOD_NO_AUTH = "0500";
const V5_SUCCESS = "05000001000000000000";

function socks5Name(name: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), Buffer.from(name, "latin1"), Buffer.from([port >> 8, port & 0xff])]);
}

function socks5Ipv4(ip: number[], port: number): Buffer {
  return Buffer.from([5, 1, 0, 1, ...ip, port >> 8, port & 0xff]);
}

function socks4(ip: number[], port: number): Buffer {
  return Buffer.from([4, 1, port >> 8, port & 0xff, ...ip, 0]);
}

/** The SOCKS5 exchange up to the reply; resolves with everything received, as hex. */
async function socks5(far: MemoryEnd, request: Buffer): Promise<string> {
  far.write(GREETING);
  await hexOf(far, 2, "the method reply");
  far.write(request);
  return hexOf(far, 12, "the CONNECT reply");
}

// -------------------------------------------------------------------- tests

describe("replyForConnectError", () => {
  test("maps each connect failure from here to the SOCKS5 reply a -D client would get for it", () => {
    const reply = (code: string | undefined): number => replyForConnectError(Object.assign(new Error(code ?? "no code"), code === undefined ? {} : { code }));
    assert.equal(reply("ECONNREFUSED"), 0x05);
    for (const code of ["ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ETIMEDOUT"]) assert.equal(reply(code), 0x04, code);
    assert.equal(reply("ENETUNREACH"), 0x03);
    for (const code of ["EACCES", "EADDRNOTAVAIL", undefined]) assert.equal(reply(code), 0x01, String(code));
    assert.equal(replyForConnectError("not even an error"), 0x01);
  });
});

describe("startRemoteDynamicForward", () => {
  test("asks the server for localhost by default and '' for '*', as OpenSSH does, and reports the port it bound", async () => {
    const plain = await startForwardHere();
    assert.deepEqual(plain.session.remote, [{ address: "localhost", port: 1080 }]);
    assert.deepEqual([plain.running.address, plain.running.port], ["localhost", 1080]);
    const wildcard = await startForwardHere({ bindAddress: "*", port: 0 });
    assert.deepEqual(wildcard.session.remote, [{ address: "", port: 0 }]);
    assert.deepEqual([wildcard.running.address, wildcard.running.port], ["*", 40000]);
  });

  test("a port the server refuses is FORWARD_FAILED naming the forward and the likely causes", async () => {
    const session = new FakeSession({ listen: refuseListen("Unable to bind to localhost:1080") });
    const log = createLogger({ verbosity: 0, write: () => {} });
    await assert.rejects(startRemoteDynamicForward({ label: "-R 1080", bindAddress: null, port: 1080, session, allowIp: [], log, stats: createStats() }), (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "FORWARD_FAILED");
      assert.equal(
        err.message,
        "-R 1080: the server refused to listen on localhost port 1080 (Unable to bind to localhost:1080); the port may be in use there, or sshd has AllowTcpForwarding/PermitListen set.",
      );
      return true;
    });
  });

  test("a SOCKS5 CONNECT by name is connected from here: 05 00 00 01 00000000 0000, data both ways, counted as a connection", async () => {
    const forward = await startForwardHere();
    const [far] = forward.connect();
    assert.equal(await socks5(far, socks5Name("localhost", echoPort)), METHOD_NO_AUTH + V5_SUCCESS);
    far.write("ping");
    await hexOf(far, 16, "the echo");
    assert.equal(far.received.subarray(12).toString(), "ping");
    assert.equal(forward.stats.connections, 1);
    assert.equal(forward.stats.active, 1);
    // pipe.ts's "up" is what enters the tunnel from this machine: the destination's answer.
    assert.equal(forward.stats.bytesUp, 4);
    assert.equal(forward.stats.bytesDown, 4);
    assert.deepEqual(forward.lines, []);
    far.end();
    await closedOrEnded(far, "the channel to be closed after the client's EOF");
    await waitFor(() => forward.stats.active === 0, "the connection to be counted as closed");
  });

  test("bytes pipelined with the request reach the destination ahead of later ones, and are counted", async () => {
    const forward = await startForwardHere();
    const [far] = forward.connect();
    far.write(GREETING);
    far.write(Buffer.concat([socks5Name("localhost", echoPort), Buffer.from("early ")]));
    await hexOf(far, 2 + 10 + 6, "the reply and the echo of the pipelined bytes");
    far.write("late");
    await hexOf(far, 2 + 10 + 10, "the echo of the later bytes");
    assert.equal(far.received.subarray(12).toString(), "early late");
    assert.equal(forward.stats.bytesDown, 10);
  });

  test("refuses a SOCKS5 CONNECT to an IP address with 05 02, reaches nothing, and logs the far-side fix", async () => {
    const forward = await startForwardHere();
    const before = echoConnections;
    const [far] = forward.connect();
    assert.equal(await socks5(far, socks5Ipv4([127, 0, 0, 1], echoPort)), `${METHOD_NO_AUTH}05020001000000000000`);
    await closedOrEnded(far, "the channel to end after the refusal");
    assert.equal(echoConnections, before);
    assert.equal(forward.stats.refusals, 1);
    assert.equal(forward.stats.connections, 0);
    assert.deepEqual(forward.lines, [
      `Warning: Refused SOCKS5 CONNECT to 127.0.0.1:${echoPort} from 127.0.0.1:51234 on the far side (through -R 1080 on the SSH server): ` +
        "it carries an IP address, so the app resolved the name itself, over there, and that network saw the DNS lookup. " +
        "Fix: make that app send names, e.g. curl --socks5-hostname localhost:1080 or -x socks5h://localhost:1080. " +
        "To allow this address on purpose: --allow-ip 127.0.0.1",
    ]);
  });

  test("refuses a plain SOCKS4 CONNECT with 00 5B and an IP address hidden in a name field with 05 02", async () => {
    const forward = await startForwardHere();
    const [four] = forward.connect();
    four.write(socks4([127, 0, 0, 1], echoPort));
    assert.equal(await hexOf(four, 8, "the SOCKS4 reply"), "005b000000000000");
    const [numeric] = forward.connect();
    assert.equal(await socks5(numeric, socks5Name("2130706433", echoPort)), `${METHOD_NO_AUTH}05020001000000000000`);
    assert.equal(forward.stats.refusals, 2);
    assert.equal(forward.stats.connections, 0);
  });

  test("with --allow-ip, an IP address inside it is connected and the use is logged", async () => {
    const forward = await startForwardHere({ allowIp: parseCidrList("127.0.0.0/8") });
    const [far] = forward.connect();
    assert.equal(await socks5(far, socks5Ipv4([127, 0, 0, 1], echoPort)), METHOD_NO_AUTH + V5_SUCCESS);
    assert.deepEqual(forward.lines, [`Allowing IP destination 127.0.0.1:${echoPort} for 127.0.0.1:51234 (-R 1080): it is inside --allow-ip 127.0.0.0/8.`]);
    assert.equal(forward.stats.refusals, 0);
  });

  test("a refused destination port answers 05 05 and counts a failure", async () => {
    const forward = await startForwardHere();
    const port = await closedPort();
    const [far] = forward.connect();
    assert.equal(await socks5(far, socks5Name("localhost", port)), `${METHOD_NO_AUTH}05050001000000000000`);
    assert.equal(forward.stats.failures, 1);
    assert.equal(forward.lines.length, 1);
    assert.match(forward.lines[0]!, new RegExp(`^-R 1080: connect to localhost:${port} failed: .*ECONNREFUSED.* \\(SOCKS5 reply 0x05\\)\\.$`));
  });

  test("a .invalid name answers 05 04 without a lookup", async () => {
    const forward = await startForwardHere();
    const [far] = forward.connect();
    assert.equal(await socks5(far, socks5Name("x.canary.safetunnel.invalid", 80)), `${METHOD_NO_AUTH}05040001000000000000`);
    assert.equal(forward.stats.failures, 1);
    assert.deepEqual(forward.lines, ["-R 1080: connect to x.canary.safetunnel.invalid:80 failed: names under .invalid never resolve (RFC 6761), so it was not looked up (SOCKS5 reply 0x04)."]);
  });

  test("garbage on a channel is a protocol error, counted and logged as from the far side", async () => {
    const forward = await startForwardHere();
    const [far] = forward.connect();
    far.write("GET / HTTP/1.1\r\n\r\n");
    await closedOrEnded(far, "the channel to end");
    assert.equal(far.received.length, 0);
    assert.equal(forward.stats.protocolErrors, 1);
    assert.match(forward.lines[0]!, /^-R 1080: dropped client 127\.0\.0\.1:51234 on the far side: the client spoke HTTP, not SOCKS/);
  });

  test("close() ends the registration and destroys the channels it still holds", async () => {
    const forward = await startForwardHere();
    const [idle, idleChannel] = forward.connect();
    const [busy, busyChannel] = forward.connect();
    assert.equal(await socks5(busy, socks5Name("localhost", echoPort)), METHOD_NO_AUTH + V5_SUCCESS);
    await forward.running.close();
    assert.equal(idleChannel.destroyed, true);
    assert.equal(idle.destroyed, true);
    await waitFor(() => busyChannel.destroyed, "the piped channel to be destroyed");
    await waitFor(() => echoSockets.size === 0, "the destination's socket to close");
  });
});

describe("startForward: -R with a port alone", () => {
  const context = (allowIp = "") => {
    const lines: string[] = [];
    const log = createLogger({ verbosity: 0, write: (line) => lines.push(line) });
    return {
      lines,
      context: {
        session: new FakeSession({ listen: async (_a: string, port: number) => ({ port: port === 0 ? 40123 : port, close: async () => {} }) }),
        allowIp: allowIp === "" ? [] : parseCidrList(allowIp),
        gatewayPorts: false,
        stats: createStats(),
        log,
      },
    };
  };

  test("announces a SOCKS proxy on the server's port whose names are resolved here", async () => {
    const { context: c } = context();
    const forward = await startForward({ kind: "remote", listen: { address: null, port: 1080 }, target: null, raw: "1080" }, c);
    assert.equal(forward.label, "-R 1080");
    assert.deepEqual(forward.announcement, {
      message: "SOCKS proxy on the server's localhost:1080 (-R 1080); names are resolved here, IP-address requests are refused.",
      fields: { event: "listening", addresses: "localhost:1080", side: "server" },
    });
    await forward.close();
  });

  test("names the --allow-ip networks, and for port 0 starts with OpenSSH's 'Allocated port' line", async () => {
    const { context: c } = context("10.0.0.0/8");
    const forward = await startForward({ kind: "remote", listen: { address: "127.0.0.1", port: 0 }, target: null, raw: "127.0.0.1:0" }, c);
    assert.equal(
      forward.announcement.message,
      "Allocated port 40123 for remote forward to socks:0 (a SOCKS proxy on the server's 127.0.0.1:40123, -R 127.0.0.1:0; names are resolved here, IP-address requests are refused except inside --allow-ip 10.0.0.0/8).",
    );
    await forward.close();
  });
});
