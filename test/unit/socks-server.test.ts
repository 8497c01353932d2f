/**
 * Drives serveSocksSocket over real loopback sockets: a net server runs the
 * handshake, raw client sockets speak bytes at it, and the "channel" handed
 * back by onConnect is a real socket to a far-end server the test controls.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Duplex, PassThrough } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import {
  credentialsMatch,
  MAX_HANDSHAKE_BYTES,
  serveSocksSocket,
  serveSocksStream,
  type ConnectOutcome,
  type SocksClient,
  type SocksCredentials,
  type SocksHandshakeOptions,
} from "../../src/socks/server.ts";
import type { Socks5ReplyCode, SocksRequest } from "../../src/socks/codec.ts";
import { RawClient } from "../helpers/raw-socks.ts";
import { startPairServer } from "../helpers/socket-pair.ts";
import { closeOf, readExactly, readUntilClosed } from "../helpers/sockets.ts";
import { bounded } from "../helpers/wait.ts";
import { memoryPair, MemoryEnd } from "../helpers/memory-duplex.ts";

const WAIT_MS = 5000;

/** Bytes from hex text; blanks are ignored so tests can group fields ("05 01 00"). */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

/** A bounded wait: the test fails with `what` instead of hanging. */
function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  return bounded(promise, what, ms);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Values arriving from callbacks, taken in order by the test. */
class Queue<T> {
  private readonly items: T[] = [];
  private readonly takers: Array<(value: T) => void> = [];

  push(value: T): void {
    const taker = this.takers.shift();
    if (taker) taker(value);
    else this.items.push(value);
  }

  next(what: string): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return within(new Promise<T>((resolve) => this.takers.push(resolve)), what);
  }

  get size(): number {
    return this.items.length;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function listenLoopback(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server, sockets: Iterable<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A raw client on `port` (Nagle off, waits bounded by WAIT_MS), destroyed after the test. */
async function connectClient(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port, { noDelay: true, timeoutMs: WAIT_MS });
  cleanups.push(() => client.destroy());
  return client;
}

/** A loopback server standing in for the far end of a tunnel channel. */
interface FarEnd {
  /** A connected pair: `stream` is what onConnect hands back, `peer` is the far end's socket. */
  open(): Promise<{ stream: Socket; peer: Socket }>;
}

async function startFarEnd(): Promise<FarEnd> {
  const pairs = await startPairServer({ ignoreErrors: true, timeoutMs: WAIT_MS });
  cleanups.push(() => pairs.close());
  return {
    async open() {
      const [stream, peer] = await pairs.pair();
      return { stream, peer };
    },
  };
}

interface ConnectCall {
  request: SocksRequest;
  client: SocksClient;
  signal: AbortSignal;
}

interface Established {
  request: SocksRequest;
  leftover: Buffer;
  stream: Duplex;
}

interface ServerSide {
  socket: Socket;
  /** Every chunk the SOCKS code wrote to the client, in order (write and end). */
  sent: Buffer[];
}

interface SocksHarness {
  port: number;
  connects: Queue<ConnectCall>;
  connectCount: number;
  established: Queue<Established>;
  establishedCount: number;
  protocolErrors: Queue<string>;
  /** Far-end sockets of channels that the default onConnect opened, in order. */
  farPeers: Queue<Socket>;
  serverSides: Queue<ServerSide>;
}

interface HarnessOptions {
  handshakeTimeoutMs?: number;
  /** Require this username and password (--socks-auth). */
  credentials?: SocksCredentials;
  /** Replaces the default onConnect, which opens a channel to the far end and succeeds. */
  onConnect?: (call: ConnectCall, far: FarEnd) => Promise<ConnectOutcome>;
}

/**
 * One SOCKS listener on 127.0.0.1 running serveSocksSocket with recording
 * callbacks. onEstablished joins the socket and the stream with plain pipe()
 * (pipe.ts has its own tests) after writing the leftover bytes first.
 */
async function startSocks(options: HarnessOptions = {}): Promise<SocksHarness> {
  const far = await startFarEnd();
  const sockets = new Set<Socket>();
  const harness: SocksHarness = {
    port: 0,
    connects: new Queue(),
    connectCount: 0,
    established: new Queue(),
    establishedCount: 0,
    protocolErrors: new Queue(),
    farPeers: new Queue(),
    serverSides: new Queue(),
  };
  const handshakeOptions: SocksHandshakeOptions = {
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    async onConnect(request, client, signal) {
      harness.connectCount++;
      const call = { request, client, signal };
      harness.connects.push(call);
      if (options.onConnect) return options.onConnect(call, far);
      const { stream, peer } = await far.open();
      harness.farPeers.push(peer);
      return { ok: true, stream };
    },
    onEstablished(socket, stream, request, leftover) {
      harness.establishedCount++;
      harness.established.push({ request, leftover: Buffer.from(leftover), stream });
      stream.on("error", () => {});
      if (leftover.length > 0) stream.write(leftover);
      socket.pipe(stream);
      stream.pipe(socket);
      socket.on("close", () => stream.destroy());
      stream.on("close", () => socket.destroy());
    },
    onProtocolError(_client, reason) {
      harness.protocolErrors.push(reason);
    },
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const sent: Buffer[] = [];
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    const end = socket.end.bind(socket) as (...args: unknown[]) => Socket;
    socket.write = ((...args: unknown[]) => {
      if (args[0] instanceof Uint8Array) sent.push(Buffer.from(args[0]));
      return write(...args);
    }) as unknown as Socket["write"];
    socket.end = ((...args: unknown[]) => {
      if (args[0] instanceof Uint8Array) sent.push(Buffer.from(args[0]));
      return end(...args);
    }) as unknown as Socket["end"];
    harness.serverSides.push({ socket, sent });
    serveSocksSocket(socket, handshakeOptions);
  });
  harness.port = await listenLoopback(server);
  cleanups.push(() => closeServer(server, sockets));
  return harness;
}

const GREETING = hex("05 01 00");
const METHOD_NO_AUTH = "0500";
const V5_SUCCESS = "05000001000000000000";
const V4_GRANTED = "005a000000000000";
const V4_REJECTED = "005b000000000000";

