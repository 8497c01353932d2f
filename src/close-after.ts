/**
 * Ending a connection we answered ourselves (a refusal, an error response)
 * without losing the answer.
 */
import type { Duplex } from "node:stream";

/** How long a refused client may take to read its reply and close. */
export const LINGER_MS = 5000;

/**
 * Send the last bytes and close without losing them: destroying a socket with
 * unread input makes the kernel send RST, and a client may then never see the
 * reply. So discard further input, half-close, and destroy only once the peer
 * has closed too or LINGER_MS has passed.
 *
 * @example
 * closeAfter(socket, encodeSocks5Reply(Socks5Reply.NOT_ALLOWED));
 */
export function closeAfter(socket: Duplex, last: Uint8Array | undefined): void {
  socket.removeAllListeners("data");
  socket.on("data", () => {});
  socket.resume();
  if (last !== undefined) socket.end(last);
  else socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref?.();
  socket.once("close", () => clearTimeout(timer));
}

/**
 * An "error" listener that does nothing: resets end in "close", and without a
 * listener they would crash the process. A function of its own, so that no
 * closure made per connection stays reachable from the socket.
 */
export function ignoreError(): void {}
