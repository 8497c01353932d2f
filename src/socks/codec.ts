/**
 * SOCKS4, SOCKS4a and SOCKS5 wire format: pure functions over bytes.
 *
 * Parsers take everything received so far and answer "incomplete" (wait for
 * more), "invalid" (close the socket, maybe after sending `reply`), or "ok"
 * with the parsed value and how many bytes it used. They never throw and never
 * read past the buffer, so the server can call them on every chunk.
 *
 * References: RFC 1928 (SOCKS5), RFC 1929 (its username/password
 * subnegotiation), the SOCKS4 protocol note and its 4a extension
 * (https://www.openssh.com/txt/socks4.protocol, socks4a.protocol).
 */
import { Buffer } from "node:buffer";
import { formatAddress } from "../address.ts";

export const SOCKS4_VERSION = 0x04;
export const SOCKS5_VERSION = 0x05;

/** RFC 1928 section 3 method codes. */
export const AuthMethod = {
  NO_AUTH: 0x00,
  GSSAPI: 0x01,
  USERNAME_PASSWORD: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const;

/** RFC 1928 section 6 reply codes (REP). */
export const Socks5Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;
export type Socks5ReplyCode = (typeof Socks5Reply)[keyof typeof Socks5Reply];

/** SOCKS4 reply codes (CD field of the reply). */
export const Socks4Reply = {
  GRANTED: 0x5a,
  REJECTED: 0x5b,
  NO_IDENTD: 0x5c,
  IDENTD_MISMATCH: 0x5d,
} as const;
export type Socks4ReplyCode = (typeof Socks4Reply)[keyof typeof Socks4Reply];

/** RFC 1928 section 5 address types. */
export const AddressType = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;

export type Command = "connect" | "bind" | "udp-associate" | "unknown";

export interface Destination {
  /** How the client named the destination: a name goes to the far end's resolver. */
  kind: "name" | "ipv4" | "ipv6";
  /** A name as sent, or an address in its usual text form. */
  host: string;
  port: number;
}

export interface SocksRequest {
  version: 4 | 5;
  command: Command;
  /** The command byte as received, for logging unknown commands. */
  commandCode: number;
  destination: Destination;
  /** SOCKS4 only: the USERID field. */
  userId?: string;
  /** SOCKS4 only: true when the request used the 4a "0.0.0.x + name" form. */
  socks4a?: boolean;
}

export type ParseResult<T> =
  | { status: "incomplete" }
  | { status: "invalid"; reason: string; reply?: Buffer }
  | { status: "ok"; value: T; consumed: number };

/** Longest SOCKS4 USERID or 4a host name we accept before its NUL (bounds memory). */
export const SOCKS4_MAX_FIELD = 255;

const INCOMPLETE = { status: "incomplete" } as const;

function invalid(reason: string, reply?: Buffer): { status: "invalid"; reason: string; reply?: Buffer } {
  return reply === undefined ? { status: "invalid", reason } : { status: "invalid", reason, reply };
}

/**
 * SOCKS5 method negotiation (RFC 1928 section 3): VER NMETHODS METHODS.
 *
 * @example
 * parseSocks5Greeting(Buffer.from([5, 1, 0])) // { status: "ok", value: { methods: [0] }, consumed: 3 }
 */
export function parseSocks5Greeting(buf: Uint8Array): ParseResult<{ methods: number[] }> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== SOCKS5_VERSION) return invalid(`not SOCKS5 (version byte 0x${hex(buf[0]!)})`);
  if (buf.length < 2) return INCOMPLETE;
  const count = buf[1]!;
  // NMETHODS is 1..255; zero methods can never be satisfied, so say so with 0xFF.
  if (count === 0) return invalid("SOCKS5 greeting offers no methods", encodeSocks5MethodChoice(AuthMethod.NO_ACCEPTABLE));
  if (buf.length < 2 + count) return INCOMPLETE;
  return { status: "ok", value: { methods: Array.from(buf.subarray(2, 2 + count)) }, consumed: 2 + count };
}

