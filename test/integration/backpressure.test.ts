/**
 * Backpressure end to end: a SOCKS client that stops reading must stop the
 * far end's writes, through every buffer on the way (the client socket,
 * safetunnel's pipe, the ssh2 channel's SSH window, the real sshd's channel
 * and its socket to the target), instead of piling the download up in
 * safetunnel's memory. Nothing here measures time: "stalled" means the
 * target's write() has returned false and no 'drain' followed within a
 * bounded wait.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { delay } from "../helpers/child.ts";
import { type Home, stderrLines } from "../helpers/run.ts";
import { SOCKS5_GREETING, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { deterministicBytes, startEchoTarget } from "../helpers/targets.ts";
import { type SocksTunnel, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
const TOTAL = 512 * MiB;
/** What may sit in buffers between a stalled client and the target: kernel socket buffers, two SSH windows (2 MiB each), stream buffers. */
const STALLED_WRITE_LIMIT = 64 * MiB;
const RSS_GROWTH_LIMIT = 128 * MiB;
/** Concurrent 1 MiB echo transfers, and how much they may raise safetunnel's peak RSS. */
const ECHOES = Number(process.env.ECHOES ?? 500);
const ECHO_RSS_GROWTH_LIMIT = 256 * MiB;
/** A blocked write with no 'drain' for this long counts as stalled (a bound on waiting, not an expectation). */
const QUIET_MS = 1500;

/** A target that writes TOTAL bytes to each connection as fast as the socket takes them, honouring write() and 'drain'. */
interface FloodTarget {
  port: number;
  /** Bytes handed to write() so far. */
  written: number;
  /** The last write() returned false and no 'drain' (or close) has come since. */
  blocked: boolean;
  /** How many times a 'drain' ended a blocked write. */
  drains: number;
  /** Every byte has been written and the socket ended. */
  finished: boolean;
  /** SHA-256 (hex) of everything written, once finished. */
  digest: string;
  connections: number;
  stop(): Promise<void>;
}

async function startFloodTarget(): Promise<FloodTarget> {
  const sockets = new Set<Socket>();
  const base = deterministicBytes(CHUNK, 7);
  const state: FloodTarget = {
    port: 0,
    written: 0,
    blocked: false,
    drains: 0,
    finished: false,
    digest: "",
    connections: 0,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  /** Resolves on 'drain' or 'close', whichever comes first, without leaving listeners behind. */
  const drainOrClose = (socket: Socket): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });

  const flood = async (socket: Socket): Promise<void> => {
    const hash = createHash("sha256");
    for (let i = 0; i < TOTAL / CHUNK; i++) {
      if (socket.destroyed) return;
      // Each chunk carries its index, so lost, repeated or reordered chunks change the digest.
      const chunk = Buffer.from(base);
      chunk.writeUInt32LE(i, 0);
      hash.update(chunk);
      state.written += chunk.length;
      if (!socket.write(chunk)) {
        state.blocked = true;
        await drainOrClose(socket);
        state.blocked = false;
        state.drains++;
      }
    }
    state.digest = hash.digest("hex");
    socket.end(() => (state.finished = true));
  };

  const server: Server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    void flood(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.port = (server.address() as { port: number }).port;
  return state;
}

/** Read exactly n bytes from a socket in paused mode (socket.read), so nothing beyond them is consumed. */
async function readPaused(socket: Socket, n: number, what: string): Promise<Buffer> {
  for (let i = 0; i < 200; i++) {
    const chunk = socket.read(n) as Buffer | null;
    if (chunk !== null) return chunk;
    if (socket.readableEnded || socket.destroyed) assert.fail(`the stream ended before ${what}`);
    await bounded(Promise.race([once(socket, "readable"), once(socket, "close")]), what, 10_000);
  }
  assert.fail(`no ${what} after 200 reads`);
}

