/**
 * Networks in CIDR notation (RFC 4632 section 3.1; RFC 4291 section 2.3 for
 * IPv6), as --allow-ip takes them: parsing, canonical spelling, membership.
 * Pure.
 */
import { TunnelError } from "./errors.ts";
import { formatAddress, mappedIPv4, parseIPv4, parseIPv6, unbracket } from "./address.ts";

/** A network: `bytes` has host bits cleared; `text` is its canonical spelling (`10.0.0.0/8`). */
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  text: string;
}

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
  addressText = unbracket(addressText);
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

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = out[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}
