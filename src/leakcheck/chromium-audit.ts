/**
 * Probe 4, Chromium and Google Chrome: managed policies, `Local State`, each
 * profile's `Preferences` and, when the loader found one running, the
 * browser's own command line. Pure: text in, findings out.
 *
 * Which setting wins (Chromium's pref store): managed policy, then the
 * command line (--proxy-server and friends), then the desktop's settings.
 * So a proxy policy silently overrides the flags leakcheck recommends.
 */
import {
  CHROMIUM_BYPASS_NOTHING,
  CHROMIUM_POLICY,
  CHROMIUM_WEBRTC_PROXIED_ONLY,
  chromiumLaunchFlags,
  chromiumPolicies,
  chromiumWebrtcFix,
  CHROMIUM_WEBRTC_PREF,
  chromiumProxyServer,
  pointsAtProxy,
  type ProxyEndpoint,
} from "../client-setup.ts";
import { isLoopbackAddress, parseIPv4, parseIPv6, unbracket } from "../address.ts";
import type { Finding, Severity } from "./findings.ts";
import type { TextFile } from "./firefox-prefs.ts";

/** One profile folder ("Default", "Profile 1") of a user data directory. */
export interface ChromiumProfile {
  name: string;
  dir: string;
  preferences?: TextFile;
}

/** A running browser process: its pid and /proc/PID/cmdline (NUL-separated argv). */
export interface RunningChromium {
  pid: number;
  cmdline: string;
}

/** One Chromium-family browser as the loader found it. */
export interface ChromiumInstall {
  /** "Chromium" or "Google Chrome", for the report. */
  browser: string;
  userDataDir: string;
  localState?: TextFile;
  profiles: ChromiumProfile[];
  /** Managed policy files, every regular file of the directory (Chromium reads them all). */
  policies: TextFile[];
  /** Where this browser reads managed policies on Linux; undefined where policies live in the registry or a plist. */
  policyDir?: string;
  /** Running browser processes, when the loader could look. */
  running?: RunningChromium[];
  /** Files that exist but could not be read ("path: EACCES"). */
  unreadable?: string[];
}

/** A managed policy's value and the file that set it. */
export interface PolicyValue {
  value: unknown;
  file: string;
}

/**
 * Merges managed policy files as Chromium does: lexicographic order of the
 * paths, a later file's policy replacing an earlier one's
 * (components/policy/core/common/config_dir_policy_loader.cc). A file that is
 * not a JSON object is skipped, as Chromium skips it.
 *
 * @example
 * mergeChromiumPolicies([{ path: "/p/b.json", text: '{"ProxyMode": "direct"}' }, { path: "/p/a.json", text: '{"ProxyMode": "system"}' }])
 * // { policies: Map { "ProxyMode" => { value: "direct", file: "/p/b.json" } }, problems: [] }
 */
export function mergeChromiumPolicies(files: TextFile[]): { policies: Map<string, PolicyValue>; problems: string[] } {
  const policies = new Map<string, PolicyValue>();
  const problems: string[] = [];
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const json = parseJsonObject(file.text);
    if (json === undefined) {
      problems.push(`${file.path} is not a JSON object, so Chromium ignores it`);
      continue;
    }
    for (const [name, value] of Object.entries(json)) policies.set(name, { value, file: file.path });
  }
  return { policies, problems };
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const json: unknown = JSON.parse(text);
    return typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `a.b.c` in a JSON object, or undefined. */