function socks5Connect(name: string, port: number, command = 0x01): Buffer {
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, command, 0, 3, name.length]), Buffer.from(name, "latin1"), portBytes]);
}

function socks4aConnect(name: string, port: number, userId = "", command = 0x01): Buffer {
  const head = Buffer.from([4, command, port >> 8, port & 0xff, 0, 0, 0, 1]);
  return Buffer.concat([head, Buffer.from(`${userId}\0${name}\0`, "latin1")]);
}

function socks4Connect(ip: number[], port: number, userId = "", command = 0x01): Buffer {
  const head = Buffer.from([4, command, port >> 8, port & 0xff, ...ip]);
  return Buffer.concat([head, Buffer.from(`${userId}\0`, "latin1")]);
}

/** Greeting, then the request once the method reply has arrived, as well-behaved clients do. */
async function socks5Handshake(client: RawClient, request: Buffer): Promise<void> {
  await client.write(GREETING);
  assert.equal((await client.bytes(2, "the method reply")).toString("hex"), METHOD_NO_AUTH);
  await client.write(request);
}

/** Resolves when the far end has read everything and seen end of stream (or the socket is gone). */
function endOf(socket: Socket): Promise<void> {
  socket.resume();
  return new Promise((resolve) => {
    socket.once("end", () => resolve());
    socket.once("close", () => resolve());
  });
}

/** Data written at either end arrives unchanged at the other. */
async function assertDataFlows(client: RawClient, peer: Socket, replyLength: number): Promise<void> {
  const up = readExactly(peer, 4, "the far end to receive the client's bytes", WAIT_MS);
  await client.write("ping");
  assert.equal((await up).toString(), "ping");
  peer.write("pong");
  await client.bytes(replyLength + 4, "the client to receive the far end's bytes");
  assert.equal(client.received.subarray(replyLength).toString(), "pong");
}

