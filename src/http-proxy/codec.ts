/**
 * The HTTP proxy side of a -D port, as pure functions over bytes: read a
 * request head (RFC 9112 sections 2-5), tell what it asks for (a CONNECT
 * tunnel, a plain-http request in absolute form, or the proxy's own pages),
 * rewrite a forwarded head, encode our own responses.
 *
 * Only what a forward proxy needs is parsed; anything this code does not
 * understand is refused with a status, never guessed at (request smuggling
 * lives in the gap between two parsers' guesses).
 */
import { Buffer } from "node:buffer";
import { parseIPv4, parseIPv6, parsePortNumber } from "../address.ts";
import type { Destination } from "../socks/codec.ts";

/** The longest request head we buffer (request line and fields); more is 431. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** The most header fields in one request; more is 431. */
export const MAX_HEADER_FIELDS = 100;

/** A request head as received: field names keep their case, values are trimmed. */
export interface RequestHead {
  method: string;
  target: string;
  version: "HTTP/1.0" | "HTTP/1.1";
  fields: [name: string, value: string][];
}

/** Statuses this proxy answers with itself. */
export type ProxyStatus = 200 | 400 | 403 | 404 | 405 | 407 | 408 | 411 | 431 | 501 | 502 | 503 | 504 | 505;

export type HeadResult =
  | { status: "incomplete" }
  | { status: "invalid"; code: ProxyStatus; reason: string }
  | { status: "ok"; value: RequestHead; consumed: number };

/** What a request head asks the proxy for. */
export type ProxyTarget =
  /** `CONNECT host:port`: a tunnel (RFC 9110 section 9.3.6). */
  | { form: "connect"; destination: Destination }
  /** `GET http://host[:port]/path`: a plain-http request to forward (RFC 9112 section 3.2.2). */
  | { form: "absolute"; destination: Destination; authority: string; path: string }
  /** `GET /path`: a request for the proxy itself (its set-up page, its PAC file). */
  | { form: "origin"; path: string };

export type TargetResult = { ok: true; target: ProxyTarget } | { ok: false; code: ProxyStatus; reason: string };

/**
 * What a request through the HTTP side asks of the tunnel, in the shape the
 * SOCKS side's requests have, so policy, logs and counters treat both alike.
 */
export interface HttpProxyRequest {
  version: "http";
  command: "connect";
  /** CONNECT (a tunnel; the client speaks first, often TLS) or a forwarded absolute-form request. */
  form: "connect" | "absolute";
  method: string;
  destination: Destination;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: visible ASCII, obs-text, space and tab (RFC 9110 section 5.5); no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^[\x21-\x7e]+$/;

/**
 * One request head: the request line and its fields up to the empty line.
 * Lines may end in CRLF or a bare LF (RFC 9112 section 2.2); empty lines
 * before the request line are skipped. Folded fields (obs-fold), a space
 * before a field's colon and control bytes are refused (400); a head over
 * MAX_HEAD_BYTES or with over MAX_HEADER_FIELDS fields is 431.
 *
 * @example
 * parseRequestHead(Buffer.from("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"))
 * // ok: { method: "CONNECT", target: "example.org:443", version: "HTTP/1.1", fields: [["Host", "example.org:443"]] }, consumed: 58
 */
export function parseRequestHead(buf: Uint8Array): HeadResult {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let start = 0;
  while (start < bytes.length && (bytes[start] === 0x0d || bytes[start] === 0x0a)) start++;
  const lines: string[] = [];
  let offset = start;
  for (;;) {
    const lf = bytes.indexOf(0x0a, offset);
    if (lf < 0 || lf >= MAX_HEAD_BYTES) {
      return bytes.length > MAX_HEAD_BYTES ? tooLarge(`request head longer than ${MAX_HEAD_BYTES} bytes`) : { status: "incomplete" };
    }
    const end = lf > offset && bytes[lf - 1] === 0x0d ? lf - 1 : lf;
    const line = bytes.toString("latin1", offset, end);
    offset = lf + 1;
    if (line === "") break;
    lines.push(line);
    if (lines.length > MAX_HEADER_FIELDS + 1) return tooLarge(`more than ${MAX_HEADER_FIELDS} header fields`);
  }
  const requestLine = lines.shift();
  if (requestLine === undefined) return { status: "incomplete" };
  const parts = requestLine.split(" ");
  if (parts.length !== 3) return bad("malformed request line (expected METHOD TARGET HTTP/1.1)");
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) return bad("malformed request method");
  if (!TARGET.test(target)) return bad("malformed request target");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    return /^HTTP\/[0-9]\.[0-9]$/.test(version)
      ? { status: "invalid", code: 505, reason: `${version} is not supported (HTTP/1.1 and HTTP/1.0 are)` }
      : bad("malformed HTTP version in the request line");
  }
  const fields: [string, string][] = [];
  for (const line of lines) {
    // RFC 9112 section 5.2: a proxy must reject obs-fold (or replace it); we reject.
    if (line.startsWith(" ") || line.startsWith("\t")) return bad("folded header field (obs-fold)");
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    // RFC 9112 section 5.1: no whitespace between the name and the colon.
    if (!TOKEN.test(name)) return bad("malformed header field name");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) return bad(`control bytes in header field ${name}`);
    fields.push([name, value]);
  }
  return { status: "ok", value: { method, target, version, fields }, consumed: offset };
}

