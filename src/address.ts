/**
 * IP addresses as bytes and text: parsing (including the numeric forms a
 * resolver accepts without DNS), RFC 5952 spelling, and host:port with IPv6
 * in brackets. Pure; shared by the SOCKS codec, the policy and the listeners.
 */
import { isIPv4, isIPv6 } from "node:net";
import { TunnelError } from "./errors.ts";

/**
 * Spells an address: IPv4 dotted, IPv6 compressed per RFC 5952 (lower case,
 * longest zero run as "::", IPv4-mapped in mixed notation per section 5).
 *
 * @example
 * formatAddress(new Uint8Array([32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])); // "2001:db8::1"
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) {
    throw new TunnelError("INTERNAL", `formatAddress needs 4 or 16 bytes, got ${bytes.length}`);
  }
  const mapped = mappedIPv4(bytes);
  if (mapped !== null) return `::ffff:${formatAddress(mapped)}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952 section 4.2: compress the longest run of two or more zero groups, the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

export function parseIPv4(text: string): Uint8Array | null {
  // node:net's isIPv4 takes dotted quads only, without leading zeros.
  return isIPv4(text) ? Uint8Array.from(text.split("."), Number) : null;
}

export function parseIPv6(text: string): Uint8Array | null {
  if (!isIPv6(text) || text.includes("%")) return null;
  let hexPart = text;
  let embedded: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    embedded = parseIPv4(text.slice(lastColon + 1));
    if (embedded === null) return null;
    hexPart = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left, right] = hexPart.split("::") as [string, string | undefined];
  const leftGroups = left === "" ? [] : left.split(":");
  const rightGroups = right === undefined || right === "" ? [] : right.split(":");
  const zeros = new Array<string>(8 - leftGroups.length - rightGroups.length).fill("0");
  const bytes = new Uint8Array(16);
  [...leftGroups, ...zeros, ...rightGroups].forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  if (embedded !== null) bytes.set(embedded, 12);
  return bytes;
}

/**
 * BSD inet_aton(3), as in glibc and musl: one to four parts split by '.',
 * each decimal, octal (leading 0) or hex (leading 0x); the last part fills
 * the remaining bytes. Like the BSD original, anything after a whitespace
 * character is ignored, which we keep so that such a name is refused too.
 */
export function inetAton(text: string): Uint8Array | null {
  const parts: number[] = [];
  let i = 0;
  let value = 0;
  let sawDigit = false;
  for (;;) {
    if (!isDigit(text[i])) return null;
    value = 0;
    sawDigit = false;
    let base = 10;
    if (text[i] === "0") {
      i++;
      if (text[i] === "x" || text[i] === "X") {
        base = 16;
        i++;
      } else {
        base = 8;
        sawDigit = true;
      }
    }
    for (;;) {
      const c = text[i];
      if (c === undefined) break;
      const digit = base === 16 ? parseInt(c, 16) : isDigit(c) ? c.charCodeAt(0) - 48 : NaN;
      if (Number.isNaN(digit)) break;
      if (digit >= base) return null;
      value = value * base + digit;
      sawDigit = true;
      i++;
    }
    if (text[i] !== ".") break;
    if (parts.length >= 3 || value > 0xff) return null;
    parts.push(value);
    i++;
  }
  if (i < text.length && !" \t\n\v\f\r".includes(text[i]!)) return null;
  if (!sawDigit) return null;
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][parts.length]!;
  if (value > lastMax) return null;
  const bytes = new Uint8Array(4);
  parts.forEach((part, index) => {
    bytes[index] = part;
  });
  for (let index = 3; index >= parts.length; index--) {
    bytes[index] = value % 256;
    value = Math.floor(value / 256);
  }
  return bytes;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** The IPv4 address inside ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2), else null. */
export function mappedIPv4(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length !== 16) return null;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return null;
  return bytes.slice(12);
}


/**
 * `host:port`, with an IPv6 address in brackets, as URLs and ssh write it.
 *
 * @example
 * hostPort("::1", 9001) // "[::1]:9001"
 */
export function hostPort(host: string, port: number | string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A host without the brackets that protect an IPv6 address in host:port syntax.
 *
 * @example
 * unbracket("[::1]") // "::1"
 * unbracket("example.org") // "example.org"
 */
export function unbracket(host: string): string {
  return host.length >= 2 && host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Whether an address literal is a loopback address: 127.0.0.0/8, ::1, or
 * 127.0.0.0/8 mapped into IPv6 (RFC 4291 section 2.5.5.2), as a dual-stack
 * socket reports an IPv4 peer. Names (even "localhost") are not literals.
 *
 * @example
 * isLoopbackAddress("::ffff:127.0.0.1") // true
 * isLoopbackAddress("localhost") // false
 */
export function isLoopbackAddress(address: string): boolean {
  const text = unbracket(address);
  const v4 = parseIPv4(text);
  if (v4 !== null) return v4[0] === 127;
  const v6 = parseIPv6(text);
  if (v6 === null) return false;
  const mapped = mappedIPv4(v6);
  if (mapped !== null) return mapped[0] === 127;
  return v6.every((b, i) => b === (i === 15 ? 1 : 0));
}

/**
 * A TCP port written in decimal, from `min` (1, or 0 where "any port" is
 * allowed) to 65535; undefined for anything else. Service names are not
 * looked up (OpenSSH's a2port does; we keep every port explicit).
 *
 * @example
 * parsePortNumber("2222") // 2222
 * parsePortNumber("0") // undefined
 * parsePortNumber("0", 0) // 0
 */
export function parsePortNumber(text: string, min: 0 | 1 = 1): number | undefined {
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  return value >= min && value <= 65535 ? value : undefined;
}
