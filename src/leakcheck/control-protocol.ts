/**
 * The leak-check control connection's messages, as both ends read and write
 * them (control-stream.ts serves it in the -D front end, control-client.ts is
 * leakcheck's end). One JSON object per line (`\n`), UTF-8. Pure.
 *
 * Front end to leakcheck: a `hello` first, then the CanaryEvents of this
 * connection's canaries (canary-registry.ts), and an answer to each request.
 * leakcheck to front end: requests, one per line, at most
 * MAX_REQUEST_BYTES each.
 */
import { Buffer } from "node:buffer";

/** What the front end says first: the names this check may use. */
export interface Hello {
  event: "hello";
  version: string;
  /** The page canary: the user opens `url`, `http://CANARY/`. */
  canary: string;
  /** The name the page gives WebRTC as its first STUN server. */
  stun: string;
  url: string;
}

/** A UDP endpoint on this machine, outside loopback. */
export interface UdpEndpoint {
  address: string;
  port: number;
}

/**
 * Requests leakcheck may make (and VerdictRequest below):
 * - `stun-udp`: give the canary page a second STUN server, `stun:ADDRESS:PORT`,
 *   where leakcheck listens for WebRTC's UDP. The front end accepts only an
 *   address of one of this machine's interfaces, so the page never sends
 *   anything to another machine.
 */
export type ControlRequest = ({ request: "stun-udp" } & UdpEndpoint) | VerdictRequest;

/**
 * - `verdict`: show this verdict on the canary page, which asks for it at
 *   `/verdict` once its own report is sent (`safetunnel browser` opens the
 *   page, so the page is where a LEAK is seen first).
 */
export interface VerdictRequest {
  request: "verdict";
  verdict: "PASS" | "LEAK" | "UNTESTED";
  /** One sentence, at most MAX_SUMMARY_CHARS. */
  summary: string;
}

/** The longest verdict summary a request carries (it must fit in MAX_REQUEST_BYTES as JSON). */
export const MAX_SUMMARY_CHARS = 600;

/** The most a summary may take of a request line, as JSON in UTF-8 (the rest of the request is under 100 bytes). */
const MAX_SUMMARY_BYTES = 800;

/**
 * The summary as a verdict request carries it: cut, at a whole character,
 * to MAX_SUMMARY_CHARS and to what fits in the request line as JSON in UTF-8
 * (a program's or file's name in it may take up to 4 bytes a character, a
 * quote 2).
 *
 * @example
 * verdictSummary("x".repeat(700)).length // 600
 * Buffer.byteLength(verdictSummary("例".repeat(600))) // 798: 266 characters of 3 bytes
 */
export function verdictSummary(summary: string): string {
  let bytes = 2;
  let kept = "";
  for (const ch of summary) {
    const cost = Buffer.byteLength(JSON.stringify(ch), "utf8") - 2;
    if (kept.length + ch.length > MAX_SUMMARY_CHARS || bytes + cost > MAX_SUMMARY_BYTES) break;
    bytes += cost;
    kept += ch;
  }
  return kept;
}

/** The front end's answer to a request. */
export type ControlAnswer =
  | ({ event: "stun-udp" } & UdpEndpoint)
  | { event: "verdict" }
  | { event: "request-refused"; request: string; reason: string };

/** The longest request line the front end reads; a longer one ends the control connection. */
export const MAX_REQUEST_BYTES = 1024;

/**
 * @example
 * encodeControlRequest({ request: "stun-udp", address: "192.168.1.20", port: 40000 })
 * // '{"request":"stun-udp","address":"192.168.1.20","port":40000}\n'
 */
export function encodeControlRequest(request: ControlRequest): string {
  return `${JSON.stringify(request)}\n`;
}

/**
 * One request line (without its `\n`), or why it is not one.
 *
 * @example
 * parseControlRequest('{"request":"stun-udp","address":"10.0.0.2","port":3478}') // { request: "stun-udp", address: "10.0.0.2", port: 3478 }
 * parseControlRequest('{"request":"open"}') // { error: "unknown request \"open\"" }
 */
export function parseControlRequest(line: string): ControlRequest | { error: string; request?: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: "not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { error: "not a JSON object" };
  const { request, address, port } = value as Record<string, unknown>;
  if (typeof request !== "string") return { error: 'no "request"' };
  if (request === "verdict") {
    const { verdict, summary } = value as Record<string, unknown>;
    if (verdict !== "PASS" && verdict !== "LEAK" && verdict !== "UNTESTED") return { error: '"verdict" must be PASS, LEAK or UNTESTED', request };
    if (typeof summary !== "string" || summary.length > MAX_SUMMARY_CHARS) return { error: `"summary" must be text of at most ${MAX_SUMMARY_CHARS} characters`, request };
    return { request, verdict, summary };
  }
  if (request !== "stun-udp") return { error: `unknown request ${JSON.stringify(request.slice(0, 40))}`, request: request.slice(0, 40) };
  if (typeof address !== "string" || address.length > 64) return { error: '"address" must be an IP address', request };
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return { error: '"port" must be a whole number from 1 to 65535', request };
  return { request, address, port };
}

/**
 * The hello line's fields, or undefined when the line is not a hello.
 *
 * @example
 * parseHello('{"event":"hello","version":"0.1.0","canary":"a.canary.safetunnel.invalid","stun":"a-stun.canary.safetunnel.invalid","url":"http://a.canary.safetunnel.invalid/"}')
 */
export function parseHello(line: string): Hello | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v["event"] !== "hello" || typeof v["canary"] !== "string" || typeof v["stun"] !== "string" || typeof v["url"] !== "string") return undefined;
  return { event: "hello", version: String(v["version"] ?? ""), canary: v["canary"], stun: v["stun"], url: v["url"] };
}

/**
 * An answer line, or undefined when the line is not one (an event).
 *
 * @example
 * asControlAnswer({ event: "stun-udp", address: "10.0.0.2", port: 3478 }) // the same object
 */
export function asControlAnswer(value: unknown): ControlAnswer | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v["event"] === "stun-udp" && typeof v["address"] === "string" && typeof v["port"] === "number") return { event: "stun-udp", address: v["address"], port: v["port"] };
  if (v["event"] === "verdict") return { event: "verdict" };
  if (v["event"] === "request-refused" && typeof v["request"] === "string" && typeof v["reason"] === "string") return { event: "request-refused", request: v["request"], reason: v["reason"] };
  return undefined;
}
