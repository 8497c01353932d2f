/**
 * -L and -R end to end: the built CLI against a private OpenSSH sshd on
 * loopback, driven by curl and raw sockets. The guide's commands ("SSH tunnels
 * explained") adapted to loopback, bind addresses, failed targets, half-close
 * both ways, 16 MiB transfers checked by hash, port 0, ports in use on the
 * server, AllowTcpForwarding no, forwards from an ssh_config file, the exit
 * summary, and shutdown while the server has stopped answering.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { after, afterEach, before, describe, test } from "node:test";
import { delay, within } from "../helpers/child.ts";
import { curlDirect, type CurlResult, curlThroughSocks } from "../helpers/curl.ts";
import { type Home, type Running, runCli, startCli, stderrLines, waitForLine, waitForListen } from "../helpers/run.ts";
import { connectOutcome } from "../helpers/sockets.ts";
import type { KeyPair, Sshd } from "../helpers/sshd.ts";
import {
  closedPort,
  deterministicBytes,
  type EchoTarget,
  freePort,
  hasIpv6Loopback,
  HELLO,
  type HttpTarget,
  nonLoopbackAddress,
  occupyPort,
  sha256,
  startEchoTarget,
  startHttpTarget,
} from "../helpers/targets.ts";
import { loginArgs, loginOptions, startSshdWithHome } from "../helpers/tunnel.ts";
import { bounded as boundedBy, waitFor } from "../helpers/wait.ts";

const MIB16 = 16 * 1024 * 1024;
const WAIT_MS = 30_000;

// ---------------------------------------------------------------------------
// Plain clients and small targets of our own
// ---------------------------------------------------------------------------

/** Resolves with the value, or fails the test naming what did not happen within `ms`. */
function bounded<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  return boundedBy(promise, what, ms);
}

/** Plain `curl -q -sS --max-time N url` (no proxy, no .curlrc), stdout as bytes. */
function curl(url: string, maxTimeSeconds = 30): Promise<CurlResult> {
  return curlDirect(url, { maxTimeSeconds });
}

/** A connected client socket that may keep writing after the peer's FIN. */
async function open(port: number, host = "127.0.0.1"): Promise<Socket> {
  const socket = connect({ port, host, allowHalfOpen: true });
  await bounded(
    Promise.race([
      once(socket, "connect"),
      once(socket, "error").then(([err]) => {
        throw err;
      }),
    ]),
    `a connection to ${host}:${port}`,
  );
  return socket;
}

interface Received {
  data: Buffer;
  /** The error code the stream ended with; undefined for a clean end of stream. */
  error: string | undefined;
}

/** Everything the socket receives until its end of stream (or an error). */
function readToEnd(socket: Socket): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("end", () => resolve({ data: Buffer.concat(chunks), error: undefined }));
    socket.once("error", (err: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), error: err.code ?? err.message }));
  });
}

/** Connect, send `payload`, half-close (shutdown write) and read everything back. */
async function sendAndHalfClose(port: number, payload: Buffer, host = "127.0.0.1"): Promise<Received> {
  const socket = await open(port, host);
  const received = readToEnd(socket);
  socket.end(payload);
  const result = await bounded(received, `the reply from ${host}:${port}`);
  socket.destroy();
  return result;
}

function listenOn(server: Server, port: number, host: string): Promise<number> {
  server.listen({ port, host, ipv6Only: host.includes(":") });
  return Promise.race([
    once(server, "listening").then(() => (server.address() as AddressInfo).port),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
}

function closeServer(server: Server, sockets: Set<Socket> = new Set()): Promise<void> {
  for (const socket of sockets) socket.destroy();
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

interface SinkTarget {
  port: number;
  stop(): Promise<void>;
}

/** The line a sink answers with: "<bytes received> <sha256 hex>\n". */
function sinkReply(data: Buffer): string {
  return `${data.length} ${sha256(data)}\n`;
}

/**
 * Reads until the peer's FIN, hashing as it goes, then answers
 * "<count> <sha256>\n" and ends: upload checks that need no 16 MiB echo.
 */
async function startSinkTarget(): Promise<SinkTarget> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const hash = createHash("sha256");
    let count = 0;
    socket.on("data", (chunk: Buffer) => {
      count += chunk.length;
      hash.update(chunk);
    });
    socket.on("end", () => socket.end(`${count} ${hash.digest("hex")}\n`));
  });
  const port = await listenOn(server, 0, "127.0.0.1");
  return { port, stop: () => closeServer(server, sockets) };
}

