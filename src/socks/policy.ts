/**
 * May this SOCKS destination go out? Names may: the far end resolves them, so
 * no DNS query leaves this machine. An IP address means the client already
 * resolved the name locally (the leak we exist to prevent, or a client set up
 * without remote DNS), so it is refused unless the user allowed it with
 * --allow-ip. A name field that the far end's resolver would read as an
 * address counts as an address.
 */
import { inetAton, parseIPv6, unbracket } from "../address.ts";
import { cidrContains, type Cidr } from "../cidr.ts";

export type DestinationKind = "name" | "ipv4" | "ipv6";

export type PolicyDecision =
  | { allow: true; viaAllowList: boolean; matched?: Cidr }
  | { allow: false; reason: "ip-literal" };

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
  const inner = unbracket(host);
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
 * Whether a name is under `.invalid`, which RFC 6761 section 6.4 reserves:
 * no resolver anywhere answers one, so no SSH server could reach it, and the
 * front end answers it itself (leak-check canaries live there). Compared in
 * lower case, without the final dots a resolver ignores.
 *
 * @example
 * isInvalidName("X.Canary.safetunnel.INVALID..") // true
 * isInvalidName("invalid.example.org") // false
 */
export function isInvalidName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.+$/, "");
  return name === "invalid" || name.endsWith(".invalid");
}
