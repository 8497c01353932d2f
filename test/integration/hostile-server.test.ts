/**
 * A server that opens channels nobody asked for: X11, the agent, a
 * forwarded-tcpip for a port no -R requested. OpenSSH's sshd never does that
 * unasked, so, as in fault-injection.test.ts, an in-process ssh2 `Server` on
 * loopback plays the hostile server. The CLI is held to what OpenSSH's ssh(1)
 * does: refuse each open (SSH2_OPEN_ADMINISTRATIVELY_PROHIBITED, "open
 * failed") and warn in clientloop.c's and channels.c's words; and, where ssh
 * would write a line per open, write one per kind per 10 s.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Connection, Server as Ssh2Server, ServerChannel } from "ssh2";
import { assertNoCrash, makeHomeSet, startCli, stderrLines, waitForLine, waitForListen, type Running } from "../helpers/run.ts";
import { socks5Open, socks5Request } from "../helpers/raw-socks.ts";
import { makeKey, type KeyPair } from "../helpers/sshd.ts";
import { freePort, startEchoTarget, type EchoTarget } from "../helpers/targets.ts";
import { waitFor } from "../helpers/wait.ts";

const USER = "hostileuser";

/** ssh2 is CommonJS; Node's ESM loader only sees `module.exports` as the default export. */
async function loadServerClass(): Promise<typeof Ssh2Server> {
  const mod = (await import("ssh2")) as unknown as { default: typeof import("ssh2") };
  return mod.default.Server;
}

/** The outcome of one channel the server tried to open: the error's reason code and text, or "opened". */
type OpenOutcome = { reason: number | undefined; message: string } | "opened";

type OpenCallback = (err: Error | undefined, channel?: ServerChannel) => void;

/**
 * Open an auth-agent@openssh.com channel to the client. ssh2's Server has no
 * method for it (only the protocol writer, openssh_authAgent), so the channel
 * number is reserved as its other opens do (lib/server.js openChannel).
 */
function openAgentChannel(conn: Connection, cb: OpenCallback): void {
  type Internals = {
    _chanMgr: { add(cb: OpenCallback): number };
    _protocol: { openssh_authAgent(chan: number, window: number, packetSize: number): void };
  };
  const internals = conn as unknown as Internals;
  const local = internals._chanMgr.add(cb);
  internals._protocol.openssh_authAgent(local, 2 * 1024 * 1024, 32 * 1024);
}

/** A hostile server listening on 127.0.0.1: its port, the known_hosts line trusting it, and stop() ending every connection. */
async function listenOnLoopback(server: Ssh2Server, sockets: Set<Socket>, hostKey: KeyPair): Promise<{ port: number; knownHostsLine(): string; stop(): Promise<void> }> {
  server.on("error", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const [algorithm, blob] = hostKey.publicLine.split(" ");
  return {
    port,
    knownHostsLine: () => `[127.0.0.1]:${port} ${algorithm} ${blob}`,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface HostileServer {
  port: number;
  knownHostsLine(): string;
  /** Outcomes so far, by kind. */
  outcomes: Record<"x11" | "agent" | "unrequested" | "requested", OpenOutcome[]>;
  stop(): Promise<void>;
}

/**
 * Accepts any login and, once the client asks for its -R port
 * (tcpip-forward), opens `count` channels of each unrequested kind, then one
 * forwarded-tcpip for the port it did ask for.
 */
async function startHostileServer(hostKey: KeyPair, count: number): Promise<HostileServer> {
  const Server = await loadServerClass();
  const sockets = new Set<Socket>();
  const outcomes: HostileServer["outcomes"] = { x11: [], agent: [], unrequested: [], requested: [] };
  const record =
    (into: OpenOutcome[], onOpen?: (channel: ServerChannel) => void): OpenCallback =>
    (err, channel) => {
      if (err) into.push({ reason: (err as Error & { reason?: number }).reason, message: err.message });
      else {
        into.push("opened");
        onOpen?.(channel!);
      }
    };
  const server = new Server({ hostKeys: [await readFile(hostKey.privatePath)] }, (conn) => {
    const socket = (conn as unknown as { _sock: Socket })._sock;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => ctx.accept());
    conn.on("request", (accept, reject, name, info) => {
      if (name !== "tcpip-forward" || accept === undefined) {
        reject?.();
        return;
      }
      const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number };
      accept();
      for (let i = 0; i < count; i++) {
        conn.x11("192.0.2.9", 6010 + i, record(outcomes.x11));
        openAgentChannel(conn, record(outcomes.agent));
        conn.forwardOut(bindAddr, bindPort + 1 + (i % 100), "203.0.113.5", 40000 + i, record(outcomes.unrequested));
      }
      conn.forwardOut(bindAddr, bindPort, "203.0.113.5", 50000, record(outcomes.requested, (channel) => channel.end("through the requested port")));
    });
  });
  return { ...(await listenOnLoopback(server, sockets, hostKey)), outcomes };
}

let scratch: string;
let hostKey: KeyPair;
let echo: EchoTarget;
const running: Running[] = [];
const servers: HostileServer[] = [];
const homes = makeHomeSet();

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-hostile-"));
  hostKey = await makeKey(scratch, "host_ed25519");
  echo = await startEchoTarget();
});

