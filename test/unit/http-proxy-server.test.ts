/**
 * The HTTP side of a -D port (http-proxy/server.ts, wired in by
 * forward/dynamic.ts), over real loopback sockets with a fake session: the
 * first byte decides the protocol, CONNECT and absolute-form requests become
 * channels under the SOCKS side's policy, and every failure is a whole
 * response with the status the issue names.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { startDynamicForward } from "../../src/forward/dynamic.ts";
import type { Listener } from "../../src/forward/listen.ts";
import { createStats, type TrafficStats } from "../../src/forward/stats.ts";
import { createLogger } from "../../src/log.ts";
import { MAX_HEAD_BYTES } from "../../src/http-proxy/codec.ts";
import { pacFile } from "../../src/http-proxy/setup-page.ts";
import { FakeSession, failOpen } from "../helpers/fake-session.ts";
import { RawClient, socks5Open, socks5Reply } from "../helpers/raw-socks.ts";
import { bounded } from "../helpers/wait.ts";

const WAIT_MS = 5000;

interface Forward {
  listener: Listener;
  session: FakeSession;
  stats: TrafficStats;
  lines: string[];
}

const open: Listener[] = [];
const servers: Server[] = [];
after(async () => {
  await Promise.all(open.map((l) => l.close()));
  for (const server of servers) server.close();
});

async function startForward(options: { credentials?: { username: Buffer; password: Buffer }; handshakeTimeoutMs?: number } = {}): Promise<Forward> {
  const session = new FakeSession();
  const stats = createStats();
  const lines: string[] = [];
  const log = createLogger({ verbosity: 0, json: false, write: (line) => lines.push(line), now: () => new Date(0) });
  const listener = await startDynamicForward({
    label: "-D test",
    hosts: ["127.0.0.1"],
    port: 0,
    session,
    allowIp: [],
    log,
    stats,
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
  });
  open.push(listener);
  return { listener, session, stats, lines };
}

/** Send `request` (then keep the socket open) and read everything up to the proxy's FIN. */
async function exchange(port: number, request: string | Buffer): Promise<string> {
  const client = await RawClient.connect(port, { timeoutMs: WAIT_MS, allowHalfOpen: true });
  try {
    client.write(typeof request === "string" ? Buffer.from(request, "latin1") : request);
    return (await client.readToEnd()).toString("latin1");
  } finally {
    client.destroy();
  }
}

/** The response's status line and body, its other fields checked by the caller where they matter. */
function statusAndBody(response: string): { status: string; body: string } {
  const end = response.indexOf("\r\n\r\n");
  return { status: response.slice(0, response.indexOf("\r\n")), body: response.slice(end + 4) };
}

/** A loopback server that records each connection's bytes and answers with `reply`, then closes. */
async function recordingServer(reply: string): Promise<{ port: number; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = createServer((socket: Socket) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).includes("\r\n\r\n")) {
        received.push(Buffer.concat(chunks));
        socket.end(reply);
      }
    });
    socket.on("error", () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, received };
}

/**
 * A loopback server that answers `reply` once it has a head and `bodyBytes`
 * more, and keeps every byte its one connection brought until that closes.
 */
async function wholeRecordingServer(bodyBytes: number, reply: string): Promise<{ port: number; headSeen: Promise<void>; closed: Promise<Buffer> }> {
  let seen: () => void = () => {};
  let done: (bytes: Buffer) => void = () => {};
  const headSeen = new Promise<void>((resolve) => (seen = resolve));
  const closed = new Promise<Buffer>((resolve) => (done = resolve));
  const server = createServer((socket: Socket) => {
    const chunks: Buffer[] = [];
    let answered = false;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const end = all.indexOf("\r\n\r\n");
      if (end >= 0) seen();
      if (!answered && end >= 0 && all.length >= end + 4 + bodyBytes) {
        answered = true;
        // As RFC 9112 section 9.6 asks of an origin: a request with Connection: close is answered, then the connection closed.
        if (/\r\nConnection: close\r\n/i.test(all.subarray(0, end + 2).toString("latin1"))) socket.end(reply);
        else socket.write(reply);
      }
    });
    socket.on("end", () => socket.end());
    socket.on("close", () => done(Buffer.concat(chunks)));
    socket.on("error", () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, headSeen, closed };
}