describe("serveSocksSocket: successful CONNECT", () => {
  test("answers a SOCKS5 CONNECT with 05 00 then 05 00 00 01 00000000 0000 and carries data both ways", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 443));

    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request, {
      version: 5,
      command: "connect",
      commandCode: 1,
      destination: { kind: "name", host: "example.org", port: 443 },
    });
    assert.deepEqual(call.client, {
      address: "127.0.0.1",
      port: client.socket.localPort,
      localAddress: "127.0.0.1",
      localPort: socks.port,
    });
    assert.equal(call.signal.aborted, false);

    await client.bytes(12, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
    const established = await socks.established.next("onEstablished");
    assert.equal(established.leftover.length, 0);
    assert.deepEqual(established.request, call.request);

    await assertDataFlows(client, await socks.farPeers.next("the far end"), 12);
    assert.equal(socks.connectCount, 1);
    assert.equal(socks.protocolErrors.size, 0);
  });

  test("answers a SOCKS4a CONNECT with 00 5A 00 00 00 00 00 00 and carries data both ways", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(socks4aConnect("example.org", 80, "alice"));

    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request, {
      version: 4,
      command: "connect",
      commandCode: 1,
      destination: { kind: "name", host: "example.org", port: 80 },
      userId: "alice",
      socks4a: true,
    });
    await client.bytes(8, "the SOCKS4 reply");
    assert.equal(client.received.toString("hex"), V4_GRANTED);
    await assertDataFlows(client, await socks.farPeers.next("the far end"), 8);
  });

  test("hands a SOCKS4 CONNECT to an IPv4 address to onConnect as an ipv4 destination", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(socks4Connect([192, 0, 2, 1], 8080, "bob"));
    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request.destination, { kind: "ipv4", host: "192.0.2.1", port: 8080 });
    assert.equal(call.request.socks4a, false);
    await client.bytes(8, "the SOCKS4 reply");
    assert.equal(client.received.toString("hex"), V4_GRANTED);
  });

  test("sends nothing but the method reply while onConnect is pending", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 443));
    const side = await socks.serverSides.next("the accepted socket");
    await socks.connects.next("onConnect");

    assert.deepEqual(side.sent.map((b) => b.toString("hex")), [METHOD_NO_AUTH]);
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH);
    assert.equal(socks.establishedCount, 0);

    pending.resolve({ ok: false, reply: 0x05 });
    await client.serverClosed("after the refusal");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05050001000000000000`);
    assert.deepEqual(side.sent.map((b) => b.toString("hex")), [METHOD_NO_AUTH, "05050001000000000000"]);
  });

  test("a SOCKS4 client gets no reply while onConnect is pending", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await client.write(socks4aConnect("example.org", 443));
    const side = await socks.serverSides.next("the accepted socket");
    await socks.connects.next("onConnect");
    assert.deepEqual(side.sent, []);
    assert.equal(client.received.length, 0);
    pending.resolve({ ok: false, reply: 0x04 });
    await client.serverClosed("after the refusal");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
  });
});

describe("serveSocksSocket: refused CONNECT", () => {
  /** The destination port picks the outcome: 0 makes onConnect reject, anything else is the REP code. */
  const byPort = (call: ConnectCall): Promise<ConnectOutcome> =>
    call.request.destination.port === 0
      ? Promise.reject(new Error("onConnect blew up"))
      : Promise.resolve({ ok: false, reply: call.request.destination.port as Socks5ReplyCode });

  test("answers each SOCKS5 failure outcome with its exact REP code and closes", async () => {
    const socks = await startSocks({ onConnect: byPort });
    for (const code of [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]) {
      const client = await connectClient(socks.port);
      await socks5Handshake(client, socks5Connect("example.org", code));
      await client.serverClosed(`after REP 0x0${code}`);
      assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}050${code}0001000000000000`, `REP 0x0${code}`);
    }
    assert.equal(socks.establishedCount, 0);
  });

  test("answers 05 01 when onConnect rejects", async () => {
    const socks = await startSocks({ onConnect: byPort });
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 0));
    await client.serverClosed("after the failure");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05010001000000000000`);
  });

  test("answers every SOCKS4 failure outcome, and a rejected onConnect, with 00 5B 00 00 00 00 00 00 and closes", async () => {
    const socks = await startSocks({ onConnect: byPort });
    for (const code of [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]) {
      for (const request of [socks4aConnect("example.org", code), socks4Connect([10, 0, 0, 1], code)]) {
        const client = await connectClient(socks.port);
        await client.write(request);
        await client.serverClosed(`after outcome ${code}`);
        assert.equal(client.received.toString("hex"), V4_REJECTED, `outcome ${code}`);
      }
    }
    assert.equal(socks.establishedCount, 0);
  });
});

describe("serveSocksSocket: unsupported requests", () => {
  test("refuses BIND and UDP ASSOCIATE with 05 07 00 01 00000000 0000, closes, and never calls onConnect", async () => {
    const socks = await startSocks();
    for (const [command, name] of [[0x02, "BIND"], [0x03, "UDP-ASSOCIATE"]] as const) {
      const client = await connectClient(socks.port);
      await socks5Handshake(client, socks5Connect("example.org", 443, command));
      await client.serverClosed(name);
      assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05070001000000000000`);
      const reason = await socks.protocolErrors.next("onProtocolError");
      assert.match(reason, new RegExp(`SOCKS5 command ${name} is not supported`));
    }
    assert.equal(socks.connectCount, 0);
  });

  test("refuses an unknown SOCKS5 command with 05 07 and names the byte", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 443, 0x09));
    await client.serverClosed("unknown command");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05070001000000000000`);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /command 0x9 is not supported/);
    assert.equal(socks.connectCount, 0);
  });

  test("refuses SOCKS4 BIND with 00 5B and never calls onConnect", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(socks4aConnect("example.org", 21, "", 0x02));
    await client.serverClosed("SOCKS4 BIND");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /SOCKS4 command BIND is not supported/);
    assert.equal(socks.connectCount, 0);
  });

  test("answers a greeting without 'no authentication' with 05 FF and closes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(hex("05 01 02"));
    await client.serverClosed("no acceptable method");
    assert.equal(client.received.toString("hex"), "05ff");
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no method we accept/);
    assert.equal(socks.connectCount, 0);
  });

  test("answers a greeting with zero methods with 05 FF and closes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(hex("05 00"));
    await client.serverClosed("zero methods");
    assert.equal(client.received.toString("hex"), "05ff");
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no methods/);
  });

  test("answers an unknown address type with 05 08 00 01 00000000 0000 and closes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await socks5Handshake(client, hex("05 01 00 02 00000000 0050"));
    await client.serverClosed("unknown ATYP");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05080001000000000000`);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /unknown address type 0x02/);
    assert.equal(socks.connectCount, 0);
  });

  test("answers an empty host name with 05 01 and closes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await socks5Handshake(client, hex("05 01 00 03 00 0050"));
    await client.serverClosed("empty name");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05010001000000000000`);
    assert.equal(socks.connectCount, 0);
  });
});

describe("serveSocksSocket: not SOCKS at all", () => {
  test("closes without a reply when the first byte is garbage", async () => {
    const socks = await startSocks();
    for (const [bytes, first] of [[hex("00 01 02 03"), "0x00"], [hex("ff"), "0xff"], [Buffer.from("\x01hello"), "0x01"]] as const) {
      const client = await connectClient(socks.port);
      await client.write(bytes);
      await client.serverClosed(`first byte ${first}`);
      assert.equal(client.received.length, 0);
      assert.equal(await socks.protocolErrors.next("onProtocolError"), `not a SOCKS request (first byte ${first})`);
    }
    assert.equal(socks.connectCount, 0);
  });

  test("closes without a reply on an HTTP CONNECT line and says the client spoke HTTP", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n");
    await client.serverClosed("HTTP CONNECT");
    assert.equal(client.received.length, 0);
    const reason = await socks.protocolErrors.next("onProtocolError");
    assert.match(reason, /HTTP/);
    assert.match(reason, /SOCKS v5 proxy/);
    assert.equal(socks.connectCount, 0);
  });

  test("closes without a reply on an HTTP GET and on a TLS ClientHello, naming each", async () => {
    const socks = await startSocks();
    const http = await connectClient(socks.port);
    await http.write("GET http://example.org/ HTTP/1.1\r\n\r\n");
    await http.serverClosed("HTTP GET");
    assert.equal(http.received.length, 0);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /spoke HTTP/);

    const tls = await connectClient(socks.port);
    await tls.write(hex("16 03 01 00 a5 01 00 00 a1 03 03"));
    await tls.serverClosed("TLS");
    assert.equal(tls.received.length, 0);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /spoke TLS/);
  });
});

describe("serveSocksSocket: bounded handshakes", () => {
  test("refuses a SOCKS4 USERID longer than 255 bytes with 00 5B and closes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(Buffer.concat([hex("04 01 0050 7f000001"), Buffer.alloc(300, 0x75)]));
    await client.serverClosed("over-long USERID");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /USERID is too long/);
    assert.equal(socks.connectCount, 0);
  });

  test("refuses a SOCKS4 USERID that grows past 255 bytes over several writes", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(hex("04 01 0050 7f000001"));
    for (let i = 0; i < 4; i++) {
      await client.write(Buffer.alloc(100, 0x75));
      if (client.ended) break;
    }
    await client.serverClosed("over-long USERID in pieces");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /USERID is too long/);
  });

  test(`drops a handshake of more than ${MAX_HANDSHAKE_BYTES} bytes without a NUL and never calls onConnect`, async () => {
    assert.equal(MAX_HANDSHAKE_BYTES, 1024);
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    // The bytes may reach the server in one chunk (the 1024-byte cap) or several (the codec's 255-byte cap).
    client.socket.write(Buffer.concat([hex("04 01 0050 00000001"), Buffer.alloc(2000, 0x75)]));
    await client.serverClosed("oversized handshake");
    assert.match(await socks.protocolErrors.next("onProtocolError"), /USERID is too long|handshake longer than 1024 bytes/);
    assert.equal(socks.connectCount, 0);
  });

  test("a SOCKS4a request with two 255-byte fields is still accepted", async () => {
    const socks = await startSocks({ onConnect: () => Promise.resolve({ ok: false, reply: 0x02 }) });
    const client = await connectClient(socks.port);
    const name = `${"h".repeat(251)}.org`;
    await client.write(socks4aConnect(name, 80, "u".repeat(255)));
    const call = await socks.connects.next("onConnect");
    assert.equal(call.request.destination.host, name);
    assert.equal(call.request.userId, "u".repeat(255));
    await client.serverClosed("refusal");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
  });

  test("closes a client that sends no complete request within handshakeTimeoutMs", async () => {
    const socks = await startSocks({ handshakeTimeoutMs: 200 });
    const silent = await connectClient(socks.port);
    await silent.serverClosed("a silent client");
    assert.equal(silent.received.length, 0);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no complete SOCKS request/);

    const partial = await connectClient(socks.port);
    await partial.write(GREETING);
    await partial.write(hex("05 01 00 03 0b 6578616d706c65"));
    await partial.serverClosed("a client stuck mid-request");
    assert.equal(partial.received.toString("hex"), METHOD_NO_AUTH);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no complete SOCKS request/);
    assert.equal(socks.connectCount, 0);
  });

  test("the handshake deadline no longer applies once onConnect has been called", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ handshakeTimeoutMs: 200, onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 443));
    await socks.connects.next("onConnect");
    // A client that connects later times out later: once it has, the first client's deadline has passed too.
    const later = await connectClient(socks.port);
    await later.serverClosed("the later client to time out");
    assert.equal(socks.protocolErrors.size, 1);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no complete SOCKS request/);
    assert.equal(client.ended || client.closed, false);
    pending.resolve({ ok: false, reply: 0x03 });
    await client.serverClosed("the refusal");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05030001000000000000`);
  });
});

