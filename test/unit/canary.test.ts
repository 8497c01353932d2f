import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import { once } from "node:events";
import { startDynamicForward } from "../../src/forward/dynamic.ts";
import type { Listener } from "../../src/forward/listen.ts";
import { createStats } from "../../src/forward/stats.ts";
import { createLogger } from "../../src/log.ts";
import { CanaryRegistry, CONTROL_NAME, MAX_SESSIONS, type CanaryEvent } from "../../src/leakcheck/canary-registry.ts";
import { answerReservedName, canaryAnswers } from "../../src/leakcheck/canary-service.ts";
import { isInvalidName } from "../../src/socks/policy.ts";
import { encodeSocks5ConnectName, encodeSocks5Greeting, AuthMethod } from "../../src/socks/codec.ts";
import { RawClient } from "../helpers/raw-socks.ts";
import { FakeSession } from "../helpers/fake-session.ts";
import { VERSION } from "../../src/version.ts";

const WAIT_MS = 10_000;

const listeners: Listener[] = [];
after(async () => {
  await Promise.all(listeners.map((listener) => listener.close()));
});

async function frontEnd(canaries: CanaryRegistry | undefined) {
  // It records every channel asked of it: a reserved name must never get one.
  const session = new FakeSession();
  const stats = createStats();
  const listener = await startDynamicForward({
    label: "-D test",
    hosts: ["127.0.0.1"],
    port: 0,
    session,
    allowIp: [],
    log: createLogger({ verbosity: -1, write: () => {} }),
    stats,
    ...(canaries !== undefined ? { localAnswers: canaryAnswers(canaries) } : {}),
  });
  listeners.push(listener);
  return { port: listener.port, session, stats };
}

/** A SOCKS5 CONNECT by name; returns the client after the 10-byte reply, and that reply. */
async function connectName(port: number, host: string, targetPort: number): Promise<{ client: RawClient; reply: Buffer }> {
  const client = await RawClient.connect(port, { timeoutMs: WAIT_MS });
  await client.write(Buffer.concat([encodeSocks5Greeting([AuthMethod.NO_AUTH]), encodeSocks5ConnectName(host, targetPort)]));
  await client.read(2, "the method choice");
  return { client, reply: await client.read(10, "the reply") };
}

const SUCCESS = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const replyWith = (code: number): Buffer => Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);

