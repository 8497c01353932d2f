import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Client } from "ssh2";
import { createLogger } from "../../src/log.ts";
import { sessionFromClient } from "../../src/ssh/session.ts";
import { guardChannelOpens, type GuardOptions } from "../../src/ssh/unrequested-opens.ts";

/** What ssh2's protocol object would hand its CHANNEL_OPEN handler. */
interface OpenInfo {
  type: string;
  sender: number;
  data: Record<string, unknown>;
}

/** An ssh2 Client as far as the guard sees it: a protocol with a CHANNEL_OPEN handler and channelOpenFail. */
class FakeClient extends EventEmitter {
  /** Opens ssh2's own handler got (the ones passed on). */
  readonly passedOn: OpenInfo[] = [];
  /** CHANNEL_OPEN_FAILUREs sent: [recipient, reason, description]. */
  readonly failures: [number, number, string][] = [];
  readonly _protocol = {
    _handlers: { CHANNEL_OPEN: (_self: unknown, info: OpenInfo) => void this.passedOn.push(info) },
    channelOpenFail: (recipient: number, reason: number, description: string) => void this.failures.push([recipient, reason, description]),
  };

  /** The server opens a channel. */
  open(info: OpenInfo): void {
    this._protocol._handlers.CHANNEL_OPEN(this._protocol, info);
  }
}

const x11 = (sender = 1): OpenInfo => ({ type: "x11", sender, data: { srcIP: "192.0.2.9", srcPort: 6010 } });
const agent = (sender = 2): OpenInfo => ({ type: "auth-agent@openssh.com", sender, data: {} });
const forwarded = (destPort: number, sender = 3): OpenInfo => ({
  type: "forwarded-tcpip",
  sender,
  data: { destIP: "localhost", destPort, srcIP: "203.0.113.5", srcPort: 40000 },
});

/** A guarded FakeClient whose log writes to `lines`, on a clock the test moves. */
function guarded(options: { verbosity?: number; json?: boolean } & Omit<GuardOptions, "log" | "clock"> = {}) {
  const lines: string[] = [];
  const clock = { now: 1_000_000 };
  const log = createLogger({ verbosity: options.verbosity ?? 0, json: options.json ?? false, write: (line) => lines.push(line), now: () => new Date(0) });
  const client = new FakeClient();
  const guard = guardChannelOpens(client as unknown as Client, { log, clock: () => clock.now });
  return { client, guard, lines, clock };
}

describe("guardChannelOpens: opens nobody asked for are refused in OpenSSH's words", () => {
  test("x11: refused ADMINISTRATIVELY_PROHIBITED \"open failed\", with clientloop.c's two lines", () => {
    const { client, lines } = guarded();
    client.open(x11(7));
    assert.deepEqual(client.failures, [[7, 1, "open failed"]]);
    assert.deepEqual(client.passedOn, []);
    assert.deepEqual(lines, ["Warning: ssh server tried X11 forwarding.", "Warning: this is probably a break-in attempt by a malicious server."]);
  });

  test("auth-agent@openssh.com and agent-connect: refused, with the agent lines", () => {
    const { client, lines, clock } = guarded();
    client.open(agent(8));
    clock.now += 10_000;
    client.open({ type: "agent-connect", sender: 9, data: {} });
    assert.deepEqual(client.failures, [[8, 1, "open failed"], [9, 1, "open failed"]]);
    assert.deepEqual(lines, [
      "Warning: ssh server tried agent forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "Warning: ssh server tried agent forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
    ]);
  });

  test("forwarded-tcpip for a port nobody listens on: refused, with channels.c's words", () => {
    const { client, lines } = guarded();
    client.open(forwarded(4242, 10));
    assert.deepEqual(client.failures, [[10, 1, "open failed"]]);
    assert.deepEqual(lines, ["Warning: Server requests forwarding for unknown listen_port 4242"]);
  });

  test("forwarded-streamlocal@openssh.com: refused, the path cut and made printable", () => {
    const { client, lines } = guarded();
    client.open({ type: "forwarded-streamlocal@openssh.com", sender: 11, data: { socketPath: `/tmp/x\n${"p".repeat(300)}` } });
    assert.deepEqual(client.failures, [[11, 1, "open failed"]]);
    assert.deepEqual(lines, [`Warning: Server requests forwarding for unknown path /tmp/x\\n${"p".repeat(92)}… (307 characters)`]);
  });

  test("a port the session listens on, port 0 (ssh2 maps it) and other types go on to ssh2 untouched", () => {
    const { client, guard, lines } = guarded();
    guard.listening = (port) => port === 8080;
    const passed = [forwarded(8080), forwarded(0), { type: "session", sender: 5, data: {} }, { type: "direct-tcpip", sender: 6, data: {} }];
    for (const info of passed) client.open(info);
    assert.deepEqual(client.passedOn, passed);
    assert.deepEqual(client.failures, []);
    assert.deepEqual(lines, []);
  });

  test("without a log, the opens are still refused, silently", () => {
    const client = new FakeClient();
    guardChannelOpens(client as unknown as Client);
    client.open(x11());
    assert.equal(client.failures.length, 1);
  });
});

