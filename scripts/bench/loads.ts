/**
 * The loads `npm run bench` puts through each contender, each one bounded
 * and on loopback: curl for bulk and small requests (C, so the client is not
 * what is measured), and this process's own sockets for many connections at
 * once. A proxy of undefined means a direct connection (the machine's limit).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, connect, type Server as NetServer, type Socket } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { socksConnect } from "./socks-connect.ts";
import { percentile } from "./stats.ts";

export interface Targets {
  /** HTTP: GET /bytes/N streams N bytes; GET /small answers 2 bytes and closes the connection. */
  httpPort: number;
  /** TCP echo: everything read is written back. */
  echoPort: number;
  close(): Promise<void>;
}

/** The HTTP source and the echo server, on 127.0.0.1. */
export async function startTargets(): Promise<Targets> {
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const http: HttpServer = createHttpServer((request, response) => {
    if (request.url === "/small") {
      response.writeHead(200, { "content-type": "text/plain", "content-length": 2, connection: "close" });
      response.end("ok");
      return;
    }
    const total = Number(/^\/bytes\/(\d+)$/.exec(request.url ?? "")?.[1] ?? "0");
    response.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
    let left = total;
    // The same 1 MiB again and again, with backpressure: the source must cost next to nothing.
    const pump = (): void => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!response.write(piece)) return void response.once("drain", pump);
      }
      response.end();
    };
    pump();
  });
  http.keepAliveTimeout = 1000;
  const echoSockets = new Set<Socket>();
  const echo: NetServer = createNetServer({ allowHalfOpen: true }, (socket) => {
    echoSockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => echoSockets.delete(socket));
    socket.pipe(socket);
  });
  http.listen(0, "127.0.0.1");
  echo.listen({ port: 0, host: "127.0.0.1", backlog: 4096 });
  await Promise.all([once(http, "listening"), once(echo, "listening")]);
  return {
    httpPort: (http.address() as { port: number }).port,
    echoPort: (echo.address() as { port: number }).port,
    async close() {
      for (const socket of echoSockets) socket.destroy();
      http.closeAllConnections();
      await Promise.all([new Promise((resolve) => http.close(resolve)), new Promise((resolve) => echo.close(resolve))]);
    },
  };
}