/**
 * SOCKS5 request (RFC 1928 section 4): VER CMD RSV ATYP DST.ADDR DST.PORT.
 * Unknown address types get reply 0x08; names that are empty or hold bytes
 * outside printable ASCII are refused (0x01) rather than handed to a resolver.
 *
 * @example
 * parseSocks5Request(Buffer.from([5, 1, 0, 3, 11, ...Buffer.from("example.org"), 0, 80]))
 * // ok: { version: 5, command: "connect", destination: { kind: "name", host: "example.org", port: 80 } }
 */
export function parseSocks5Request(buf: Uint8Array): ParseResult<SocksRequest> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== SOCKS5_VERSION) return invalid(`SOCKS5 request has version byte 0x${hex(buf[0]!)}`);
  if (buf.length < 4) return INCOMPLETE;
  const commandCode = buf[1]!;
  const atyp = buf[3]!;
  let host: string;
  let kind: Destination["kind"];
  let offset: number;
  switch (atyp) {
    case AddressType.IPV4:
      if (buf.length < 4 + 4 + 2) return INCOMPLETE;
      host = formatAddress(buf.subarray(4, 8));
      kind = "ipv4";
      offset = 8;
      break;
    case AddressType.IPV6:
      if (buf.length < 4 + 16 + 2) return INCOMPLETE;
      host = formatAddress(buf.subarray(4, 20));
      kind = "ipv6";
      offset = 20;
      break;
    case AddressType.DOMAIN: {
      if (buf.length < 5) return INCOMPLETE;
      const length = buf[4]!;
      if (length === 0) return invalid("SOCKS5 request has an empty host name", encodeSocks5Reply(Socks5Reply.GENERAL_FAILURE));
      if (buf.length < 5 + length + 2) return INCOMPLETE;
      const name = buf.subarray(5, 5 + length);
      if (!isPrintableAscii(name)) {
        return invalid("SOCKS5 request has a host name with non-printable bytes", encodeSocks5Reply(Socks5Reply.GENERAL_FAILURE));
      }
      host = Buffer.from(name).toString("latin1");
      kind = "name";
      offset = 5 + length;
      break;
    }
    default:
      return invalid(
        `SOCKS5 request has unknown address type 0x${hex(atyp)}`,
        encodeSocks5Reply(Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED),
      );
  }
  const port = (buf[offset]! << 8) | buf[offset + 1]!;
  return {
    status: "ok",
    value: { version: 5, command: commandFromCode(commandCode), commandCode, destination: { kind, host, port } },
    consumed: offset + 2,
  };
}

/**
 * SOCKS4 and SOCKS4a request: VN CD DSTPORT DSTIP USERID NUL [HOST NUL].
 * A DSTIP of 0.0.0.x with x != 0 marks 4a: the name follows the USERID.
 *
 * @example
 * parseSocks4Request(Buffer.from([4, 1, 0, 80, 0, 0, 0, 1, 0, ...Buffer.from("example.org"), 0]))
 * // ok: destination { kind: "name", host: "example.org", port: 80 }, socks4a: true
 */
export function parseSocks4Request(buf: Uint8Array): ParseResult<SocksRequest> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== SOCKS4_VERSION) return invalid(`not SOCKS4 (version byte 0x${hex(buf[0]!)})`);
  if (buf.length < 8) return INCOMPLETE;
  const commandCode = buf[1]!;
  const port = (buf[2]! << 8) | buf[3]!;
  const ip = buf.subarray(4, 8);
  const userEnd = findNul(buf, 8, SOCKS4_MAX_FIELD);
  if (userEnd === -2) return invalid("SOCKS4 USERID is too long", encodeSocks4Reply(Socks4Reply.REJECTED));
  if (userEnd === -1) return INCOMPLETE;
  const userId = Buffer.from(buf.subarray(8, userEnd)).toString("latin1");
  // SOCKS4 defines only CONNECT (1) and BIND (2).
  const command = commandCode === 0x03 ? "unknown" : commandFromCode(commandCode);
  const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  if (!is4a) {
    return {
      status: "ok",
      value: { version: 4, command, commandCode, destination: { kind: "ipv4", host: formatAddress(ip), port }, userId, socks4a: false },
      consumed: userEnd + 1,
    };
  }
  const hostEnd = findNul(buf, userEnd + 1, SOCKS4_MAX_FIELD);
  if (hostEnd === -2) return invalid("SOCKS4a host name is too long", encodeSocks4Reply(Socks4Reply.REJECTED));
  if (hostEnd === -1) return INCOMPLETE;
  const name = buf.subarray(userEnd + 1, hostEnd);
  if (name.length === 0 || !isPrintableAscii(name)) {
    return invalid("SOCKS4a host name is empty or has non-printable bytes", encodeSocks4Reply(Socks4Reply.REJECTED));
  }
  return {
    status: "ok",
    value: {
      version: 4,
      command,
      commandCode,
      destination: { kind: "name", host: Buffer.from(name).toString("latin1"), port },
      userId,
      socks4a: true,
    },
    consumed: hostEnd + 1,
  };
}

