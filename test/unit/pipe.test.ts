/**
 * joinStreams over real loopback sockets. Each test builds two TCP
 * connections: app <-> local (the SOCKS client and the socket we accepted)
 * and remote <-> far (the tunnel channel and whatever it reaches), then joins
 * local and remote. The test speaks through `app` and `far`.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { joinStreams, type PipeResult, type SendGate } from "../../src/forward/pipe.ts";
import { type PairServer, startPairServer } from "../helpers/socket-pair.ts";
import { closeOf, readExactly, readUntilClosed } from "../helpers/sockets.ts";
import { sha256 } from "../helpers/targets.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

const WAIT_MS = 10_000;

/** A bounded wait: the test fails with `what` instead of hanging. */
function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  return bounded(promise, what, ms);
}

let pairs: PairServer;

before(async () => {
  pairs = await startPairServer({ timeoutMs: WAIT_MS });
});

after(async () => {
  await pairs.close();
});

afterEach(() => {
  pairs.destroySockets();
});

interface Joined {
  /** The client program's socket. */
  app: Socket;
  /** The socket accepted from the client: joinStreams' `local`. */
  local: Socket;
  /** The tunnel side: joinStreams' `remote`. */
  remote: Socket;
  /** What the tunnel reaches. */
  far: Socket;
  /** Every onDone call, in order. */
  results: PipeResult[];
  /** Resolves with the first onDone result. */
  done: Promise<PipeResult>;
}

async function joined(options: { initial?: Uint8Array; gate?: SendGate; remoteAllowHalfOpen?: boolean; beforeJoin?: (j: Omit<Joined, "results" | "done">) => Promise<void> } = {}): Promise<Joined> {
  const [app, local] = await pairs.pair();
  const [remote, far] = await pairs.pair(options.remoteAllowHalfOpen ?? true);
  // The test's own sockets report resets as 'error'; they must not crash the run.
  app.on("error", () => {});
  far.on("error", () => {});
  await options.beforeJoin?.({ app, local, remote, far });
  const results: PipeResult[] = [];
  let first!: (result: PipeResult) => void;
  const done = new Promise<PipeResult>((resolve) => (first = resolve));
  joinStreams(
    local,
    remote,
    (result) => {
      results.push({ ...result });
      first(result);
    },
    { ...(options.initial !== undefined ? { initial: options.initial } : {}), ...(options.gate !== undefined ? { gate: options.gate } : {}) },
  );
  return { app, local, remote, far, results, done };
}

/** Both joined sockets have closed, and any onDone call due has had its turn. */
async function settled(j: Joined): Promise<void> {
  await within(Promise.all([closeOf(j.local), closeOf(j.remote)]), "both joined sockets to close");
  await nextTurn();
  await nextTurn();
}

