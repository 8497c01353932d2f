/**
 * Probe 4, Firefox: does each profile's set-up keep names and traffic inside
 * the tunnel? Pure: profiles' file text in (firefox-prefs.ts layers them),
 * findings out. The loader (browser-files.ts) finds and reads the files.
 *
 * The guard that matters: Firefox refuses to resolve a name itself only while
 * `network.proxy.type` is 1 (manual), `network.proxy.socks` is set, and the
 * remote-DNS pref of `network.proxy.socks_version` is true
 * (DNSServiceBase::DNSForbiddenByActiveProxy, netwerk/dns/DNSServiceBase.cpp).
 * PAC, WPAD, system and extension proxies get no such guard (netwerk/dns/DNSServiceBase.cpp, DNSForbiddenByActiveProxy).
 */
import {
  FIREFOX_PREF,
  firefoxManualSocks,
  firefoxPrefSetting,
  firefoxProxyPolicy,
  firefoxRemoteDns,
  pointsAtProxy,
  type FirefoxPrefValue,
  type ProxyEndpoint,
} from "../client-setup.ts";
import { isLoopbackAddress, parseIPv4, parseIPv6, unbracket } from "../address.ts";
import type { Finding, Severity } from "./findings.ts";
import { resolveProfilePrefs, type PrefSources, type ProfilePrefs, type TextFile } from "./firefox-prefs.ts";

/**
 * What Firefox assumes when nothing sets a pref: measured in Firefox ESR 153
 * (Debian's firefox-esr 153.8.0esr: greprefs.js and browser/defaults in its
 * omni.ja) where the pref lives in a data file, read in
 * modules/libpref/init/StaticPrefList.yaml (mozilla-firefox/firefox) where it
 * is a static pref compiled into libxul.
 */
export const FIREFOX_DEFAULTS: Readonly<Record<string, FirefoxPrefValue>> = {
  // StaticPrefList.yaml: 5 = PROXYCONFIG_SYSTEM.
  [FIREFOX_PREF.proxyType]: 5,
  // all.js (greprefs.js of ESR 153).
  [FIREFOX_PREF.socksHost]: "",
  [FIREFOX_PREF.socksPort]: 0,
  [FIREFOX_PREF.socksVersion]: 5,
  [FIREFOX_PREF.noProxiesOn]: "",
  [FIREFOX_PREF.autoconfigUrl]: "",
  // StaticPrefList.yaml ("Making it a SOCKS5h proxy by convention" / "Making it a SOCKS4a proxy").
  [FIREFOX_PREF.socks5RemoteDns]: true,
  [FIREFOX_PREF.socks4RemoteDns]: false,
  [FIREFOX_PREF.allowHijackingLocalhost]: false,
  // StaticPrefList.yaml, in builds with MOZ_PROXY_DIRECT_FAILOVER (Mozilla's and Debian's: the pref is in ESR 153's libxul).
  [FIREFOX_PREF.failoverDirect]: true,
  // StaticPrefList.yaml: false only in builds with --enable-proxy-bypass-protection (Tor Browser, Mullvad Browser).
  [FIREFOX_PREF.allowBypass]: true,
  // StaticPrefList.yaml: 0 = off by default.
  [FIREFOX_PREF.trrMode]: 0,
  [FIREFOX_PREF.trrUri]: "",
  [FIREFOX_PREF.trrDefaultProviderUri]: "https://mozilla.cloudflare-dns.com/dns-query",
  // StaticPrefList.yaml.
  [FIREFOX_PREF.webrtcEnabled]: true,
  // all.js (greprefs.js of ESR 153).
  [FIREFOX_PREF.webrtcProxyOnlyIfBehindProxy]: false,
  [FIREFOX_PREF.webrtcProxyOnly]: false,
  [FIREFOX_PREF.webrtcDefaultAddressOnly]: false,
  [FIREFOX_PREF.webrtcNoHost]: false,
  // StaticPrefList.yaml.
  [FIREFOX_PREF.dnsDisablePrefetch]: false,
  // StaticPrefList.yaml today; Firefox releases before the predictor was switched off had true in all.js.
  [FIREFOX_PREF.predictorEnabled]: false,
  // all.js (greprefs.js of ESR 153).
  [FIREFOX_PREF.prefetchNext]: true,
  [FIREFOX_PREF.speculativeParallelLimit]: 20,
  [FIREFOX_PREF.connectivityService]: true,
  // all.js says false, browser/app/profile/firefox.js (the browser's own defaults) true: Firefox has true.
  [FIREFOX_PREF.captivePortalService]: true,
};

