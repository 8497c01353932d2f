/**
 * May this SOCKS destination go out? Names may: the far end resolves them, so
 * no DNS query leaves this machine. An IP address means the client already
 * resolved the name locally (the leak we exist to prevent, or a client set up
 * without remote DNS), so it is refused unless the user allowed it with
 * --allow-ip. A name field that the far end's resolver would read as an
 * address counts as an address.
 */
import { isIPv4, isIPv6 } from "node:net";
import { TunnelError } from "../errors.ts";

export type DestinationKind = "name" | "ipv4" | "ipv6";

/** A network: `bytes` has host bits cleared; `text` is its canonical spelling (`10.0.0.0/8`). */
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  text: string;
}

export type PolicyDecision =
  | { allow: true; viaAllowList: boolean; matched?: Cidr }
  | { allow: false; reason: "ip-literal" };

const CIDR_EXAMPLE = "expected an address or CIDR like 10.0.0.0/8 or 2001:db8::/32";

/**
 * Parses one --allow-ip entry. A bare address is a /32 or /128. Host bits
 * below the prefix are accepted and cleared (`10.1.2.3/8` is `10.0.0.0/8`),
 * as `ip route` does. An IPv4-mapped network (`::ffff:10.0.0.0/104`) becomes
 * the IPv4 network it maps, so it matches plain IPv4 destinations too.
 *
 * @example
 * parseCidr("10.1.2.3/8").text; // "10.0.0.0/8"
 * parseCidr("::1").text; // "::1/128"
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  let addressText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  if (addressText.startsWith("[") && addressText.endsWith("]")) addressText = addressText.slice(1, -1);
  let bytes = parseIPv4(addressText) ?? parseIPv6(addressText);
  if (bytes === null) {
    throw new TunnelError("USAGE", `Bad --allow-ip value '${text}': ${CIDR_EXAMPLE}`);
  }
  const maxPrefix = bytes.length * 8;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const prefixText = trimmed.slice(slash + 1);
    prefix = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix <= maxPrefix)) {
      throw new TunnelError(
        "USAGE",
        `Bad --allow-ip value '${text}': the prefix length must be a number from 0 to ${maxPrefix} for an IPv${maxPrefix === 32 ? 4 : 6} address`,
      );
    }
  }
  if (bytes.length === 16 && prefix >= 96 && mappedIPv4(bytes) !== null) {
    bytes = mappedIPv4(bytes)!;
    prefix -= 96;
  }
  const masked = maskBytes(bytes, prefix);
  return {
    family: masked.length === 4 ? 4 : 6,
    bytes: masked,
    prefix,
    text: `${formatAddress(masked)}/${prefix}`,
  };
}

/**
 * Parses a comma-separated --allow-ip list; blanks around and between entries are ignored.
 *
 * @example
 * parseCidrList("10.0.0.0/8, 192.168.1.5").map((c) => c.text); // ["10.0.0.0/8", "192.168.1.5/32"]
 */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map(parseCidr);
}

/**
 * What a SOCKS host field really is. Besides dotted quads and IPv6 (bare,
 * bracketed, with a zone id), every numeric form inet_aton(3) accepts counts
 * as IPv4 ("2130706433", "0x7f.1", "127.1", "0177.0.0.1"), because getaddrinfo
 * on the far end turns those into addresses without asking DNS. A trailing
 * dot ("127.0.0.1.") is not an inet_aton form, so that stays a name.
 *
 * @example
 * classifyHost("0x7f.1"); // { kind: "ipv4", address: Uint8Array [127, 0, 0, 1] }
 * classifyHost("1.example"); // { kind: "name" }
 */
export function classifyHost(host: string): { kind: DestinationKind; address?: Uint8Array } {
  const bracketed = host.length >= 2 && host.startsWith("[") && host.endsWith("]");
  const inner = bracketed ? host.slice(1, -1) : host;
  const percent = inner.indexOf("%");
  const v6 = parseIPv6(percent < 0 ? inner : inner.slice(0, percent));
  if (v6 !== null) return { kind: "ipv6", address: v6 };
  const v4 = inetAton(inner);
  if (v4 !== null) return { kind: "ipv4", address: v4 };
  return { kind: "name" };
}

/**
 * Names go out; IP addresses (declared by the SOCKS request or hiding in a
 * name field) only when inside an --allow-ip network. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) are also checked against the IPv4 networks.
 *
 * @example
 * decideDestination({ kind: "name", host: "example.org" }, []); // { allow: true, viaAllowList: false }
 * decideDestination({ kind: "ipv4", host: "10.0.0.1" }, []); // { allow: false, reason: "ip-literal" }
 */
export function decideDestination(
  dest: { kind: DestinationKind; host: string },
  allowIp: readonly Cidr[],
): PolicyDecision {
  const classified = classifyHost(dest.host);
  if (dest.kind === "name" && classified.kind === "name") return { allow: true, viaAllowList: false };
  const address = classified.address;
  if (address !== undefined) {
    const matched = allowIp.find((cidr) => cidrContains(cidr, address));
    if (matched !== undefined) return { allow: true, viaAllowList: true, matched };
  }
  return { allow: false, reason: "ip-literal" };
}

/**
 * Whether an address (4 or 16 bytes) lies inside a network. An IPv4-mapped
 * IPv6 address is compared with IPv4 networks as the IPv4 address it maps;
 * a plain IPv4 address never matches an IPv6 network (`::/0` allows IPv6 only).
 *
 * @example
 * cidrContains(parseCidr("10.0.0.0/8"), new Uint8Array([10, 9, 8, 7])); // true
 */
export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  let candidate: Uint8Array | null = address;
  if (cidr.bytes.length === 4 && address.length === 16) candidate = mappedIPv4(address);
  if (candidate === null || candidate.length !== cidr.bytes.length) return false;
  const masked = maskBytes(candidate, cidr.prefix);
  return masked.every((byte, i) => byte === cidr.bytes[i]);
}

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

function parseIPv4(text: string): Uint8Array | null {
  // node:net's isIPv4 takes dotted quads only, without leading zeros.
  return isIPv4(text) ? Uint8Array.from(text.split("."), Number) : null;
}

function parseIPv6(text: string): Uint8Array | null {
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
function inetAton(text: string): Uint8Array | null {
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
function mappedIPv4(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length !== 16) return null;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return null;
  return bytes.slice(12);
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = out[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}
