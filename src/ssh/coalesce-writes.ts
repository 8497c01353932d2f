/**
 * Gathers the packets ssh2 writes in one turn of the event loop into one
 * write to the socket, except a window adjustment, which leaves at once.
 *
 * ssh2 1.17 hands every packet to `sock.write()` as soon as it is sealed
 * (client.js and server.js `onWrite`), so opening a channel, its EOF and its
 * close are each a write(2) of their own. On loopback the sender's write(2)
 * also runs the receiver's TCP input, and a CPU profile of 50 concurrent
 * small requests through -D (owner check off) spent 35% of its busy samples
 * in the socket's writeBuffer, two thirds of that on SSH packets. Corked
 * until the event loop's check phase (setImmediate), the packets of every
 * connection served in that turn leave as one writev(2): +15% requests/s
 * measured (interleaved runs against the same sshd), against +9% when
 * uncorked at the end of each callback (process.nextTick), which joins
 * little because each callback seals one packet.
 *
 * A window adjustment cannot wait for the check phase: libuv reads a busy
 * socket up to 32 times before it gets there, 2 MiB, ssh2's whole window, so
 * the server would stop sending meanwhile (measured: one download 7-14%
 * slower when adjustments waited). ssh2 has no hook for this: its protocol
 * object's channelWindowAdjust is wrapped, as window-guard.ts wraps its
 * CHANNEL_DATA handler; with an ssh2 whose internals differ, writes are
 * simply not corked.
 */
import type { Writable } from "node:stream";
import { TurnCork } from "../turn-cork.ts";

interface Ssh2Protocol {
  channelWindowAdjust?: (...args: unknown[]) => unknown;
}

/**
 * Call after ssh2 has taken `stream` (client.connect, server.injectSocket),
 * with the protocol object ssh2 made for it.
 *
 * @example
 * client.connect({ sock: socket, ... });
 * coalesceWrites(socket, (client as unknown as { _protocol?: unknown })._protocol);
 */
export function coalesceWrites(stream: Writable, protocol: unknown): void {
  const ssh2 = protocol as Ssh2Protocol | undefined;
  const adjust = ssh2?.channelWindowAdjust;
  if (typeof adjust !== "function") return;
  const cork = new TurnCork(stream);
  ssh2!.channelWindowAdjust = function (this: unknown, ...args: unknown[]): unknown {
    const result = adjust.apply(this, args);
    cork.flush();
    return result;
  };
  const write = stream.write;
  stream.write = function (this: Writable, ...args: Parameters<Writable["write"]>): boolean {
    cork.hold();
    return write.apply(this, args);
  } as Writable["write"];
}
