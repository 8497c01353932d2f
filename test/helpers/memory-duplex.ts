/**
 * An in-memory connection for unit tests that need a Duplex which is not a
 * net.Socket, as an ssh2 channel is not: what one end writes, its peer reads;
 * end() is EOF; destroying one end destroys both, as a channel close does.
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";

export class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  /** Everything this end has read, in order (recorded for the first end of memoryPair). */
  received: Buffer = Buffer.alloc(0);
  /** This end has read its peer's EOF (recorded for the first end of memoryPair). */
  ended = false;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.destroy();
    callback(error);
  }
}

/**
 * `[tester, other]`: the test speaks on `tester`, whose reads are recorded in
 * `received` and `ended`; `other` goes to the code under test.
 *
 * @example
 * const [client, channel] = memoryPair();
 * serveSocksStream(channel, client, options);
 * client.write(greeting);
 */
export function memoryPair(): [MemoryEnd, MemoryEnd] {
  const tester = new MemoryEnd();
  const other = new MemoryEnd();
  tester.peer = other;
  other.peer = tester;
  tester.on("data", (chunk: Buffer) => (tester.received = Buffer.concat([tester.received, chunk])));
  tester.on("end", () => (tester.ended = true));
  tester.on("error", () => {});
  return [tester, other];
}