describe("serveSocksSocket: how bytes arrive", () => {
  test("accepts a SOCKS5 greeting and request written one byte at a time", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    for (const byte of GREETING) await client.write(Buffer.from([byte]));
    await client.bytes(2, "the method reply");
    for (const byte of socks5Connect("example.org", 443)) {
      await client.write(Buffer.from([byte]));
      await nextTurn();
    }
    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request.destination, { kind: "name", host: "example.org", port: 443 });
    await client.bytes(12, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
    await assertDataFlows(client, await socks.farPeers.next("the far end"), 12);
  });

  test("accepts a SOCKS4a request written one byte at a time", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    for (const byte of socks4aConnect("example.org", 443, "me")) {
      await client.write(Buffer.from([byte]));
      await nextTurn();
    }
    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request.destination, { kind: "name", host: "example.org", port: 443 });
    assert.equal(call.request.userId, "me");
    await client.bytes(8, "the SOCKS4 reply");
    assert.equal(client.received.toString("hex"), V4_GRANTED);
  });

  test("hands a payload pipelined with the greeting and request to onEstablished as leftover", async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(Buffer.concat([GREETING, socks5Connect("example.org", 80), Buffer.from("GET / HTTP/1.0\r\n\r\n")]));
    const established = await socks.established.next("onEstablished");
    assert.equal(established.leftover.toString(), "GET / HTTP/1.0\r\n\r\n");
    const peer = await socks.farPeers.next("the far end");
    assert.equal((await readExactly(peer, 18, "the pipelined payload", WAIT_MS)).toString(), "GET / HTTP/1.0\r\n\r\n");
    await client.bytes(12, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
  });

  test("a SOCKS4a payload pipelined with the request reaches the stream ahead of later bytes", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await client.write(Buffer.concat([socks4aConnect("example.org", 80), Buffer.from("first,")]));
    await socks.connects.next("onConnect");
    // Sent while the channel is still opening: held until the tunnel is up.
    await client.write("second");
    const far = await startFarEnd();
    const { stream, peer } = await far.open();
    const arriving = readExactly(peer, 12, "both payloads", WAIT_MS);
    pending.resolve({ ok: true, stream });
    assert.equal((await arriving).toString(), "first,second");
    assert.equal((await socks.established.next("onEstablished")).leftover.toString(), "first,");
    await client.bytes(8, "the SOCKS4 reply");
    assert.equal(client.received.toString("hex"), V4_GRANTED);
  });

  test(`delivers a pipelined payload larger than ${MAX_HANDSHAKE_BYTES} bytes sent with the request in one write`, async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    const payload = Buffer.alloc(4000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    await client.write(Buffer.concat([GREETING, socks5Connect("example.org", 443), payload]));
    const peer = await socks.farPeers.next("onConnect to open the channel");
    assert.deepEqual(await readExactly(peer, payload.length, "the pipelined payload", WAIT_MS), payload);
    await client.bytes(12, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
  });

  test(`delivers an optimistic payload larger than ${MAX_HANDSHAKE_BYTES} bytes written with the request after the method reply`, async () => {
    const socks = await startSocks();
    const client = await connectClient(socks.port);
    await client.write(GREETING);
    await client.bytes(2, "the method reply");
    // A TLS ClientHello with a post-quantum key share is about 1.8 KB.
    const payload = Buffer.alloc(1800);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 0xff;
    await client.write(Buffer.concat([socks5Connect("example.org", 443), payload]));
    const peer = await socks.farPeers.next("onConnect to open the channel");
    assert.deepEqual(await readExactly(peer, payload.length, "the optimistic payload", WAIT_MS), payload);
    await client.bytes(12, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
  });
});

describe("serveSocksSocket: the client", () => {
  test("onConnect gets the client's address and port and the listener's, and nothing else, for SOCKS5 and SOCKS4 alike", async () => {
    const socks = await startSocks();
    const five = await connectClient(socks.port);
    await socks5Handshake(five, socks5Connect("example.org", 443));
    const fiveCall = await socks.connects.next("SOCKS5 onConnect");
    assert.deepEqual(fiveCall.client, { address: "127.0.0.1", port: five.socket.localPort, localAddress: "127.0.0.1", localPort: socks.port });
    const four = await connectClient(socks.port);
    await four.write(socks4aConnect("example.org", 80));
    const fourCall = await socks.connects.next("SOCKS4a onConnect");
    assert.deepEqual(fourCall.client, { address: "127.0.0.1", port: four.socket.localPort, localAddress: "127.0.0.1", localPort: socks.port });
  });
});

