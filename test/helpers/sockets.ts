/**
 * Plain TCP client helpers for tests: what a connect attempt ends with, and
 * reading a socket to its end, to a byte count or to its close.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { bounded } from "./wait.ts";

/**
 * "connected", or the error code a TCP connect to host:port ends with
 * ("ECONNREFUSED"...), or "timeout" after 5 s. Never rejects.
 *
 * @example
 * assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
 */
export function connectOutcome(port: number, host = "127.0.0.1"): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, 5000);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}

/**
 * Everything the socket receives until the peer's FIN; rejects if the socket
 * errors first (a reset is not a clean end). Unbounded: wrap it in `bounded`.
 *
 * @example
 * const received = readAll(result.socket);
 * result.socket.end("ping");
 * assert.equal((await received).toString(), "ping");
 */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

/**
 * Everything the socket delivers until end of stream or close, whichever
 * comes first; never rejects (a reset just ends the data).
 *
 * @example
 * const received = readUntilClosed(app);
 * far.end("bye");
 * assert.equal((await received).toString(), "bye");
 */
export function readUntilClosed(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    const finish = (): void => resolve(Buffer.concat(chunks));
    socket.once("end", finish);
    socket.once("close", finish);
  });
}

/**
 * Read from the socket until at least `n` bytes have arrived (all of them are
 * returned); fails naming `what` after `ms` (default 10 s).
 *
 * @example
 * const up = readExactly(far, 4, "the far end to receive the client's bytes");
 * app.write("ping");
 * assert.equal((await up).toString(), "ping");
 */
export async function readExactly(socket: Socket, n: number, what: string, ms = 10_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  await bounded(
    new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= n) {
          socket.off("data", onData);
          resolve();
        }
      };
      socket.on("data", onData);
    }),
    what,
    ms,
  );
  return Buffer.concat(chunks);
}

/**
 * Resolves on the socket's 'close', or at once if it has closed already
 * (`events.once` would reject on the 'error' a reset brings first). Unbounded.
 *
 * @example
 * await bounded(closeOf(peer), "the far end to close", 5000);
 */
export function closeOf(socket: Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once("close", () => resolve()));
}
