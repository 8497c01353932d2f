import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rejection } from "../helpers/rejection.ts";
import { EventEmitter } from "node:events";
import { PassThrough, type Duplex } from "node:stream";
import type { Client } from "ssh2";
import { sessionFromClient } from "../../src/ssh/session.ts";
import { ChannelOpenError, classifyOpenFailure, type ChannelFailureKind } from "../../src/ssh/channel-failure.ts";

/** RFC 4254 section 5.1 reason codes. */
const ADMINISTRATIVELY_PROHIBITED = 1;
const CONNECT_FAILED = 2;
const UNKNOWN_CHANNEL_TYPE = 3;
const RESOURCE_SHORTAGE = 4;

describe("classifyOpenFailure", () => {
  // sshd sends CONNECT_FAILED with strerror(errno) or gai_strerror() text (channels.c).
  const cases: [number | undefined, string, ChannelFailureKind][] = [
    [CONNECT_FAILED, "Connection refused", "refused"],
    [CONNECT_FAILED, "No route to host", "unreachable"],
    [CONNECT_FAILED, "Network is unreachable", "network-unreachable"],
    [CONNECT_FAILED, "Name or service not known", "unreachable"],
    [CONNECT_FAILED, "Temporary failure in name resolution", "unreachable"],
    [CONNECT_FAILED, "No address associated with hostname", "unreachable"],
    [CONNECT_FAILED, "nodename nor servname provided, or not known", "unreachable"],
    [CONNECT_FAILED, "Connection timed out", "unreachable"],
    [CONNECT_FAILED, "Permission denied", "other"],
    [ADMINISTRATIVELY_PROHIBITED, "administratively prohibited: open failed", "prohibited"],
    [ADMINISTRATIVELY_PROHIBITED, "Connection refused", "prohibited"],
    [RESOURCE_SHORTAGE, "resource shortage", "other"],
    [RESOURCE_SHORTAGE, "Connection refused", "other"],
    [UNKNOWN_CHANNEL_TYPE, "unknown channel type", "other"],
    [undefined, "Connection refused", "refused"],
    [undefined, "server closed channel unexpectedly", "other"],
  ];
  for (const [reason, description, kind] of cases) {
    test(`reason ${reason ?? "none"} with "${description}" is ${kind}`, () => {
      assert.equal(classifyOpenFailure(reason, description), kind);
    });
  }

  test("matching ignores case", () => {
    assert.equal(classifyOpenFailure(CONNECT_FAILED, "connection REFUSED"), "refused");
    assert.equal(classifyOpenFailure(CONNECT_FAILED, "NETWORK IS UNREACHABLE"), "network-unreachable");
  });
});

type ForwardOutCallback = (err: Error | undefined, channel: Duplex) => void;

/** Just enough of an ssh2 Client: events, forwardOut and end. */
class FakeClient extends EventEmitter {
  calls: { srcIP: string; srcPort: number; dstIP: string; dstPort: number }[] = [];
  ended = 0;
  /** What forwardOut does with its callback; the default answers with a PassThrough channel. */
  behaviour: (cb: ForwardOutCallback) => void = (cb) => cb(undefined, new PassThrough());

  forwardOut(srcIP: string, srcPort: number, dstIP: string, dstPort: number, cb: ForwardOutCallback): this {
    this.calls.push({ srcIP, srcPort, dstIP, dstPort });
    this.behaviour(cb);
    return this;
  }

  end(): this {
    this.ended++;
    return this;
  }
}

function fakeSession() {
  const client = new FakeClient();
  const session = sessionFromClient(client as unknown as Client);
  return { client, session };
}

const ORIGIN = { address: "127.0.0.1", port: 50123 };

/** ssh2's channel-open failure: "(SSH) Channel open failure: <description>" with `reason`. */
function openFailure(reason: number, description: string): Error {
  return Object.assign(new Error(`(SSH) Channel open failure: ${description}`), { reason });
}


