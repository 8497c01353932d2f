import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { asControlAnswer, encodeControlRequest, MAX_REQUEST_BYTES, parseControlRequest, parseHello, verdictSummary } from "../../src/leakcheck/control-protocol.ts";
import { Buffer } from "node:buffer";
import type { CanaryEvent } from "../../src/leakcheck/canary-registry.ts";

describe("encodeControlRequest", () => {
  test("is one JSON object on one line, fields in the order request, address, port", () => {
    assert.equal(encodeControlRequest({ request: "stun-udp", address: "192.168.1.20", port: 40000 }), '{"request":"stun-udp","address":"192.168.1.20","port":40000}\n');
    assert.equal(encodeControlRequest({ request: "stun-udp", address: "2001:db8::1", port: 1 }), '{"request":"stun-udp","address":"2001:db8::1","port":1}\n');
  });

  test("what it encodes parses back to the same request, without its newline", () => {
    const request = { request: "stun-udp", address: "10.0.0.2", port: 3478 } as const;
    assert.deepEqual(parseControlRequest(encodeControlRequest(request).slice(0, -1)), request);
  });

  test("a request leakcheck makes fits well within MAX_REQUEST_BYTES", () => {
    const longest = encodeControlRequest({ request: "stun-udp", address: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", port: 65535 });
    assert.equal(MAX_REQUEST_BYTES, 1024);
    assert.ok(longest.length < MAX_REQUEST_BYTES, longest);
  });
});

describe("parseControlRequest", () => {
  test("reads a stun-udp request, ignoring fields it does not know", () => {
    assert.deepEqual(parseControlRequest('{"request":"stun-udp","address":"10.0.0.2","port":3478}'), { request: "stun-udp", address: "10.0.0.2", port: 3478 });
    assert.deepEqual(parseControlRequest('{"port":65535,"extra":[1],"address":"2001:db8::1","request":"stun-udp"}'), { request: "stun-udp", address: "2001:db8::1", port: 65535 });
  });

  test("leaves the address as sent: whether it is one of this machine's is control-stream's question", () => {
    assert.deepEqual(parseControlRequest('{"request":"stun-udp","address":"printer.example","port":1}'), { request: "stun-udp", address: "printer.example", port: 1 });
  });

  test("a line that is not JSON", () => {
    for (const line of ["", "stun-udp 10.0.0.2 3478", '{"request":"stun-udp"', "{'request':'stun-udp'}"]) assert.deepEqual(parseControlRequest(line), { error: "not JSON" }, line);
  });

  test("JSON that is not an object: an array, a string, a number, null", () => {
    for (const line of ['[{"request":"stun-udp","address":"10.0.0.2","port":3478}]', '"stun-udp"', "3478", "null", "true"]) {
      assert.deepEqual(parseControlRequest(line), { error: "not a JSON object" }, line);
    }
  });

  test('an object without a string "request"', () => {
    for (const line of ['{"address":"10.0.0.2","port":3478}', '{"request":1}', '{"request":null}', '{"request":["stun-udp"]}']) {
      assert.deepEqual(parseControlRequest(line), { error: 'no "request"' }, line);
    }
  });

  test("an unknown request is named, quoted, in the error and as the request", () => {
    assert.deepEqual(parseControlRequest('{"request":"open"}'), { error: 'unknown request "open"', request: "open" });
    assert.deepEqual(parseControlRequest('{"request":"STUN-UDP","address":"10.0.0.2","port":3478}'), { error: 'unknown request "STUN-UDP"', request: "STUN-UDP" });
  });

  test("an unknown request's name is cut to its first 40 characters, and quoting keeps control characters out of the error", () => {
    const name = `${"a".repeat(39)}bcdefgh`;
    assert.deepEqual(parseControlRequest(JSON.stringify({ request: name })), { error: `unknown request "${"a".repeat(39)}b"`, request: `${"a".repeat(39)}b` });
    assert.deepEqual(parseControlRequest('{"request":"x\\n\\"y"}'), { error: 'unknown request "x\\n\\"y"', request: 'x\n"y' });
  });

  test("an address that is not a string, or longer than 64 characters", () => {
    const error = { error: '"address" must be an IP address', request: "stun-udp" };
    for (const address of [undefined, 167772162, null, ["10.0.0.2"], { ip: "10.0.0.2" }, "1".repeat(65)]) {
      assert.deepEqual(parseControlRequest(JSON.stringify({ request: "stun-udp", address, port: 3478 })), error, JSON.stringify(address));
    }
  });

  test("an address of exactly 64 characters is still read", () => {
    const address = "a".repeat(64);
    assert.deepEqual(parseControlRequest(JSON.stringify({ request: "stun-udp", address, port: 3478 })), { request: "stun-udp", address, port: 3478 });
  });

  test("a port that is not a whole number from 1 to 65535", () => {
    const error = { error: '"port" must be a whole number from 1 to 65535', request: "stun-udp" };
    for (const port of ["0", "65536", "1.5", '"3478"', "-1", "null", "1e6", "[3478]"]) {
      assert.deepEqual(parseControlRequest(`{"request":"stun-udp","address":"10.0.0.2","port":${port}}`), error, port);
    }
    assert.deepEqual(parseControlRequest('{"request":"stun-udp","address":"10.0.0.2"}'), error, "no port");
  });

  test("ports 1 and 65535 are the bounds", () => {
    assert.deepEqual(parseControlRequest('{"request":"stun-udp","address":"10.0.0.2","port":1}'), { request: "stun-udp", address: "10.0.0.2", port: 1 });
    assert.deepEqual(parseControlRequest('{"request":"stun-udp","address":"10.0.0.2","port":65535.0}'), { request: "stun-udp", address: "10.0.0.2", port: 65535 });
  });
});

describe("parseHello", () => {
  const line = '{"event":"hello","version":"0.1.0","canary":"a.canary.safetunnel.invalid","stun":"a-stun.canary.safetunnel.invalid","url":"http://a.canary.safetunnel.invalid/"}';

  test("reads the hello line's fields, leaving out any others", () => {
    assert.deepEqual(parseHello(line), {
      event: "hello",
      version: "0.1.0",
      canary: "a.canary.safetunnel.invalid",
      stun: "a-stun.canary.safetunnel.invalid",
      url: "http://a.canary.safetunnel.invalid/",
    });
    assert.deepEqual(parseHello(line.replace('"event":"hello"', '"event":"hello","extra":true')), parseHello(line));
  });

  test("a missing version is empty, and a version that is not a string is made one", () => {
    const hello = { event: "hello", canary: "a.canary.safetunnel.invalid", stun: "a-stun.canary.safetunnel.invalid", url: "http://a.canary.safetunnel.invalid/" };
    assert.deepEqual(parseHello(JSON.stringify(hello)), { ...hello, version: "" });
    assert.deepEqual(parseHello(JSON.stringify({ ...hello, version: 2 })), { ...hello, version: "2" });
  });

  test("is undefined for anything but a hello with string canary, stun and url", () => {
    const lines = [
      "",
      "not json",
      "null",
      "[]",
      '"hello"',
      line.replace('"event":"hello"', '"event":"canary"'),
      line.replace('"canary":"a.canary.safetunnel.invalid"', '"canary":1'),
      line.replace('"stun":"a-stun.canary.safetunnel.invalid",', ""),
      line.replace('"url":"http://a.canary.safetunnel.invalid/"', '"url":null'),
    ];
    for (const text of lines) assert.equal(parseHello(text), undefined, text);
  });
});

describe("asControlAnswer", () => {
  test("a stun-udp answer, with only its own fields", () => {
    assert.deepEqual(asControlAnswer({ event: "stun-udp", address: "10.0.0.2", port: 3478, extra: 1 }), { event: "stun-udp", address: "10.0.0.2", port: 3478 });
  });

  test("a request-refused answer, with only its own fields", () => {
    const refused = { event: "request-refused", request: "stun-udp", reason: "not JSON" };
    assert.deepEqual(asControlAnswer({ ...refused, extra: 1 }), refused);
  });

  test("is undefined for every CanaryEvent, so events are never taken for answers", () => {
    const events: CanaryEvent[] = [
      { event: "canary", name: "a.canary.safetunnel.invalid", port: 80, client: "127.0.0.1:50000", program: "firefox" },
      { event: "page", method: "GET", path: "/", userAgent: null },
      { event: "report", body: { event: "stun-udp", address: "10.0.0.2", port: 3478 } },
      { event: "refused-ip", destination: "10.0.0.2:3478", client: "127.0.0.1:50000", version: 5, program: null },
    ];
    for (const event of events) assert.equal(asControlAnswer(event), undefined, event.event);
  });

  test("is undefined for answers missing a field or with one of the wrong type, and for non-objects", () => {
    const values: unknown[] = [
      { event: "stun-udp", address: "10.0.0.2" },
      { event: "stun-udp", address: "10.0.0.2", port: "3478" },
      { event: "stun-udp", address: 167772162, port: 3478 },
      { event: "request-refused", request: "stun-udp" },
      { event: "request-refused", reason: "not JSON" },
      { event: "request-refused", request: "stun-udp", reason: null },
      { event: "hello" },
      null,
      "stun-udp",
      3478,
      undefined,
    ];
    for (const value of values) assert.equal(asControlAnswer(value), undefined, JSON.stringify(value));
  });
});

describe("verdictSummary", () => {
  test("cut at a whole character to 600 characters and to what fits in a request line, whatever the script", () => {
    assert.equal(verdictSummary("short"), "short");
    assert.equal(verdictSummary("x".repeat(700)), "x".repeat(600));
    assert.equal(verdictSummary("例".repeat(600)), "例".repeat(266));
    // Astral characters (two UTF-16 units, four bytes) are never split.
    assert.equal(verdictSummary("🦊".repeat(300)), "🦊".repeat(199));
    for (const summary of ["例".repeat(600), '"'.repeat(600), "\u0001".repeat(600), "🦊".repeat(300)]) {
      const line = encodeControlRequest({ request: "verdict", verdict: "LEAK", summary: verdictSummary(summary) });
      assert.ok(Buffer.byteLength(line) <= MAX_REQUEST_BYTES, `${Buffer.byteLength(line)} bytes for ${JSON.stringify(summary.slice(0, 3))}...`);
      assert.deepEqual(parseControlRequest(line.trimEnd()).request, "verdict");
    }
  });
});