/** The resident set size of a process in bytes, from /proc/<pid>/status (Linux); `VmHWM` is its peak so far. */
function residentBytes(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(match !== null, `no ${field} line for PID ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * A client through the SOCKS port that sends `payload` to an echo target and
 * reads it back; resolves with the SHA-256 of what came back.
 */
async function echoThrough(proxyPort: number, echoPort: number, payload: Buffer): Promise<string> {
  const client = connect({ host: "127.0.0.1", port: proxyPort });
  client.on("error", () => {});
  try {
    await bounded(once(client, "connect"), "a connection to the SOCKS port", 30_000);
    client.write(Buffer.concat([SOCKS5_GREETING, socks5Request("localhost", echoPort)]));
    assert.equal((await readPaused(client, 2, "the SOCKS5 method choice")).toString("hex"), "0500");
    assert.deepEqual(await readPaused(client, 10, "the SOCKS5 reply"), socks5Reply(0x00));
    const hash = createHash("sha256");
    let received = 0;
    const all = new Promise<void>((resolve, reject) => {
      client.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        if (received >= payload.length) resolve();
      });
      client.once("close", () => reject(new Error(`the echo closed after ${received} of ${payload.length} bytes`)));
    });
    client.write(payload);
    await bounded(all, `the echo of ${payload.length} bytes (received ${received})`, 120_000);
    return hash.digest("hex");
  } finally {
    client.destroy();
  }
}

/**
 * Wait (bounded, 60 s) until the target is stalled: a write() returned false
 * and no 'drain' came for QUIET_MS. Returns early if the target finishes (the
 * caller's assertions then say backpressure did not hold).
 */
async function waitForStall(target: FloodTarget): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (target.finished) return;
    if (target.blocked) {
      const drains = target.drains;
      await delay(QUIET_MS);
      if (target.blocked && target.drains === drains) return;
    } else {
      await delay(20);
    }
  }
  assert.fail(`the target neither stalled nor finished within 60 s (written ${target.written} bytes)`);
}

describe("backpressure through safetunnel -D, a real ssh2 channel and a real sshd", () => {
  let home: Home;
  let sshd: Sshd;
  let tunnel: SocksTunnel;
  let target: FloodTarget;
  const clients: Socket[] = [];

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    target = await startFloodTarget();
    tunnel = await startSocksTunnel(sshd, home);
    // The port accepts before the line saying so has been read from stderr: the tests compare what comes after it.
    await waitFor(() => tunnel.cli.stderr().includes("SOCKS and HTTP proxy listening on"), "the listening line", () => tunnel.cli.stderr());
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await tunnel?.cli.stop();
    await target?.stop();
    await sshd?.stop();
    await home?.cleanup();
  });

  test("a client that stops reading stalls a 512 MiB download at the target, safetunnel's memory stays flat, and every byte arrives after it resumes", async (t) => {
    const procStatus = `/proc/${tunnel.cli.pid}/status`;
    const canMeasure = existsSync(procStatus);
    const rssBefore = canMeasure ? residentBytes(tunnel.cli.pid) : 0;
    const stderrBefore = tunnel.cli.stderr().length;

    const client = connect({ host: "127.0.0.1", port: tunnel.port });
    clients.push(client);
    client.on("error", () => {});
    await bounded(once(client, "connect"), "a connection to the SOCKS port", 10_000);
    client.write(SOCKS5_GREETING);
    assert.equal((await readPaused(client, 2, "the SOCKS5 method choice")).toString("hex"), "0500");
    client.write(socks5Request("localhost", target.port));
    assert.deepEqual(await readPaused(client, 10, "the SOCKS5 reply"), socks5Reply(0x00));
    // From here the client reads nothing: the socket stays paused, with no 'data' or 'readable' listener.

    await waitForStall(target);
    const writtenWhileStalled = target.written;
    const rssStalled = canMeasure ? residentBytes(tunnel.cli.pid) : 0;
    t.diagnostic(`stalled after ${(writtenWhileStalled / MiB).toFixed(1)} MiB written; safetunnel RSS ${(rssBefore / MiB).toFixed(1)} -> ${(rssStalled / MiB).toFixed(1)} MiB`);
    assert.equal(target.connections, 1);
    assert.ok(!target.finished, `the target wrote all ${TOTAL} bytes to a client that read none: no backpressure`);
    assert.ok(
      writtenWhileStalled < STALLED_WRITE_LIMIT,
      `the target got ${(writtenWhileStalled / MiB).toFixed(1)} MiB out to a client that read nothing (limit ${STALLED_WRITE_LIMIT / MiB} MiB)`,
    );
    if (canMeasure) {
      const growth = rssStalled - rssBefore;
      assert.ok(
        growth < RSS_GROWTH_LIMIT,
        `safetunnel's RSS grew by ${(growth / MiB).toFixed(1)} MiB while the client was stalled (limit ${RSS_GROWTH_LIMIT / MiB} MiB)`,
      );
    } else {
      t.diagnostic(`no ${procStatus}: safetunnel's RSS was not measured`);
    }

    // Resume: every byte arrives, in order.
    const hash = createHash("sha256");
    let received = 0;
    client.on("data", (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
    });
    await bounded(once(client, "end"), `the end of the ${TOTAL}-byte download (received ${received} so far)`, 100_000);
    assert.equal(received, TOTAL);
    assert.ok(target.finished);
    assert.equal(hash.digest("hex"), target.digest);
    assert.deepEqual(stderrLines(tunnel.cli, stderrBefore), [], "nothing to report about a slow client");
  });

  test(`${ECHOES} clients each echoing 1 MiB at once: the SSH connection's backlog holds their reads back, and every byte comes back`, async (t) => {
    const echo = await startEchoTarget();
    try {
      const canMeasure = existsSync(`/proc/${tunnel.cli.pid}/status`);
      const before = canMeasure ? residentBytes(tunnel.cli.pid) : 0;
      const payload = deterministicBytes(MiB, 11);
      const expected = createHash("sha256").update(payload).digest("hex");
      const hashes = await Promise.all(Array.from({ length: ECHOES }, () => echoThrough(tunnel.port, echo.port, payload)));
      assert.deepEqual(new Set(hashes), new Set([expected]));
      if (!canMeasure) {
        t.diagnostic("no /proc: safetunnel's peak RSS was not measured");
        return;
      }
      const growth = residentBytes(tunnel.cli.pid, "VmHWM") - before;
      t.diagnostic(`safetunnel's peak RSS grew by ${(growth / MiB).toFixed(1)} MiB for ${ECHOES} MiB echoed`);
      // Without the brake, sealed packets queue for the SSH socket: up to each channel's 2 MiB window.
      assert.ok(growth < ECHO_RSS_GROWTH_LIMIT, `safetunnel's peak RSS grew by ${(growth / MiB).toFixed(1)} MiB (limit ${ECHO_RSS_GROWTH_LIMIT / MiB} MiB)`);
    } finally {
      await echo.stop();
    }
  });
});
