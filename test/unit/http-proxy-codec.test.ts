import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  CONNECT_ESTABLISHED,
  encodeResponse,
  forwardedHead,
  framingProblem,
  requestBodyLength,
  MAX_HEAD_BYTES,
  MAX_HEADER_FIELDS,
  parseAuthority,
  parseBasicCredentials,
  parseRequestHead,
  requestTarget,
  type RequestHead,
} from "../../src/http-proxy/codec.ts";
import { pacFile, proxyPages, setupPage } from "../../src/http-proxy/setup-page.ts";

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

function head(text: string): RequestHead {
  const parsed = parseRequestHead(bytes(text));
  assert.equal(parsed.status, "ok", JSON.stringify(parsed));
  return (parsed as { value: RequestHead }).value;
}

describe("parseRequestHead", () => {
  test("a CONNECT head with CRLF line ends: fields in order, consumed up to the empty line, the rest left", () => {
    const text = "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nUser-Agent:  curl/8 \r\n\r\n";
    const parsed = parseRequestHead(bytes(`${text}\x16\x03\x01`));
    assert.deepEqual(parsed, {
      status: "ok",
      value: { method: "CONNECT", target: "example.org:443", version: "HTTP/1.1", fields: [["Host", "example.org:443"], ["User-Agent", "curl/8"]] },
      consumed: text.length,
    });
  });

  test("bare LF line ends and empty lines before the request line are accepted (RFC 9112 section 2.2)", () => {
    const parsed = parseRequestHead(bytes("\r\n\nGET / HTTP/1.0\nHost: x\n\n"));
    assert.equal(parsed.status, "ok");
    assert.equal((parsed as { consumed: number }).consumed, 27);
    assert.deepEqual((parsed as { value: RequestHead }).value.fields, [["Host", "x"]]);
  });

  test("incomplete until the empty line arrives, byte by byte", () => {
    const text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (let n = 0; n < text.length; n++) assert.deepEqual(parseRequestHead(bytes(text.slice(0, n))), { status: "incomplete" }, `after ${n} bytes`);
    assert.equal(parseRequestHead(bytes(text)).status, "ok");
  });

  const invalid: [string, string, number, RegExp][] = [
    ["two spaces in the request line", "GET  / HTTP/1.1\r\n\r\n", 400, /malformed request line/],
    ["a lower-case version", "GET / http/1.1\r\n\r\n", 400, /malformed HTTP version/],
    ["HTTP/2.0 in a request line", "GET / HTTP/2.0\r\n\r\n", 505, /HTTP\/2\.0 is not supported/],
    ["a method with a slash", "GE/T / HTTP/1.1\r\n\r\n", 400, /malformed request method/],
    ["obs-fold", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, /folded header field/],
    ["a space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, /malformed header field name/],
    ["a field without a colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400, /malformed header field name/],
    ["a NUL in a value", "GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400, /control bytes in header field A/],
    ["a bare CR in a value", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400, /control bytes in header field A/],
  ];
  for (const [what, text, code, reason] of invalid) {
    test(`refuses ${what} with ${code}`, () => {
      const parsed = parseRequestHead(bytes(text));
      assert.equal(parsed.status, "invalid");
      assert.equal((parsed as { code: number }).code, code);
      assert.match((parsed as { reason: string }).reason, reason);
    });
  }

  test(`a head over ${MAX_HEAD_BYTES} bytes is 431 as soon as the bound is passed, with or without a line end`, () => {
    const longLine = bytes(`GET / HTTP/1.1\r\nX: ${"a".repeat(MAX_HEAD_BYTES)}`);
    assert.deepEqual(parseRequestHead(longLine), { status: "invalid", code: 431, reason: `request head longer than ${MAX_HEAD_BYTES} bytes` });
    const manyLines = bytes(`GET / HTTP/1.1\r\n${"X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(600)}`);
    assert.equal((parseRequestHead(manyLines) as { code: number }).code, 431);
    // Exactly at the bound it is still read.
    const filler = MAX_HEAD_BYTES - "GET / HTTP/1.1\r\nX: \r\n\r\n".length;
    assert.equal(parseRequestHead(bytes(`GET / HTTP/1.1\r\nX: ${"a".repeat(filler)}\r\n\r\n`)).status, "ok");
  });

  test(`more than ${MAX_HEADER_FIELDS} fields is 431, ${MAX_HEADER_FIELDS} is fine`, () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join("");
    assert.equal(parseRequestHead(bytes(`GET / HTTP/1.1\r\n${fields(MAX_HEADER_FIELDS)}\r\n`)).status, "ok");
    assert.deepEqual(parseRequestHead(bytes(`GET / HTTP/1.1\r\n${fields(MAX_HEADER_FIELDS + 1)}\r\n`)), {
      status: "invalid",
      code: 431,
      reason: `more than ${MAX_HEADER_FIELDS} header fields`,
    });
  });
});

describe("requestTarget and parseAuthority", () => {
  test("CONNECT takes host:port, [v6]:port and dotted quads, each with its kind", () => {
    assert.deepEqual(requestTarget(head("CONNECT example.org:443 HTTP/1.1\r\n\r\n")), { ok: true, target: { form: "connect", destination: { kind: "name", host: "example.org", port: 443 } } });
    assert.deepEqual(requestTarget(head("CONNECT [::1]:22 HTTP/1.1\r\n\r\n")), { ok: true, target: { form: "connect", destination: { kind: "ipv6", host: "::1", port: 22 } } });
    assert.deepEqual(requestTarget(head("CONNECT 10.0.0.1:80 HTTP/1.1\r\n\r\n")), { ok: true, target: { form: "connect", destination: { kind: "ipv4", host: "10.0.0.1", port: 80 } } });
  });

  test("CONNECT without a port, with port 0 or with garbage is 400 naming what was sent", () => {
    for (const target of ["example.org", "example.org:0", "example.org:99999", "[::1", "[nothost]:1", ":443", "a%2eb:443", "exa_mple:1/x"]) {
      const parsed = requestTarget({ method: "CONNECT", target, version: "HTTP/1.1", fields: [] });
      assert.deepEqual(parsed, { ok: false, code: 400, reason: `CONNECT needs host:port, got "${target}"` }, target);
    }
  });

  test("absolute form: http only, default port 80, origin-form path with the query, no fragment, no user info", () => {
    assert.deepEqual(requestTarget(head("GET http://Example.org/a/b?c=d#e HTTP/1.1\r\n\r\n")), {
      ok: true,
      target: { form: "absolute", destination: { kind: "name", host: "Example.org", port: 80 }, authority: "Example.org", path: "/a/b?c=d" },
    });
    assert.deepEqual(requestTarget(head("GET HTTP://localhost:8080?x HTTP/1.1\r\n\r\n")), {
      ok: true,
      target: { form: "absolute", destination: { kind: "name", host: "localhost", port: 8080 }, authority: "localhost:8080", path: "/?x" },
    });
    assert.deepEqual(requestTarget(head("GET https://example.org/ HTTP/1.1\r\n\r\n")), {
      ok: false,
      code: 400,
      reason: "this proxy forwards only http:// requests in absolute form, not https://: an https:// URL goes through CONNECT (configure the client with an HTTP proxy for https, or use socks5h://)",
    });
    assert.deepEqual(requestTarget(head("GET http://user:pw@example.org/ HTTP/1.1\r\n\r\n")), { ok: false, code: 400, reason: "user name or password in the request URL is not forwarded" });
    assert.deepEqual(requestTarget(head("GET ftp://example.org/ HTTP/1.1\r\n\r\n")), { ok: false, code: 400, reason: "this proxy forwards only http:// requests in absolute form, not ftp://" });
  });

  test("origin form is a request for the proxy itself; anything else is 400", () => {
    assert.deepEqual(requestTarget(head("GET /proxy.pac HTTP/1.1\r\n\r\n")), { ok: true, target: { form: "origin", path: "/proxy.pac" } });
    assert.deepEqual(requestTarget(head("OPTIONS * HTTP/1.1\r\n\r\n")), { ok: false, code: 400, reason: 'malformed request target "*"' });
  });

  test("parseAuthority leaves inet_aton forms to the policy as names (socks/policy.ts reads them as addresses)", () => {
    assert.deepEqual(parseAuthority("127.1:80"), { kind: "name", host: "127.1", port: 80 });
    assert.equal(parseAuthority("example.org"), undefined);
    assert.deepEqual(parseAuthority("[2001:db8::1]", 80), { kind: "ipv6", host: "2001:db8::1", port: 80 });
  });

  test("a bracketed address with a zone id is that address (so the policy refuses it as one), never a malformed request", () => {
    assert.deepEqual(parseAuthority("[fe80::1%25eth0]:443"), { kind: "ipv6", host: "fe80::1", port: 443 });
    assert.deepEqual(parseAuthority("[fe80::1%eth0]", 80), { kind: "ipv6", host: "fe80::1", port: 80 });
    assert.equal(parseAuthority("[not-an-address%25eth0]:443"), undefined);
  });
});

describe("forwardedHead", () => {
  test("Host from the URI, hop-by-hop and Proxy-* fields dropped, fields named by Connection dropped, Connection: close added", () => {
    const parsed = head(
      "POST http://example.org:8080/form HTTP/1.1\r\nHost: wrong.example\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n" +
        "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nCookie: a=b\r\n\r\n",
    );
    assert.equal(
      forwardedHead(parsed, "/form", "example.org:8080"),
      "POST /form HTTP/1.1\r\nHost: example.org:8080\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nCookie: a=b\r\nConnection: close\r\n\r\n",
    );
  });

  test("keeps the request's HTTP version", () => {
    assert.equal(forwardedHead(head("GET http://a/ HTTP/1.0\r\n\r\n"), "/", "a"), "GET / HTTP/1.0\r\nHost: a\r\nConnection: close\r\n\r\n");
  });
});

describe("framingProblem (RFC 9112 section 6.3)", () => {
  test("refuses framings two parsers could read differently", () => {
    assert.equal(framingProblem([["Content-Length", "5"], ["Transfer-Encoding", "chunked"]]), "both Transfer-Encoding and Content-Length");
    assert.equal(framingProblem([["Content-Length", "5"], ["content-length", "6"]]), "conflicting Content-Length values");
    assert.equal(framingProblem([["Content-Length", "5, 6"]]), "conflicting Content-Length values");
    assert.equal(framingProblem([["Content-Length", "-1"]]), "malformed Content-Length");
    assert.equal(framingProblem([["Transfer-Encoding", "chunked, gzip"]]), "Transfer-Encoding whose last coding is not chunked");
    assert.equal(framingProblem([["Transfer-Encoding", "chunked, chunked"]]), "chunked applied more than once");
    assert.equal(framingProblem([["Transfer-Encoding", "chunked"]], "HTTP/1.0"), "Transfer-Encoding in an HTTP/1.0 request");
  });

  test("refuses a Connection field naming a framing field: the forwarded head would lose it after the check", () => {
    assert.equal(framingProblem([["Content-Length", "5"], ["Connection", "keep-alive, Content-Length"]]), "a Connection field naming Content-Length or Transfer-Encoding");
    assert.equal(framingProblem([["Connection", "transfer-encoding"]]), "a Connection field naming Content-Length or Transfer-Encoding");
  });

  test("accepts one length, repeated equal lengths, chunked, or none", () => {
    assert.equal(framingProblem([["Content-Length", "5"]]), undefined);
    assert.equal(framingProblem([["Content-Length", "5"], ["Content-Length", "5"]]), undefined);
    assert.equal(framingProblem([["Transfer-Encoding", "gzip, chunked"]]), undefined);
    assert.equal(framingProblem([]), undefined);
  });
});

describe("requestBodyLength", () => {
  test("Content-Length, or 0 without one; chunked is 411 with what to do instead", () => {
    assert.deepEqual(requestBodyLength([["Content-Length", "4"]]), { ok: true, length: 4 });
    assert.deepEqual(requestBodyLength([["Content-Length", "4, 4"]]), { ok: true, length: 4 });
    assert.deepEqual(requestBodyLength([]), { ok: true, length: 0 });
    assert.deepEqual(requestBodyLength([["Transfer-Encoding", "chunked"]]), {
      ok: false,
      code: 411,
      reason: "a chunked request body is not forwarded: send it with a Content-Length, or use HTTPS (CONNECT)",
    });
  });
});

describe("parseBasicCredentials (RFC 7617)", () => {
  test("splits at the first colon, any case of the scheme, bytes kept", () => {
    const parsed = parseBasicCredentials(`basic ${Buffer.from("alice:p:w\u00e9", "utf8").toString("base64")}`);
    assert.deepEqual(parsed && { username: parsed.username.toString(), password: parsed.password.toString() }, { username: "alice", password: "p:w\u00e9" });
  });

  test("anything but Basic with base64 holding a colon is undefined", () => {
    assert.equal(parseBasicCredentials("Bearer abc"), undefined);
    assert.equal(parseBasicCredentials(`Basic ${Buffer.from("nocolon").toString("base64")}`), undefined);
    assert.equal(parseBasicCredentials("Basic !!!"), undefined);
  });
});

describe("responses", () => {
  test("encodeResponse is byte-exact: status line, type, length, close, extra fields, body", () => {
    assert.equal(
      encodeResponse(407, "text/plain; charset=utf-8", "need\u00e9\n", [["Proxy-Authenticate", 'Basic realm="safetunnel"']]).toString("latin1"),
      'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\nConnection: close\r\nProxy-Authenticate: Basic realm="safetunnel"\r\n\r\nneed\xc3\xa9\n',
    );
  });

  test("a HEAD answer keeps the length and leaves the body out", () => {
    assert.equal(encodeResponse(200, "text/html", "abc", [], true).toString("latin1"), "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
  });

  test("CONNECT's success line", () => {
    assert.equal(CONNECT_ESTABLISHED, "HTTP/1.1 200 Connection established\r\n\r\n");
  });
});

describe("the proxy's own pages", () => {
  test("the PAC file sends everything to SOCKS5 at this address: no DIRECT, no local resolution", () => {
    assert.equal(pacFile({ host: "127.0.0.1", port: 9001 }), 'function FindProxyForURL(url, host) {\n  return "SOCKS5 127.0.0.1:9001";\n}\n');
    assert.equal(pacFile({ host: "::1", port: 9001 }), 'function FindProxyForURL(url, host) {\n  return "SOCKS5 [::1]:9001";\n}\n');
    for (const word of ["DIRECT", "dnsResolve", "isInNet", "isResolvable", "SOCKS "]) assert.ok(!pacFile({ host: "127.0.0.1", port: 1 }).includes(word), word);
  });

  test("the set-up page fills in this port for Firefox, Chromium, curl and HTTP clients, escaped", () => {
    const page = setupPage({ host: "127.0.0.1", port: 9001 });
    for (const text of ["--socks5-hostname 127.0.0.1:9001", "--proxy-server=socks5://127.0.0.1:9001", "network.proxy.socks5_remote_dns", "HTTPS_PROXY=http://127.0.0.1:9001", "safetunnel exec -- COMMAND", '<a href="/proxy.pac">']) {
      assert.ok(page.includes(text), text);
    }
    assert.ok(page.includes("&lt;-loopback&gt;") && !page.includes("<-loopback>"), "the bypass rule is escaped");
  });

  test("pages by path: / is HTML, /proxy.pac is a PAC, anything else undefined", () => {
    const proxy = { host: "127.0.0.1", port: 9001 };
    assert.equal(proxyPages("/", proxy)?.type, "text/html; charset=utf-8");
    assert.deepEqual(proxyPages("/proxy.pac", proxy), { type: "application/x-ns-proxy-autoconfig", body: pacFile(proxy) });
    assert.equal(proxyPages("/favicon.ico", proxy), undefined);
  });
});