after(async () => {
  for (const cli of running) await cli.stop("SIGKILL");
  for (const server of servers) await server.stop();
  await homes.cleanup();
  await echo?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

/** Run `-N -R port:127.0.0.1:echo` (plus `extra`) against a hostile server making `count` opens of each kind; resolves once all are answered. */
async function runAgainstHostileServer(count: number, extra: string[] = []): Promise<{ cli: Running; server: HostileServer }> {
  const server = await startHostileServer(hostKey, count);
  servers.push(server);
  const home = await homes.trusting(server);
  const remotePort = await freePort();
  const cli = startCli(["-N", "-R", `${remotePort}:127.0.0.1:${echo.port}`, "-p", String(server.port), ...extra, `${USER}@127.0.0.1`], { home: home.home });
  running.push(cli);
  const { outcomes } = server;
  await waitFor(
    () => outcomes.x11.length === count && outcomes.agent.length === count && outcomes.unrequested.length === count && outcomes.requested.length === 1,
    `the client to answer all ${3 * count + 1} opens`,
    () => `answered: ${JSON.stringify(Object.fromEntries(Object.entries(outcomes).map(([kind, list]) => [kind, list.length])))}; stderr: ${cli.stderr()}`,
  );
  return { cli, server };
}

/** Every outcome a refusal with RFC 4254 reason 1 and OpenSSH's "open failed". */
function assertAllRefused(outcomes: OpenOutcome[], what: string): void {
  for (const outcome of outcomes) {
    assert.notEqual(outcome, "opened", `${what} was opened`);
    assert.equal(outcome !== "opened" && outcome.reason, 1, `${what}: ${JSON.stringify(outcome)}`);
    assert.match(outcome !== "opened" ? outcome.message : "", /open failed/, what);
  }
}

const X11_LINE = "Warning: ssh server tried X11 forwarding.";
const AGENT_LINE = "Warning: ssh server tried agent forwarding.";
const BREAK_IN_LINE = "Warning: this is probably a break-in attempt by a malicious server.";
const UNKNOWN_PORT = /^Warning: Server requests forwarding for unknown listen_port \d+$/;

describe("a server that opens channels nobody asked for", () => {
  test("X11, agent and an unrequested forwarded-tcpip are each refused with OpenSSH's warning; the requested -R port still works", async () => {
    const { cli, server } = await runAgainstHostileServer(1);
    assertAllRefused(server.outcomes.x11, "the x11 channel");
    assertAllRefused(server.outcomes.agent, "the auth-agent@openssh.com channel");
    assertAllRefused(server.outcomes.unrequested, "the forwarded-tcpip channel for an unrequested port");
    assert.deepEqual(server.outcomes.requested, ["opened"], "the -R port that was asked for");
    await waitForLine(cli, UNKNOWN_PORT, "the unknown listen_port warning");
    const lines = stderrLines(cli);
    assert.ok(lines.includes(X11_LINE), lines.join("\n"));
    assert.ok(lines.includes(AGENT_LINE), lines.join("\n"));
    assert.equal(lines.filter((line) => line === BREAK_IN_LINE).length, 2, lines.join("\n"));
    assert.equal(lines.filter((line) => UNKNOWN_PORT.test(line)).length, 1, lines.join("\n"));
    assert.equal(await Promise.race([cli.exited.then(() => "exited"), new Promise((resolve) => setTimeout(() => resolve("running"), 200))]), "running", cli.stderr());
    assertNoCrash(cli.stderr());
  });

  test("100 opens of each kind: all refused, one warning per kind on stderr, not 100; at -v each of the others is a debug1 line", async () => {
    const { cli, server } = await runAgainstHostileServer(100);
    assertAllRefused(server.outcomes.x11, "an x11 channel");
    assertAllRefused(server.outcomes.agent, "an agent channel");
    assertAllRefused(server.outcomes.unrequested, "a forwarded-tcpip channel");
    await waitForLine(cli, UNKNOWN_PORT, "the unknown listen_port warning");
    const lines = stderrLines(cli);
    assert.equal(lines.filter((line) => line === X11_LINE).length, 1, lines.join("\n"));
    assert.equal(lines.filter((line) => line === AGENT_LINE).length, 1, lines.join("\n"));
    assert.equal(lines.filter((line) => line === BREAK_IN_LINE).length, 2, lines.join("\n"));
    assert.equal(lines.filter((line) => UNKNOWN_PORT.test(line)).length, 1, lines.join("\n"));
    assert.ok(lines.length < 20, `${lines.length} lines on stderr:\n${lines.join("\n")}`);

    const verbose = await runAgainstHostileServer(100, ["-v"]);
    const debug = (pattern: RegExp): number => stderrLines(verbose.cli).filter((line) => pattern.test(line)).length;
    await waitFor(() => debug(/^debug1: Refused a forwarded-tcpip channel /) === 99, "99 -v lines for the forwarded-tcpip opens", () => verbose.cli.stderr());
    assert.equal(debug(/^debug1: Refused an x11 channel from the server \(originator 192\.0\.2\.9 port \d+\): X11 forwarding was not requested\.$/), 99);
    assert.equal(debug(/^debug1: Refused an auth-agent@openssh\.com channel from the server: agent forwarding was not requested\.$/), 99);
    assert.equal(stderrLines(verbose.cli).filter((line) => line === X11_LINE).length, 1);
  });
});

/**
 * A server that ignores the flow-control window: for a direct-tcpip channel it
 * writes channel data straight through ssh2's protocol writer (its Channel
 * would wait for window), up to 128 MiB or until the client hangs up.
 */
async function startWindowFloodServer(hostKey: KeyPair): Promise<{ port: number; knownHostsLine(): string; sent(): number; stop(): Promise<void> }> {
  const Server = await loadServerClass();
  const sockets = new Set<Socket>();
  let sent = 0;
  const server = new Server({ hostKeys: [await readFile(hostKey.privatePath)] }, (conn) => {
    const socket = (conn as unknown as { _sock: Socket })._sock;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => ctx.accept());
    conn.on("tcpip", (accept) => {
      const channel = accept() as unknown as { outgoing: { id: number } };
      const protocol = (conn as unknown as { _protocol: { channelData(id: number, data: Buffer): void } })._protocol;
      // Not a divisor of the 2 MiB window: ssh2 itself drops data only when the window is exactly 0.
      const chunk = Buffer.alloc(32_000, 0x41);
      void (async () => {
        for (let i = 0; i < 4096 && !socket.destroyed; i++) {
          protocol.channelData(channel.outgoing.id, chunk);
          sent += chunk.length;
          if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve));
        }
      })();
    });
  });
  return { ...(await listenOnLoopback(server, sockets, hostKey)), sent: () => sent };
}