describe("guardChannelOpens: one line per kind per 10 s", () => {
  test("100 opens of each kind in 10 s: one line (pair) per kind; the next after 10 s counts the rest", () => {
    const { client, lines, clock } = guarded();
    for (let i = 0; i < 100; i++) {
      client.open(x11(i));
      client.open(agent(1000 + i));
      client.open(forwarded(4000 + i, 2000 + i));
      clock.now += 99;
    }
    assert.equal(client.failures.length, 300, "every one is refused");
    assert.deepEqual(lines, [
      "Warning: ssh server tried X11 forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "Warning: ssh server tried agent forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "Warning: Server requests forwarding for unknown listen_port 4000",
    ]);
    clock.now += 100;
    client.open(x11());
    client.open(forwarded(5000));
    assert.deepEqual(lines.slice(5), [
      "Warning: ssh server tried X11 forwarding. (99 more refused since the last such line)",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "Warning: Server requests forwarding for unknown listen_port 5000 (99 more refused since the last such line)",
    ]);
  });

  test("at -v each folded one is a debug1 line with what the server said", () => {
    const { client, lines } = guarded({ verbosity: 1 });
    client.open(x11());
    client.open(x11());
    client.open(agent());
    client.open(agent());
    client.open(forwarded(4242));
    client.open(forwarded(4243));
    assert.deepEqual(lines, [
      "Warning: ssh server tried X11 forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "debug1: Refused an x11 channel from the server (originator 192.0.2.9 port 6010): X11 forwarding was not requested.",
      "Warning: ssh server tried agent forwarding.",
      "Warning: this is probably a break-in attempt by a malicious server.",
      "debug1: Refused an auth-agent@openssh.com channel from the server: agent forwarding was not requested.",
      "Warning: Server requests forwarding for unknown listen_port 4242",
      "debug1: Refused a forwarded-tcpip channel from the server for localhost listen_port 4243 (originator 203.0.113.5 port 40000): no -R asked for that port.",
    ]);
  });

  test("--json: a warn object with the channel type and the count folded into it", () => {
    const { client, lines, clock } = guarded({ json: true });
    client.open(forwarded(4242));
    client.open(forwarded(4243));
    clock.now += 10_000;
    client.open(forwarded(4244));
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records[1], {
      time: "1970-01-01T00:00:00.000Z",
      level: "warn",
      msg: "Server requests forwarding for unknown listen_port 4244 (1 more refused since the last such line)",
      event: "unrequested-channel",
      channel: "forwarded-tcpip",
      folded: 1,
    });
  });

  test("a hostile originator address cannot forge a line", () => {
    const { client, lines } = guarded({ verbosity: 1 });
    client.open(x11());
    client.open({ type: "x11", sender: 2, data: { srcIP: "1.2.3.4\nWarning: all is well", srcPort: 1 } });
    assert.equal(lines.length, 3);
    assert.equal(lines[2], "debug1: Refused an x11 channel from the server (originator 1.2.3.4\\nWarning: all is well port 1): X11 forwarding was not requested.");
  });
});

describe("sessionFromClient and the guard", () => {
  test("the session's -R ports are what the guard lets through; a session's log replaces the connection's", () => {
    const connectionLines: string[] = [];
    const sessionLines: string[] = [];
    const client = new FakeClient() as FakeClient & { forwardIn?: unknown };
    let bound: ((err: Error | undefined, port: number) => void) | undefined;
    client.forwardIn = (_address: string, _port: number, cb: (err: Error | undefined, port: number) => void) => void (bound = cb);
    guardChannelOpens(client as unknown as Client, { log: createLogger({ verbosity: 0, write: (line) => connectionLines.push(line) }) });
    const session = sessionFromClient(client as unknown as Client, async () => {}, createLogger({ verbosity: 0, write: (line) => sessionLines.push(line) }));
    void session.listenRemote("localhost", 8080, () => {});
    bound!(undefined, 8080);
    client.open(forwarded(8080));
    client.open(forwarded(8081));
    assert.deepEqual(client.passedOn.map((info) => info.data["destPort"]), [8080]);
    assert.deepEqual(sessionLines, ["Warning: Server requests forwarding for unknown listen_port 8081"]);
    assert.deepEqual(connectionLines, []);
  });

  test("without a log of its own, the session keeps the connection's", () => {
    const lines: string[] = [];
    const client = new FakeClient();
    guardChannelOpens(client as unknown as Client, { log: createLogger({ verbosity: 0, write: (line) => lines.push(line) }) });
    sessionFromClient(client as unknown as Client, async () => {});
    client.open(x11());
    assert.equal(lines[0], "Warning: ssh server tried X11 forwarding.");
  });

  test("a 'tcp connection' ssh2 lets through for a port the session has closed is rejected and reported", async () => {
    const lines: string[] = [];
    const client = new FakeClient() as FakeClient & { forwardIn?: unknown };
    client.forwardIn = (_address: string, _port: number, cb: (err: Error | undefined, port: number) => void) => cb(undefined, 9090);
    sessionFromClient(client as unknown as Client, async () => {}, createLogger({ verbosity: 0, write: (line) => lines.push(line) }));
    let rejected = 0;
    client.emit("tcp connection", { destIP: "localhost", destPort: 9090, srcIP: "127.0.0.1", srcPort: 5 }, () => assert.fail("accepted"), () => rejected++);
    assert.equal(rejected, 1);
    assert.deepEqual(lines, ["Warning: Server requests forwarding for unknown listen_port 9090"]);
  });
});
