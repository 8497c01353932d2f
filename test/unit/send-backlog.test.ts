/**
 * sendGateOf: the gate follows an ssh2 channel to its connection's socket
 * (and through jump hosts to theirs), shuts while a socket holds more than
 * QUEUE_LIMIT bytes, and wakes its waiters once that socket has drained.
 * The sockets are Writables whose writes complete only when the test says.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Duplex, Writable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { QUEUE_LIMIT, sendGateOf } from "../../src/ssh/send-backlog.ts";

/** A socket whose writes wait until `flush()`: its writableLength is what it holds. */
class HeldSocket extends Writable {
  private pending: Array<() => void> = [];
  constructor(highWaterMark = 16 * 1024) {
    super({ highWaterMark });
  }
  override _write(_chunk: Buffer, _encoding: string, done: () => void): void {
    this.pending.push(done);
  }
  /** Completes every write so far; 'drain' follows once the buffer is empty. */
  flush(): void {
    while (this.pending.length > 0) {
      this.pending.shift()!();
    }
  }
}

/** The shape of an ssh2 Channel as far as the gate looks: `_client._sock`. */
function channelOver(sock: Writable): Duplex {
  const channel = new Duplex({ read() {}, write(_c, _e, done) { done(); } });
  Object.assign(channel, { _client: { _sock: sock } });
  return channel;
}

describe("sendGateOf", () => {
  test("is undefined for a stream that is not an ssh2 channel", () => {
    assert.equal(sendGateOf(new Duplex({ read() {}, write(_c, _e, done) { done(); } })), undefined);
    const odd = new Duplex({ read() {} });
    Object.assign(odd, { _client: { _sock: "not a socket" } });
    assert.equal(sendGateOf(odd), undefined);
  });

  test("is open up to QUEUE_LIMIT queued, shut past it, and wakes every waiter once the socket drains", async () => {
    const sock = new HeldSocket();
    const first = sendGateOf(channelOver(sock))!;
    const second = sendGateOf(channelOver(sock))!;
    sock.write(Buffer.alloc(QUEUE_LIMIT));
    assert.equal(first.open, true, "exactly QUEUE_LIMIT queued is still open");
    sock.write(Buffer.alloc(1));
    assert.equal(first.open, false);
    assert.equal(second.open, false, "channels over one socket share its backlog");

    const woken: string[] = [];
    first.whenOpen(() => woken.push("first"));
    second.whenOpen(() => woken.push("second"));
    await nextTurn();
    assert.deepEqual(woken, [], "woken while the socket was still full");

    sock.flush();
    await nextTurn();
    assert.deepEqual(woken, ["first", "second"]);
    assert.equal(first.open, true);
    assert.equal(sock.listenerCount("drain"), 0, "the gate left a listener on the socket");
  });

  test("through a jump host, a full jump socket shuts the gate of a channel on the inner connection", async () => {
    const jumpSocket = new HeldSocket();
    // The inner connection's "socket" is a channel of the jump's connection.
    const innerTransport = channelOver(jumpSocket);
    const gate = sendGateOf(channelOver(innerTransport))!;
    assert.equal(gate.open, true);
    jumpSocket.write(Buffer.alloc(QUEUE_LIMIT + 1));
    assert.equal(gate.open, false);
    let woken = 0;
    gate.whenOpen(() => woken++);
    jumpSocket.flush();
    await nextTurn();
    assert.equal(woken, 1);
  });

  test("a transport that takes 2 MiB before refusing a write (a jump host's channel) is full only past that: it owes no 'drain' before", async () => {
    const jumpChannel = new HeldSocket(2 * 1024 * 1024);
    const gate = sendGateOf(channelOver(jumpChannel))!;
    jumpChannel.write(Buffer.alloc(QUEUE_LIMIT + 512 * 1024));
    assert.equal(gate.open, true, "shut with no 'drain' to come: the channel would wait forever");
    jumpChannel.write(Buffer.alloc(QUEUE_LIMIT));
    assert.equal(gate.open, false);
    let woken = 0;
    gate.whenOpen(() => woken++);
    jumpChannel.flush();
    await nextTurn();
    assert.equal(woken, 1);
  });

  test("a socket that closes while full wakes its waiters: nothing will drain it", async () => {
    const sock = new HeldSocket();
    const gate = sendGateOf(channelOver(sock))!;
    sock.write(Buffer.alloc(QUEUE_LIMIT + 1));
    let woken = 0;
    gate.whenOpen(() => woken++);
    sock.destroy();
    await nextTurn();
    assert.equal(woken, 1);
    assert.equal(gate.open, true, "a destroyed socket does not hold senders back");
  });

  test("asked while open, it answers on the next microtask rather than never", async () => {
    const gate = sendGateOf(channelOver(new HeldSocket()))!;
    let woken = 0;
    gate.whenOpen(() => woken++);
    assert.equal(woken, 0);
    await Promise.resolve();
    assert.equal(woken, 1);
  });
});