/** The peak resident memory of a Linux process (VmHWM in /proc/<pid>/status), in bytes. */
async function peakRss(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

const floods: { stop(): Promise<void> }[] = [];
after(async () => {
  for (const flood of floods) await flood.stop();
});

describe("a server that ignores the SSH flow-control window", () => {
  test("is disconnected with a clear message once it is a packet past the window, and memory stays bounded", async () => {
    const server = await startWindowFloodServer(hostKey);
    floods.push(server);
    const home = await homes.trusting(server);
    const socksPort = await freePort();
    const cli = startCli(["-N", "--no-reconnect", "-D", `127.0.0.1:${socksPort}`, "-p", String(server.port), `${USER}@127.0.0.1`], { home: home.home });
    running.push(cli);
    await waitForListen(socksPort, "127.0.0.1", cli);
    // A client that connects and then reads nothing: everything the server sends beyond the window would pile up here.
    const client = await socks5Open(socksPort, socks5Request("flood.test", 80));
    try {
      client.socket.pause();
      await waitForLine(cli, /^The server 127\.0\.0\.1 sent \d+ bytes beyond the SSH flow-control window on channel \d+ \(RFC 4254 section 5\.2; OpenSSH: "peer ignored channel window"\); disconnecting\./, "the window line");
      const peak = await peakRss(cli.pid);
      if (peak !== undefined) assert.ok(peak < 300 * 1024 * 1024, `peak RSS ${Math.round(peak / 1048576)} MiB after the server sent ${Math.round(server.sent() / 1048576)} MiB`);
    } finally {
      client.destroy();
    }
    assert.equal((await cli.exited).code, 255, cli.stderr());
    assertNoCrash(cli.stderr());
  });
});