/**
 * A field's value, or the values of a repeated field joined with ", "
 * (RFC 9110 section 5.3); undefined when absent. Names match in any case.
 *
 * @example
 * fieldValue([["Connection", "close"]], "connection") // "close"
 */
export function fieldValue(fields: readonly [string, string][], name: string): string | undefined {
  const wanted = name.toLowerCase();
  const values = fields.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(", ");
}

/**
 * What a request is for: CONNECT's authority, an absolute `http://` URI, or
 * a path on the proxy itself. Everything else is refused with the status and
 * a reason that says what to do instead.
 *
 * @example
 * requestTarget({ method: "CONNECT", target: "[::1]:22", version: "HTTP/1.1", fields: [] })
 * // { ok: true, target: { form: "connect", destination: { kind: "ipv6", host: "::1", port: 22 } } }
 */
export function requestTarget(head: RequestHead): TargetResult {
  if (head.method === "CONNECT") {
    const destination = parseAuthority(head.target);
    return destination === undefined
      ? { ok: false, code: 400, reason: `CONNECT needs host:port, got "${head.target}"` }
      : { ok: true, target: { form: "connect", destination } };
  }
  if (head.target.startsWith("/")) return { ok: true, target: { form: "origin", path: head.target } };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(head.target)?.[1]?.toLowerCase();
  if (scheme === undefined) return { ok: false, code: 400, reason: `malformed request target "${head.target}"` };
  if (scheme !== "http") {
    const hint = scheme === "https" ? ": an https:// URL goes through CONNECT (configure the client with an HTTP proxy for https, or use socks5h://)" : "";
    return { ok: false, code: 400, reason: `this proxy forwards only http:// requests in absolute form, not ${scheme}://${hint}` };
  }
  const rest = head.target.slice("http://".length);
  const slash = rest.search(/[/?#]/);
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "/" : rest[slash] === "/" ? rest.slice(slash) : `/${rest.slice(slash)}`;
  if (authority.includes("@")) return { ok: false, code: 400, reason: "user name or password in the request URL is not forwarded" };
  const destination = parseAuthority(authority, 80);
  if (destination === undefined) return { ok: false, code: 400, reason: `malformed host in the request URL "${head.target}"` };
  return { ok: true, target: { form: "absolute", destination, authority, path: path.replace(/#.*$/, "") } };
}

/**
 * `host:port` or `[v6]:port` (RFC 9110 section 4.2.1's uri-host and port),
 * the port optional when `defaultPort` is given. A bracketed address is
 * IPv6 (a zone id dropped); a dotted quad is IPv4; the rest are names, which socks/policy.ts
 * still reads as addresses when a resolver would (`127.1`, `0x7f.1`).
 * Percent-encoded, empty or over-long names are refused.
 *
 * @example
 * parseAuthority("example.org:443") // { kind: "name", host: "example.org", port: 443 }
 * parseAuthority("example.org", 80) // { kind: "name", host: "example.org", port: 80 }
 */
export function parseAuthority(text: string, defaultPort?: number): Destination | undefined {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return undefined;
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return undefined;
    portText = after === "" ? undefined : after.slice(1);
    // A zone id (RFC 6874: [fe80::1%25eth0]) names an interface of this machine, which means
    // nothing at the far end: the address without it, refused as an address like any other.
    const zone = host.indexOf("%");
    if (zone >= 0) host = host.slice(0, zone);
    if (parseIPv6(host) === null) return undefined;
  } else {
    const colon = text.lastIndexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (!/^[A-Za-z0-9._~!$&'()*+,;=-]{1,255}$/.test(host)) return undefined;
  }
  const port = portText === undefined || portText === "" ? defaultPort : parsePortNumber(portText);
  if (port === undefined) return undefined;
  const kind = text.startsWith("[") ? "ipv6" : parseIPv4(host) !== null ? "ipv4" : "name";
  return { kind, host, port };
}

/** Fields that belong to one connection, never forwarded (RFC 9110 section 7.6.1); Host is written anew from the URI. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "host"]);

/**
 * The head to send on for an absolute-form request: origin-form target, Host
 * from the URI (RFC 9112 section 3.2.2), hop-by-hop fields and every field
 * that Connection names dropped, Proxy-* fields (credentials meant for us)
 * dropped, and `Connection: close`, so the server answers one request and
 * closes (the connection is then finished for both sides: a second request
 * on it would otherwise reach this host whatever its URI said). No Via
 * field: like Tor's HTTP tunnel port, the proxy does not announce itself.
 *
 * @example
 * forwardedHead({ method: "GET", target: "http://example.org/a", version: "HTTP/1.1", fields: [["Proxy-Connection", "keep-alive"]] }, "/a", "example.org")
 * // "GET /a HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"
 */
export function forwardedHead(head: RequestHead, path: string, authority: string): string {
  const named = new Set(
    (fieldValue(head.fields, "connection") ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ""),
  );
  const kept = head.fields.filter(([name]) => {
    const lower = name.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !lower.startsWith("proxy-") && !named.has(lower);
  });
  const lines = [`${head.method} ${path} ${head.version}`, `Host: ${authority}`, ...kept.map(([n, v]) => `${n}: ${v}`), "Connection: close"];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * Why a forwarded request's body framing cannot be passed on safely (RFC 9112
 * section 6.3: Transfer-Encoding with Content-Length, differing or malformed
 * Content-Length values; section 6.1: chunked more than once or not last,
 * Transfer-Encoding in HTTP/1.0), or a Connection field naming a framing
 * field, which would have it dropped from the forwarded head after it was
 * checked here; undefined when it can.
 *
 * @example
 * framingProblem([["Content-Length", "5"], ["Content-Length", "6"]]) // "conflicting Content-Length values"
 */
export function framingProblem(fields: readonly [string, string][], version = "HTTP/1.1"): string | undefined {
  const lengths = fields.filter(([n]) => n.toLowerCase() === "content-length").flatMap(([, v]) => v.split(",").map((s) => s.trim()));
  const encoding = fieldValue(fields, "transfer-encoding");
  const named = fields.filter(([n]) => n.toLowerCase() === "connection").flatMap(([, v]) => v.split(",").map((token) => token.trim().toLowerCase()));
  if (named.includes("content-length") || named.includes("transfer-encoding")) return "a Connection field naming Content-Length or Transfer-Encoding";
  if (encoding !== undefined && lengths.length > 0) return "both Transfer-Encoding and Content-Length";
  if (lengths.some((value) => !/^[0-9]{1,15}$/.test(value))) return "malformed Content-Length";
  if (new Set(lengths.map(Number)).size > 1) return "conflicting Content-Length values";
  if (encoding !== undefined) {
    if (version === "HTTP/1.0") return "Transfer-Encoding in an HTTP/1.0 request";
    const codings = encoding.split(",").map((coding) => coding.trim().toLowerCase());
    if (codings.at(-1) !== "chunked") return "Transfer-Encoding whose last coding is not chunked";
    if (codings.filter((coding) => coding === "chunked").length > 1) return "chunked applied more than once";
  }
  return undefined;
}

/**
 * How many body bytes follow a forwarded request's head: its Content-Length,
 * or 0. A chunked body is not forwarded (411: the client can send a length):
 * the proxy passes on exactly the one request's bytes, and would have to
 * parse chunks to know where it ends. Call after framingProblem.
 *
 * @example
 * requestBodyLength([["Content-Length", "4"]]) // { ok: true, length: 4 }
 * requestBodyLength([["Transfer-Encoding", "chunked"]]) // { ok: false, code: 411, reason: "..." }
 */
export function requestBodyLength(fields: readonly [string, string][]): { ok: true; length: number } | { ok: false; code: ProxyStatus; reason: string } {
  if (fieldValue(fields, "transfer-encoding") !== undefined) {
    return { ok: false, code: 411, reason: "a chunked request body is not forwarded: send it with a Content-Length, or use HTTPS (CONNECT)" };
  }
  const length = fieldValue(fields, "content-length");
  return { ok: true, length: length === undefined ? 0 : Number(length.split(",")[0]!.trim()) };
}

/**
 * Basic credentials from a Proxy-Authorization value (RFC 7617), as bytes:
 * the user name is everything before the first colon. Undefined for any other
 * scheme or malformed base64.
 *
 * @example
 * parseBasicCredentials("Basic YWxpY2U6cHc=") // { username: <alice>, password: <pw> }
 */
export function parseBasicCredentials(value: string): { username: Buffer; password: Buffer } | undefined {
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(value);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, "base64");
  const colon = decoded.indexOf(0x3a);
  if (colon < 0) return undefined;
  return { username: decoded.subarray(0, colon), password: decoded.subarray(colon + 1) };
}

const REASON: Record<ProxyStatus, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  411: "Length Required",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/**
 * One whole response of our own, after which the connection closes: status
 * line, Content-Type, Content-Length, `Connection: close`, any `extra`
 * fields, the body. `head` leaves the body out (a HEAD request) but keeps
 * its length.
 *
 * @example
 * encodeResponse(403, "text/plain; charset=utf-8", "Refused\n").toString()
 * // "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\nConnection: close\r\n\r\nRefused\n"
 */
export function encodeResponse(status: ProxyStatus, type: string, body: string, extra: readonly [string, string][] = [], head = false): Buffer {
  const content = Buffer.from(body, "utf8");
  const fields: [string, string][] = [["Content-Type", type], ["Content-Length", String(content.length)], ["Connection", "close"], ...extra];
  const text = `HTTP/1.1 ${status} ${REASON[status]}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
  return head ? Buffer.from(text, "latin1") : Buffer.concat([Buffer.from(text, "latin1"), content]);
}

/** The reply to a CONNECT whose channel is open: the client's bytes flow from here on (RFC 9110 section 9.3.6). */
export const CONNECT_ESTABLISHED = "HTTP/1.1 200 Connection established\r\n\r\n";


function bad(reason: string): HeadResult {
  return { status: "invalid", code: 400, reason };
}

function tooLarge(reason: string): HeadResult {
  return { status: "invalid", code: 431, reason };
}