describe("serveSocksSocket: clients that go away", () => {
  test("aborts the signal when the client resets during onConnect, and destroys a stream resolved afterwards", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await socks5Handshake(client, socks5Connect("example.org", 443));
    const call = await socks.connects.next("onConnect");
    assert.equal(call.signal.aborted, false);
    const aborted = new Promise<void>((resolve) => call.signal.addEventListener("abort", () => resolve(), { once: true }));
    client.socket.resetAndDestroy();
    await within(aborted, "the signal to abort after the client reset");

    const far = await startFarEnd();
    const { stream, peer } = await far.open();
    const streamClosed = closeOf(stream);
    const peerEnded = endOf(peer);
    pending.resolve({ ok: true, stream });
    await within(streamClosed, "the late stream to be destroyed");
    assert.equal(stream.destroyed, true);
    await within(peerEnded, "the far end to see the late stream closed");
    assert.equal(socks.establishedCount, 0);
  });

  test("keeps a request whose client half-closes during onConnect: reply, payload and answer all get through", async () => {
    const pending = deferred<ConnectOutcome>();
    const socks = await startSocks({ onConnect: () => pending.promise });
    const client = await connectClient(socks.port);
    await client.write(GREETING);
    await client.bytes(2, "the method reply");
    await client.write(Buffer.concat([socks5Connect("example.org", 80), Buffer.from("GET / HTTP/1.0\r\n\r\n")]));
    const call = await socks.connects.next("onConnect");
    await new Promise<void>((resolve) => client.socket.end(() => resolve()));

    const far = await startFarEnd();
    const { stream, peer } = await far.open();
    const upload = readUntilClosed(peer);
    pending.resolve({ ok: true, stream });
    assert.equal((await within(upload, "the payload and the client's end at the far end")).toString(), "GET / HTTP/1.0\r\n\r\n");
    assert.equal(call.signal.aborted, false);
    peer.end("HTTP/1.0 200 OK\r\n\r\n");
    await client.serverClosed("the answer and the end");
    assert.equal(client.received.toString("latin1"), `${hex(METHOD_NO_AUTH + V5_SUCCESS).toString("latin1")}HTTP/1.0 200 OK\r\n\r\n`);
    assert.equal(socks.protocolErrors.size, 0);
  });

  test("drops a client that closes mid-handshake at once, without waiting for the deadline", async () => {
    const socks = await startSocks({ handshakeTimeoutMs: 60_000 });
    const client = await connectClient(socks.port);
    await client.write(GREETING);
    await client.bytes(2, "the method reply");
    await client.write(hex("05 01 00 03 0b 6578"));
    client.socket.end();
    await client.serverClosed("the half-closed client");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH);
    assert.equal(
      await socks.protocolErrors.next("onProtocolError"),
      "client closed the connection before sending a complete SOCKS request",
    );
    assert.equal(socks.connectCount, 0);

    const sock4 = await connectClient(socks.port);
    await sock4.write(hex("04 01 0050"));
    sock4.socket.end();
    await sock4.serverClosed("the half-closed SOCKS4 client");
    assert.equal(sock4.received.length, 0);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /client closed the connection/);
  });

  test("a bare connect-and-close is closed quietly, not reported as a protocol error", async () => {
    const socks = await startSocks({ handshakeTimeoutMs: 60_000 });
    const client = await connectClient(socks.port);
    client.socket.end();
    await client.serverClosed("the probe");
    assert.equal(client.received.length, 0);
    // A later, broken client is reported: the probe before it was not.
    const broken = await connectClient(socks.port);
    await broken.write(hex("00"));
    await broken.serverClosed("the broken client");
    assert.equal(await socks.protocolErrors.next("onProtocolError"), "not a SOCKS request (first byte 0x00)");
    assert.equal(socks.protocolErrors.size, 0);
    assert.equal(socks.connectCount, 0);
  });

  test("client resets at every stage never crash the process and the server keeps serving", async () => {
    const socks = await startSocks();

    const duringGreeting = await connectClient(socks.port);
    await duringGreeting.write(hex("05"));
    duringGreeting.socket.resetAndDestroy();

    const afterGreeting = await connectClient(socks.port);
    await afterGreeting.write(GREETING);
    await afterGreeting.bytes(2, "the method reply");
    await afterGreeting.write(hex("05 01 00 03"));
    afterGreeting.socket.resetAndDestroy();

    const refused = await connectClient(socks.port);
    await refused.write(hex("05 01 02"));
    refused.socket.resetAndDestroy();

    const streaming = await connectClient(socks.port);
    await socks5Handshake(streaming, socks5Connect("example.org", 443));
    const peer = await socks.farPeers.next("the far end");
    await streaming.bytes(12, "the success reply");
    const peerClosed = closeOf(peer);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    peer.write(chunk);
    await streaming.bytes(12 + 1, "streamed data");
    streaming.socket.resetAndDestroy();
    for (let i = 0; i < 32 && !peer.destroyed && peer.writable; i++) peer.write(chunk);
    await within(peerClosed, "the far end to be closed after the client reset");

    for (const client of [duringGreeting, afterGreeting, refused, streaming]) {
      await client.until(() => client.closed, "the reset client to close");
    }

    const fresh = await connectClient(socks.port);
    await socks5Handshake(fresh, socks5Connect("example.org", 443));
    await fresh.bytes(12, "the success reply");
    assert.equal(fresh.received.toString("hex"), METHOD_NO_AUTH + V5_SUCCESS);
    await assertDataFlows(fresh, await socks.farPeers.next("the far end"), 12);
  });
});

// ---------------------------------------------------------------------------
// serveSocksStream: the same handshake on a Duplex that is not a socket
// ---------------------------------------------------------------------------

/** `[client, server]`: the test speaks SOCKS on `client`; `server` is handed to serveSocksStream. */
function serverPair(): [MemoryEnd, MemoryEnd] {
  const [client, server] = memoryPair();
  cleanups.push(() => {
    client.destroy();
  });
  return [client, server];
}

/** Waits (bounded) until `end` has read at least `n` bytes; returns them all as hex. */
async function receivedHex(end: MemoryEnd, n: number, what: string): Promise<string> {
  await within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (end.received.length >= n) {
          end.off("data", check);
          resolve();
        }
      };
      end.on("data", check);
      check();
    }),
    what,
  );
  return end.received.toString("hex");
}

