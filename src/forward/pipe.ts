/**
 * Joins a local socket and a tunnel channel in both directions.
 *
 * - Backpressure: `pipe()` pauses the source while the destination's buffer is
 *   full, so a slow reader on either side never grows memory without bound
 *   (ssh2 channels also stop granting SSH window while paused).
 * - Half-close: when one side ends, the other side's write half is ended (TCP
 *   FIN / SSH_MSG_CHANNEL_EOF) and data keeps flowing the other way, as OpenSSH
 *   does for forwarded connections.
 * - Teardown: an error or an abrupt close on one side destroys the other, so
 *   nothing is left half-open.
 */
import type { Duplex } from "node:stream";

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

/**
 * @example
 * joinStreams(socket, channel, (r) => log.debug(1, `closed after ${r.bytesDown} bytes`), leftover, stats);
 */
export function joinStreams(
  local: Duplex,
  remote: Duplex,
  onDone: (result: PipeResult) => void,
  /** Bytes the client sent before the tunnel was ready (optimistic data). */
  initial?: Uint8Array,
  tally?: Tally,
): void {
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
  local.pipe(remote);
  remote.pipe(local);
}

/** How long a closed peer's last bytes may take to leave before we give up on them. */
const FLUSH_LIMIT_MS = 30_000;

function closeWhenFlushed(stream: Duplex): void {
  if (stream.writableFinished) {
    stream.destroy();
    return;
  }
  const timer = setTimeout(() => stream.destroy(), FLUSH_LIMIT_MS);
  timer.unref?.();
  stream.once("finish", () => {
    clearTimeout(timer);
    stream.destroy();
  });
  stream.end();
}