/** One Firefox profile as the loader found it. */
export interface FirefoxProfile {
  /** Name= in profiles.ini. */
  name: string;
  /** The profile folder. */
  dir: string;
  prefsJs?: TextFile;
  userJs?: TextFile;
}

/** Everything probe 4 reads for Firefox. */
export interface FirefoxInputs {
  profiles: FirefoxProfile[];
  /** The policies.json Firefox reads, if any. */
  policies?: TextFile;
  /** The installation's default-pref files (Debian: /etc/firefox-esr/*.js). */
  defaultFiles?: TextFile[];
  /** Where profiles.ini was looked for, for the report when no profile was found. */
  searched?: string[];
  /** Files that exist but could not be read ("path: EACCES"). */
  unreadable?: string[];
}

/** network.proxy.type values (nsIProtocolProxyService.idl) and why each but 1 lets names be resolved here. */
const PROXY_TYPES: Record<number, string> = {
  0: "no proxy: Firefox connects directly and resolves every name on this machine",
  2:
    "a PAC file: Firefox's guard against local DNS covers only manual proxy settings, and a PAC file may return DIRECT " +
    "or a plain SOCKS, which Firefox takes as SOCKS v4 (network.proxy.default_pac_script_socks_version = 4)",
  4: "WPAD auto-detection: Firefox's guard against local DNS covers only manual proxy settings",
  5: "the system proxy settings: Firefox's guard against local DNS covers only manual proxy settings",
};

/** Resolved values plus Firefox's defaults, and how to say where each came from. */
class ProfileView {
  constructor(
    private readonly prefs: ProfilePrefs,
    private readonly profile: FirefoxProfile,
  ) {}

  get(name: string): FirefoxPrefValue | undefined {
    return this.prefs.get(name).value ?? FIREFOX_DEFAULTS[name];
  }

  /** `network.proxy.type = 5 (Firefox's default)`, `... (user.js line 3)`, `... (Proxy policy in /etc/..., locked)`. */
  show(name: string): string {
    const value = this.get(name);
    return `${value === undefined ? `${name} unset` : firefoxPrefSetting(name, value)} (${this.origin(name)})`;
  }

  private origin(name: string): string {
    const { origin } = this.prefs.get(name);
    switch (origin.kind) {
      case "default":
        return "Firefox's default";
      case "user":
        return `${this.fileName(origin.file)} line ${origin.line}`;
      case "default-file":
        return `${this.fileName(origin.file)} line ${origin.line}${origin.locked ? ", locked" : ""}`;
      case "policy":
        return `${origin.policy} policy in ${origin.file}${origin.locked ? ", locked" : ""}`;
    }
  }

  /** Files in the profile folder by their name (the detail names the folder once), others by path. */
  private fileName(file: string): string {
    const dir = this.profile.dir.replace(/[\\/]+$/, "");
    return file.startsWith(`${dir}/`) || file.startsWith(`${dir}\\`) ? file.slice(dir.length + 1) : file;
  }

  /** The locked policy behind a pref, if one sets it: its prefs cannot be changed in the profile. */
  lockedPolicy(name: string): string | undefined {
    const { origin } = this.prefs.get(name);
    return origin.kind === "policy" && origin.locked ? origin.file : undefined;
  }
}

