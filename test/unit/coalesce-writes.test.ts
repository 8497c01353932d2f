/**
 * coalesceWrites: what ssh2 writes in one turn of the event loop reaches the
 * socket as one batch (one writev), at the check phase; a window adjustment
 * sends everything at once; an ssh2 without the expected internals is left
 * alone.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Writable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { coalesceWrites } from "../../src/ssh/coalesce-writes.ts";

/** A socket that records each batch the stream machinery hands it, as net.Socket gets them. */
class BatchRecorder extends Writable {
  readonly batches: string[][] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.batches.push([chunk.toString()]);
    done();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, done: () => void): void {
    this.batches.push(chunks.map(({ chunk }) => chunk.toString()));
    done();
  }
}

/** The part of ssh2's Protocol the coalescer hooks: a window adjustment is a packet written to the socket. */
function fakeProtocol(socket: Writable): { channelWindowAdjust(channel: number, amount: number): void } {
  return {
    channelWindowAdjust(channel: number, amount: number): void {
      socket.write(`adjust ${channel} ${amount}`);
    },
  };
}

describe("coalesceWrites", () => {
  test("packets written in one turn leave together after it, as one batch", async () => {
    const socket = new BatchRecorder();
    coalesceWrites(socket, fakeProtocol(socket));
    socket.write("open");
    socket.write("eof");
    socket.write("close");
    assert.deepEqual(socket.batches, [], "written before the turn ended");
    await nextTurn();
    assert.deepEqual(socket.batches, [["open", "eof", "close"]]);
    socket.write("next");
    await nextTurn();
    assert.deepEqual(socket.batches, [["open", "eof", "close"], ["next"]]);
  });

  test("a window adjustment goes out at once, with whatever was waiting before it", () => {
    const socket = new BatchRecorder();
    const protocol = fakeProtocol(socket);
    coalesceWrites(socket, protocol);
    socket.write("data");
    protocol.channelWindowAdjust(3, 1048576);
    assert.deepEqual(socket.batches, [["data", "adjust 3 1048576"]]);
  });

  test("an ssh2 without channelWindowAdjust on its protocol: writes are left as they were", () => {
    const socket = new BatchRecorder();
    const write = socket.write;
    coalesceWrites(socket, {});
    coalesceWrites(socket, undefined);
    assert.equal(socket.write, write);
    socket.write("at once");
    assert.deepEqual(socket.batches, [["at once"]]);
  });
});