interface CurlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** curl with stdin closed; bounded by --max-time. */
function curl(args: string[], maxSeconds: number): Promise<CurlResult> {
  return new Promise((resolve) => {
    const child = spawn("curl", ["-sS", "--max-time", String(maxSeconds), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function proxyArgs(proxyPort: number | undefined): string[] {
  return proxyPort === undefined ? [] : ["--socks5-hostname", `127.0.0.1:${proxyPort}`];
}

/**
 * `streams` parallel downloads of `bytesEach` from the HTTP source (by name,
 * so the proxy resolves it), bodies to /dev/null; bytes per second over the
 * wall time from the first start to the last end.
 */
export async function download(targets: Targets, proxyPort: number | undefined, bytesEach: number, streams = 1): Promise<number> {
  const url = `http://localhost:${targets.httpPort}/bytes/${bytesEach}`;
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: streams }, () => curl([...proxyArgs(proxyPort), "-o", "/dev/null", "-w", "%{size_download}", url], 600)),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const result of results) {
    if (result.code !== 0 || Number(result.stdout) !== bytesEach) throw new Error(`download: curl exit ${result.code}, ${result.stdout} of ${bytesEach} bytes: ${result.stderr.trim()}`);
  }
  return (bytesEach * streams) / seconds;
}

export interface SmallRequests {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * `count` GETs of a 2-byte page, `concurrency` at a time, each on a new
 * connection (the server closes it), so each one through a proxy is a new
 * SOCKS request and a new channel, as a page's many hosts are. One curl
 * does them all (-Z); its per-transfer times give the percentiles.
 */
export async function smallRequests(targets: Targets, proxyPort: number | undefined, count: number, concurrency: number): Promise<SmallRequests> {
  const dir = mkdtempSync(join(tmpdir(), "safetunnel-bench-"));
  try {
    const config = join(dir, "urls");
    writeFileSync(config, `url = "http://localhost:${targets.httpPort}/small"\noutput = "/dev/null"\n`.repeat(count));
    const started = performance.now();
    const result = await curl([...proxyArgs(proxyPort), "-Z", "--parallel-max", String(concurrency), "--parallel-immediate", "-w", "%{http_code} %{time_total}\n", "-K", config], 300);
    const seconds = (performance.now() - started) / 1000;
    const lines = result.stdout.trim().split("\n");
    const ok = lines.filter((line) => line.startsWith("200 "));
    if (result.code !== 0 || ok.length !== count) throw new Error(`small requests: curl exit ${result.code}, ${ok.length} of ${count} answered: ${result.stderr.trim().split("\n")[0] ?? ""}`);
    const times = ok.map((line) => Number(line.split(" ")[1]) * 1000);
    return { perSecond: count / seconds, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Milliseconds from `start()` (which spawns the contender) to the first
 * answer fetched through its proxy: a connection refused means "not yet"
 * and is tried again every 5 ms, for at most `boundMs`.
 */
export async function timeToFirstRequest(targets: Targets, proxyPort: number, start: () => void, boundMs = 30_000): Promise<number> {
  const started = performance.now();
  start();
  while (performance.now() - started < boundMs) {
    try {
      const socket = await socksConnect(proxyPort, "localhost", targets.httpPort, boundMs);
      const body = await new Promise<string>((resolve, reject) => {
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => (text += chunk));
        socket.once("end", () => resolve(text));
        socket.once("error", reject);
        socket.resume();
        socket.end("GET /small HTTP/1.0\r\nHost: localhost\r\n\r\n");
      });
      if (body.endsWith("\r\n\r\nok")) return performance.now() - started;
      throw new Error(`unexpected answer: ${JSON.stringify(body.slice(0, 80))}`);
    } catch (err) {
      if (!/ECONNREFUSED|reply 0x0[13]/.test((err as Error).message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  throw new Error(`no proxied answer within ${boundMs} ms of starting`);
}

/**
 * Opens `count` tunnels to the echo server at once and keeps them open;
 * resolves with the sockets and how long opening all of them took.
 */
export async function openTunnels(targets: Targets, proxyPort: number, count: number): Promise<{ sockets: Socket[]; ms: number }> {
  const started = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: count }, () => socksConnect(proxyPort, "localhost", targets.echoPort, 60_000)));
  const ms = performance.now() - started;
  const sockets = settled.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  for (const socket of sockets) socket.on("error", () => {});
  const failed = settled.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failed !== undefined) {
    for (const socket of sockets) socket.destroy();
    throw new Error(`opening ${count} tunnels: ${count - sockets.length} failed, the first with ${(failed.reason as Error).message}`);
  }
  return { sockets, ms };
}

/**
 * `count` tunnels at once, each sending `bytes` to the echo server and
 * reading them back; milliseconds until the last one has all of its bytes.
 */
export async function echoTransfers(targets: Targets, proxyPort: number | undefined, count: number, bytes: number): Promise<number> {
  const payload = Buffer.alloc(bytes, 0xa5);
  const started = performance.now();
  const one = async (): Promise<void> => {
    const socket =
      proxyPort === undefined
        ? await new Promise<Socket>((resolve, reject) => {
            const direct = connect({ host: "127.0.0.1", port: targets.echoPort }, () => resolve(direct));
            direct.once("error", reject);
          })
        : await socksConnect(proxyPort, "localhost", targets.echoPort, 120_000);
    await new Promise<void>((resolve, reject) => {
      let received = 0;
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) {
          socket.destroy();
          resolve();
        }
      });
      socket.once("error", reject);
      socket.once("close", () => (received >= bytes ? resolve() : reject(new Error(`echo closed after ${received} of ${bytes} bytes`))));
      socket.resume();
      socket.write(payload);
    });
  };
  await Promise.all(Array.from({ length: count }, one));
  return performance.now() - started;
}
