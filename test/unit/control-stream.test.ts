import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { CanaryRegistry, MAX_SESSIONS } from "../../src/leakcheck/canary-registry.ts";
import { controlStream } from "../../src/leakcheck/control-stream.ts";
import { MAX_REQUEST_BYTES } from "../../src/leakcheck/control-protocol.ts";
import { VERSION } from "../../src/version.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

const CANARY = "c0ffee.canary.safetunnel.invalid";
const HELLO = `{"event":"hello","version":"${VERSION}","canary":"${CANARY}","stun":"c0ffee-stun.canary.safetunnel.invalid","url":"http://${CANARY}/"}\n`;

/** A control stream on a fresh registry, and everything it has sent so far. */
function open(networkAddresses: readonly string[] = ["192.168.1.20", "10.0.0.2", "2001:db8::1"]) {
  const registry = new CanaryRegistry(() => "c0ffee");
  const stream = controlStream(registry, { uid: 1000, networkAddresses: () => networkAddresses });
  assert.ok(stream !== undefined);
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const received = (): string => Buffer.concat(chunks).toString("utf8");
  /** The lines after the hello, once `count` of them have arrived. */
  const answers = async (count: number): Promise<string[]> => {
    const after = (): string[] => received().slice(HELLO.length).split("\n").slice(0, -1);
    await waitFor(() => after().length >= count, `${count} answer lines`, () => JSON.stringify(received()));
    return after();
  };
  return { registry, stream, received, answers, session: () => registry.sessionFor(CANARY) };
}

/** Writes and waits for the write's callback (an error passes through as the result). */
function write(stream: Duplex, text: string): Promise<Error | null | undefined> {
  return bounded(new Promise((resolve) => stream.write(text, (err) => resolve(err))), "a write to the control stream", 10_000);
}