interface ClosesFirstTarget {
  port: number;
  greeting: string;
  /** What each finished connection received, in order of their ends. */
  received: Buffer[];
  stop(): Promise<void>;
}

/**
 * Sends a greeting and half-closes at once (its FIN goes first), then keeps
 * reading until the peer's FIN: data sent after our FIN must still arrive.
 */
async function startClosesFirstTarget(): Promise<ClosesFirstTarget> {
  const greeting = "greeting from a target that half-closes first\n";
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => received.push(Buffer.concat(chunks)));
    socket.end(greeting);
  });
  const port = await listenOn(server, 0, "127.0.0.1");
  return { port, greeting, received, stop: () => closeServer(server, sockets) };
}

/** Every process below `pid` (children, grandchildren...), from /proc. */
async function descendantPids(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Fields after the ")" that ends the command name: state, ppid, ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** The one-letter state of a process ("T" when stopped), or "gone". */
async function processState(pid: number): Promise<string> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "?";
  } catch {
    return "gone";
  }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe("safetunnel -L and -R against a real sshd", () => {
  let home: Home;
  let key: KeyPair;
  let sshd: Sshd;
  let http: HttpTarget;
  let echo: EchoTarget;
  let sink: SinkTarget;
  let closesFirst: ClosesFirstTarget;
  let ipv6 = false;
  const running: Running[] = [];
  const occupied: { stop(): Promise<void> }[] = [];

  function destination(): string {
    return `${sshd.user}@127.0.0.1`;
  }
  function start(args: string[]): Running {
    const cli = startCli(["-N", ...args, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    return cli;
  }
  function startExact(args: string[]): Running {
    const cli = startCli(args, { home: home.home });
    running.push(cli);
    return cli;
  }
  /** A -L forward is up once its "Forwarding ..." line is out (connecting to it would open a channel). */
  function waitForLocal(cli: Running, port: number): Promise<string> {
    return waitForLine(cli, new RegExp(`^Forwarding (127\\.0\\.0\\.1|\\[::1\\]):${port}\\b`), `the -L listener on port ${port}`);
  }

  before(async () => {
    // DEBUG1 makes sshd log each direct-tcpip target as the client sent it.
    ({ home, key, sshd } = await startSshdWithHome({ extraConfig: ["LogLevel DEBUG1"] }));
    http = await startHttpTarget();
    echo = await startEchoTarget();
    sink = await startSinkTarget();
    closesFirst = await startClosesFirstTarget();
    ipv6 = await hasIpv6Loopback();
  });

  afterEach(async () => {
    for (const cli of running.splice(0)) await cli.stop("SIGKILL");
    for (const holder of occupied.splice(0)) await holder.stop();
  });

  after(async () => {
    await sshd?.stop();
    await http?.stop();
    await echo?.stop();
    await sink?.stop();
    await closesFirst?.stop();
    await home?.cleanup();
  });

  // --- The guide's commands -------------------------------------------------

  test("the guide's `-L P:localhost:HTTPPORT user@host -N` serves the target's page on the local port, naming localhost to the SSH server", async () => {
    const port = await freePort();
    const spec = `${port}:localhost:${http.port}`;
    const cli = startExact([...loginOptions(sshd), "-L", spec, destination(), "-N"]);
    const line = await waitForLocal(cli, port);
    assert.equal(
      line,
      `Forwarding 127.0.0.1:${port}${ipv6 ? ` and [::1]:${port}` : ""} to localhost:${http.port} as seen from the SSH server (-L ${spec}).`,
    );

    const result = await curl(`http://127.0.0.1:${port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString("utf8"), HELLO);
    // "The localhost is relative to the gateway": the name, not an address, went to sshd.
    assert.match(sshd.logs(), new RegExp(`server_request_direct_tcpip: originator 127\\.0\\.0\\.1 port \\d+, target localhost port ${http.port}\\r?\\n`));
    assert.equal(cli.stderr().includes("Warning"), false, cli.stderr());
  });

  test("the guide's slash form `-L P/localhost/HTTPPORT` works like the colon form", async () => {
    const port = await freePort();
    const spec = `${port}/localhost/${http.port}`;
    const cli = startExact([...loginOptions(sshd), "-L", spec, destination(), "-N"]);
    await waitForLocal(cli, port);
    const result = await curl(`http://127.0.0.1:${port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString("utf8"), HELLO);
  });

  test("the guide's `-R P:localhost:HTTPPORT user@host` serves the target's page on the server's loopback port", async () => {
    const port = await freePort();
    const cli = startExact([...loginOptions(sshd), "-R", `${port}:localhost:${http.port}`, destination()]);
    // Like -D and -L, a -R forward says when it is up, on stderr.
    await waitForLine(cli, /^Forwarding /, "the -R forward");
    const result = await curl(`http://127.0.0.1:${port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString("utf8"), HELLO);
    assert.equal(cli.stderr(), `Forwarding localhost:${port} on the SSH server to localhost:${http.port} as seen from here (-R ${port}:localhost:${http.port}).\n`);
  });

  // --- -L bind addresses ---------------------------------------------------

  test("-L 127.0.0.1:P:localhost:PORT listens on 127.0.0.1 only", async () => {
    const port = await freePort();
    const cli = start(["-L", `127.0.0.1:${port}:localhost:${echo.port}`]);
    assert.equal(
      await waitForLocal(cli, port),
      `Forwarding 127.0.0.1:${port} to localhost:${echo.port} as seen from the SSH server (-L 127.0.0.1:${port}:localhost:${echo.port}).`,
    );
    const reply = await sendAndHalfClose(port, Buffer.from("over 127.0.0.1\n"));
    assert.deepEqual(reply, { data: Buffer.from("over 127.0.0.1\n"), error: undefined });
    if (ipv6) assert.equal(await connectOutcome(port, "::1"), "ECONNREFUSED");
  });

  test("-L [::1]:P:localhost:PORT listens on ::1 only", async (t) => {
    if (!ipv6) {
      t.skip("this machine has no IPv6 loopback");
      return;
    }
    const port = await freePort("::1");
    const cli = start(["-L", `[::1]:${port}:localhost:${echo.port}`]);
    assert.equal(
      await waitForLocal(cli, port),
      `Forwarding [::1]:${port} to localhost:${echo.port} as seen from the SSH server (-L [::1]:${port}:localhost:${echo.port}).`,
    );
    const reply = await sendAndHalfClose(port, Buffer.from("over ::1\n"), "::1");
    assert.deepEqual(reply, { data: Buffer.from("over ::1\n"), error: undefined });
    assert.equal(await connectOutcome(port, "127.0.0.1"), "ECONNREFUSED");
  });

  test("-L 0.0.0.0:P:... without -g warns 'Ignoring bind address' and listens on loopback only", async () => {
    const port = await freePort();
    const spec = `0.0.0.0:${port}:localhost:${echo.port}`;
    const cli = start(["-L", spec]);
    assert.equal(
      await waitForLocal(cli, port),
      `Forwarding 127.0.0.1:${port}${ipv6 ? ` and [::1]:${port}` : ""} to localhost:${echo.port} as seen from the SSH server (-L ${spec}).`,
    );
    assert.deepEqual(
      stderrLines(cli).filter((line) => line.startsWith("Warning:")),
      [
        `Warning: Ignoring bind address '0.0.0.0' (all interfaces) for -L ${spec}: GatewayPorts is off, ` +
          "so listening on loopback only; pass -g (or -o GatewayPorts=yes) to listen on it.",
      ],
    );
    assert.deepEqual(await sendAndHalfClose(port, Buffer.from("loopback\n")), { data: Buffer.from("loopback\n"), error: undefined });
    const outside = nonLoopbackAddress();
    if (outside !== undefined) assert.equal(await connectOutcome(port, outside), "ECONNREFUSED");
  });

  // --- -L failures ---------------------------------------------------------

  test("-L to a closed target port closes the client's connection with no data, logs 'connect to ... failed' and keeps running", async () => {
    const deadTarget = await closedPort();
    const dead = await freePort();
    const alive = await freePort();
    const cli = start(["-L", `${dead}:localhost:${deadTarget}`, "-L", `${alive}:localhost:${echo.port}`]);
    await waitForLocal(cli, dead);
    await waitForLocal(cli, alive);

    const socket = await open(dead);
    const received = await bounded(readToEnd(socket), "the failed -L connection to close");
    socket.destroy();
    assert.deepEqual(received, { data: Buffer.alloc(0), error: undefined });
    const failure = await waitForLine(cli, /connect to localhost port \d+ failed/, "the 'connect to ... failed' line");
    assert.match(failure, new RegExp(`^-L ${dead}:localhost:${deadTarget}: connect to localhost port ${deadTarget} failed: .*Connection refused`));

    // Still running, and the other forward still works.
    assert.deepEqual(await sendAndHalfClose(alive, Buffer.from("still here\n")), { data: Buffer.from("still here\n"), error: undefined });
    // And so does the failed one's listener: a second attempt fails the same way, not with ECONNREFUSED.
    const again = await open(dead);
    assert.deepEqual(await bounded(readToEnd(again), "the second failed connection to close"), { data: Buffer.alloc(0), error: undefined });
    again.destroy();
    assert.equal(await within(cli.exited, 0), undefined, "safetunnel must keep running");
  });

  // --- Half-close ----------------------------------------------------------

  test("through -L, a client that shuts down its write side still receives every echoed byte", async () => {
    const port = await freePort();
    const cli = start(["-L", `${port}:localhost:${echo.port}`]);
    await waitForLocal(cli, port);
    const payload = deterministicBytes(1024 * 1024, 11);
    const reply = await sendAndHalfClose(port, payload);
    assert.equal(reply.error, undefined);
    assert.equal(reply.data.length, payload.length);
    assert.equal(sha256(reply.data), sha256(payload));
  });

  test("through -R, a client that shuts down its write side still receives every echoed byte", async () => {
    const port = await freePort();
    const cli = start(["-R", `${port}:localhost:${echo.port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    const payload = deterministicBytes(1024 * 1024, 12);
    const reply = await sendAndHalfClose(port, payload);
    assert.equal(reply.error, undefined);
    assert.equal(reply.data.length, payload.length);
    assert.equal(sha256(reply.data), sha256(payload));
  });

  /** The target half-closes first; the client reads that EOF, then sends and half-closes. */
  async function targetClosesFirst(port: number): Promise<void> {
    const before = closesFirst.received.length;
    const socket = await open(port);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const closed = once(socket, "close");
    await bounded(once(socket, "end"), "the target's FIN");
    assert.equal(Buffer.concat(chunks).toString("utf8"), closesFirst.greeting);
    assert.equal(socket.destroyed, false, "the client's write side must stay open after the target's FIN");

    const payload = deterministicBytes(512 * 1024, 21);
    socket.end(payload);
    await bounded(closed, "the connection to close after both FINs");
    await waitFor(() => closesFirst.received.length > before, "the target to see the client's FIN");
    const got = closesFirst.received[before]!;
    assert.equal(got.length, payload.length);
    assert.equal(sha256(got), sha256(payload));
  }

  test("through -L, a target that half-closes first still receives everything the client sends afterwards", async () => {
    const port = await freePort();
    const cli = start(["-L", `${port}:localhost:${closesFirst.port}`]);
    await waitForLocal(cli, port);
    await targetClosesFirst(port);
  });

  test("through -R, a target that half-closes first still receives everything the client sends afterwards", async () => {
    const port = await freePort();
    const cli = start(["-R", `${port}:localhost:${closesFirst.port}`]);
    await waitForLine(cli, new RegExp(`^Forwarding localhost:${port} on the SSH server `), "the -R forward");
    await targetClosesFirst(port);
  });

  // --- 16 MiB transfers ----------------------------------------------------

  test("16 MiB downloaded through -L arrive intact (SHA-256)", async () => {
    const port = await freePort();
    const cli = start(["-L", `${port}:localhost:${http.port}`]);
    await waitForLocal(cli, port);
    const result = await curl(`http://127.0.0.1:${port}/bytes/${MIB16}?seed=7`, 60);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, MIB16);
    assert.equal(sha256(result.stdout), sha256(deterministicBytes(MIB16, 7)));
  });

  test("16 MiB uploaded through -L arrive intact (SHA-256)", async () => {
    const port = await freePort();
    const cli = start(["-L", `${port}:localhost:${sink.port}`]);
    await waitForLocal(cli, port);
    const payload = deterministicBytes(MIB16, 8);
    const reply = await sendAndHalfClose(port, payload);
    assert.deepEqual(reply, { data: Buffer.from(sinkReply(payload)), error: undefined });
  });

  test("16 MiB downloaded through -R arrive intact (SHA-256)", async () => {
    const port = await freePort();
    const cli = start(["-R", `${port}:localhost:${http.port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    const result = await curl(`http://127.0.0.1:${port}/bytes/${MIB16}?seed=9`, 60);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, MIB16);
    assert.equal(sha256(result.stdout), sha256(deterministicBytes(MIB16, 9)));
  });

  test("16 MiB uploaded through -R arrive intact (SHA-256)", async () => {
    const port = await freePort();
    const cli = start(["-R", `${port}:localhost:${sink.port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    const payload = deterministicBytes(MIB16, 10);
    const reply = await sendAndHalfClose(port, payload);
    assert.deepEqual(reply, { data: Buffer.from(sinkReply(payload)), error: undefined });
  });

  // --- -R port allocation and failures -------------------------------------

  test("-R 0:localhost:PORT prints 'Allocated port N for remote forward to localhost:PORT' and port N works", async () => {
    const cli = start(["-R", `0:localhost:${http.port}`]);
    const line = await waitForLine(cli, /^Allocated port \d+ /, "the allocated port line");
    const match = new RegExp(`^Allocated port (\\d+) for remote forward to localhost:${http.port}$`).exec(line);
    assert.ok(match, line);
    const port = Number(match[1]);
    assert.ok(port > 0 && port < 65536, line);
    const result = await curl(`http://127.0.0.1:${port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString("utf8"), HELLO);
  });

  test("-R on a port already in use on the server, with ExitOnForwardFailure=yes, names the forward and exits 255", async () => {
    const busy = await freePort();
    occupied.push(await occupyPort(busy, "127.0.0.1"));
    const local = await freePort();
    const spec = `127.0.0.1:${busy}:localhost:${http.port}`;
    const result = await runCli(
      ["-N", "-o", "ExitOnForwardFailure=yes", "-L", `${local}:localhost:${echo.port}`, "-R", spec, ...loginOptions(sshd), destination()],
      { home: home.home, timeoutMs: WAIT_MS },
    );
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result);
    const failure = lines.filter((line) => line.startsWith(`-R ${spec}: `));
    assert.equal(failure.length, 1, result.stderr);
    assert.match(failure[0]!, new RegExp(`^-R ${spec}: the server refused to listen on 127\\.0\\.0\\.1 port ${busy}\\b`));
    assert.equal(
      lines.at(-1),
      `safetunnel: a forwarding failed and ExitOnForwardFailure is set, so the ones that started (-L ${local}:localhost:${echo.port}) are closed again; fix the failure above or set ExitOnForwardFailure=no`,
    );
    // Nothing was announced as listening: the run's fate was decided first.
    assert.deepEqual(lines.filter((line) => line.startsWith("Forwarding ")), [], result.stderr);
    assert.equal(await connectOutcome(local), "ECONNREFUSED");
  });

  test("-R on a port already in use on the server, without ExitOnForwardFailure, is reported and the -D and -L of the same run work", async () => {
    const busy = await freePort();
    // sshd binds "localhost" as both loopbacks and succeeds if either is free: hold both.
    occupied.push(await occupyPort(busy, "127.0.0.1"));
    if (ipv6) occupied.push(await occupyPort(busy, "::1"));
    const socksPort = await freePort();
    const local = await freePort();
    const spec = `${busy}:localhost:${http.port}`;
    const cli = start(["-D", `127.0.0.1:${socksPort}`, "-L", `${local}:localhost:${echo.port}`, "-R", spec]);
    const failure = await waitForLine(cli, new RegExp(`^-R ${spec}: `), "the -R failure line");
    assert.match(failure, new RegExp(`^-R ${spec}: the server refused to listen on localhost port ${busy}\\b`));
    await waitForLocal(cli, local);
    await waitForListen(socksPort, "127.0.0.1", cli);

    const viaSocks = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
    assert.equal(viaSocks.code, 0, viaSocks.stderr);
    assert.equal(viaSocks.stdout.toString("utf8"), HELLO);
    assert.deepEqual(await sendAndHalfClose(local, Buffer.from("-L works\n")), { data: Buffer.from("-L works\n"), error: undefined });
    assert.equal(await within(cli.exited, 0), undefined, "safetunnel must keep running");
  });

  // --- ssh_config ----------------------------------------------------------

  test("LocalForward, RemoteForward and DynamicForward from an -F config file work with no forwarding flags", async () => {
    const localPort = await freePort();
    const remotePort = await freePort();
    const socksPort = await freePort();
    const configPath = join(home.home, "forwards.conf");
    await writeFile(
      configPath,
      [
        "Host tunnel-home",
        "  HostName 127.0.0.1",
        `  Port ${sshd.port}`,
        `  User ${sshd.user}`,
        `  IdentityFile ${key.privatePath}`,
        "  IdentitiesOnly yes",
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        `  LocalForward ${localPort} localhost:${http.port}`,
        `  RemoteForward ${remotePort} localhost:${http.port}`,
        `  DynamicForward 127.0.0.1:${socksPort}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const cli = startExact(["-F", configPath, "tunnel-home"]);
    await waitForLocal(cli, localPort);
    await waitForListen(remotePort, "127.0.0.1", cli);
    await waitForListen(socksPort, "127.0.0.1", cli);

    const viaLocal = await curl(`http://127.0.0.1:${localPort}/hello`);
    assert.equal(viaLocal.code, 0, viaLocal.stderr);
    assert.equal(viaLocal.stdout.toString("utf8"), HELLO);
    const viaRemote = await curl(`http://127.0.0.1:${remotePort}/hello`);
    assert.equal(viaRemote.code, 0, viaRemote.stderr);
    assert.equal(viaRemote.stdout.toString("utf8"), HELLO);
    const viaSocks = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
    assert.equal(viaSocks.code, 0, viaSocks.stderr);
    assert.equal(viaSocks.stdout.toString("utf8"), HELLO);
    assert.equal(stderrLines(cli).filter((line) => line.startsWith("Warning:")).length, 0, cli.stderr());
  });

  // --- Signals -------------------------------------------------------------

  test("SIGTERM with -L and -R active exits 0 with a summary counting their connections and bytes exactly", async () => {
    const local = await freePort();
    const remote = await freePort();
    const cli = start(["-v", "-L", `${local}:localhost:${sink.port}`, "-R", `${remote}:localhost:${sink.port}`]);
    await waitForLocal(cli, local);
    await waitForLine(cli, new RegExp(`^Forwarding localhost:${remote} on the SSH server `), "the -R forward");

    // -L: 300 bytes go up (client to target), the 69-byte answer comes down.
    const upL = deterministicBytes(300, 31);
    assert.deepEqual(await sendAndHalfClose(local, upL), { data: Buffer.from(sinkReply(upL)), error: undefined });
    // -R: the target is on our side, so its 69-byte answer goes up and the client's 400 bytes come down.
    const downR = deterministicBytes(400, 32);
    assert.deepEqual(await sendAndHalfClose(remote, downR), { data: Buffer.from(sinkReply(downR)), error: undefined });

    process.kill(cli.pid, "SIGTERM");
    const status = await bounded(cli.exited, "safetunnel to exit after SIGTERM");
    assert.deepEqual(status, { code: 0, signal: null }, cli.stderr());
    const summaries = stderrLines(cli).filter((line) => line.startsWith("Stopped by"));
    assert.deepEqual(summaries, ["Stopped by SIGTERM: 2 connections, 369 B up, 469 B down, 0 refused (IP address), 0 failed."], cli.stderr());
    assert.equal(await connectOutcome(local), "ECONNREFUSED");
  });

  test("SIGTERM with -L and -R connections still open closes them, exits 0 and counts the bytes they carried", async () => {
    const local = await freePort();
    const remote = await freePort();
    const cli = start(["-v", "-L", `${local}:localhost:${echo.port}`, "-R", `${remote}:localhost:${echo.port}`]);
    await waitForLocal(cli, local);
    await waitForLine(cli, new RegExp(`^Forwarding localhost:${remote} on the SSH server `), "the -R forward");

    const clients: Socket[] = [];
    const ends: Promise<Received>[] = [];
    for (const [port, text] of [
      [local, "via -L"],
      [remote, "via -R!"],
    ] as const) {
      const socket = await open(port);
      clients.push(socket);
      const chunks: Buffer[] = [];
      const echoed = new Promise<void>((resolve) => {
        socket.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          if (Buffer.concat(chunks).toString("utf8") === text) resolve();
        });
      });
      ends.push(readToEnd(socket));
      socket.write(text);
      await bounded(echoed, `the echo ${text}`);
    }
    try {
      process.kill(cli.pid, "SIGTERM");
      const status = await bounded(cli.exited, "safetunnel to exit after SIGTERM");
      assert.deepEqual(status, { code: 0, signal: null }, cli.stderr());
      // Both clients see their connection end (a clean FIN or a reset).
      for (const end of ends) await bounded(end, "the open connections to end");
      const summaries = stderrLines(cli).filter((line) => line.startsWith("Stopped by"));
      // 6 + 7 bytes each way, although neither connection had finished.
      assert.deepEqual(summaries, ["Stopped by SIGTERM: 2 connections, 13 B up, 13 B down, 0 refused (IP address), 0 failed."], cli.stderr());
    } finally {
      for (const socket of clients) socket.destroy();
    }
  });
});

describe("safetunnel -L and -R against an sshd with AllowTcpForwarding no", () => {
  let home: Home;
  let sshd: Sshd;
  let echo: EchoTarget;
  const running: Running[] = [];

  before(async () => {
    ({ home, sshd } = await startSshdWithHome({ extraConfig: ["AllowTcpForwarding no"] }));
    echo = await startEchoTarget();
  });

  afterEach(async () => {
    for (const cli of running.splice(0)) await cli.stop("SIGKILL");
  });

  after(async () => {
    await sshd?.stop();
    await echo?.stop();
    await home?.cleanup();
  });

  test("-L connections are closed with no data and a log line saying the server prohibits them; -R is refused with an error line", async () => {
    const local = await freePort();
    const remote = await freePort();
    const localSpec = `${local}:localhost:${echo.port}`;
    const remoteSpec = `${remote}:localhost:${echo.port}`;
    const cli = startCli(["-N", "-L", localSpec, "-R", remoteSpec, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);

    const refused = await waitForLine(cli, new RegExp(`^-R ${remoteSpec}: `), "the -R refusal");
    assert.match(refused, new RegExp(`^-R ${remoteSpec}: the server refused to listen on localhost port ${remote}\\b`));
    assert.equal(await connectOutcome(remote), "ECONNREFUSED");

    await waitForLine(cli, new RegExp(`^Forwarding 127\\.0\\.0\\.1:${local}\\b`), "the -L listener");
    const socket = await open(local);
    const received = await bounded(readToEnd(socket), "the prohibited -L connection to close");
    socket.destroy();
    assert.deepEqual(received, { data: Buffer.alloc(0), error: undefined });
    const failure = await waitForLine(cli, /connect to localhost port \d+ failed/, "the -L failure line");
    assert.match(failure, new RegExp(`^-L ${localSpec}: connect to localhost port ${echo.port} failed: .*prohibited`, "i"));
    assert.equal(echo.connections, 0);
    assert.equal(await within(cli.exited, 0), undefined, "safetunnel must keep running with its -L listener");
  });

  test("a run whose only forward is a refused -R exits 255", async () => {
    const remote = await freePort();
    const spec = `${remote}:localhost:${echo.port}`;
    const result = await runCli(["-N", "-R", spec, ...loginArgs(sshd)], { home: home.home, timeoutMs: WAIT_MS });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result);
    assert.equal(lines.filter((line) => line.startsWith(`-R ${spec}: the server refused to listen on localhost port ${remote}`)).length, 1, result.stderr);
    assert.equal(lines.at(-1), "safetunnel: no forwarding could be started; see the errors above");
  });
});

describe("safetunnel -R when the server stops answering", () => {
  let home: Home;
  let sshd: Sshd;
  let echo: EchoTarget;

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    echo = await startEchoTarget();
  });

  after(async () => {
    await sshd?.stop();
    await echo?.stop();
    await home?.cleanup();
  });

  test("SIGTERM still ends the run when the sshd serving the connection is stopped (SIGSTOP)", async () => {
    const remote = await freePort();
    const cli = startCli(
      ["-N", "-v", "-R", `${remote}:localhost:${echo.port}`, "-o", "BatchMode=yes", "-p", String(sshd.port), `${sshd.user}@127.0.0.1`],
      { home: home.home },
    );
    const stopped: number[] = [];
    let client: Socket | undefined;
    try {
      await waitForLine(cli, new RegExp(`^Forwarding localhost:${remote} on the SSH server `), "the -R forward");
      // One connection through the forward, left open.
      client = await open(remote);
      client.on("error", () => {});
      const echoed = new Promise<string>((resolve) => {
        let text = "";
        client!.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
          if (text === "ping") resolve(text);
        });
      });
      client.write("ping");
      assert.equal(await bounded(echoed, "the echo through -R"), "ping");

      // Freeze every process serving accepted connections (the listener itself keeps running).
      const pids = await descendantPids(sshd.pid);
      assert.ok(pids.length > 0, "sshd has a per-connection process");
      for (const pid of pids) {
        process.kill(pid, "SIGSTOP");
        stopped.push(pid);
      }
      for (const pid of pids) {
        let state = await processState(pid);
        for (let i = 0; i < 100 && !["T", "t", "gone"].includes(state); i++) {
          await delay(20);
          state = await processState(pid);
        }
        assert.ok(["T", "t"].includes(state), `pid ${pid} is stopped (state ${state})`);
      }

      process.kill(cli.pid, "SIGTERM");
      const status = await within(cli.exited, 15_000);
      assert.notEqual(status, undefined, `safetunnel did not exit within 15 s of SIGTERM; stderr: ${cli.stderr().trim()}`);
      assert.equal(status!.signal, null);
      assert.equal(status!.code, 0, `exit status ${status!.code}; stderr: ${cli.stderr().trim()}`);
      assert.equal(stderrLines(cli).filter((line) => line.startsWith("Stopped by SIGTERM: ")).length, 1, cli.stderr());
    } finally {
      client?.destroy();
      for (const pid of stopped) {
        try {
          // SIGKILL ends a stopped process too; its parent, our sshd, reaps it.
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await cli.stop("SIGKILL");
    }
  });
});
