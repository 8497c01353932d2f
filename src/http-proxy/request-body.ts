/**
 * The client's side of a forwarded plain-http request: its body, and nothing
 * after it. A keep-alive client sends its next request on the same
 * connection; that one may be meant for another host and carries its own
 * Proxy-Authorization, so it must not reach the first request's origin,
 * which was asked to close (`Connection: close`) once it has answered. The
 * bytes after the body are read and dropped; the client sees the connection
 * close after the response and sends its next request anew (RFC 9112
 * section 9.6).
 */
import process from "node:process";
import { Duplex } from "node:stream";

/**
 * A Duplex over `socket` whose readable side yields at most `remaining`
 * bytes; writes go to the socket as they are.
 *
 * @example
 * const client = requestBodyOnly(socket, 4); // a 4-byte body still to come
 * joinStreams(client, channel, onDone, { initial: head });
 */
export function requestBodyOnly(socket: Duplex, remaining: number): Duplex {
  let left = remaining;
  const side = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, (err) => callback(err ?? null));
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    // What comes after the body is the next request: not passed on.
    if (left <= 0) return;
    const part = chunk.length <= left ? chunk : chunk.subarray(0, left);
    left -= part.length;
    if (!side.push(part)) socket.pause();
  });
  // A client that sent its request and its FIN at once may have ended already (the SOCKS side's pump checks the same).
  if (socket.readableEnded) process.nextTick(() => side.push(null));
  else socket.on("end", () => side.push(null));
  socket.on("error", (err) => side.destroy(err));
  // After 'end' has reached the reader: a clean close is told apart from a reset by it.
  socket.on("close", () => setImmediate(() => side.destroy()));
  return side;
}