describe("sessionFromClient", () => {
  test("opens a direct-tcpip channel with the origin as source and the name as destination", async () => {
    const { client, session } = fakeSession();
    const channel = new PassThrough();
    client.behaviour = (cb) => cb(undefined, channel);
    assert.equal(session.up, true);
    const opened = await session.openDirect("example.org", 443, ORIGIN);
    assert.equal(opened, channel);
    assert.deepEqual(client.calls, [{ srcIP: "127.0.0.1", srcPort: 50123, dstIP: "example.org", dstPort: 443 }]);
  });

  test("a refused open rejects with kind refused and the server's description without ssh2's prefix", async () => {
    const { client, session } = fakeSession();
    client.behaviour = (cb) => cb(openFailure(CONNECT_FAILED, "Connection refused"), new PassThrough());
    const err = await rejection(session.openDirect("db.internal", 5432, ORIGIN), ChannelOpenError);
    assert.equal(err.kind, "refused");
    assert.equal(err.message, "Connection refused");
    assert.equal(err.name, "ChannelOpenError");
  });

  test("each failure reason the server sends is classified", async () => {
    const { client, session } = fakeSession();
    const cases: [number, string, ChannelFailureKind][] = [
      [CONNECT_FAILED, "Name or service not known", "unreachable"],
      [CONNECT_FAILED, "Network is unreachable", "network-unreachable"],
      [ADMINISTRATIVELY_PROHIBITED, "administratively prohibited: open failed", "prohibited"],
      [RESOURCE_SHORTAGE, "resource shortage", "other"],
    ];
    for (const [reason, description, kind] of cases) {
      client.behaviour = (cb) => cb(openFailure(reason, description), new PassThrough());
      const err = await rejection(session.openDirect("x.example", 80, ORIGIN), ChannelOpenError);
      assert.equal(err.kind, kind, description);
      assert.equal(err.message, description);
    }
    assert.equal(session.up, true, "failed opens do not take the connection down");
  });

  test("a forwardOut that throws (socket no longer writable) rejects with connection-down", async () => {
    const { client, session } = fakeSession();
    client.behaviour = () => {
      throw new Error("Not connected");
    };
    const err = await rejection(session.openDirect("example.org", 80, ORIGIN), ChannelOpenError);
    assert.equal(err.kind, "connection-down");
    assert.match(err.message, /Not connected/);
  });

  test("after 'close', up is false, onDown listeners hear it once, and opens fail without calling forwardOut", async () => {
    const { client, session } = fakeSession();
    const heard: string[] = [];
    session.onDown((reason) => heard.push(reason));
    client.emit("end");
    client.emit("close");
    assert.equal(session.up, false);
    assert.deepEqual(heard, ["SSH connection closed"]);
    const err = await rejection(session.openDirect("example.org", 80, ORIGIN), ChannelOpenError);
    assert.equal(err.kind, "connection-down");
    assert.deepEqual(client.calls, []);
  });

  test("an 'error' before 'close' becomes the reason onDown reports", () => {
    const { client, session } = fakeSession();
    const heard: string[] = [];
    session.onDown((reason) => heard.push(reason));
    session.onDown((reason) => heard.push(`second: ${reason}`));
    client.emit("error", new Error("read ECONNRESET"));
    assert.equal(session.up, true, "an error alone is followed by close; up changes on close");
    client.emit("close");
    client.emit("close");
    assert.deepEqual(heard, ["read ECONNRESET", "second: read ECONNRESET"]);
  });

  test("an open that fails after the connection went down is connection-down, whatever the description", async () => {
    const { client, session } = fakeSession();
    let answer: ForwardOutCallback | undefined;
    client.behaviour = (cb) => (answer = cb);
    const pending = session.openDirect("example.org", 80, ORIGIN);
    client.emit("close");
    answer!(openFailure(CONNECT_FAILED, "Connection refused"), new PassThrough());
    const err = await rejection(pending, ChannelOpenError);
    assert.equal(err.kind, "connection-down");
  });

  test("close() ends the client", () => {
    const { client, session } = fakeSession();
    session.close();
    assert.equal(client.ended, 1);
  });
});