/** The `network.proxy.no_proxies_on` entries that matter: loopback ones never leave the machine. */
function bypassEntries(list: string): { names: string[]; addresses: string[] } {
  const names: string[] = [];
  const addresses: string[] = [];
  for (const entry of list.split(/[\s,]+/).filter((e) => e !== "")) {
    const host = entry.replace(/\/\d+$/, "");
    // "[v6]:port", a bare IPv6 address (no port to strip), or "host:port".
    const bare = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : parseIPv6(host) !== null ? host : host.replace(/:\d+$/, "");
    const lower = bare.toLowerCase();
    if (lower === "localhost" || lower.endsWith(".localhost") || isLoopbackAddress(bare)) continue;
    if (parseIPv4(bare) !== null || parseIPv6(bare) !== null) addresses.push(entry);
    else names.push(entry);
  }
  return { names, addresses };
}

/**
 * The findings for one profile, each detail starting with the profile's name
 * and folder (`Firefox profile "work" (/home/u/.mozilla/firefox/ab.work): ...`).
 * `shared` holds the installation's files: policies.json and default-pref files.
 *
 * @example
 * auditFirefoxProfile({ name: "default", dir: "/p", userJs: { path: "/p/user.js", text: 'user_pref("network.proxy.type", 1);' } },
 *   {}, { host: "127.0.0.1", port: 9001 })
 */