/** Waits (bounded) until `end` has read its peer's EOF. */
async function endedOf(end: MemoryEnd, what: string): Promise<void> {
  if (end.ended) return;
  await within(once(end, "end"), what);
}

/** The far side of a channel, as forward/remote-dynamic.ts describes it: an origin on the server, the -R port. */
const FAR_CLIENT: SocksClient = { address: "127.0.0.1", port: 51234, localAddress: "localhost", localPort: 1080 };

interface StreamHarness {
  connects: Queue<ConnectCall>;
  established: Queue<Established & { connection: Duplex }>;
  protocolErrors: Queue<string>;
}

/** serveSocksStream on `server` with recording callbacks; onConnect defaults to success with a PassThrough. */
function serveMemory(
  server: MemoryEnd,
  options: { handshakeTimeoutMs?: number; credentials?: SocksCredentials; onConnect?: (call: ConnectCall) => Promise<ConnectOutcome> } = {},
): StreamHarness {
  const harness: StreamHarness = { connects: new Queue(), established: new Queue(), protocolErrors: new Queue() };
  serveSocksStream(server, FAR_CLIENT, {
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    async onConnect(request, client, signal) {
      const call = { request, client, signal };
      harness.connects.push(call);
      return options.onConnect ? options.onConnect(call) : { ok: true, stream: new PassThrough() };
    },
    onEstablished(connection, stream, request, leftover) {
      harness.established.push({ connection, stream, request, leftover: Buffer.from(leftover) });
    },
    onProtocolError(_client, reason) {
      harness.protocolErrors.push(reason);
    },
  });
  return harness;
}