async function echoServer(): Promise<number> {
  const server = createServer((socket: Socket) => {
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

function socketTo(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

describe("HTTP CONNECT on the -D port", () => {
  test("CONNECT by name opens a channel for that name, answers 200, then carries bytes both ways; SOCKS still works on the same port", async () => {
    const { listener, session, stats } = await startForward();
    const echo = await echoServer();
    session.open = () => socketTo(echo);
    const client = await RawClient.connect(listener.port, { timeoutMs: WAIT_MS });
    client.write("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nProxy-Connection: keep-alive\r\n\r\nearly");
    assert.equal((await client.read(39)).toString(), "HTTP/1.1 200 Connection established\r\n\r\n");
    assert.deepEqual(session.calls, [{ host: "example.org", port: 443, origin: { address: "127.0.0.1", port: client.localPort } }]);
    // The echo server sends back what the client sent after its head: "early" first.
    assert.equal((await client.read(5)).toString(), "early");
    client.write("ping");
    assert.equal((await client.read(4)).toString(), "ping");
    client.destroy();
    const socks = await socks5Open(listener.port, Buffer.from([5, 1, 0, 3, 11, ...Buffer.from("example.net"), 0, 80]), { timeoutMs: WAIT_MS });
    assert.deepEqual(await socks.read(10), socks5Reply(0x00));
    socks.destroy();
    assert.equal(stats.refusals + stats.failures + stats.protocolErrors, 0);
  });

  test("an IP-literal CONNECT is 403 with the refusal line as body; no channel is asked for; the log line names HTTP", async () => {
    const { listener, session, stats, lines } = await startForward();
    const response = await exchange(listener.port, "CONNECT 10.1.2.3:443 HTTP/1.1\r\n\r\n");
    const { status, body } = statusAndBody(response);
    assert.equal(status, "HTTP/1.1 403 Forbidden");
    assert.match(body, /^Refused HTTP CONNECT to 10\.1\.2\.3:443 from 127\.0\.0\.1:\d+: it names an IP address, .* Fix: give the app the host name, not an address .* To allow this address on purpose: --allow-ip 10\.1\.2\.3\n$/);
    assert.match(response, /\r\nContent-Length: \d+\r\nConnection: close\r\n/);
    assert.deepEqual(session.calls, []);
    assert.equal(stats.refusals, 1);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /Warning: Refused HTTP CONNECT to 10\.1\.2\.3:443 /);
  });

  test("a name that is an address in disguise (0x7f.1) and a bracketed IPv6 are refused the same way", async () => {
    const { listener, session } = await startForward();
    assert.equal(statusAndBody(await exchange(listener.port, "CONNECT 0x7f.1:22 HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 403 Forbidden");
    assert.equal(statusAndBody(await exchange(listener.port, "CONNECT [2001:db8::1]:22 HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 403 Forbidden");
    assert.deepEqual(session.calls, []);
  });

  test("an address with a zone id is refused as an address: 403, counted as a refusal (leakcheck sees it), not as a bad client", async () => {
    const { listener, session, stats } = await startForward();
    assert.equal(statusAndBody(await exchange(listener.port, "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 403 Forbidden");
    assert.equal(statusAndBody(await exchange(listener.port, "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 403 Forbidden");
    assert.deepEqual(session.calls, []);
    assert.deepEqual([stats.refusals, stats.protocolErrors], [2, 0]);
  });

  const failures: [Parameters<typeof failOpen>[0], string, string][] = [
    ["refused", "Connection refused", "HTTP/1.1 502 Bad Gateway"],
    ["unreachable", "Name or service not known", "HTTP/1.1 502 Bad Gateway"],
    ["prohibited", "administratively prohibited", "HTTP/1.1 403 Forbidden"],
    ["connection-down", "no SSH connection", "HTTP/1.1 503 Service Unavailable"],
  ];
  for (const [kind, description, expected] of failures) {
    test(`a channel that fails as ${kind} is ${expected.slice(9)}, with why in the body and the log`, async () => {
      const { listener, session, stats, lines } = await startForward();
      session.open = failOpen(kind, description);
      const { status, body } = statusAndBody(await exchange(listener.port, "CONNECT down.example:80 HTTP/1.1\r\n\r\n"));
      assert.equal(status, expected);
      assert.match(body, new RegExp(`^connect to down\\.example:80 failed: .*\\n$`));
      assert.equal(stats.failures, 1);
      assert.match(lines.join("\n"), new RegExp(`connect to down\\.example:80 failed: .*\\(HTTP ${kind === "connection-down" ? 503 : 502}\\)`));
    });
  }
});

describe("absolute-form requests on the -D port", () => {
  test("GET http://name:port/path goes to that name with the head rewritten, and the response comes back untouched", async () => {
    const target = await recordingServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    const { listener, session } = await startForward();
    session.open = () => socketTo(target.port);
    const response = await exchange(
      listener.port,
      `POST http://far.example:${target.port}/p?q=1 HTTP/1.1\r\nHost: far.example:${target.port}\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nContent-Length: 4\r\n\r\nbody`,
    );
    assert.equal(response, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["far.example", target.port]]);
    assert.equal(target.received[0]!.toString("latin1"), `POST /p?q=1 HTTP/1.1\r\nHost: far.example:${target.port}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody`);
  });

  test("a keep-alive client's next request on the same connection never reaches the first origin: only the body is passed on", async () => {
    const origin = await wholeRecordingServer(4, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const { listener, session } = await startForward();
    session.open = () => socketTo(origin.port);
    const client = await RawClient.connect(listener.port, { timeoutMs: WAIT_MS, allowHalfOpen: true });
    try {
      client.write(Buffer.from(`POST http://far.example:${origin.port}/p HTTP/1.1\r\nHost: far.example\r\nContent-Length: 4\r\n\r\nbo`, "latin1"));
      await bounded(origin.headSeen, "the origin to see the head", WAIT_MS);
      client.write(Buffer.from("dyGET http://other.example/secret HTTP/1.1\r\nProxy-Authorization: Basic c2VjcmV0\r\n\r\n", "latin1"));
      assert.equal((await client.readToEnd()).toString("latin1"), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } finally {
      client.destroy();
    }
    assert.equal((await bounded(origin.closed, "the origin's connection to close", WAIT_MS)).toString("latin1"), `POST /p HTTP/1.1\r\nHost: far.example:${origin.port}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody`);
    assert.equal(session.calls.length, 1);
  });

  test("a client that sends its request and its FIN at once: the FIN reaches the origin, and everything closes", async () => {
    const echo = await echoServer();
    const { listener, session } = await startForward();
    session.open = () => socketTo(echo);
    const client = await RawClient.connect(listener.port, { timeoutMs: WAIT_MS, allowHalfOpen: true });
    try {
      // One write with the FIN right behind it: the socket has ended before the channel is open.
      client.socket.end(Buffer.from(`GET http://far.example:${echo}/ HTTP/1.1\r\nHost: far.example\r\n\r\n`, "latin1"));
      assert.equal((await client.readToEnd()).toString("latin1"), `GET / HTTP/1.1\r\nHost: far.example:${echo}\r\nConnection: close\r\n\r\n`);
    } finally {
      client.destroy();
    }
  });

  test("a chunked body is 411 with what to do instead, nothing opened, and not counted as a bad client", async () => {
    const { listener, session, stats } = await startForward();
    const { status, body } = statusAndBody(await exchange(listener.port, "POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"));
    assert.equal(status, "HTTP/1.1 411 Length Required");
    assert.equal(body, "a chunked request body is not forwarded: send it with a Content-Length, or use HTTPS (CONNECT)\n");
    assert.deepEqual(session.calls, []);
    assert.equal(stats.protocolErrors, 0);
  });

  test("smuggling-shaped framing is 400 before anything is opened", async () => {
    const { listener, session, stats } = await startForward();
    const { status, body } = statusAndBody(await exchange(listener.port, "POST http://a.example/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"));
    assert.equal(status, "HTTP/1.1 400 Bad Request");
    assert.equal(body, "request body framing refused: both Transfer-Encoding and Content-Length\n");
    assert.deepEqual(session.calls, []);
    assert.equal(stats.protocolErrors, 1);
  });
});

describe("the proxy's own pages", () => {
  test("GET /proxy.pac is the PAC for the address the client reached", async () => {
    const { listener, session } = await startForward();
    const response = await exchange(listener.port, `GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:${listener.port}\r\n\r\n`);
    const body = pacFile({ host: "127.0.0.1", port: listener.port });
    assert.equal(response, `HTTP/1.1 200 OK\r\nContent-Type: application/x-ns-proxy-autoconfig\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    assert.deepEqual(session.calls, []);
  });

  test("GET / is the set-up page; HEAD has no body; POST is 405; another path 404", async () => {
    const { listener } = await startForward();
    const page = statusAndBody(await exchange(listener.port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    assert.equal(page.status, "HTTP/1.1 200 OK");
    assert.ok(page.body.includes(`--socks5-hostname 127.0.0.1:${listener.port}`), page.body);
    assert.equal(statusAndBody(await exchange(listener.port, "HEAD / HTTP/1.1\r\n\r\n")).body, "");
    const post = await exchange(listener.port, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert.match(post, /^HTTP\/1\.1 405 Method Not Allowed\r\n[^]*\r\nAllow: GET, HEAD\r\n/);
    assert.equal(statusAndBody(await exchange(listener.port, "GET /favicon.ico HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 404 Not Found");
  });

  test("a page asked for through a name (DNS rebinding) is 403", async () => {
    const { listener } = await startForward();
    const { status, body } = statusAndBody(await exchange(listener.port, `GET / HTTP/1.1\r\nHost: attacker.example:${listener.port}\r\n\r\n`));
    assert.equal(status, "HTTP/1.1 403 Forbidden");
    assert.match(body, /reached as "attacker\.example"/);
  });
});

describe("bad HTTP clients cost one connection", () => {
  test("garbage after an upper-case first byte is 400 and counted; the port still serves the next client", async () => {
    const { listener, stats, lines } = await startForward();
    assert.equal(statusAndBody(await exchange(listener.port, "HELLO\r\n\r\n")).status, "HTTP/1.1 400 Bad Request");
    assert.equal(stats.protocolErrors, 1);
    assert.match(lines.join("\n"), /dropped client 127\.0\.0\.1:\d+: HTTP 400: malformed request line/);
    assert.equal(statusAndBody(await exchange(listener.port, "GET /proxy.pac HTTP/1.1\r\n\r\n")).status, "HTTP/1.1 200 OK");
  });

  test(`a head over ${MAX_HEAD_BYTES} bytes is 431 without waiting for its end`, async () => {
    const { listener, stats } = await startForward();
    const client = await RawClient.connect(listener.port, { timeoutMs: WAIT_MS, allowHalfOpen: true });
    client.write(`GET http://a.example/ HTTP/1.1\r\nCookie: ${"c".repeat(MAX_HEAD_BYTES + 100)}`);
    const response = (await client.readToEnd()).toString("latin1");
    client.destroy();
    assert.equal(statusAndBody(response).status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert.equal(stats.protocolErrors, 1);
  });

  test("a client that sends half a head and waits gets 408 at the handshake deadline", async () => {
    const { listener } = await startForward({ handshakeTimeoutMs: 200 });
    const response = await bounded(exchange(listener.port, "CONNECT example.org:443 HTTP/1.1\r\n"), "the 408", WAIT_MS);
    assert.deepEqual(statusAndBody(response), { status: "HTTP/1.1 408 Request Timeout", body: "no complete HTTP request within 1 s\n" });
  });
});

describe("--socks-auth on the HTTP side", () => {
  const credentials = { username: Buffer.from("alice"), password: Buffer.from("s3cret") };

  test("no credentials: 407 with a Basic challenge, nothing opened, not counted as a client error", async () => {
    const { listener, session, stats } = await startForward({ credentials });
    const response = await exchange(listener.port, "CONNECT example.org:443 HTTP/1.1\r\n\r\n");
    assert.match(response, /^HTTP\/1\.1 407 Proxy Authentication Required\r\n[^]*\r\nProxy-Authenticate: Basic realm="safetunnel", charset="UTF-8"\r\n\r\n/);
    assert.deepEqual(session.calls, []);
    assert.equal(stats.protocolErrors, 0);
  });

  test("wrong credentials: 407 and counted; right ones: 200", async () => {
    const { listener, session, stats } = await startForward({ credentials });
    const wrong = Buffer.from("alice:nope").toString("base64");
    assert.equal(statusAndBody(await exchange(listener.port, `CONNECT example.org:443 HTTP/1.1\r\nProxy-Authorization: Basic ${wrong}\r\n\r\n`)).status, "HTTP/1.1 407 Proxy Authentication Required");
    assert.equal(stats.protocolErrors, 1);
    const right = Buffer.from("alice:s3cret").toString("base64");
    const client = await RawClient.connect(listener.port, { timeoutMs: WAIT_MS });
    client.write(`CONNECT example.org:443 HTTP/1.1\r\nProxy-Authorization: Basic ${right}\r\n\r\n`);
    assert.equal((await client.read(39)).toString(), "HTTP/1.1 200 Connection established\r\n\r\n");
    client.destroy();
    assert.deepEqual(session.calls.map((c) => c.host), ["example.org"]);
  });
});
