/**
 * A request that reached a -D port, whichever protocol carried it: SOCKS4,
 * 4a or 5 (socks/codec.ts) or an HTTP proxy request (http-proxy/codec.ts).
 * Policy, refusal lines and counters treat them alike; only the words and
 * the fix differ.
 */
import type { SocksRequest } from "../socks/codec.ts";
import type { HttpProxyRequest } from "../http-proxy/codec.ts";

export type ProxyRequest = SocksRequest | HttpProxyRequest;

/** How a request came, for fixes that differ by protocol. */
export type ProxyProtocol = 4 | 5 | "http";

/**
 * The protocol as log lines name it.
 *
 * @example
 * protocolName({ version: 5, command: "connect", commandCode: 1, destination }) // "SOCKS5"
 * protocolName({ version: "http", command: "connect", form: "connect", method: "CONNECT", destination }) // "HTTP"
 */
export function protocolName(request: ProxyRequest): string {
  return request.version === "http" ? "HTTP" : `SOCKS${request.version}`;
}

/**
 * What the client asked for, as log lines say it: "SOCKS5 CONNECT", "HTTP CONNECT", "HTTP GET".
 *
 * @example
 * requestName({ version: "http", command: "connect", form: "absolute", method: "GET", destination }) // "HTTP GET"
 */
export function requestName(request: ProxyRequest): string {
  return request.version === "http" ? `HTTP ${request.method}` : `SOCKS${request.version} CONNECT`;
}
