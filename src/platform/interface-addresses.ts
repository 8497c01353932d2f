/**
 * This machine's own addresses on its network interfaces, loopback left out:
 * where leakcheck listens for WebRTC's UDP, and what the -D front end accepts
 * as such a listener (so the canary page can never point a browser at another
 * machine).
 *
 * IPv6 link-local addresses (fe80::/10) are left out too: reaching one needs
 * a zone index (RFC 4007 section 11), which a STUN URL cannot carry
 * (RFC 7064 section 3.1). On Deno, reading the interfaces needs
 * `--allow-sys=networkInterfaces`; without it there are none (asked first,
 * so Deno never stops the whole process on a permission prompt), and the
 * probe that needs them says so.
 */
import { networkInterfaces } from "node:os";
import { formatAddress, isLoopbackAddress, parseIPv4, parseIPv6 } from "../address.ts";

/** One address as os.networkInterfaces() lists it: the parts read here. */
export interface InterfaceAddress {
  address: string;
  family: string | number;
  internal: boolean;
}

/**
 * IPv4 addresses first, then IPv6 (a browser's STUN client has IPv4 on every
 * network; not every network has IPv6), each in the order the system lists them.
 *
 * @example
 * networkAddresses({ lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }], eth0: [{ address: "192.168.1.20", family: "IPv4", internal: false }] })
 * // ["192.168.1.20"]
 */
export function networkAddresses(interfaces: Record<string, readonly InterfaceAddress[] | undefined> = readInterfaces()): string[] {
  const addresses: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const entry of list ?? []) {
      const canonical = canonicalAddress(entry.address);
      if (entry.internal || canonical === undefined || isLoopbackAddress(canonical) || isLinkLocalIPv6(canonical)) continue;
      if (!addresses.includes(canonical)) addresses.push(canonical);
    }
  }
  return [...addresses.filter((a) => !a.includes(":")), ...addresses.filter((a) => a.includes(":"))];
}

/**
 * Whether `address` is one of `addresses`, however it is spelled.
 *
 * @example
 * isOneOf("2001:DB8::0:1", ["2001:db8::1"]) // true
 */
export function isOneOf(address: string, addresses: readonly string[]): boolean {
  const canonical = canonicalAddress(address);
  return canonical !== undefined && addresses.includes(canonical);
}

/** RFC 5952 spelling for IPv6, dotted for IPv4; undefined for anything else (names, zones). */
export function canonicalAddress(address: string): string | undefined {
  const bytes = parseIPv4(address) ?? parseIPv6(address);
  return bytes === null ? undefined : formatAddress(bytes);
}

function isLinkLocalIPv6(address: string): boolean {
  const bytes = parseIPv6(address);
  return bytes !== null && bytes[0] === 0xfe && (bytes[1]! & 0xc0) === 0x80;
}

/** The part of Deno's permissions API read here (Deno.permissions.querySync); absent on Node. */
interface DenoPermissions {
  permissions?: { querySync?(descriptor: { name: "sys"; kind: "networkInterfaces" }): { state: string } };
}

function readInterfaces(): Record<string, readonly InterfaceAddress[] | undefined> {
  // On Deno, an ungranted permission would prompt on a terminal and block every forward meanwhile.
  const deno = (globalThis as { Deno?: DenoPermissions }).Deno;
  if (deno !== undefined && deno.permissions?.querySync?.({ name: "sys", kind: "networkInterfaces" }).state !== "granted") return {};
  try {
    return networkInterfaces();
  } catch {
    return {};
  }
}