/** RFC 1929 section 2: the version of the username/password subnegotiation (not the SOCKS version). */
export const USERPASS_VERSION = 0x01;

/** RFC 1929 section 2: ULEN and PLEN are one byte each, so a username or password is at most 255 bytes. */
export const USERPASS_MAX_FIELD = 255;

/** An RFC 1929 request's fields, as the client sent them (opaque bytes: the RFC names no charset). */
export interface UserPass {
  username: Buffer;
  password: Buffer;
}

/**
 * The username/password request (RFC 1929 section 2): VER ULEN UNAME PLEN
 * PASSWD, VER being 0x01. The RFC draws both fields as 1 to 255 bytes; an
 * empty one is read all the same (it simply matches no account), so a client
 * with an empty password hears "failure" rather than a dropped connection. A
 * wrong VER gets the failure status, after which RFC 1929 says to close.
 *
 * @example
 * parseSocks5UserPass(Buffer.from([1, 5, ...Buffer.from("alice"), 3, ...Buffer.from("pw!")]))
 * // ok: { username: <alice>, password: <pw!> }, consumed: 11
 */
export function parseSocks5UserPass(buf: Uint8Array): ParseResult<UserPass> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== USERPASS_VERSION) {
    return invalid(`SOCKS5 username/password request has version byte 0x${hex(buf[0]!)} (RFC 1929 says 0x01)`, encodeSocks5UserPassStatus(false));
  }
  if (buf.length < 2) return INCOMPLETE;
  const userLength = buf[1]!;
  if (buf.length < 2 + userLength + 1) return INCOMPLETE;
  const passwordLength = buf[2 + userLength]!;
  const end = 2 + userLength + 1 + passwordLength;
  if (buf.length < end) return INCOMPLETE;
  return {
    status: "ok",
    // Copies: the caller's buffer is reused for what follows.
    value: { username: Buffer.from(buf.subarray(2, 2 + userLength)), password: Buffer.from(buf.subarray(3 + userLength, end)) },
    consumed: end,
  };
}

/**
 * The username/password status reply (RFC 1929 section 2): VER STATUS, with
 * X'00' for success; any other STATUS is failure and the server then closes.
 *
 * @example
 * encodeSocks5UserPassStatus(true) // <01 00>
 * encodeSocks5UserPassStatus(false) // <01 01>
 */
export function encodeSocks5UserPassStatus(success: boolean): Buffer {
  return Buffer.from([USERPASS_VERSION, success ? 0x00 : 0x01]);
}

/** SOCKS5 method selection message: VER METHOD (2 bytes). */
export function encodeSocks5MethodChoice(method: number): Buffer {
  return Buffer.from([SOCKS5_VERSION, method]);
}

/**
 * A whole SOCKS5 reply. Without `bound`, BND.ADDR is 0.0.0.0:0, which is what
 * a CONNECT reply may carry when the bound address is not meaningful (the
 * channel ends on the SSH server, not here): 10 bytes, always.
 *
 * @example
 * encodeSocks5Reply(Socks5Reply.NOT_ALLOWED) // <05 02 00 01 00 00 00 00 00 00>
 */
