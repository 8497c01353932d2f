/**
 * Real SOCKS clients for integration tests: the curl binary and the `socks`
 * npm package. Both are bounded in time and ignore any proxy settings of the
 * machine they run on.
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import process from "node:process";
import { SocksClient } from "socks";
import { stopChild, watchChild, within } from "./child.ts";

/** `-x` takes a proxy URL ("socks5h://127.0.0.1:1080"); the others take host:port. */
export type CurlProxyFlag = "--socks5-hostname" | "--socks5" | "--socks4" | "--socks4a" | "-x";

export interface CurlResult {
  /** curl's exit status (0 ok, 7 could not connect, 28 timeout, 97 SOCKS failure...); -1 if it was killed. */
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Proxy variables that would change where curl goes or what it bypasses. */
const PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"];

/**
 * Fetch `url` with curl through a SOCKS proxy (`-q -sS --max-time`, no .curlrc,
 * no proxy variables). `--socks5-hostname` and `--socks4a` send the name;
 * `--socks5` and `--socks4` resolve it locally and send an IP; with `-x` the
 * proxy URL's scheme decides (`socks5h://` sends the name).
 *
 * @example
 * const { code, stdout } = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `${target.url}/hello`);
 * // code 0, stdout "hello from target\n"
 */
export function curlThroughSocks(
  proxyFlag: CurlProxyFlag,
  proxy: string,
  url: string,
  options: { maxTimeSeconds?: number; extraArgs?: string[] } = {},
): Promise<CurlResult> {
  return runCurl([proxyFlag, proxy, ...(options.extraArgs ?? []), url], options.maxTimeSeconds ?? 15);
}

/**
 * Fetch `url` with curl and no proxy at all (`-q -sS --max-time`, no .curlrc,
 * no proxy variables): for ports that forward by themselves (-L, -R).
 *
 * @example
 * const { code, stdout } = await curlDirect(`http://127.0.0.1:${localPort}/hello`);
 */
export function curlDirect(url: string, options: { maxTimeSeconds?: number } = {}): Promise<CurlResult> {
  return runCurl([url], options.maxTimeSeconds ?? 15);
}

/**
 * `curl -q -sS --max-time maxTime ...args` with the proxy variables removed, killed if it overruns.
 *
 * @example
 * const { code, stdout } = await runCurl(["-x", "http://127.0.0.1:9001", "http://localhost:8080/hello"], 15);
 */
export async function runCurl(args: string[], maxTime: number): Promise<CurlResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) delete env[name];
  // -q must come first: it stops curl reading ~/.curlrc.
  const child = spawn("curl", ["-q", "-sS", "--max-time", String(maxTime), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const watched = watchChild(child);
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  // curl enforces --max-time itself; this is the backstop if it does not.
  let status = await within(watched.exited, (maxTime + 5) * 1000);
  if (status === undefined) status = await stopChild(watched, "SIGKILL");
  const spawnError = watched.spawnError();
  if (spawnError !== undefined) throw new Error(`cannot run curl: ${spawnError.message}`);
  await within(closed, 2000);
  return { code: status.code ?? -1, stdout: Buffer.concat(out), stderr };
}

export type SocksConnectResult = { ok: true; socket: Socket } | { ok: false; error: string };

/**
 * Open a CONNECT through a SOCKS proxy with the `socks` package. A destination
 * host that is an IP literal goes out as an address (SOCKS5 ATYP 1/4, SOCKS4);
 * a name goes out as a name (SOCKS5 ATYP 3, SOCKS4a). Never throws.
 *
 * @example
 * const result = await socksConnect({ host: "127.0.0.1", port: socksPort }, { host: "localhost", port: echo.port });
 * if (result.ok) result.socket.end("ping");
 */
export async function socksConnect(
  proxy: { host: string; port: number; type?: 4 | 5; userId?: string; password?: string },
  destination: { host: string; port: number },
  options: { timeoutMs?: number } = {},
): Promise<SocksConnectResult> {
  try {
    const { socket } = await SocksClient.createConnection({
      command: "connect",
      proxy: {
        host: proxy.host,
        port: proxy.port,
        type: proxy.type ?? 5,
        ...(proxy.userId === undefined ? {} : { userId: proxy.userId }),
        ...(proxy.password === undefined ? {} : { password: proxy.password }),
      },
      destination,
      timeout: options.timeoutMs ?? 10_000,
    });
    return { ok: true, socket };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}
