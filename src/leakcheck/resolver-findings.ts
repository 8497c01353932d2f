/**
 * Probe 3's verdict on what a capture saw: DNS observations (dns-frames.ts)
 * and the canary names of this check in, findings (findings.ts) out. Pure.
 *
 * - A query naming a canary, or a name under one, is a `leak`: canaries are
 *   unresolvable `.invalid` names (RFC 6761 section 6.4) that only the
 *   browser was given, so seeing one on its way to a resolver proves the
 *   browser resolved it itself instead of handing the name to the proxy.
 *   This holds for unicast DNS, mDNS and LLMNR alike (a multicast query even
 *   tells the whole local network). A reply naming the canary proves the same
 *   when its query was not captured.
 * - Every other name looked up during the test is `info`: a capture does not
 *   say which program asked, and when the canary went through the proxy these
 *   are other programs' lookups, not the browser's.
 * - DNS over TLS to port 853 is an `exposure`, not a leak: the names are
 *   encrypted, so it cannot show where you browse, but anyone on the network
 *   sees that this machine resolves names itself, outside the tunnel, and to
 *   which server; that server sees every name. If the browser used it, its
 *   lookups also went through the local stub (127.0.0.53 and the like), where
 *   the capture sees the canary in clear and reports the leak itself.
 */
import { hostPort } from "../address.ts";
import type { DnsObservation, DnsProtocol, Endpoint } from "./dns-frames.ts";
import type { Finding } from "./findings.ts";
import { canonicalName, RESERVED_DOMAIN } from "./canary-registry.ts";

export interface ResolverFindingsOptions {
  /**
   * How many other names an info finding lists before "and N more".
   * @default 10
   */
  maxNamesListed?: number;
  /**
   * Canaries that WebRTC was given (the STUN server name): a lookup of one is
   * WebRTC's leak, so it is reported as probe "webrtc" with `webrtcFix`. They
   * are canaries in their own right too, whether or not `canaries` lists them,
   * so a caller cannot pass one here and have its lookups go unnoticed.
   * @default []
   */
  webrtcCanaries?: Iterable<string>;
  /**
   * The fix of a WebRTC canary's leak (webrtc.ts `stunLookupFix` for the proxy in use).
   * @default CANARY_LOOKUP_FIX
   */
  webrtcFix?: string;
}

/** The fix for a canary resolved locally: the browser-specific texts are the browser probes' (client-setup.ts). */
export const CANARY_LOOKUP_FIX = "make the browser send names to the proxy: the Firefox and Chromium findings say which setting to change";

/**
 * Whether `name` is `canary` or a name under it (case-insensitive, final dots ignored).
 *
 * @example
 * namesCanary("www.AbC.safetunnel.invalid.", "abc.safetunnel.invalid") // true
 * namesCanary("abc.safetunnel.invalid.example.org", "abc.safetunnel.invalid") // false
 */
export function namesCanary(name: string, canary: string): boolean {
  const asked = canonicalName(name);
  const wanted = canonicalName(canary);
  return wanted !== "" && (asked === wanted || asked.endsWith(`.${wanted}`));
}

/** A canary name of any check: `LABEL.canary.safetunnel.invalid` (canary-registry.ts), with what lies under it. */
const ANY_CANARY = new RegExp(`(?:^|\\.)([^.]+\\.canary\\.${RESERVED_DOMAIN.replace(/\./g, "\\.")})$`);

/**
 * The canaries of any check that `observations` name, for a capture read
 * without a running check (`--pcap` with no tunnel): whichever check the
 * capture was taken during, its canaries look like this.
 *
 * @example
 * canariesIn([{ names: ["www.3f2a.canary.safetunnel.invalid", "example.org"], ... }]) // ["3f2a.canary.safetunnel.invalid"]
 */
export function canariesIn(observations: readonly DnsObservation[]): string[] {
  const found = new Set<string>();
  for (const seen of observations) {
    for (const name of seen.names) {
      const match = ANY_CANARY.exec(canonicalName(name));
      if (match !== null) found.add(match[1]!);
    }
  }
  return [...found];
}

/**
 * Findings of probe "resolver" for `observations` made during the test.
 * Leaks come first (one per canary and protocol), then DoT exposures (one per
 * server), then one info finding per protocol listing other names asked for.
 * A leak of one of `options.webrtcCanaries` is probe "webrtc" instead, with
 * `options.webrtcFix`.
 *
 * @example
 * resolverFindings(observations, ["x1.safetunnel.invalid"])
 * // [{ probe: "resolver", severity: "leak", detail: "The canary x1.safetunnel.invalid was looked up through the local resolver at 127.0.0.53:53 by 127.0.0.1:41000 ...", fix: "make the browser send names to the proxy: ..." }]
 * resolverFindings(observations, ["x1.safetunnel.invalid"], { webrtcCanaries: ["x1-stun.safetunnel.invalid"], webrtcFix: "in Firefox ..." })
 * // a lookup of x1-stun.safetunnel.invalid: [{ probe: "webrtc", severity: "leak", detail: "The canary x1-stun.safetunnel.invalid was looked up ...", fix: "in Firefox ..." }]
 */
