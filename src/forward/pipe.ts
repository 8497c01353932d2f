/**
 * Joins a local socket and a tunnel channel in both directions.
 *
 * - Backpressure: a side is not read while the other cannot take more, so a
 *   slow reader never grows memory without bound (ssh2 channels also stop
 *   granting SSH window while paused). Toward the tunnel, "cannot take more"
 *   also covers the SSH connection itself: the `gate` (send-backlog.ts)
 *   pauses local reads while the connection's socket is backed up, which
 *   ssh2 does not do on its own.
 * - Half-close: when one side ends, the other side's write half is ended (TCP
 *   FIN / SSH_MSG_CHANNEL_EOF) and data keeps flowing the other way, as OpenSSH
 *   does for forwarded connections.
 * - Teardown: an error or an abrupt close on one side destroys the other, so
 *   nothing is left half-open.
 */
import process from "node:process";
import type { Duplex } from "node:stream";
import { TurnCork } from "../turn-cork.ts";

export interface PipeResult {
  /** Bytes read from the local side and written into the tunnel. */
  bytesUp: number;
  /** Bytes read from the tunnel and written to the local side. */
  bytesDown: number;
  /** The first error seen on either side, if any. */
  error?: Error;
}

/**
 * Running totals of a whole run, kept current as bytes flow, so a summary
 * taken while connections are still open (SIGTERM) counts what they carried.
 */
export interface Tally {
  connections: number;
  active: number;
  bytesUp: number;
  bytesDown: number;
}

/** Says when the connection under a tunnel stream can take more (send-backlog.ts sendGateOf). */
export interface SendGate {
  readonly open: boolean;
  /** Calls `resume` once, when `open` may be true again. */
  whenOpen(resume: () => void): void;
}

export interface JoinOptions {
  /** Bytes the client sent before the tunnel was ready (optimistic data). */
  initial?: Uint8Array;
  /** The run's totals, kept current. */
  tally?: Tally;
  /** The brake on local reads while the SSH connection is backed up. */
  gate?: SendGate;
}

/**
 * @example
 * joinStreams(socket, channel, (r) => log.debug(1, `closed after ${r.bytesDown} bytes`), { initial: leftover, tally: stats, gate: sendGateOf(channel) });
 */
export function joinStreams(local: Duplex, remote: Duplex, onDone: (result: PipeResult) => void, options: JoinOptions = {}): void {
  const { initial, tally, gate } = options;
  const result: PipeResult = { bytesUp: 0, bytesDown: 0 };
  if (tally !== undefined) {
    tally.connections++;
    tally.active++;
  }
  let localClosed = false;
  let remoteClosed = false;
  let reported = false;

  const finish = (): void => {
    if (reported || !localClosed || !remoteClosed) return;
    reported = true;
    if (tally !== undefined) tally.active--;
    onDone(result);
  };
  const fail = (err: Error): void => {
    result.error ??= err;
    local.destroy();
    remote.destroy();
  };

  local.on("data", (chunk: Uint8Array) => {
    result.bytesUp += chunk.length;
    if (tally !== undefined) tally.bytesUp += chunk.length;
  });
  remote.on("data", (chunk: Uint8Array) => {
    result.bytesDown += chunk.length;
    if (tally !== undefined) tally.bytesDown += chunk.length;
  });
  local.on("error", fail);
  remote.on("error", fail);
  local.on("close", () => {
    localClosed = true;
    if (!remoteClosed) {
      if (local.readableEnded && result.error === undefined) {
        // A clean close: our EOF is queued behind the client's last bytes,
        // which may still wait for SSH window. Close once they are out.
        closeWhenFlushed(remote);
      } else {
        // A reset: the far end has nobody to talk to.
        remote.destroy();
      }
    }
    finish();
  });
  remote.on("close", () => {
    remoteClosed = true;
    // The tunnel side is done and (ssh2 emits close after end) everything it
    // sent has been handed to `local`; let that drain, then close.
    if (!localClosed) closeWhenFlushed(local);
    finish();
  });

  if (initial !== undefined && initial.length > 0) {
    result.bytesUp += initial.length;
    if (tally !== undefined) tally.bytesUp += initial.length;
    remote.write(initial);
  }
  pump(local, remote, gate);
  pump(remote, local, undefined, true);
}