export function encodeSocks5Reply(reply: Socks5ReplyCode, bound?: { kind: "ipv4" | "ipv6"; address: Uint8Array; port: number }): Buffer {
  const address = bound?.address ?? new Uint8Array(4);
  const atyp = bound?.kind === "ipv6" ? AddressType.IPV6 : AddressType.IPV4;
  const out = Buffer.alloc(4 + address.length + 2);
  out[0] = SOCKS5_VERSION;
  out[1] = reply;
  out[2] = 0x00;
  out[3] = atyp;
  out.set(address, 4);
  out.writeUInt16BE(bound?.port ?? 0, 4 + address.length);
  return out;
}

/** A whole SOCKS4 reply: VN=0 CD DSTPORT DSTIP (8 bytes). */
export function encodeSocks4Reply(code: Socks4ReplyCode, port = 0, ip: Uint8Array = new Uint8Array(4)): Buffer {
  const out = Buffer.alloc(8);
  out[1] = code;
  out.writeUInt16BE(port, 2);
  out.set(ip.subarray(0, 4), 4);
  return out;
}

/**
 * The SOCKS4 reply for a SOCKS5-style outcome: SOCKS4 has one failure code.
 *
 * @example
 * socks4ReplyFor(Socks5Reply.CONNECTION_REFUSED) // 0x5b
 */
export function socks4ReplyFor(reply: Socks5ReplyCode): Socks4ReplyCode {
  return reply === Socks5Reply.SUCCEEDED ? Socks4Reply.GRANTED : Socks4Reply.REJECTED;
}

/** The reply to send for `reply` in the client's own protocol version. */
export function encodeReply(version: 4 | 5, reply: Socks5ReplyCode): Buffer {
  return version === 5 ? encodeSocks5Reply(reply) : encodeSocks4Reply(socks4ReplyFor(reply));
}

/**
 * The reply byte a client of `version` receives for `reply`: REP (RFC 1928
 * section 6) for SOCKS5, CD for SOCKS4, whose protocol note has one code for
 * a failed request (91; 92 and 93 are about identd) where SOCKS5 has eight.
 * Callers that name the byte in a message ask here rather than spelling it.
 *
 * @example
 * replyCodeFor(5, Socks5Reply.CONNECTION_REFUSED) // 0x05
 * replyCodeFor(4, Socks5Reply.CONNECTION_REFUSED) // 0x5b
 */
export function replyCodeFor(version: 4 | 5, reply: Socks5ReplyCode): number {
  return version === 5 ? reply : socks4ReplyFor(reply);
}

/**
 * `replyCodeFor` as log lines write it: two hex digits after "0x".
 *
 * @example
 * formatReplyCode(5, Socks5Reply.NOT_ALLOWED) // "0x02"
 * formatReplyCode(4, Socks5Reply.NOT_ALLOWED) // "0x5b"
 */
export function formatReplyCode(version: 4 | 5, reply: Socks5ReplyCode): string {
  return `0x${hex(replyCodeFor(version, reply))}`;
}

/** RFC 1928's wording for each REP value, for logs. */
export function describeSocks5Reply(reply: number): string {
  switch (reply) {
    case Socks5Reply.SUCCEEDED: return "succeeded";
    case Socks5Reply.GENERAL_FAILURE: return "general SOCKS server failure";
    case Socks5Reply.NOT_ALLOWED: return "connection not allowed by ruleset";
    case Socks5Reply.NETWORK_UNREACHABLE: return "network unreachable";
    case Socks5Reply.HOST_UNREACHABLE: return "host unreachable";
    case Socks5Reply.CONNECTION_REFUSED: return "connection refused";
    case Socks5Reply.TTL_EXPIRED: return "TTL expired";
    case Socks5Reply.COMMAND_NOT_SUPPORTED: return "command not supported";
    case Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED: return "address type not supported";
    default: return `unassigned reply 0x${hex(reply)}`;
  }
}

function commandFromCode(code: number): Command {
  switch (code) {
    case 0x01: return "connect";
    case 0x02: return "bind";
    case 0x03: return "udp-associate";
    default: return "unknown";
  }
}

/** Index of the NUL at or after `from`, -1 if not yet received, -2 if past `max` bytes. */
function findNul(buf: Uint8Array, from: number, max: number): number {
  const limit = Math.min(buf.length, from + max + 1);
  for (let i = from; i < limit; i++) if (buf[i] === 0) return i;
  return buf.length > from + max ? -2 : -1;
}