export function auditFirefoxProfile(profile: FirefoxProfile, shared: Omit<PrefSources, "prefsJs" | "userJs">, proxy: ProxyEndpoint): Finding[] {
  const prefs = resolveProfilePrefs({ ...shared, ...(profile.prefsJs ? { prefsJs: profile.prefsJs } : {}), ...(profile.userJs ? { userJs: profile.userJs } : {}) });
  const view = new ProfileView(prefs, profile);
  const label = `Firefox profile ${JSON.stringify(profile.name)} (${profile.dir})`;
  const findings: Finding[] = [];
  const add = (severity: Severity, detail: string, fix: string | null) => findings.push({ probe: "firefox", severity, detail: `${label}: ${detail}`, fix });
  /** The fix for a proxy pref: the prefs, or the policy when a locked policy holds them. */
  const proxyFix = (names: string[], prefsFix: string): string => {
    const policyFile = names.map((name) => view.lockedPolicy(name)).find((file) => file !== undefined);
    return policyFile === undefined ? prefsFix : `in ${policyFile} set ${firefoxProxyPolicy(proxy)}`;
  };
  const P = FIREFOX_PREF;

  const own = [profile.prefsJs?.path, profile.userJs?.path];
  for (const problem of prefs.problems.filter((p) => own.includes(p.file))) add("info", `${problem.file}: ${problem.message}`, null);

  // The proxy itself, and the guard against local DNS.
  const type = view.get(P.proxyType);
  const manual = type === 1;
  let guarded = false;
  if (!manual) {
    const why = typeof type === "number" && PROXY_TYPES[type] !== undefined ? PROXY_TYPES[type] : "not a type Firefox knows, so it is not manual proxy settings";
    add("leak", `${view.show(P.proxyType)} means ${why}`, proxyFix([P.proxyType], firefoxManualSocks(proxy)));
  } else {
    const host = String(view.get(P.socksHost) ?? "");
    const port = Number(view.get(P.socksPort) ?? 0);
    const version = view.get(P.socksVersion);
    if (host === "") {
      add(
        "leak",
        `${view.show(P.proxyType)} but ${view.show(P.socksHost)}: without a SOCKS host Firefox's guard against local DNS is off`,
        proxyFix([P.socksHost], firefoxManualSocks(proxy)),
      );
    } else {
      if (!pointsAtProxy(host, port, proxy)) {
        add(
          "info",
          `${view.show(P.socksHost)} and ${view.show(P.socksPort)} are not the tunnel at ${proxy.host}:${proxy.port}, so this profile does not browse through it`,
          proxyFix(
            [P.socksHost, P.socksPort],
            `${firefoxPrefSetting(P.socksHost, unbracket(proxy.host))} and ${firefoxPrefSetting(P.socksPort, Number(proxy.port))}`,
          ),
        );
      }
      if (version === 5) {
        if (view.get(P.socks5RemoteDns) !== true) {
          add("leak", `${view.show(P.socks5RemoteDns)} with ${view.show(P.socksVersion)}: Firefox resolves names itself and sends the proxy addresses`, proxyFix([P.socks5RemoteDns], firefoxRemoteDns(5)));
        } else guarded = true;
      } else if (version === 4) {
        if (view.get(P.socks4RemoteDns) !== true) {
          add(
            "leak",
            `${view.show(P.socks4RemoteDns)} with ${view.show(P.socksVersion)}: Firefox resolves names itself and sends the proxy addresses (SOCKS v4 without 4a)`,
            proxyFix(
              [P.socks4RemoteDns, P.socksVersion],
              `${firefoxPrefSetting(P.socksVersion, 5)} with ${firefoxRemoteDns(5)}, or keep SOCKS v4 and set ${firefoxRemoteDns(4)}`,
            ),
          );
        } else guarded = true;
      } else {
        add("leak", `${view.show(P.socksVersion)} is neither 4 nor 5, so Firefox's guard against local DNS is off`, proxyFix([P.socksVersion], firefoxPrefSetting(P.socksVersion, 5)));
      }
    }
  }

  // Hosts that bypass the proxy are looked up and reached from this machine.
  const bypass = bypassEntries(String(view.get(P.noProxiesOn) ?? ""));
  if (bypass.names.length > 0 || bypass.addresses.length > 0) {
    const names = bypass.names.length > 0 ? `names matching ${bypass.names.join(", ")} are resolved on this machine` : "";
    const addresses = bypass.addresses.length > 0 ? `${bypass.addresses.join(", ")} ${bypass.addresses.length === 1 ? "is" : "are"} reached directly` : "";
    add(
      bypass.names.length > 0 ? "leak" : "exposure",
      `${view.show(P.noProxiesOn)} bypasses the proxy: ${[names, addresses].filter((s) => s !== "").join(", and ")}`,
      proxyFix([P.noProxiesOn], firefoxPrefSetting(P.noProxiesOn, "")),
    );
  }
  if (view.get(P.allowHijackingLocalhost) !== true) {
    add(
      "info",
      `${view.show(P.allowHijackingLocalhost)}: localhost, 127.0.0.1 and [::1] bypass the proxy and are reached on this machine`,
      firefoxPrefSetting(P.allowHijackingLocalhost, true),
    );
  }
  if (view.get(P.failoverDirect) !== false) {
    add(
      "exposure",
      `${view.show(P.failoverDirect)}: when the proxy fails, Firefox's own requests (updates, remote settings) retry directly, resolving their names on this machine`,
      firefoxPrefSetting(P.failoverDirect, false),
    );
  }
  if (view.get(P.allowBypass) !== false) {
    add(
      "exposure",
      `${view.show(P.allowBypass)}: Firefox's own services may mark a request to skip the proxy (Remote Settings does when the proxy fails) and connect directly`,
      firefoxPrefSetting(P.allowBypass, false),
    );
  }

  // Firefox's DNS over HTTPS (TRR) is an ordinary channel, so it goes through the proxy (netwerk/dns/TRR.cpp).
  const trr = view.get(P.trrMode);
  if (trr === 2 || trr === 3) {
    const uri = String(view.get(P.trrUri) ?? "") || String(view.get(P.trrDefaultProviderUri));
    add(
      "info",
      `${view.show(P.trrMode)} turns on DNS over HTTPS (${trr === 2 ? "TRR first" : "TRR only"}) with ${view.show(P.trrUri)}: its requests to ${uri} go through the proxy like other requests` +
        (guarded ? ", and page names still go to the proxy as names" : ""),
      null,
    );
  }

  // WebRTC picks its own route unless told to stay behind the proxy.
  if (view.get(P.webrtcEnabled) !== false && view.get(P.webrtcProxyOnlyIfBehindProxy) !== true && view.get(P.webrtcProxyOnly) !== true) {
    add(
      "exposure",
      `${view.show(P.webrtcEnabled)} and ${view.show(P.webrtcProxyOnlyIfBehindProxy)}: WebRTC can send UDP around the proxy and show pages this machine's addresses; ` +
        `${view.show(P.webrtcDefaultAddressOnly)} and ${view.show(P.webrtcNoHost)} ` +
        (view.get(P.webrtcDefaultAddressOnly) !== true && view.get(P.webrtcNoHost) !== true ? "let it offer every local address too" : "limit which local addresses it offers"),
      `${firefoxPrefSetting(P.webrtcProxyOnlyIfBehindProxy, true)} (or ${firefoxPrefSetting(P.webrtcEnabled, false)})`,
    );
  }

  // Looking ahead: harmless while the guard holds (the lookups are refused, connections go through the proxy), names resolved here when it does not.
  const ahead = guarded ? "info" : "leak";
  const aheadWhy = guarded
    ? "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes"
    : "without Firefox's guard against local DNS those names are resolved on this machine";
  // DNSServiceBase::ReadPrefs turns DNS prefetch off whenever network.proxy.type is manual.
  if (!manual && view.get(P.dnsDisablePrefetch) !== true) {
    add("leak", `${view.show(P.dnsDisablePrefetch)}: Firefox looks up the names of links on a page before they are clicked, on this machine`, firefoxPrefSetting(P.dnsDisablePrefetch, true));
  }
  if (view.get(P.predictorEnabled) === true) {
    add(ahead, `${view.show(P.predictorEnabled)}: Firefox resolves and connects to hosts it predicts you will visit; ${aheadWhy}`, firefoxPrefSetting(P.predictorEnabled, false));
  }
  if (view.get(P.prefetchNext) !== false) {
    add(ahead, `${view.show(P.prefetchNext)}: Firefox fetches pages a page links with rel=prefetch or rel=next before you open them; ${aheadWhy}`, firefoxPrefSetting(P.prefetchNext, false));
  }
  const speculative = view.get(P.speculativeParallelLimit);
  if (typeof speculative !== "number" || speculative > 0) {
    add(ahead, `${view.show(P.speculativeParallelLimit)}: Firefox opens connections to links under the mouse before they are clicked; ${aheadWhy}`, firefoxPrefSetting(P.speculativeParallelLimit, 0));
  }

  // Checks that show the network that a Firefox runs here (presence only).
  if (view.get(P.connectivityService) !== false) {
    add(
      "exposure",
      `${view.show(P.connectivityService)}: Firefox checks its connectivity (DNS lookups and a check page) at start-up and on every network change`,
      firefoxPrefSetting(P.connectivityService, false),
    );
  }
  if (view.get(P.captivePortalService) !== false) {
    add(
      "exposure",
      `${view.show(P.captivePortalService)}: Firefox fetches Mozilla's captive-portal check page at start-up and on network changes`,
      firefoxPrefSetting(P.captivePortalService, false),
    );
  }
  return findings;
}