/**
 * What a local socket may hold, toward its client, while the tunnel side is
 * still read: enough for every packet one turn of the event loop brings to
 * leave in one writev(2), little against the 2 MiB SSH window behind it.
 */
const LOCAL_QUEUE_LIMIT = 256 * 1024;

/**
 * `from.pipe(to)`, plus the gate: `from` is paused while `to` is full or the
 * gate is shut, and resumed when both have room. Ends `to` when `from` ends.
 *
 * With `coalesce` (toward the local socket), `to` is corked from the first
 * chunk of a loop turn until its check phase (setImmediate): ssh2 pushes
 * each 32 KiB packet on its own and libuv reads a busy SSH socket up to 32
 * times per turn, so a download was one write(2) per packet, and on loopback
 * each write also runs the receiver's TCP input (a CPU profile of one 1 GiB
 * download: 46% of busy samples in writeBuffer). Gathered, interleaved runs
 * measured one stream +7%, CPU per GiB -11%, 8 streams +15%. `to` then
 * counts as full past LOCAL_QUEUE_LIMIT rather than its 16 KiB mark, which a
 * single packet passes.
 */
function pump(from: Duplex, to: Duplex, gate: SendGate | undefined, coalesce = false): void {
  let paused = false;
  const cork = coalesce ? new TurnCork(to) : undefined;
  const resume = (): void => {
    if (gate !== undefined && !gate.open) {
      gate.whenOpen(resume);
      return;
    }
    paused = false;
    from.resume();
  };
  from.on("data", (chunk: Uint8Array) => {
    cork?.hold();
    const wrote = to.write(chunk);
    const roomInTo = cork !== undefined ? to.writableLength <= LOCAL_QUEUE_LIMIT : wrote;
    if (paused || (roomInTo && (gate === undefined || gate.open))) return;
    paused = true;
    from.pause();
    if (roomInTo) gate!.whenOpen(resume);
    else to.once("drain", resume);
  });
  const endTo = (): void => {
    if (!to.destroyed && !to.writableEnded) to.end();
  };
  // As pipe() does: a source whose end was read during the SOCKS handshake ends `to` now, and
  // a 'data' listener alone does not restart a stream paused explicitly (-L pauses while it checks the client).
  if (from.readableEnded) process.nextTick(endTo);
  else from.once("end", endTo);
  from.resume();
}

/** How long a closed peer's last bytes may take to leave before we give up on them. */
const FLUSH_LIMIT_MS = 30_000;

function closeWhenFlushed(stream: Duplex): void {
  if (stream.writableFinished) {
    closeFinished(stream);
    return;
  }
  const timer = setTimeout(() => stream.destroy(), FLUSH_LIMIT_MS);
  timer.unref?.();
  stream.once("finish", () => {
    clearTimeout(timer);
    closeFinished(stream);
  });
  stream.end();
}

/**
 * Closes a stream whose writing side has finished. ssh2's Channel.destroy()
 * is end() then close(), and end() on a finished stream builds an
 * ERR_STREAM_ALREADY_FINISHED error, stack trace and all, for nobody (a CPU
 * profile of 50 concurrent short connections: 4-5% of busy samples in
 * NodeError). An ssh2 channel, the one kind of stream here with a close(),
 * is only closed (SSH_MSG_CHANNEL_CLOSE); anything else is destroyed.
 */
function closeFinished(stream: Duplex): void {
  const channel = stream as Duplex & { close?: unknown };
  if (typeof channel.close === "function") (channel.close as () => void)();
  else stream.destroy();
}