function isPrintableAscii(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b < 0x21 || b > 0x7e) return false;
  return true;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

// ------------------------------------------------------------ client side

/**
 * A SOCKS5 greeting offering `methods` (RFC 1928 section 3): VER NMETHODS METHODS.
 *
 * @example
 * encodeSocks5Greeting([AuthMethod.NO_AUTH]) // <05 01 00>
 */
export function encodeSocks5Greeting(methods: readonly number[]): Buffer {
  return Buffer.from([SOCKS5_VERSION, methods.length, ...methods]);
}

/**
 * A SOCKS5 CONNECT to a domain name (RFC 1928 section 4, ATYP X'03'), so the
 * proxy resolves it.
 *
 * @example
 * encodeSocks5ConnectName("a.invalid", 80) // <05 01 00 03 09 'a.invalid' 00 50>
 */
export function encodeSocks5ConnectName(name: string, port: number): Buffer {
  const host = Buffer.from(name, "latin1");
  if (host.length === 0 || host.length > 255) throw new RangeError(`a SOCKS5 domain name is 1 to 255 bytes, got ${host.length}`);
  const out = Buffer.alloc(7 + host.length);
  out.set([SOCKS5_VERSION, 0x01, 0x00, AddressType.DOMAIN, host.length], 0);
  out.set(host, 5);
  out.writeUInt16BE(port, 5 + host.length);
  return out;
}

/**
 * A username/password request (RFC 1929 section 2): VER ULEN UNAME PLEN PASSWD.
 * Text is sent as UTF-8, as curl sends what it is given.
 *
 * @example
 * encodeSocks5UserPass("alice", "pw!") // <01 05 'alice' 03 'pw!'>
 */
export function encodeSocks5UserPass(username: string | Uint8Array, password: string | Uint8Array): Buffer {
  const user = typeof username === "string" ? Buffer.from(username, "utf8") : username;
  const pass = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  for (const [what, field] of [["username", user], ["password", pass]] as const) {
    if (field.length > USERPASS_MAX_FIELD) throw new RangeError(`an RFC 1929 ${what} is at most ${USERPASS_MAX_FIELD} bytes, got ${field.length}`);
  }
  return Buffer.concat([Buffer.from([USERPASS_VERSION, user.length]), user, Buffer.from([pass.length]), pass]);
}

/**
 * The server's method choice (RFC 1928 section 3): VER METHOD.
 *
 * @example
 * parseSocks5MethodChoice(Uint8Array.of(5, 0)) // { status: "ok", value: { method: 0 }, consumed: 2 }
 */
export function parseSocks5MethodChoice(buf: Uint8Array): ParseResult<{ method: number }> {
  if (buf.length < 2) return { status: "incomplete" };
  if (buf[0] !== SOCKS5_VERSION) return { status: "invalid", reason: `not a SOCKS5 method choice (first byte 0x${hex(buf[0]!)})` };
  return { status: "ok", value: { method: buf[1]! }, consumed: 2 };
}

/**
 * A server's SOCKS5 reply (RFC 1928 section 6): VER REP RSV ATYP BND.ADDR BND.PORT.
 *
 * @example
 * parseSocks5Reply(encodeSocks5Reply(Socks5Reply.SUCCEEDED)) // { status: "ok", value: { reply: 0 }, consumed: 10 }
 */
export function parseSocks5Reply(buf: Uint8Array): ParseResult<{ reply: number }> {
  if (buf.length < 5) return { status: "incomplete" };
  if (buf[0] !== SOCKS5_VERSION) return { status: "invalid", reason: `not a SOCKS5 reply (first byte 0x${hex(buf[0]!)})` };
  const atyp = buf[3];
  const addressLength = atyp === AddressType.IPV4 ? 4 : atyp === AddressType.IPV6 ? 16 : atyp === AddressType.DOMAIN ? 1 + buf[4]! : -1;
  if (addressLength < 0) return { status: "invalid", reason: `SOCKS5 reply with unknown address type 0x${hex(atyp!)}` };
  const length = 4 + addressLength + 2;
  if (buf.length < length) return { status: "incomplete" };
  return { status: "ok", value: { reply: buf[1]! }, consumed: length };
}