describe("serveSocksStream: the handshake on a Duplex that is not a socket", () => {
  test("answers a SOCKS5 CONNECT with 05 00 then 05 00 00 01 00000000 0000 and hands back the same stream, the caller's client and the pipelined bytes", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server);
    client.write(GREETING);
    assert.equal(await receivedHex(client, 2, "the method reply"), METHOD_NO_AUTH);
    client.write(Buffer.concat([socks5Connect("localhost", 8080), Buffer.from("GET / HTTP/1.0\r\n\r\n")]));

    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request.destination, { kind: "name", host: "localhost", port: 8080 });
    assert.deepEqual(call.client, FAR_CLIENT);
    assert.equal(await receivedHex(client, 12, "the success reply"), METHOD_NO_AUTH + V5_SUCCESS);
    const established = await socks.established.next("onEstablished");
    assert.equal(established.connection, server);
    assert.equal(established.leftover.toString(), "GET / HTTP/1.0\r\n\r\n");
    assert.equal(socks.protocolErrors.size, 0);
  });

  test("lets go of the stream once it is answered: none of its data, end or close listeners stay for the tunnel's life", async () => {
    // Each listener it left would keep the handshake (its timer, abort controller and buffer) alive while the tunnel is open: measured, 5 KB of RSS a tunnel.
    const [client, server] = serverPair();
    const before = (["data", "end", "close"] as const).map((event) => server.listenerCount(event));
    const socks = serveMemory(server);
    assert.deepEqual((["data", "end", "close"] as const).map((event) => server.listenerCount(event) > 0), [true, true, true]);
    client.write(Buffer.concat([GREETING, socks5Connect("localhost", 8080)]));
    await socks.established.next("onEstablished");
    assert.deepEqual((["data", "end", "close"] as const).map((event) => server.listenerCount(event)), before);
  });

  test("answers a SOCKS4a CONNECT with 00 5A 00 00 00 00 00 00", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server);
    client.write(socks4aConnect("example.org", 80));
    assert.deepEqual((await socks.connects.next("onConnect")).request.destination, { kind: "name", host: "example.org", port: 80 });
    assert.equal(await receivedHex(client, 8, "the SOCKS4 reply"), V4_GRANTED);
  });

  test("answers each SOCKS5 failure outcome with its exact REP code, then ends the stream", async () => {
    for (const code of [0x01, 0x02, 0x03, 0x04, 0x05] as Socks5ReplyCode[]) {
      const [client, server] = serverPair();
      const socks = serveMemory(server, { onConnect: async () => ({ ok: false, reply: code }) });
      client.write(GREETING);
      await receivedHex(client, 2, "the method reply");
      client.write(socks5Connect("example.org", 443));
      await endedOf(client, `the end of the stream after REP 0x0${code}`);
      assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}050${code}0001000000000000`, `REP 0x0${code}`);
      assert.equal(socks.established.size, 0);
    }
  });

  test("answers a refused SOCKS4 CONNECT to an IP address with 00 5B 00 00 00 00 00 00, then ends the stream", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server, { onConnect: async () => ({ ok: false, reply: 0x02 }) });
    client.write(socks4Connect([192, 0, 2, 1], 80));
    assert.deepEqual((await socks.connects.next("onConnect")).request.destination, { kind: "ipv4", host: "192.0.2.1", port: 80 });
    await endedOf(client, "the end of the stream after the refusal");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
  });

  test("refuses BIND with 05 07 00 01 00000000 0000 and never calls onConnect", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server);
    client.write(GREETING);
    await receivedHex(client, 2, "the method reply");
    client.write(socks5Connect("example.org", 443, 0x02));
    await endedOf(client, "the end of the stream after the refusal");
    assert.equal(client.received.toString("hex"), `${METHOD_NO_AUTH}05070001000000000000`);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /BIND is not supported/);
    assert.equal(socks.connects.size, 0);
  });

  test(`refuses a SOCKS4 request of more than ${MAX_HANDSHAKE_BYTES} bytes without a NUL with 00 5B and never calls onConnect`, async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server);
    client.write(Buffer.concat([hex("04 01 0050 0a000001"), Buffer.alloc(MAX_HANDSHAKE_BYTES + 1, 0x75)]));
    await endedOf(client, "the end of an overlong handshake");
    assert.equal(client.received.toString("hex"), V4_REJECTED);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /USERID is too long/);
    assert.equal(socks.connects.size, 0);
  });

  test("ends a stream that sends no complete request within handshakeTimeoutMs, with no reply", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server, { handshakeTimeoutMs: 200 });
    client.write(GREETING);
    await endedOf(client, "the deadline to end the stream");
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no complete SOCKS request within 200 ms/);
  });

  test("a stream that reports 'close' during onConnect without being destroyed (as an ssh2 channel does) aborts the signal and gets nothing more", async () => {
    const pending = deferred<ConnectOutcome>();
    const [client, server] = serverPair();
    const socks = serveMemory(server, { onConnect: () => pending.promise });
    client.write(GREETING);
    await receivedHex(client, 2, "the method reply");
    client.write(socks5Connect("example.org", 443));
    const call = await socks.connects.next("onConnect");
    server.emit("close");
    assert.equal(server.destroyed, false);
    assert.equal(call.signal.aborted, true);

    const late = new PassThrough();
    pending.resolve({ ok: true, stream: late });
    await within(once(late, "close"), "the late stream to be destroyed");
    await nextTurn();
    assert.equal(client.received.toString("hex"), METHOD_NO_AUTH);
    assert.equal(socks.established.size, 0);
  });
});

// ---------------------------------------------------------------------------
// --socks-auth: RFC 1929 username/password before the request
// ---------------------------------------------------------------------------

const ALICE: SocksCredentials = { username: Buffer.from("alice"), password: Buffer.from("s3:cret pw") };
/** The greeting curl sends with --proxy-user: no authentication and username/password. */
const GREETING_WITH_AUTH = hex("05 02 00 02");
const METHOD_USERPASS = "0502";
const AUTH_OK = "0100";
const AUTH_FAILED = "0101";

/** RFC 1929 request: 01 ULEN UNAME PLEN PASSWD. */
function userPass(username: string | Buffer, password: string | Buffer): Buffer {
  const user = Buffer.from(username);
  const pass = Buffer.from(password);
  return Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]);
}

describe("serveSocksSocket: username and password required (credentials)", () => {
  test("chooses 02 from 05 02 00 02, answers the right username and password with 01 00, then carries the CONNECT as before", async () => {
    const socks = await startSocks({ credentials: ALICE });
    const client = await connectClient(socks.port);
    await client.write(GREETING_WITH_AUTH);
    assert.equal((await client.bytes(2, "the method reply")).toString("hex"), METHOD_USERPASS);
    await client.write(userPass("alice", "s3:cret pw"));
    assert.equal((await client.bytes(4, "the auth status")).toString("hex"), METHOD_USERPASS + AUTH_OK);
    await client.write(socks5Connect("example.org", 443));
    const call = await socks.connects.next("onConnect");
    assert.deepEqual(call.request.destination, { kind: "name", host: "example.org", port: 443 });
    await client.bytes(14, "the success reply");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS + AUTH_OK + V5_SUCCESS);
    const side = await socks.serverSides.next("the accepted socket");
    assert.deepEqual(side.sent.map((b) => b.toString("hex")), [METHOD_USERPASS, AUTH_OK, V5_SUCCESS]);
    await assertDataFlows(client, await socks.farPeers.next("the far end"), 14);
    assert.equal(socks.protocolErrors.size, 0);
  });

  test("never chooses 'no authentication', even when the client offers it first", async () => {
    const socks = await startSocks({ credentials: ALICE });
    const client = await connectClient(socks.port);
    await client.write(hex("05 03 00 01 02"));
    assert.equal((await client.bytes(2, "the method reply")).toString("hex"), METHOD_USERPASS);
  });

  test("answers a greeting without 02 with 05 FF, closes, names the fix and never calls onConnect", async () => {
    const socks = await startSocks({ credentials: ALICE });
    for (const greeting of [GREETING, hex("05 02 00 01"), hex("05 01 03")]) {
      const client = await connectClient(socks.port);
      await client.write(Buffer.concat([greeting, socks5Connect("example.org", 443)]));
      await client.serverClosed(`greeting ${greeting.toString("hex")}`);
      assert.equal(client.received.toString("hex"), "05ff");
      const reason = await socks.protocolErrors.next("onProtocolError");
      assert.match(reason, /no username\/password authentication \(SOCKS5 method 0x02\)/);
      assert.match(reason, /--socks-auth/);
    }
    assert.equal(socks.connectCount, 0);
  });

  test("answers a wrong password, a wrong username, a longer or shorter password and empty fields with 01 01 and closes, repeating none of them", async () => {
    const socks = await startSocks({ credentials: ALICE });
    const attempts: Array<[string, string]> = [
      ["alice", "s3:cret pX"],
      ["alicf", "s3:cret pw"],
      ["alice", "s3:cret pw!"],
      ["alice", "s3:cret p"],
      ["alice", ""],
      ["", "s3:cret pw"],
      ["s3:cret pw", "alice"],
    ];
    for (const [user, pass] of attempts) {
      const client = await connectClient(socks.port);
      await client.write(GREETING_WITH_AUTH);
      await client.bytes(2, "the method reply");
      // The request is pipelined: it must not reach onConnect.
      await client.write(Buffer.concat([userPass(user, pass), socks5Connect("example.org", 443)]));
      await client.serverClosed(`after ${JSON.stringify([user, pass])}`);
      assert.equal(client.received.toString("hex"), METHOD_USERPASS + AUTH_FAILED, JSON.stringify([user, pass]));
      const reason = await socks.protocolErrors.next("onProtocolError");
      assert.match(reason, /^wrong SOCKS5 username or password: .*--socks-auth/);
      for (const sent of [user, pass].filter((text) => text !== "")) assert.ok(!reason.includes(sent), `${reason} repeats ${sent}`);
    }
    assert.equal(socks.connectCount, 0);
  });

  test("answers a subnegotiation whose version is not 01 with 01 01 and closes", async () => {
    const socks = await startSocks({ credentials: ALICE });
    const client = await connectClient(socks.port);
    await client.write(GREETING_WITH_AUTH);
    await client.bytes(2, "the method reply");
    // A client that skipped the subnegotiation and sent its request.
    await client.write(socks5Connect("example.org", 443));
    await client.serverClosed("after the bad version");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS + AUTH_FAILED);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /version byte 0x05/);
    assert.equal(socks.connectCount, 0);
  });

  test("refuses SOCKS4 and SOCKS4a with 00 5B, saying to use SOCKS5 with username/password, and never calls onConnect", async () => {
    const socks = await startSocks({ credentials: ALICE });
    for (const [request, version] of [[socks4aConnect("example.org", 80, "alice"), "SOCKS4a"], [socks4Connect([192, 0, 2, 1], 80, "alice"), "SOCKS4"]] as const) {
      const client = await connectClient(socks.port);
      await client.write(request);
      await client.serverClosed(version);
      assert.equal(client.received.toString("hex"), V4_REJECTED);
      const reason = await socks.protocolErrors.next("onProtocolError");
      assert.ok(reason.startsWith(`${version} has no password`), reason);
      assert.match(reason, /--socks-auth.*SOCKS5 with username\/password/);
    }
    assert.equal(socks.connectCount, 0);
  });

  test("accepts 255-byte fields and a 255-method greeting pipelined with the request and a payload in one write", async () => {
    const credentials = { username: Buffer.alloc(255, 0x75), password: Buffer.alloc(255, 0x3a) };
    const socks = await startSocks({ credentials });
    const client = await connectClient(socks.port);
    const greeting = Buffer.from([5, 255, ...Array.from({ length: 255 }, (_, i) => 255 - i)]);
    const handshake = Buffer.concat([greeting, userPass(credentials.username, credentials.password), socks5Connect("h".repeat(255), 443)]);
    assert.ok(handshake.length > MAX_HANDSHAKE_BYTES, `${handshake.length} bytes`);
    await client.write(Buffer.concat([handshake, Buffer.from("GET / HTTP/1.0\r\n\r\n")]));
    const established = await socks.established.next("onEstablished");
    assert.equal(established.request.destination.host, "h".repeat(255));
    assert.equal(established.leftover.toString(), "GET / HTTP/1.0\r\n\r\n");
    await client.bytes(14, "the replies");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS + AUTH_OK + V5_SUCCESS);
    assert.equal(socks.protocolErrors.size, 0);
  });

  test("accepts the greeting, username/password and request written one byte at a time", async () => {
    const socks = await startSocks({ credentials: ALICE });
    const client = await connectClient(socks.port);
    for (const byte of Buffer.concat([GREETING_WITH_AUTH, userPass("alice", "s3:cret pw"), socks5Connect("example.org", 443)])) {
      await client.write(Buffer.from([byte]));
      await nextTurn();
    }
    assert.deepEqual((await socks.connects.next("onConnect")).request.destination, { kind: "name", host: "example.org", port: 443 });
    await client.bytes(14, "the replies");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS + AUTH_OK + V5_SUCCESS);
  });

  test("the handshake deadline covers the username and password", async () => {
    const socks = await startSocks({ credentials: ALICE, handshakeTimeoutMs: 200 });
    const client = await connectClient(socks.port);
    await client.write(GREETING_WITH_AUTH);
    await client.write(hex("01 05 616c"));
    await client.serverClosed("a client stuck mid-subnegotiation");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS);
    assert.match(await socks.protocolErrors.next("onProtocolError"), /no complete SOCKS request within 200 ms/);
    assert.equal(socks.connectCount, 0);
  });

  test("drops a client that half-closes mid-subnegotiation at once", async () => {
    const socks = await startSocks({ credentials: ALICE, handshakeTimeoutMs: 60_000 });
    const client = await connectClient(socks.port);
    await client.write(GREETING_WITH_AUTH);
    await client.bytes(2, "the method reply");
    await client.write(hex("01 05 616c"));
    client.socket.end();
    await client.serverClosed("the half-closed client");
    assert.equal(client.received.toString("hex"), METHOD_USERPASS);
    assert.equal(await socks.protocolErrors.next("onProtocolError"), "client closed the connection before sending a complete SOCKS request");
  });

  test("serveSocksStream asks for the same username and password on a Duplex that is not a socket", async () => {
    const [client, server] = serverPair();
    const socks = serveMemory(server, { credentials: ALICE });
    client.write(Buffer.concat([GREETING_WITH_AUTH, userPass("alice", "s3:cret pw"), socks5Connect("localhost", 8080)]));
    assert.deepEqual((await socks.connects.next("onConnect")).request.destination, { kind: "name", host: "localhost", port: 8080 });
    assert.equal(await receivedHex(client, 14, "the replies"), METHOD_USERPASS + AUTH_OK + V5_SUCCESS);

    const [wrong, wrongServer] = serverPair();
    const refused = serveMemory(wrongServer, { credentials: ALICE });
    wrong.write(Buffer.concat([GREETING_WITH_AUTH, userPass("alice", "nope")]));
    await endedOf(wrong, "the end of the stream after 01 01");
    assert.equal(wrong.received.toString("hex"), METHOD_USERPASS + AUTH_FAILED);
    assert.match(await refused.protocolErrors.next("onProtocolError"), /wrong SOCKS5 username or password/);
  });
});

describe("credentialsMatch", () => {
  const offered = (username: string, password: string) => ({ username: Buffer.from(username), password: Buffer.from(password) });

  test("is true only when both username and password are byte for byte the same", () => {
    assert.equal(credentialsMatch(offered("alice", "s3:cret pw"), ALICE), true);
    assert.equal(credentialsMatch(offered("alice", "s3:cret pW"), ALICE), false);
    assert.equal(credentialsMatch(offered("Alice", "s3:cret pw"), ALICE), false);
    assert.equal(credentialsMatch(offered("alice", "s3:cret pw "), ALICE), false);
    assert.equal(credentialsMatch(offered("alice", ""), ALICE), false);
    assert.equal(credentialsMatch(offered("", ""), ALICE), false);
    assert.equal(credentialsMatch(offered("alices3:cret pw", ""), ALICE), false);
  });

  test("compares bytes, not text: UTF-8 and Latin-1 spellings of the same word differ", () => {
    const utf8 = { username: Buffer.from("josé", "utf8"), password: Buffer.from("pw") };
    assert.equal(credentialsMatch({ username: Buffer.from("josé", "utf8"), password: Buffer.from("pw") }, utf8), true);
    assert.equal(credentialsMatch({ username: Buffer.from("josé", "latin1"), password: Buffer.from("pw") }, utf8), false);
  });
});
