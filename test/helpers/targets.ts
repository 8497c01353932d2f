/**
 * Loopback TCP servers that tunnelled traffic is aimed at: an HTTP server with
 * a fixed greeting and reproducible byte streams, and an echo server.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { networkInterfaces } from "node:os";

export type LoopbackHost = "127.0.0.1" | "::1";

/** Where a server listens, as a URL authority ("[::1]:80" for IPv6). */
function authority(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

async function listen(server: Server | HttpServer, host: string, port = 0): Promise<number> {
  server.listen(port, host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

/** Close a server after destroying its open sockets, so close() cannot hang. */
async function closeServer(server: Server | HttpServer, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  if (!server.listening) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * A port that was free on `host` a moment ago (bind 0, read it, close).
 *
 * @example
 * const port = await freePort(); // e.g. 40123
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  const port = await listen(server, host);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A 127.0.0.1 port with nothing listening (connecting to it is refused).
 *
 * @example
 * const port = await closedPort();
 */
export function closedPort(): Promise<number> {
  return freePort("127.0.0.1");
}

/**
 * A server of our own holding host:port (it accepts and drops every
 * connection), so nothing else can bind there until `stop()`.
 *
 * @example
 * const busy = await freePort();
 * const holder = await occupyPort(busy);
 * // safetunnel -D busy ... fails with "Address already in use"
 * await holder.stop();
 */
export async function occupyPort(port: number, host = "127.0.0.1"): Promise<{ stop(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await listen(server, host, port);
  return { stop: () => closeServer(server, new Set()) };
}

/**
 * Whether this machine can listen on the IPv6 loopback address ::1.
 *
 * @example
 * if (!(await hasIpv6Loopback())) t.skip("no IPv6 loopback here");
 */
export async function hasIpv6Loopback(): Promise<boolean> {
  const server = createServer();
  try {
    await listen(server, "::1");
    return true;
  } catch {
    return false;
  } finally {
    await closeServer(server, new Set());
  }
}

/**
 * An IPv4 address of this machine that is not loopback, if it has one (to
 * check what a listener bound to 0.0.0.0 or 127.0.0.1 answers from outside).
 *
 * @example
 * const outside = nonLoopbackAddress(); // e.g. "172.17.0.2", or undefined
 */
export function nonLoopbackAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === "IPv4" && !address.internal && !address.address.startsWith("127.")) return address.address;
    }
  }
  return undefined;
}

/**
 * Reproducible pseudo-random bytes (xorshift32, little-endian words), the
 * same stream `GET /bytes/<n>?seed=<seed>` serves. Not for cryptography.
 *
 * @example
 * deterministicBytes(4, 1).toString("hex"); // "21200400"
 */
export function deterministicBytes(n: number, seed = 1): Buffer {
  const generator = byteGenerator(seed);
  return generator(n);
}

/** A generator whose successive calls continue one stream; call sizes must be multiples of 4 except the last. */
function byteGenerator(seed: number): (n: number) => Buffer {
  // xorshift32 is stuck at 0, so a zero seed takes a fixed non-zero state.
  let state = seed >>> 0 || 0x9e3779b9;
  return (n: number) => {
    const words = Math.ceil(n / 4);
    const out = Buffer.allocUnsafe(words * 4);
    for (let i = 0; i < words; i++) {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      out.writeUInt32LE(state, i * 4);
    }
    return out.subarray(0, n);
  };
}

/**
 * Lowercase hex SHA-256 of the bytes.
 *
 * @example
 * sha256(Buffer.from("abc")); // "ba7816bf..."
 */
export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** What the HTTP target answers to `GET /hello`. */
export const HELLO = "hello from target\n";

export interface HttpTarget {
  port: number;
  /** "http://127.0.0.1:PORT" (or "http://[::1]:PORT"), without a trailing slash. */
  url: string;
  /** The Host header of every request, in arrival order. */
  requests: string[];
  stop(): Promise<void>;
}

const CHUNK = 64 * 1024;

/** Wait for 'drain' or 'close', leaving no listener behind (a long stream waits thousands of times). */
function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}

async function streamBytes(response: ServerResponse, total: number, seed: number): Promise<void> {
  const next = byteGenerator(seed);
  let sent = 0;
  while (sent < total && !response.destroyed) {
    const size = Math.min(CHUNK, total - sent);
    sent += size;
    if (!response.write(next(size))) await drainedOrClosed(response);
  }
  response.end();
}

/**
 * An HTTP/1.1 server on loopback: `GET /hello` answers "hello from target\n";
 * `GET /bytes/<n>[?seed=<s>]` streams `deterministicBytes(n, s)` (seed 1 by
 * default) with backpressure; anything else is a 404.
 *
 * @example
 * const target = await startHttpTarget();
 * // curl `${target.url}/hello` -> "hello from target\n"
 * await target.stop();
 */
export async function startHttpTarget(host: LoopbackHost = "127.0.0.1"): Promise<HttpTarget> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((request, response) => {
    requests.push(request.headers.host ?? "");
    const url = new URL(request.url ?? "/", "http://target.invalid");
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (request.method === "GET" && url.pathname === "/hello") {
      const body = HELLO;
      response.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
      response.end(body);
    } else if (request.method === "GET" && bytes !== null) {
      const total = Number(bytes[1]);
      const seed = Number(url.searchParams.get("seed") ?? "1");
      response.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
      streamBytes(response, total, seed).catch(() => response.destroy());
    } else {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("not found\n");
    }
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server, host);
  return {
    port,
    url: `http://${authority(host, port)}`,
    requests,
    stop: () => closeServer(server, sockets),
  };
}

export interface EchoTarget {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

/**
 * A TCP echo server on loopback that keeps its side open after the peer's
 * FIN until everything is echoed, then ends (half-close honoured).
 *
 * @example
 * const echo = await startEchoTarget();
 * // write "ping", end() -> read "ping", then end of stream
 * await echo.stop();
 */
export async function startEchoTarget(host: LoopbackHost = "127.0.0.1"): Promise<EchoTarget> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // pipe() ends the writable side once the readable side has ended, after the last echoed byte.
    socket.pipe(socket);
  });
  const port = await listen(server, host);
  return {
    port,
    get connections() {
      return connections;
    },
    stop: () => closeServer(server, sockets),
  };
}