export function resolverFindings(
  observations: readonly DnsObservation[],
  canaries: Iterable<string>,
  options: ResolverFindingsOptions = {},
): Finding[] {
  const webrtcCanaries = new Set([...(options.webrtcCanaries ?? [])].map(canonicalName).filter((canary) => canary !== ""));
  const canaryList = [...new Set([...[...canaries].map(canonicalName), ...webrtcCanaries])].filter((canary) => canary !== "");
  const webrtcFix = options.webrtcFix ?? CANARY_LOOKUP_FIX;
  const maxNames = options.maxNamesListed ?? 10;
  /** By protocol and canary: a multicast lookup is reported apart from a unicast one. */
  const leaks = new Map<string, Leak>();
  const dot = new Map<string, DnsObservation[]>();
  const others = new Map<PlainProtocol, Map<string, string>>();

  for (const seen of observations) {
    if (seen.protocol === "dot") {
      const server = endpoint(seen.to);
      dot.set(server, [...(dot.get(server) ?? []), seen]);
      continue;
    }
    for (const name of seen.names) {
      const canary = canaryList.find((candidate) => namesCanary(name, candidate));
      if (canary !== undefined) {
        const key: string = `${seen.protocol} ${canary}`;
        const leak: Leak = leaks.get(key) ?? { canary, seen: [] };
        leaks.set(key, leak);
        // One message naming the canary twice (A and HTTPS questions) is still one message.
        if (!leak.seen.includes(seen)) leak.seen.push(seen);
      } else if (seen.query) {
        const names = others.get(seen.protocol) ?? new Map<string, string>();
        others.set(seen.protocol, names);
        if (!names.has(canonicalName(name))) names.set(canonicalName(name), displayName(name));
      }
    }
  }

  const findings: Finding[] = [];
  for (const { canary, seen } of leaks.values()) {
    const leak = canaryLeak(canary, seen);
    findings.push(webrtcCanaries.has(canary) ? { ...leak, probe: "webrtc", fix: webrtcFix } : leak);
  }
  for (const [server, seen] of dot) findings.push(dotExposure(server, seen));
  for (const [protocol, names] of others) findings.push(otherNames(protocol, [...names.values()], maxNames));
  return findings;
}

type PlainProtocol = Exclude<DnsProtocol, "dot">;

/** The messages that named one canary over one protocol. */
interface Leak {
  canary: string;
  seen: DnsObservation[];
}

function canaryLeak(canary: string, seen: DnsObservation[]): Finding {
  const query = seen.find((observation) => observation.query);
  const first = query ?? seen[0]!;
  const notes = [first.processId === undefined || query === undefined ? "" : `process ${first.processId}`, seen.length > 1 ? `${seen.length} messages` : ""].filter(Boolean);
  const where = `${onInterface(first)}${notes.length > 0 ? ` (${notes.join(", ")})` : ""}`;
  let what: string;
  if (query === undefined) {
    const reply = { dns: "A reply from the local resolver at", mdns: "An mDNS reply from", llmnr: "An LLMNR reply from" }[plain(first.protocol)];
    what = `${reply} ${endpoint(first.from)} to ${endpoint(first.to)} names the canary ${canary}${where}`;
  } else if (first.protocol === "mdns" || first.protocol === "llmnr") {
    const how = first.protocol === "mdns" ? "multicast DNS (mDNS)" : "LLMNR";
    what = `The canary ${canary} was asked for by ${how} from ${endpoint(first.from)}${where}, to the whole local network`;
  } else {
    what = `The canary ${canary} was looked up through the local resolver at ${endpoint(first.to)} by ${endpoint(first.from)}${where}`;
  }
  return {
    probe: "resolver",
    severity: "leak",
    detail: `${what}: the browser resolved it itself instead of sending the name to the proxy.`,
    fix: CANARY_LOOKUP_FIX,
  };
}

function dotExposure(server: string, seen: DnsObservation[]): Finding {
  const clients = new Set(seen.map((observation) => endpoint(observation.from)));
  const connections = clients.size === 1 ? "1 connection" : `${clients.size} connections`;
  return {
    probe: "resolver",
    severity: "exposure",
    detail:
      `Encrypted DNS (DNS over TLS) left this machine for ${server} (${connections}${onInterface(seen[0]!)}): ` +
      `the network cannot read the names, but sees that this machine resolves names itself, outside the tunnel, and ${server} sees every one.`,
    fix: "nothing to change in the browser once the canary reaches the proxy by name; to hide this too, send the system's DNS through the tunnel as well",
  };
}

function otherNames(protocol: PlainProtocol, names: string[], maxNames: number): Finding {
  const how = { dns: "through the local resolver", mdns: "by multicast DNS (mDNS)", llmnr: "by LLMNR" }[protocol];
  const shown = names.slice(0, Math.max(0, maxNames));
  const more = names.length - shown.length;
  const list = shown.join(", ") + (more > 0 ? `${shown.length > 0 ? " and " : ""}${more} more` : "");
  const count = names.length === 1 ? "1 other name was" : `${names.length} other names were`;
  return {
    probe: "resolver",
    severity: "info",
    detail: `${count} looked up ${how} during the test: ${list} (a capture does not say which program asked).`,
    fix: null,
  };
}

function plain(protocol: DnsProtocol): PlainProtocol {
  return protocol === "dot" ? "dns" : protocol;
}

function endpoint(end: Endpoint): string {
  return hostPort(end.address, end.port);
}

function onInterface(seen: DnsObservation): string {
  if (seen.interfaceName !== undefined) return ` on ${seen.interfaceName}`;
  if (seen.interfaceIndex !== undefined) return ` on interface ${seen.interfaceIndex}`;
  return "";
}


/** A name as the report shows it: lower case, and the root as ".". */
function displayName(name: string): string {
  return canonicalName(name) || ".";
}