describe("joinStreams", () => {
  test("delivers bytes unchanged both ways and counts them exactly", async () => {
    const j = await joined();
    const upload = randomBytes(300_000);
    const download = randomBytes(1_000_000);
    const atFar = readUntilClosed(j.far);
    const atApp = readUntilClosed(j.app);
    j.app.end(upload);
    j.far.end(download);
    assert.equal(sha256(await within(atFar, "the upload")), sha256(upload));
    assert.equal(sha256(await within(atApp, "the download")), sha256(download));
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: 300_000, bytesDown: 1_000_000 });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("writes the initial bytes before anything the client sends and counts them as up", async () => {
    const j = await joined({
      initial: Buffer.from("early:"),
      // Bytes the client sent before the join sit in the socket; they must still come after `initial`.
      beforeJoin: async ({ app, local }) => {
        await new Promise<void>((resolve) => app.write("queued:", () => resolve()));
        await within(once(local, "readable"), "the queued bytes to reach the accepted socket");
      },
    });
    const atFar = readUntilClosed(j.far);
    j.app.end("later");
    j.far.end();
    assert.equal((await within(atFar, "the upload")).toString(), "early:queued:later");
    const result = await within(j.done, "onDone");
    assert.equal(result.bytesUp, 6 + 7 + 5);
    assert.equal(result.bytesDown, 0);
    assert.equal(result.error, undefined);
  });

  test("an empty initial buffer sends and counts nothing", async () => {
    const j = await joined({ initial: new Uint8Array(0) });
    const atFar = readUntilClosed(j.far);
    j.app.end("x");
    j.far.end();
    assert.equal((await within(atFar, "the upload")).toString(), "x");
    assert.deepEqual(await within(j.done, "onDone"), { bytesUp: 1, bytesDown: 0 });
  });

  test("a client that ends its side still receives everything the far end sends afterwards", async () => {
    const j = await joined();
    const farReads = readUntilClosed(j.far);
    const appReads = readUntilClosed(j.app);
    j.app.end("request");
    // The far end sees the client's FIN (end of the upload) ...
    assert.equal((await within(farReads, "the far end to see the client's end")).toString(), "request");
    assert.equal(j.app.readableEnded, false);
    // ... and answers on its still-open half, then ends it.
    const answer = randomBytes(2 * 1024 * 1024);
    j.far.end(answer);
    const received = await within(appReads, "the client to receive the answer and the end");
    assert.equal(j.app.readableEnded, true);
    assert.equal(sha256(received), sha256(answer));
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: 7, bytesDown: answer.length });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a far end that ends its side still receives everything the client sends afterwards", async () => {
    const j = await joined();
    const farReads = readUntilClosed(j.far);
    const appReads = readUntilClosed(j.app);
    j.far.end("banner");
    assert.equal((await within(appReads, "the client to see the far end's end")).toString(), "banner");
    assert.equal(j.far.readableEnded, false);
    const upload = randomBytes(2 * 1024 * 1024);
    j.app.end(upload);
    assert.equal(sha256(await within(farReads, "the far end to receive the upload and the end")), sha256(upload));
    assert.equal(j.far.readableEnded, true);
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: upload.length, bytesDown: 6 });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a tunnel side that closes after its last bytes still delivers them all to the client", async () => {
    // Like an ssh2 channel: EOF then close, without waiting for the client's end.
    const j = await joined({ remoteAllowHalfOpen: false });
    const download = randomBytes(8 * 1024 * 1024);
    j.far.resume();
    const remoteClosed = closeOf(j.remote);
    const appReads = readUntilClosed(j.app);
    j.far.end(download);
    assert.equal(sha256(await within(appReads, "the client to read the download and the end")), sha256(download));
    await within(remoteClosed, "the tunnel side to close");
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: 0, bytesDown: download.length });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a client that reads only after the tunnel side has closed still gets every byte and the end", async () => {
    const j = await joined({ remoteAllowHalfOpen: false });
    // Small enough to sit in the client's socket buffers while nobody reads.
    const download = randomBytes(64 * 1024);
    j.far.resume();
    j.far.end(download);
    await within(closeOf(j.remote), "the tunnel side to close");
    const received = await within(readUntilClosed(j.app), "the client to read the download and the end");
    assert.equal(sha256(received), sha256(download));
    assert.equal(j.app.readableEnded, true);
    assert.deepEqual(await within(j.done, "onDone"), { bytesUp: 0, bytesDown: download.length });
  });

  test("an error on the local side destroys the remote side and onDone gets the error", async () => {
    const j = await joined();
    const farReads = readUntilClosed(j.far);
    j.app.write("some");
    await readExactly(j.far, 4, "data before the error");
    j.local.destroy(new Error("local side failed"));
    await within(farReads, "the far end to see the tunnel side close");
    const result = await within(j.done, "onDone");
    assert.equal(j.remote.destroyed, true);
    assert.equal(result.error?.message, "local side failed");
    assert.equal(result.bytesUp, 4);
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("an error on the remote side destroys the local side and onDone gets the error", async () => {
    const j = await joined();
    const appReads = readUntilClosed(j.app);
    j.far.write("data");
    await readExactly(j.app, 4, "data before the error");
    j.remote.destroy(new Error("channel failed"));
    await within(appReads, "the client to see its socket close");
    const result = await within(j.done, "onDone");
    assert.equal(j.local.destroyed, true);
    assert.equal(result.error?.message, "channel failed");
    assert.equal(result.bytesDown, 4);
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a client reset closes the far end and onDone reports the reset", async () => {
    const j = await joined();
    const farReads = readUntilClosed(j.far);
    j.far.write("hello");
    await readExactly(j.app, 5, "data before the reset");
    j.app.resetAndDestroy();
    await within(farReads, "the far end to see the tunnel side close");
    const result = await within(j.done, "onDone");
    assert.equal((result.error as NodeJS.ErrnoException | undefined)?.code, "ECONNRESET");
    assert.equal(result.bytesDown, 5);
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("the local side closing without an error destroys the remote side", async () => {
    const j = await joined();
    const farReads = readUntilClosed(j.far);
    j.local.destroy();
    await within(farReads, "the far end to see the tunnel side close");
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: 0, bytesDown: 0 });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a client that does not read holds the far end back, then receives all 64 MiB intact", async () => {
    const j = await joined();
    j.app.pause();
    const total = 64 * 1024 * 1024;
    const chunkSize = 64 * 1024;
    const sent = createHash("sha256");
    let written = 0;
    let stalledAt: number | undefined;
    let appReads: Promise<{ length: number; hash: string }> | undefined;

    /** 'drain', or false once the writer has waited `quietMs` without one (the pipe is holding it back). */
    const drained = (quietMs: number): Promise<boolean> =>
      new Promise((resolve) => {
        const onDrain = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          j.far.off("drain", onDrain);
          resolve(false);
        }, quietMs);
        j.far.once("drain", onDrain);
      });

    while (written < total) {
      const chunk = randomBytes(chunkSize);
      sent.update(chunk);
      written += chunk.length;
      if (j.far.write(chunk)) continue;
      if (stalledAt === undefined && !(await drained(1000))) {
        stalledAt = written;
        // The pipe stopped reading the tunnel side: that is what holds the writer back.
        assert.equal(j.remote.isPaused(), true);
        const received = createHash("sha256");
        let length = 0;
        j.app.on("data", (data: Buffer) => {
          received.update(data);
          length += data.length;
        });
        appReads = new Promise((resolve) => j.app.once("end", () => resolve({ length, hash: received.digest("hex") })));
        j.app.resume();
      }
      if (j.far.writableNeedDrain) await within(once(j.far, "drain"), `'drain' after ${written} bytes`);
    }
    j.far.end();

    assert.notEqual(stalledAt, undefined, "the writer was never held back: all 64 MiB were buffered");
    assert.ok(stalledAt! < 16 * 1024 * 1024, `the writer got ${stalledAt} bytes out before being held back`);
    const arrived = await within(appReads!, "the client to read all 64 MiB");
    assert.equal(arrived.length, total);
    assert.equal(arrived.hash, sent.digest("hex"));
    j.app.end();
    const result = await within(j.done, "onDone");
    assert.deepEqual(result, { bytesUp: 0, bytesDown: total });
    await settled(j);
    assert.equal(j.results.length, 1);
  });

  test("a local side paused before the join (as -L does while it checks the client) is read", async () => {
    const j = await joined({ beforeJoin: async ({ local }) => void local.pause() });
    const atFar = readExactly(j.far, 5, "the client's bytes");
    j.app.write("hello");
    assert.equal((await atFar).toString(), "hello");
  });

  test("a local side that had already ended before the join still ends the remote side", async () => {
    const j = await joined({
      beforeJoin: async ({ app, local }) => {
        app.end();
        local.resume();
        await within(once(local, "end"), "the client's end");
      },
    });
    j.far.resume();
    await within(once(j.far, "end"), "the client's EOF at the far end");
    j.far.end();
    assert.deepEqual(await within(j.done, "onDone"), { bytesUp: 0, bytesDown: 0 });
  });

  test("what the tunnel side delivers in one turn of the event loop reaches the client as one write", async () => {
    const batches: string[][] = [];
    const local = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        batches.push([chunk.toString()]);
        done();
      },
      writev(chunks, done) {
        batches.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
        done();
      },
    });
    const remote = new PassThrough();
    joinStreams(local, remote, () => {});
    remote.write("packet 1");
    remote.write("packet 2");
    remote.write("packet 3");
    await nextTurn();
    await nextTurn();
    assert.deepEqual(batches, [["packet 1", "packet 2", "packet 3"]]);
    remote.write("next turn");
    await nextTurn();
    await nextTurn();
    assert.deepEqual(batches.at(-1), ["next turn"]);
  });

  test("a far end that does not read holds the client back, then receives all 32 MiB intact", async () => {
    const j = await joined();
    j.far.pause();
    const upload = randomBytes(32 * 1024 * 1024);
    j.app.end(upload);
    // Loopback's socket buffers hold a few MiB; past them the local side must stop being read.
    await waitFor(() => j.local.isPaused(), "the pipe to stop reading the client");
    const atFar = readExactly(j.far, upload.length, "the upload");
    j.far.resume();
    assert.equal(sha256(await atFar), sha256(upload));
    j.far.end();
    assert.equal((await within(j.done, "onDone")).bytesUp, upload.length);
  });

  test("a shut gate stops reading the client after one chunk; every byte arrives once it opens", async () => {
    let open = false;
    const waiters: Array<() => void> = [];
    const gate: SendGate = {
      get open() {
        return open;
      },
      whenOpen: (resume) => void waiters.push(resume),
    };
    const j = await joined({ gate });
    let atFarSoFar = 0;
    j.far.on("data", (data: Buffer) => (atFarSoFar += data.length));
    const upload = randomBytes(8 * 1024 * 1024);
    const atFar = readExactly(j.far, upload.length, "the upload");
    j.app.end(upload);

    await waitFor(() => waiters.length === 1, "the pipe to wait for the gate");
    for (let turn = 0; turn < 50; turn++) await nextTurn();
    assert.equal(j.local.isPaused(), true);
    assert.ok(atFarSoFar <= 64 * 1024, `${atFarSoFar} bytes went through a shut gate`);
    assert.equal(waiters.length, 1, "the pipe asked the gate more than once");

    // Woken while the gate is still shut (another channel took the room): it asks again and stays paused.
    waiters.shift()!();
    assert.equal(waiters.length, 1);
    assert.equal(j.local.isPaused(), true);

    open = true;
    waiters.shift()!();
    assert.equal(sha256(await atFar), sha256(upload));
    j.far.end();
    assert.deepEqual(await within(j.done, "onDone"), { bytesUp: upload.length, bytesDown: 0 });
  });
});
