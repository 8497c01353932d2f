/**
 * Probe 4, the system: which resolvers a name looked up on this machine goes
 * to, for the report (info findings only: the resolvers are where a leak
 * would land, not a leak). Pure: /etc/resolv.conf text in, findings out.
 */
import { isLoopbackAddress } from "../address.ts";
import type { Finding } from "./findings.ts";
import type { TextFile } from "./firefox-prefs.ts";

export interface ResolvConf {
  nameservers: string[];
  /** The search list (`search`, or `domain`; the last of them wins). */
  search: string[];
  options: string[];
}

/** glibc reads at most this many nameserver lines (resolv.conf(5): MAXNS). */
export const MAXNS = 3;

/** systemd-resolved's stub listeners: 127.0.0.53 (the stub) and 127.0.0.54 (the proxy stub). */
const RESOLVED_STUBS = ["127.0.0.53", "127.0.0.54"];

/**
 * Parses resolv.conf(5): keyword lines, comments starting with `#` or `;`.
 *
 * @example
 * parseResolvConf("# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
 * // { nameservers: ["127.0.0.53"], search: ["lan"], options: ["edns0", "trust-ad"] }
 */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const [keyword, ...values] = line.split(/\s+/);
    if (keyword === "nameserver" && values[0] !== undefined) conf.nameservers.push(values[0]);
    else if (keyword === "search" || keyword === "domain") conf.search = values.filter((v) => !v.startsWith("#") && !v.startsWith(";"));
    else if (keyword === "options") conf.options.push(...values);
  }
  return conf;
}

/** What probe 4 reads about the system's resolvers. */
export interface SystemResolverInputs {
  platform: string;
  /** /etc/resolv.conf, if present (undefined where it does not exist or this platform has none). */
  resolvConf?: TextFile;
  /** Where /etc/resolv.conf links to, when it is a symbolic link. */
  resolvConfTarget?: string;
  /** systemd-resolved's upstream servers, /run/systemd/resolve/resolv.conf, when present. */
  resolvedUpstream?: TextFile;
}

/**
 * Info findings on the resolvers: the nameservers, and whether
 * systemd-resolved's stub answers (where a locally resolved `.invalid`
 * canary stops: it is seen only on loopback).
 *
 * @example
 * auditSystemResolver({ platform: "linux", resolvConf: { path: "/etc/resolv.conf", text: "nameserver 10.0.0.1\n" } })
 * // [{ probe: "system", severity: "info", detail: "/etc/resolv.conf lists nameserver 10.0.0.1: ...", fix: null }]
 */
export function auditSystemResolver(inputs: SystemResolverInputs): Finding[] {
  const info = (detail: string): Finding => ({ probe: "system", severity: "info", detail, fix: null });
  if (inputs.platform !== "linux" && inputs.resolvConf === undefined) {
    return [info(`The system's resolvers were not read: leakcheck reads /etc/resolv.conf, and ${inputs.platform} keeps them elsewhere`)];
  }
  if (inputs.resolvConf === undefined) {
    return [info("There is no /etc/resolv.conf, so glibc asks a name server on this machine (127.0.0.1) for names resolved here")];
  }
  const path = inputs.resolvConf.path;
  const conf = parseResolvConf(inputs.resolvConf.text);
  const findings: Finding[] = [];
  const used = conf.nameservers.slice(0, MAXNS);
  if (used.length === 0) {
    findings.push(info(`${path} lists no nameserver, so glibc asks a name server on this machine (127.0.0.1) for names resolved here`));
  } else {
    const local = used.filter((server) => isLoopbackAddress(server) && !RESOLVED_STUBS.includes(server));
    const ignored = conf.nameservers.length > MAXNS ? ` (glibc ignores ${conf.nameservers.slice(MAXNS).join(", ")}: it reads ${MAXNS} at most)` : "";
    const note = local.length > 0 ? `; ${local.join(", ")} ${local.length === 1 ? "is a resolver" : "are resolvers"} on this machine (a local cache such as dnsmasq or unbound)` : "";
    findings.push(info(`${path} lists nameserver ${used.join(", ")}${ignored}: names resolved on this machine are asked there${note}`));
  }
  const stub = used.some((server) => RESOLVED_STUBS.includes(server)) || /stub-resolv\.conf$/.test(inputs.resolvConfTarget ?? "");
  if (stub) {
    const upstream = inputs.resolvedUpstream === undefined ? [] : parseResolvConf(inputs.resolvedUpstream.text).nameservers;
    const servers = upstream.length > 0 ? `, and it forwards other names to ${upstream.join(", ")} (${inputs.resolvedUpstream!.path})` : "";
    const link = inputs.resolvConfTarget !== undefined ? ` (${path} links to ${inputs.resolvConfTarget})` : "";
    findings.push(
      info(
        `systemd-resolved's stub resolver (127.0.0.53) answers lookups here${link}: it never forwards a .invalid name (RFC 6761), ` +
          `so a canary resolved on this machine is seen only on loopback${servers}`,
      ),
    );
  }
  return findings;
}