/**
 * Probe 4 for every Firefox profile found: each profile's findings, in
 * profiles.ini order, plus what could not be read.
 *
 * @example
 * auditFirefox({ profiles: [] , searched: ["/home/u/.mozilla/firefox"] }, { host: "127.0.0.1", port: 9001 })
 * // [{ probe: "firefox", severity: "info", detail: "No Firefox profile found (looked for profiles.ini in /home/u/.mozilla/firefox)", fix: null }]
 */
export function auditFirefox(inputs: FirefoxInputs, proxy: ProxyEndpoint): Finding[] {
  const findings: Finding[] = (inputs.unreadable ?? []).map((what) => ({ probe: "firefox", severity: "info", detail: `Could not read ${what}`, fix: null }));
  if (inputs.profiles.length === 0) {
    const where = inputs.searched !== undefined && inputs.searched.length > 0 ? ` (looked for profiles.ini in ${inputs.searched.join(", ")})` : "";
    findings.push({ probe: "firefox", severity: "info", detail: `No Firefox profile found${where}`, fix: null });
    return findings;
  }
  const shared = { ...(inputs.policies ? { policies: inputs.policies } : {}), ...(inputs.defaultFiles ? { defaultFiles: inputs.defaultFiles } : {}) };
  // Problems in the shared files are reported once, not once a profile.
  for (const problem of resolveProfilePrefs(shared).problems) findings.push({ probe: "firefox", severity: "info", detail: `${problem.file}: ${problem.message}`, fix: null });
  for (const profile of inputs.profiles) findings.push(...auditFirefoxProfile(profile, shared, proxy));
  return findings;
}