/** The JSON lines the control connection has sent, once at least `count` have arrived. */
async function lines(client: RawClient, count: number): Promise<Record<string, unknown>[]> {
  // received holds everything, the 12 bytes of method choice and reply included.
  const parsed = (): string[] => client.received.subarray(12).toString("utf8").split("\n").slice(0, -1);
  await client.until(() => parsed().length >= count, `${count} control lines`);
  return parsed().map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("isInvalidName", () => {
  test("is true for every .invalid name (RFC 6761), in any case, with final dots", () => {
    for (const name of ["safetunnel.invalid", "control.safetunnel.invalid", "A1.Canary.SAFETUNNEL.invalid.", "x.safetunnel.invalid..", "printer.invalid", "invalid"]) {
      assert.equal(isInvalidName(name), true, JSON.stringify(name));
    }
  });
  test("is false for names that only contain .invalid", () => {
    for (const name of ["safetunnel.invalid.example.org", "invalid.example", "xinvalid", "safetunnel.example", ""]) assert.equal(isInvalidName(name), false, name);
  });
});

describe("CanaryRegistry", () => {
  test("gives each control session its own canary and STUN names and forgets them on close", () => {
    let n = 0;
    const registry = new CanaryRegistry(() => `id${++n}`);
    const seen: CanaryEvent[] = [];
    const first = registry.open((event) => seen.push(event))!;
    const second = registry.open(() => {})!;
    assert.deepEqual([first.canary, first.stun], ["id1.canary.safetunnel.invalid", "id1-stun.canary.safetunnel.invalid"]);
    assert.equal(second.canary, "id2.canary.safetunnel.invalid");
    assert.equal(registry.sessionFor("ID1.canary.safetunnel.invalid."), first);
    assert.equal(registry.sessionFor(first.stun), first);
    registry.broadcast({ event: "refused-ip", destination: "192.0.2.1:80", client: "127.0.0.1:5", version: 5, program: null }, undefined);
    assert.equal(seen.length, 1);
    first.close();
    assert.equal(registry.sessionFor(first.canary), undefined);
    assert.equal(registry.size, 1);
    first.report({ event: "page", method: "GET", path: "/", userAgent: null });
    assert.equal(seen.length, 1, "a closed session hears nothing");
  });

  test("makes 16 random hex digits by default", () => {
    assert.match(new CanaryRegistry().open(() => {})!.canary, /^[0-9a-f]{16}\.canary\.safetunnel\.invalid$/);
  });

  test("tells a refusal only to the checks of the same account", () => {
    const registry = new CanaryRegistry();
    const heard: string[] = [];
    registry.open(() => heard.push("uid 1000"), 1000);
    registry.open(() => heard.push("uid 0"), 0);
    registry.open(() => heard.push("unknown"));
    registry.broadcast({ event: "refused-ip", destination: "192.0.2.1:80", client: "127.0.0.1:5", version: 5, program: null }, 1000);
    assert.deepEqual(heard, ["uid 1000"]);
    registry.broadcast({ event: "refused-ip", destination: "192.0.2.1:80", client: "127.0.0.1:5", version: 5, program: null }, undefined);
    assert.deepEqual(heard, ["uid 1000", "unknown"]);
  });

  test("opens at most MAX_SESSIONS control sessions at once", () => {
    const registry = new CanaryRegistry();
    const sessions = Array.from({ length: MAX_SESSIONS }, () => registry.open(() => {}));
    assert.ok(sessions.every((session) => session !== undefined));
    assert.equal(registry.open(() => {}), undefined);
    sessions[0]!.close();
    assert.notEqual(registry.open(() => {}), undefined);
  });
});

describe("the -D front end answers safetunnel.invalid itself", () => {
  test("a control connection gets success, then a hello line naming its canary, and nothing goes through SSH", async () => {
    const registry = new CanaryRegistry(() => "c0ffee");
    const { port, session, stats } = await frontEnd(registry);
    const { client, reply } = await connectName(port, CONTROL_NAME, 1);
    assert.deepEqual(reply, SUCCESS);
    const [hello] = await lines(client, 1);
    assert.deepEqual(hello, {
      event: "hello",
      version: VERSION,
      canary: "c0ffee.canary.safetunnel.invalid",
      stun: "c0ffee-stun.canary.safetunnel.invalid",
      url: "http://c0ffee.canary.safetunnel.invalid/",
    });
    assert.equal(registry.size, 1);
    client.end();
    await client.serverClosed("the control connection to close");
    assert.equal(registry.size, 0, "closing the control connection forgets its canaries");
    assert.deepEqual(session.calls, []);
    assert.equal(stats.connections, 0, "answered here, not counted as tunnel connections");
  });

  test("the canary page is served on port 80, and the control connection hears the CONNECT and the request", async () => {
    const registry = new CanaryRegistry(() => "feed");
    const { port, session } = await frontEnd(registry);
    const control = (await connectName(port, CONTROL_NAME, 1)).client;
    await lines(control, 1);

    const { client, reply } = await connectName(port, "feed.canary.safetunnel.invalid", 80);
    assert.deepEqual(reply, SUCCESS);
    await client.write("GET / HTTP/1.1\r\nHost: feed.canary.safetunnel.invalid\r\nUser-Agent: test-agent\r\n\r\n");
    const response = (await client.readToEnd("the page")).toString("utf8");
    assert.match(response, /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/html; charset=utf-8\r\nContent-Length: \d+\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n<!doctype html>/);
    assert.match(response, /asked for by name \(feed\.canary\.safetunnel\.invalid\)/);

    const events = await lines(control, 3);
    assert.deepEqual(events.slice(1), [
      { event: "canary", name: "feed.canary.safetunnel.invalid", port: 80, client: `127.0.0.1:${client.localPort}`, program: null },
      { event: "page", method: "GET", path: "/", userAgent: "test-agent" },
    ]);
    assert.deepEqual(session.calls, []);
    control.end();
  });

  test("port 443 of the canary is recorded and refused (0x05), so browsers fall back to http", async () => {
    const registry = new CanaryRegistry(() => "abc");
    const { port } = await frontEnd(registry);
    const control = (await connectName(port, CONTROL_NAME, 1)).client;
    await lines(control, 1);
    const canary443 = await connectName(port, "abc.canary.safetunnel.invalid", 443);
    assert.deepEqual(canary443.reply, replyWith(0x05));
    const events = await lines(control, 2);
    assert.deepEqual(events[1], { event: "canary", name: "abc.canary.safetunnel.invalid", port: 443, client: `127.0.0.1:${canary443.client.localPort}`, program: null });
    control.end();
  });

  test("the page accepts a JSON report and passes it to the control connection", async () => {
    const registry = new CanaryRegistry(() => "r1");
    const { port } = await frontEnd(registry);
    const control = (await connectName(port, CONTROL_NAME, 1)).client;
    await lines(control, 1);
    const { client } = await connectName(port, "r1.canary.safetunnel.invalid", 80);
    const body = JSON.stringify({ candidates: ["candidate:1 1 udp 1 192.0.2.9 5000 typ host"] });
    await client.write(`POST /report HTTP/1.1\r\nHost: r1.canary.safetunnel.invalid\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    assert.match((await client.readToEnd("the answer")).toString("latin1"), /^HTTP\/1\.1 204 No Content\r\n/);
    const events = await lines(control, 3);
    assert.deepEqual(events[2], { event: "report", body: { candidates: ["candidate:1 1 udp 1 192.0.2.9 5000 typ host"] } });
    control.end();
  });

  test("a .invalid name with extra final dots is answered here too, and one with a blank or a NUL is refused: never through SSH", async () => {
    const { port, session } = await frontEnd(new CanaryRegistry());
    for (const name of ["x.safetunnel.invalid..", "X.SAFETUNNEL.INVALID...", "printer.invalid"]) {
      assert.deepEqual((await connectName(port, name, 80)).reply, replyWith(0x04), JSON.stringify(name));
    }
    // A blank or a NUL in a name: the codec refuses the request (0x01) before anything is looked up.
    for (const name of ["x.safetunnel.invalid ", "x.safetunnel.invalid\u0000"]) {
      assert.deepEqual((await connectName(port, name, 80)).reply, replyWith(0x01), JSON.stringify(name));
    }
    assert.deepEqual(session.calls, []);
  });

  test("a control connection from another machine (-g) is refused (0x02)", () => {
    const outcome = answerReservedName({ kind: "name", host: CONTROL_NAME, port: 1 }, { address: "192.0.2.5", port: 5000, localAddress: "192.0.2.1", localPort: 9001 }, new CanaryRegistry());
    assert.deepEqual(outcome, { ok: false, reply: 0x02 });
  });

  test("a control client that stops reading is dropped, and its canaries with it", async () => {
    const registry = new CanaryRegistry(() => "slow");
    const { port } = await frontEnd(registry);
    // A client that sends its request and then never reads a byte.
    const socket = connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    await once(socket, "connect");
    socket.pause();
    socket.write(Buffer.concat([encodeSocks5Greeting([AuthMethod.NO_AUTH]), encodeSocks5ConnectName(CONTROL_NAME, 1)]));
    for (let i = 0; i < 100 && registry.size === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(registry.size, 1, "the control session opened");
    // Far more than the socket's and the stream's buffers hold: the front end must give up on this reader.
    for (let i = 0; i < 20_000 && registry.size > 0; i++) {
      registry.broadcast({ event: "refused-ip", destination: `192.0.2.1:${i}`, client: "127.0.0.1:5", version: 5, program: "x".repeat(200) }, undefined);
      if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(registry.size, 0);
    socket.destroy();
  });

  test("an unregistered name under the domain, or any without a registry, is host unreachable (0x04)", async () => {
    const withRegistry = await frontEnd(new CanaryRegistry());
    assert.deepEqual((await connectName(withRegistry.port, "nobody.canary.safetunnel.invalid", 80)).reply, replyWith(0x04));
    const without = await frontEnd(undefined);
    assert.deepEqual((await connectName(without.port, CONTROL_NAME, 1)).reply, replyWith(0x04));
    assert.deepEqual([...withRegistry.session.calls, ...without.session.calls], []);
  });

  test("IP-address refusals are reported to running checks", async () => {
    const registry = new CanaryRegistry(() => "ip");
    const { port } = await frontEnd(registry);
    const control = (await connectName(port, CONTROL_NAME, 1)).client;
    await lines(control, 1);
    const client = await RawClient.connect(port, { timeoutMs: WAIT_MS });
    await client.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80]));
    assert.deepEqual((await client.read(12, "the refusal")).subarray(2), replyWith(0x02));
    const events = await lines(control, 2);
    assert.deepEqual(events[1], { event: "refused-ip", destination: "192.0.2.1:80", client: `127.0.0.1:${client.localPort}`, version: 5, program: null });
    control.end();
  });
});