describe("controlStream", () => {
  test("says hello first: the canary, the STUN name and the URL, as one JSON line", async () => {
    const { received, registry, session } = open();
    await waitFor(() => received().length >= HELLO.length, "the hello line");
    assert.equal(received(), HELLO);
    assert.equal(registry.size, 1);
    assert.equal(session()?.uid, 1000);
    assert.equal(session()?.udpStun, undefined);
  });

  test("gives no stream when the registry has no room for another session", () => {
    const registry = new CanaryRegistry();
    for (let i = 0; i < MAX_SESSIONS; i++) assert.ok(registry.open(() => {}) !== undefined);
    assert.equal(controlStream(registry, { networkAddresses: () => [] }), undefined);
    assert.equal(registry.size, MAX_SESSIONS);
  });

  test("a stun-udp request for one of this machine's addresses is granted and becomes the session's udpStun", async () => {
    const { stream, answers, session } = open();
    await write(stream, '{"request":"stun-udp","address":"10.0.0.2","port":40000}\n');
    assert.deepEqual(await answers(1), ['{"event":"stun-udp","address":"10.0.0.2","port":40000}']);
    assert.deepEqual(session()?.udpStun, { address: "10.0.0.2", port: 40000 });
  });

  test("an IPv6 address spelled differently is granted, and answered in RFC 5952 spelling", async () => {
    const { stream, answers, session } = open();
    await write(stream, '{"request":"stun-udp","address":"2001:DB8::0:1","port":40000}\n');
    assert.deepEqual(await answers(1), ['{"event":"stun-udp","address":"2001:db8::1","port":40000}']);
    assert.deepEqual(session()?.udpStun, { address: "2001:db8::1", port: 40000 });
  });

  test("an address not of this machine is refused, naming the ones it has, and udpStun stays unset", async () => {
    const { stream, answers, session } = open(["192.168.1.20", "2001:db8::1"]);
    await write(stream, '{"request":"stun-udp","address":"203.0.113.7","port":3478}\n');
    await write(stream, '{"request":"stun-udp","address":"2001:db8::2","port":3478}\n');
    assert.deepEqual(await answers(2), [
      JSON.stringify({
        event: "request-refused",
        request: "stun-udp",
        reason: "203.0.113.7:3478 is not an address of this machine's network interfaces (it has 192.168.1.20, 2001:db8::1): the canary page sends nothing to another machine",
      }),
      JSON.stringify({
        event: "request-refused",
        request: "stun-udp",
        reason: "[2001:db8::2]:3478 is not an address of this machine's network interfaces (it has 192.168.1.20, 2001:db8::1): the canary page sends nothing to another machine",
      }),
    ]);
    assert.equal(session()?.udpStun, undefined);
  });

  test("with no address outside loopback, every request is refused, saying it has none", async () => {
    const { stream, answers, session } = open([]);
    await write(stream, '{"request":"stun-udp","address":"127.0.0.1","port":3478}\n');
    assert.deepEqual(await answers(1), [
      '{"event":"request-refused","request":"stun-udp","reason":"127.0.0.1:3478 is not an address of this machine\'s network interfaces (it has none besides loopback): the canary page sends nothing to another machine"}',
    ]);
    assert.equal(session()?.udpStun, undefined);
  });

  test("a name is refused even when the list somehow holds it: only addresses are compared", async () => {
    const { stream, answers, session } = open(["localhost"]);
    await write(stream, '{"request":"stun-udp","address":"localhost","port":3478}\n');
    assert.deepEqual(await answers(1), [
      '{"event":"request-refused","request":"stun-udp","reason":"localhost:3478 is not an address of this machine\'s network interfaces (it has localhost): the canary page sends nothing to another machine"}',
    ]);
    assert.equal(session()?.udpStun, undefined);
  });

  test("a request split across two writes is answered once it is whole", async () => {
    const { stream, answers, received, session } = open();
    await write(stream, '{"request":"stun-udp","addr');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(received(), HELLO, "nothing is answered before the newline");
    assert.equal(session()?.udpStun, undefined);
    await write(stream, 'ess":"192.168.1.20","port":40000}\n');
    assert.deepEqual(await answers(1), ['{"event":"stun-udp","address":"192.168.1.20","port":40000}']);
    assert.deepEqual(session()?.udpStun, { address: "192.168.1.20", port: 40000 });
  });

  test("two requests in one write get two answers in order; blank lines get none", async () => {
    const { stream, answers, session } = open();
    await write(stream, '\n  \n{"request":"stun-udp","address":"10.0.0.2","port":1}\n{"request":"stun-udp","address":"192.168.1.20","port":2}\n');
    assert.deepEqual(await answers(2), ['{"event":"stun-udp","address":"10.0.0.2","port":1}', '{"event":"stun-udp","address":"192.168.1.20","port":2}']);
    assert.deepEqual(session()?.udpStun, { address: "192.168.1.20", port: 2 }, "the later request wins");
  });

  test("a line that is not a request is refused with the parser's reason, and the connection stays", async () => {
    const { stream, answers, registry } = open();
    await write(stream, "GET / HTTP/1.1\n");
    await write(stream, '{"request":"open"}\n');
    await write(stream, '{"request":"stun-udp","address":"10.0.0.2","port":0}\n');
    assert.deepEqual(await answers(3), [
      '{"event":"request-refused","request":"","reason":"not JSON"}',
      '{"event":"request-refused","request":"open","reason":"unknown request \\"open\\""}',
      '{"event":"request-refused","request":"stun-udp","reason":"\\"port\\" must be a whole number from 1 to 65535"}',
    ]);
    assert.equal(stream.destroyed, false);
    assert.equal(registry.size, 1);
  });

  test("a pending line of exactly MAX_REQUEST_BYTES is still read", async () => {
    const { stream, answers, registry } = open();
    assert.equal(await write(stream, "x".repeat(MAX_REQUEST_BYTES)), null);
    assert.equal(await write(stream, "\n"), null);
    assert.deepEqual(await answers(1), ['{"event":"request-refused","request":"","reason":"not JSON"}']);
    assert.equal(registry.size, 1);
  });

  test("a line longer than MAX_REQUEST_BYTES without its newline ends the connection and forgets the session", async () => {
    const { stream, registry, session } = open();
    const errors: Error[] = [];
    stream.on("error", (err) => errors.push(err));
    const result = await write(stream, "x".repeat(MAX_REQUEST_BYTES + 1));
    assert.deepEqual(result, new Error("control request longer than 1024 bytes"));
    await waitFor(() => stream.destroyed && errors.length > 0, "the stream to be destroyed");
    assert.deepEqual(errors, [new Error("control request longer than 1024 bytes")]);
    assert.equal(registry.size, 0);
    assert.equal(session(), undefined);
  });

  test(
    "a complete line longer than MAX_REQUEST_BYTES ends the connection too, however it was split",
    async () => {
      const { stream, registry } = open();
      stream.on("error", () => {});
      const line = `{"request":"stun-udp","address":"10.0.0.2","port":40000,"padding":"${"x".repeat(MAX_REQUEST_BYTES)}"}\n`;
      const result = await write(stream, line);
      assert.deepEqual(result, new Error("control request longer than 1024 bytes"));
      await waitFor(() => registry.size === 0, "the session to be forgotten");
    },
  );

  test("a line longer than MAX_REQUEST_BYTES whose newline comes in a later write ends the connection, unanswered", async () => {
    const { stream, registry } = open();
    stream.on("error", () => {});
    const answers: string[] = [];
    stream.on("data", (chunk: Buffer) => answers.push(chunk.toString("utf8")));
    const body = `{"request":"stun-udp","address":"10.0.0.2","port":40000,"padding":"${"x".repeat(MAX_REQUEST_BYTES)}"}`;
    // The first write alone is under the limit; the line is over it once the second arrives.
    assert.equal(await write(stream, body.slice(0, 600)), null);
    assert.deepEqual(await write(stream, `${body.slice(600)}\n`), new Error("control request longer than 1024 bytes"));
    await waitFor(() => registry.size === 0, "the session to be forgotten");
    assert.ok(answers.every((line) => !line.includes('"event":"stun-udp"')), answers.join(""));
  });

  test("ending the connection forgets the session's canaries", async () => {
    const { stream, registry, session } = open();
    assert.equal(registry.size, 1);
    const ended = new Promise((resolve) => stream.once("end", resolve));
    stream.end();
    await bounded(ended, "the stream's end", 10_000);
    assert.equal(registry.size, 0);
    assert.equal(session(), undefined);
  });

  test("destroying the stream forgets the session's canaries", () => {
    const { stream, registry, session } = open();
    stream.destroy();
    assert.equal(registry.size, 0);
    assert.equal(session(), undefined);
  });
});

describe("controlStream: the verdict", () => {
  test("a verdict request is kept in the session for the page and answered", async () => {
    const { stream, answers, session } = open();
    await write(stream, '{"request":"verdict","verdict":"PASS","summary":"nothing leaked"}\n');
    assert.deepEqual(await answers(1), ['{"event":"verdict"}']);
    assert.deepEqual(session()?.verdict, { verdict: "PASS", summary: "nothing leaked" });
  });

  test("a malformed verdict is refused and nothing is kept", async () => {
    const { stream, answers, session } = open();
    await write(stream, '{"request":"verdict","verdict":"MAYBE","summary":"x"}\n');
    assert.deepEqual(await answers(1), ['{"event":"request-refused","request":"verdict","reason":"\\"verdict\\" must be PASS, LEAK or UNTESTED"}']);
    assert.equal(session()?.verdict, undefined);
  });
});