function lookup(json: Record<string, unknown> | undefined, path: string): unknown {
  let node: unknown = json;
  for (const key of path.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The argv of a /proc/PID/cmdline text (NUL-separated, usually NUL-terminated). */
export function parseCommandLine(cmdline: string): string[] {
  const argv = cmdline.split("\0");
  if (argv[argv.length - 1] === "") argv.pop();
  return argv;
}

/**
 * A Chromium argv's switches: `--name=value` and `--name` (value ""), the
 * last one winning as in base::CommandLine; arguments after `--` are not switches.
 *
 * @example
 * chromiumSwitches(["chromium", "--proxy-server=socks5://127.0.0.1:9001", "--incognito"])
 * // Map { "proxy-server" => "socks5://127.0.0.1:9001", "incognito" => "" }
 */
export function chromiumSwitches(argv: string[]): Map<string, string> {
  const switches = new Map<string, string>();
  for (const arg of argv.slice(1)) {
    if (arg === "--") break;
    const match = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (match !== null) switches.set(match[1]!.toLowerCase(), match[2] ?? "");
  }
  return switches;
}

/** A proxy scheme as Chromium reads one (net/base/proxy_string_util.cc). */
export type ProxyScheme = "http" | "https" | "socks4" | "socks5" | "quic" | "direct" | "invalid";

export interface ProxyEntry {
  scheme: ProxyScheme;
  host: string;
  port: number;
  /** The entry as written. */
  text: string;
  /** Written without a scheme, so the scheme is the default of where it stands. */
  implicit?: boolean;
}

/** A proxy server string: one list for everything, or lists per URL scheme with `socks=` as the fallback. */
export type ProxyRules =
  | { kind: "empty" }
  | { kind: "list"; proxies: ProxyEntry[] }
  | { kind: "per-scheme"; http: ProxyEntry[]; https: ProxyEntry[]; ftp: ProxyEntry[]; fallback: ProxyEntry[] };

const DEFAULT_PORTS: Record<ProxyScheme, number> = { http: 80, https: 443, socks4: 1080, socks5: 1080, quic: 443, direct: 0, invalid: 0 };

/** One proxy URI; `fallbackScheme` when it has none (HTTP, or SOCKS4 under `socks=`). */
function parseProxyUri(text: string, fallbackScheme: ProxyScheme): ProxyEntry {
  const uri = text.trim();
  if (uri.toLowerCase() === "direct://") return { scheme: "direct", host: "", port: 0, text: uri };
  let scheme = fallbackScheme;
  let rest = uri;
  const separator = uri.indexOf("://");
  if (separator >= 0) {
    const named = uri.slice(0, separator).toLowerCase();
    // "socks" is SOCKS5 in a URI; only a scheme-less entry under socks= is SOCKS4.
    const schemes: Record<string, ProxyScheme> = { http: "http", https: "https", socks4: "socks4", socks: "socks5", socks5: "socks5", quic: "quic" };
    scheme = schemes[named] ?? "invalid";
    rest = uri.slice(separator + 3);
  }
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(rest);
  if (scheme === "invalid" || match === null || match[1] === "") return { scheme: "invalid", host: rest, port: 0, text: uri };
  const port = match[2] === undefined ? DEFAULT_PORTS[scheme] : Number(match[2]);
  return { scheme, host: unbracket(match[1]!), port, text: uri, ...(separator < 0 ? { implicit: true } : {}) };
}

/**
 * Parses a proxy server string as Chromium does
 * (net/proxy_resolution/proxy_config.cc ProxyRules::ParseFromString):
 * `;`-separated, each either a comma list for every URL or `scheme=list`; a
 * scheme-less entry is an HTTP proxy, except under `socks=` where it is SOCKS4.
 *
 * @example
 * parseProxyRules("socks=127.0.0.1:1080")
 * // { kind: "per-scheme", http: [], https: [], ftp: [], fallback: [{ scheme: "socks4", host: "127.0.0.1", port: 1080, text: "127.0.0.1:1080" }] }
 */
export function parseProxyRules(text: string): ProxyRules {
  let rules: ProxyRules = { kind: "empty" };
  const list = (value: string, scheme: ProxyScheme) =>
    value
      .split(",")
      .filter((uri) => uri.trim() !== "")
      .map((uri) => parseProxyUri(uri, scheme));
  for (const token of text.split(";")) {
    const parts = token.split("=").filter((part) => part !== "");
    if (parts.length === 0) continue;
    if (parts.length === 1) {
      if (rules.kind === "per-scheme") continue;
      return { kind: "list", proxies: list(parts[0]!, "http") };
    }
    if (rules.kind !== "per-scheme") rules = { kind: "per-scheme", http: [], https: [], ftp: [], fallback: [] };
    for (let i = 0; i + 1 < parts.length; i += 2) {
      const scheme = parts[i]!.trim().toLowerCase();
      if (scheme === "http" || scheme === "https" || scheme === "ftp") rules[scheme].push(...list(parts[i + 1]!, "http"));
      else if (scheme === "socks") rules.fallback.push(...list(parts[i + 1]!, "socks4"));
    }
  }
  return rules;
}

/** Why a proxy server string leaks (each a clause) or merely does not reach the tunnel. */
function judgeProxyRules(rules: ProxyRules, proxy: ProxyEndpoint): { leaks: string[]; notes: string[] } {
  const leaks: string[] = [];
  const notes: string[] = [];
  const judgeList = (entries: ProxyEntry[], what: string) => {
    entries.forEach((entry, index) => {
      if (entry.scheme === "direct") {
        leaks.push(index === 0 ? `${what} go direct (direct://)` : `${what} fall back to direct:// when ${entries[0]!.text} fails`);
      } else if (entry.scheme === "socks4") {
        const why = entry.implicit ? "has no scheme under socks=, which Chromium reads as SOCKS4" : "is SOCKS4";
        leaks.push(`${entry.text} ${why}: Chromium resolves names on this machine and sends the proxy addresses`);
      } else if (entry.scheme === "invalid") {
        notes.push(`${entry.text} is not a proxy Chromium understands and is skipped`);
      } else if (entry.scheme !== "socks5") {
        const what = entry.implicit ? "has no scheme, which Chromium reads as" : "is";
        notes.push(`${entry.text} ${what} ${entry.scheme === "quic" ? "a" : "an"} ${entry.scheme.toUpperCase()} proxy, not the tunnel's SOCKS port`);
      } else if (!pointsAtProxy(entry.host, entry.port, proxy)) {
        notes.push(`${entry.text} is not the tunnel at ${proxy.host}:${proxy.port}`);
      }
    });
  };
  if (rules.kind === "empty") leaks.push("it names no proxy, so every request goes direct");
  else if (rules.kind === "list") judgeList(rules.proxies, "requests");
  else {
    judgeList(rules.http, "http requests");
    judgeList(rules.https, "https requests");
    judgeList(rules.fallback, "requests");
    if (rules.fallback.length === 0) {
      const missing = (["http", "https"] as const).filter((scheme) => rules[scheme].length === 0);
      if (missing.length > 0) leaks.push(`${missing.join(" and ")} URLs have no proxy in it and go direct`);
    }
  }
  return { leaks: [...new Set(leaks)], notes: [...new Set(notes)] };
}

/** A bypass list's entries that matter (ProxyBypassRules: `,` or `;` separated). */
function judgeBypassList(list: string): { names: string[]; addresses: string[]; loopbackProxied: boolean } {
  const names: string[] = [];
  const addresses: string[] = [];
  let loopbackProxied = false;
  for (const raw of list.split(/[,;]/).map((entry) => entry.trim()).filter((entry) => entry !== "")) {
    if (raw === CHROMIUM_BYPASS_NOTHING) {
      loopbackProxied = true;
      continue;
    }
    if (raw === "<local>") {
      names.push("<local> (names without a dot)");
      continue;
    }
    const host = raw.replace(/^[a-z0-9+.-]+:\/\//i, "").replace(/\/\d+$/, "");
    // An unbracketed IPv6 address has no port to strip.
    const bare = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : parseIPv6(host) !== null ? host : host.replace(/:\d+$/, "");
    const lower = bare.toLowerCase();
    if (lower === "localhost" || lower.endsWith(".localhost") || isLoopbackAddress(bare)) continue;
    if (parseIPv4(bare) !== null || parseIPv6(bare) !== null) addresses.push(raw);
    else names.push(raw);
  }
  return { names, addresses, loopbackProxied };
}

/** ProxyServerMode, the old integer policy: 0 direct, 1 auto-detect, 2 manual (fixed servers), 3 system. */
const PROXY_SERVER_MODES = ["direct", "auto_detect", "fixed_servers", "system"];

const PROXY_MODE_WHY: Record<string, string> = {
  direct: "Chromium connects directly and resolves every name on this machine",
  system: "Chromium follows the desktop's proxy settings, not the tunnel",
  auto_detect: "Chromium looks for a PAC file (WPAD), whose SOCKS means SOCKS4 and which may return DIRECT",
  pac_script: "a PAC file decides, whose SOCKS means SOCKS4 and which may return DIRECT",
};

/**
 * Probe 4 for one Chromium-family browser.
 *
 * @example
 * auditChromium({ browser: "Chromium", userDataDir: "/home/u/.config/chromium", profiles: [], policies: [],
 *   policyDir: "/etc/chromium/policies/managed" }, { host: "127.0.0.1", port: 9001 })
 */
export function auditChromium(install: ChromiumInstall, proxy: ProxyEndpoint): Finding[] {
  const findings: Finding[] = [];
  const label = `${install.browser} (${install.userDataDir})`;
  const add = (severity: Severity, detail: string, fix: string | null) => findings.push({ probe: "chromium", severity, detail: `${label}: ${detail}`, fix });
  const policyFix = (policies: Record<string, string>) => chromiumPolicies(policies, install.policyDir);
  const flagsFix = `start ${install.browser} with ${chromiumLaunchFlags(proxy)}`;
  const proxyPolicies = {
    [CHROMIUM_POLICY.proxyMode]: "fixed_servers",
    [CHROMIUM_POLICY.proxyServer]: chromiumProxyServer(proxy),
    [CHROMIUM_POLICY.proxyBypassList]: CHROMIUM_BYPASS_NOTHING,
  };

  for (const what of install.unreadable ?? []) add("info", `could not read ${what}`, null);
  const { policies, problems } = mergeChromiumPolicies(install.policies);
  for (const problem of problems) add("info", problem, null);
  const showPolicy = (name: string, value: unknown, file: string) => `policy ${JSON.stringify(name)}: ${JSON.stringify(value)} in ${file}`;

  // DNS over HTTPS: Chromium's DoH requests carry LOAD_BYPASS_PROXY and go direct (net/dns/dns_transaction.cc).
  const localState = install.localState === undefined ? undefined : parseJsonObject(install.localState.text);
  if (install.localState !== undefined && localState === undefined) add("info", `${install.localState.path} is not JSON`, null);
  const dohPolicy = policies.get(CHROMIUM_POLICY.dnsOverHttpsMode);
  const dohPref = lookup(localState, "dns_over_https.mode");
  const doh =
    dohPolicy !== undefined
      ? { mode: dohPolicy.value, from: showPolicy(CHROMIUM_POLICY.dnsOverHttpsMode, dohPolicy.value, dohPolicy.file) }
      : typeof dohPref === "string" && dohPref !== ""
        ? { mode: dohPref, from: `"dns_over_https.mode": ${JSON.stringify(dohPref)} in ${install.localState!.path}` }
        : // chrome/browser/net/default_dns_over_https_config_source.cc: the default is automatic.
          { mode: "automatic", from: `secure DNS mode "automatic" (Chromium's default; no DnsOverHttpsMode policy, nothing in Local State)` };
  if (doh.mode !== "off") {
    const known = doh.mode === "automatic" || doh.mode === "secure";
    add(
      known ? "exposure" : "info",
      known
        ? `${doh.from}: Chromium's DNS-over-HTTPS requests skip the proxy (LOAD_BYPASS_PROXY), so ` +
          (doh.mode === "secure"
            ? "every name it resolves itself goes to the DoH server straight from this machine"
            : "it upgrades the lookups it makes itself to DoH when the system's resolver offers it, and sends them straight from this machine")
        : `${doh.from} is not a mode Chromium knows (off, automatic, secure)`,
      policyFix({ [CHROMIUM_POLICY.dnsOverHttpsMode]: "off" }),
    );
  }

  // WebRTC: only the policy (or the profile pref an extension sets) keeps its UDP behind the proxy.
  const webrtcFix = chromiumWebrtcFix(install.policyDir);
  const webrtcWhy = "WebRTC can send UDP around the proxy and show pages this machine's addresses";
  const webrtcPolicy = policies.get(CHROMIUM_POLICY.webRtcIpHandling);
  if (webrtcPolicy !== undefined) {
    if (webrtcPolicy.value !== CHROMIUM_WEBRTC_PROXIED_ONLY) add("exposure", `${showPolicy(CHROMIUM_POLICY.webRtcIpHandling, webrtcPolicy.value, webrtcPolicy.file)}: ${webrtcWhy}`, webrtcFix);
  } else if (install.profiles.length === 0) {
    add("exposure", `no ${CHROMIUM_POLICY.webRtcIpHandling} policy, so WebRTC IP handling is "default": ${webrtcWhy}`, webrtcFix);
  } else {
    for (const profile of install.profiles) {
      const preferences = profile.preferences === undefined ? undefined : parseJsonObject(profile.preferences.text);
      if (profile.preferences !== undefined && preferences === undefined) add("info", `${profile.preferences.path} is not JSON`, null);
      const value = lookup(preferences, CHROMIUM_WEBRTC_PREF);
      if (value === CHROMIUM_WEBRTC_PROXIED_ONLY) continue;
      const from =
        typeof value === "string"
          ? `"${CHROMIUM_WEBRTC_PREF}": ${JSON.stringify(value)} in ${profile.preferences!.path}`
          : `profile ${JSON.stringify(profile.name)} has no ${CHROMIUM_POLICY.webRtcIpHandling} policy or ${CHROMIUM_WEBRTC_PREF}, so WebRTC IP handling is "default"`;
      add("exposure", `${from}: ${webrtcWhy}`, webrtcFix);
    }
  }

  // The proxy: a policy beats the command line.
  const settings = policies.get(CHROMIUM_POLICY.proxySettings);
  const settingsDict = typeof settings?.value === "object" && settings.value !== null && !Array.isArray(settings.value) ? (settings.value as Record<string, unknown>) : undefined;
  const proxyPolicy = (name: string): PolicyValue | undefined => {
    // ProxySettings, when set, replaces the separate proxy policies.
    if (settingsDict !== undefined) return name in settingsDict ? { value: settingsDict[name], file: settings!.file } : undefined;
    return policies.get(name);
  };
  const modePolicy = proxyPolicy(CHROMIUM_POLICY.proxyMode);
  const serverModePolicy = proxyPolicy(CHROMIUM_POLICY.proxyServerMode);
  const mode =
    typeof modePolicy?.value === "string"
      ? { value: modePolicy.value, shown: showPolicy(CHROMIUM_POLICY.proxyMode, modePolicy.value, modePolicy.file) }
      : typeof serverModePolicy?.value === "number" && PROXY_SERVER_MODES[serverModePolicy.value] !== undefined
        ? { value: PROXY_SERVER_MODES[serverModePolicy.value]!, shown: showPolicy(CHROMIUM_POLICY.proxyServerMode, serverModePolicy.value, serverModePolicy.file) }
        : undefined;
  const running = install.running ?? [];

  if (mode !== undefined) {
    const overrides = running.some((process) => [...chromiumSwitches(parseCommandLine(process.cmdline)).keys()].some((name) => name.startsWith("proxy-")))
      ? " (the policy overrides the running browser's --proxy-* flags)"
      : "";
    if (mode.value === "fixed_servers") {
      const server = proxyPolicy(CHROMIUM_POLICY.proxyServer);
      const text = typeof server?.value === "string" ? server.value : "";
      const shown = server === undefined ? `no ${CHROMIUM_POLICY.proxyServer} policy` : showPolicy(CHROMIUM_POLICY.proxyServer, server.value, server.file);
      const verdict = judgeProxyRules(parseProxyRules(text), proxy);
      if (verdict.leaks.length > 0) add("leak", `${mode.shown} with ${shown}: ${verdict.leaks.join("; ")}${overrides}`, policyFix(proxyPolicies));
      else if (verdict.notes.length > 0) add("info", `${mode.shown} with ${shown}: ${verdict.notes.join("; ")}${overrides}`, policyFix(proxyPolicies));
      const bypass = proxyPolicy(CHROMIUM_POLICY.proxyBypassList);
      judgeBypass(
        typeof bypass?.value === "string" ? bypass.value : undefined,
        bypass === undefined ? `no ${CHROMIUM_POLICY.proxyBypassList} policy` : showPolicy(CHROMIUM_POLICY.proxyBypassList, bypass.value, bypass.file),
        policyFix({ [CHROMIUM_POLICY.proxyBypassList]: CHROMIUM_BYPASS_NOTHING }),
      );
    } else {
      const why = PROXY_MODE_WHY[mode.value] ?? "it is not a proxy mode Chromium knows";
      add("leak", `${mode.shown}: ${why}${overrides}`, policyFix(proxyPolicies));
    }
  } else if (running.length === 0) {
    add("info", `no running ${install.browser} to read its launch flags from, and no proxy policy`, flagsFix);
  } else {
    for (const process of running) {
      const switches = chromiumSwitches(parseCommandLine(process.cmdline));
      const who = `${install.browser} pid ${process.pid}`;
      const server = switches.get("proxy-server");
      let leaked = false;
      if (switches.has("no-proxy-server")) {
        add("leak", `${who} runs with --no-proxy-server: ${PROXY_MODE_WHY["direct"]}`, flagsFix);
        leaked = true;
      } else if (switches.has("proxy-pac-url") || switches.has("proxy-auto-detect")) {
        add("leak", `${who} runs with --${switches.has("proxy-pac-url") ? "proxy-pac-url" : "proxy-auto-detect"}: ${PROXY_MODE_WHY["pac_script"]}`, flagsFix);
        leaked = true;
      } else if (server === undefined) {
        add("leak", `${who} runs without --proxy-server: ${PROXY_MODE_WHY["system"]}`, flagsFix);
        leaked = true;
      } else {
        const verdict = judgeProxyRules(parseProxyRules(server), proxy);
        if (verdict.leaks.length > 0) {
          add("leak", `${who} runs with --proxy-server=${server}: ${verdict.leaks.join("; ")}`, flagsFix);
          leaked = true;
        } else if (verdict.notes.length > 0) add("info", `${who} runs with --proxy-server=${server}: ${verdict.notes.join("; ")}`, flagsFix);
        const bypass = switches.get("proxy-bypass-list");
        judgeBypass(bypass, bypass === undefined ? `${who} runs without --proxy-bypass-list` : `${who} runs with --proxy-bypass-list=${bypass}`, flagsFix);
      }
      const rules = switches.get("host-resolver-rules") ?? "";
      if (!leaked && !/^\s*MAP\s+\*\s+~NOTFOUND\b/i.test(rules)) {
        add(
          "info",
          `${who} runs ${rules === "" ? "without --host-resolver-rules" : `with --host-resolver-rules=${rules}`}: its DNS prefetcher may still look names up on this machine (Chromium's SOCKS guide)`,
          flagsFix,
        );
      }
    }
  }
  return findings;

  /** The findings of one bypass list (undefined: none given): names resolved here (leak), addresses reached directly (exposure), loopback sent direct (info). */
  function judgeBypass(list: string | undefined, shown: string, fix: string): void {
    const bypass = judgeBypassList(list ?? "");
    if (bypass.names.length > 0) add("leak", `${shown}: names matching ${bypass.names.join(", ")} bypass the proxy and are resolved on this machine`, fix);
    else if (bypass.addresses.length > 0) add("exposure", `${shown}: ${bypass.addresses.join(", ")} bypass the proxy and are reached directly`, fix);
    if (!bypass.loopbackProxied) {
      // Chromium's implicit bypass rules (net/proxy_resolution/proxy_bypass_rules.cc), undone only by <-loopback>.
      add("info", `${shown}${list === undefined ? "" : `, without ${CHROMIUM_BYPASS_NOTHING}`}: localhost, 127/8, [::1] and 169.254/16 go direct, not through the proxy`, fix);
    }
  }
}
