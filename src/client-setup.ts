/**
 * How each SOCKS client must be set up so that names, not addresses, reach
 * the proxy, and the fix for one that sent an address. The one place these
 * texts live: refusal lines, --help and leakcheck all say the same thing.
 *
 * What each client does, and where to check it:
 * - Firefox decides SOCKS v5 name handling by `network.proxy.socks5_remote_dns`
 *   (the "Proxy DNS when using SOCKS v5" box, Fluent id
 *   connection-proxy-socks-remote-dns); `network.proxy.socks_remote_dns` ("Proxy
 *   DNS when using SOCKS v4", connection-proxy-socks4-remote-dns) now covers
 *   SOCKS v4 only, where it makes Firefox send SOCKS4a names.
 * - Chromium sends names with `--proxy-server=socks5://`; with `socks4://` it
 *   resolves every name locally (net/socket/socks_client_socket.cc resolves the
 *   host before it writes a SOCKS4 request; it has no 4a), seen with Chromium 156.
 * - curl: `--socks5-hostname` and `socks5h://` send names; `--socks5`,
 *   `socks5://` and `--socks4` resolve locally (curl(1), --socks5-hostname).
 */
import { hostPort, isLoopbackAddress, unbracket } from "./address.ts";

/** The clients we know how to set up. */
export type SocksApp = "firefox" | "chromium" | "curl";

/** The proxy as an app is given it: host and port (`"N"` for help text). */
export interface ProxyEndpoint {
  host: string;
  port: number | string;
}

/**
 * The Firefox prefs safetunnel reads or tells people to set, by what they do.
 * Their defaults, and where those come from, are leakcheck's business
 * (leakcheck/firefox-audit.ts); the names live here so that refusal lines,
 * --help and leakcheck spell them the same.
 */
export const FIREFOX_PREF = {
  proxyType: "network.proxy.type",
  socksHost: "network.proxy.socks",
  socksPort: "network.proxy.socks_port",
  socksVersion: "network.proxy.socks_version",
  socks5RemoteDns: "network.proxy.socks5_remote_dns",
  socks4RemoteDns: "network.proxy.socks_remote_dns",
  noProxiesOn: "network.proxy.no_proxies_on",
  allowHijackingLocalhost: "network.proxy.allow_hijacking_localhost",
  failoverDirect: "network.proxy.failover_direct",
  allowBypass: "network.proxy.allow_bypass",
  autoconfigUrl: "network.proxy.autoconfig_url",
  trrMode: "network.trr.mode",
  trrUri: "network.trr.uri",
  trrDefaultProviderUri: "network.trr.default_provider_uri",
  webrtcEnabled: "media.peerconnection.enabled",
  webrtcProxyOnlyIfBehindProxy: "media.peerconnection.ice.proxy_only_if_behind_proxy",
  webrtcProxyOnly: "media.peerconnection.ice.proxy_only",
  webrtcDefaultAddressOnly: "media.peerconnection.ice.default_address_only",
  webrtcNoHost: "media.peerconnection.ice.no_host",
  dnsDisablePrefetch: "network.dns.disablePrefetch",
  predictorEnabled: "network.predictor.enabled",
  prefetchNext: "network.prefetch-next",
  speculativeParallelLimit: "network.http.speculative-parallel-limit",
  connectivityService: "network.connectivity-service.enabled",
  captivePortalService: "network.captive-portal-service.enabled",
} as const;

/** A Firefox pref's value as prefs.js and user.js write it: a string, an integer or a boolean. */
export type FirefoxPrefValue = string | number | boolean;

/** Firefox's pref and checkbox for remote DNS, per SOCKS version. */
const FIREFOX_REMOTE_DNS = {
  5: { pref: FIREFOX_PREF.socks5RemoteDns, box: "Proxy DNS when using SOCKS v5" },
  4: { pref: FIREFOX_PREF.socks4RemoteDns, box: "Proxy DNS when using SOCKS v4" },
} as const;

/**
 * The remote-DNS pref for one SOCKS version, set to true, with the box that sets it.
 *
 * @example
 * firefoxRemoteDns(5) // 'network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5")'
 */
export function firefoxRemoteDns(version: 4 | 5): string {
  const { pref, box } = FIREFOX_REMOTE_DNS[version];
  return `${pref} = true ("${box}")`;
}

/**
 * One pref and its value as about:config and user.js take it (strings quoted).
 *
 * @example
 * firefoxPrefSetting("network.proxy.no_proxies_on", "") // 'network.proxy.no_proxies_on = ""'
 * firefoxPrefSetting("network.proxy.type", 1) // "network.proxy.type = 1"
 */
export function firefoxPrefSetting(name: string, value: FirefoxPrefValue): string {
  return `${name} = ${typeof value === "string" ? JSON.stringify(value) : String(value)}`;
}

/**
 * Every pref of Firefox's manual SOCKS v5 set-up with remote DNS, the only set-up
 * under which Firefox refuses to resolve names itself, and the dialog that sets them.
 *
 * @example
 * firefoxManualSocks({ host: "127.0.0.1", port: 9001 })
 * // 'network.proxy.type = 1 with network.proxy.socks = "127.0.0.1", network.proxy.socks_port = 9001, ...'
 */
export function firefoxManualSocks(proxy: ProxyEndpoint): string {
  const settings = [
    firefoxPrefSetting(FIREFOX_PREF.socksHost, unbracket(proxy.host)),
    firefoxPrefSetting(FIREFOX_PREF.socksPort, proxy.port),
    firefoxPrefSetting(FIREFOX_PREF.socksVersion, 5),
  ];
  return (
    `${firefoxPrefSetting(FIREFOX_PREF.proxyType, 1)} with ${settings.join(", ")} and ${firefoxPrefSetting(FIREFOX_REMOTE_DNS[5].pref, true)} ` +
    `(Manual proxy configuration: ${firefoxProxy(proxy)}, "${FIREFOX_REMOTE_DNS[5].box}")`
  );
}

/**
 * The same set-up as a Firefox enterprise policy, for where a locked Proxy
 * policy overrides the profile's prefs.
 *
 * @example
 * firefoxProxyPolicy({ host: "127.0.0.1", port: 9001 })
 * // '"Proxy": {"Mode": "manual", "SOCKSProxy": "127.0.0.1:9001", "SOCKSVersion": 5, "UseProxyForDNS": true, "Passthrough": ""}'
 */
export function firefoxProxyPolicy(proxy: ProxyEndpoint): string {
  const policy = { Mode: "manual", SOCKSProxy: proxyAddress(proxy), SOCKSVersion: 5, UseProxyForDNS: true, Passthrough: "" };
  const fields = Object.entries(policy).map(([name, value]) => `${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  return `"Proxy": {${fields.join(", ")}}`;
}

/** The Chromium policies safetunnel tells people to set. */
export const CHROMIUM_POLICY = {
  dnsOverHttpsMode: "DnsOverHttpsMode",
  webRtcIpHandling: "WebRtcIPHandling",
  proxySettings: "ProxySettings",
  proxyMode: "ProxyMode",
  proxyServerMode: "ProxyServerMode",
  proxyServer: "ProxyServer",
  proxyPacUrl: "ProxyPacUrl",
  proxyBypassList: "ProxyBypassList",
} as const;

/** The WebRtcIPHandling value that keeps WebRTC's UDP inside the proxy. */
export const CHROMIUM_WEBRTC_PROXIED_ONLY = "disable_non_proxied_udp";

/**
 * The profile preference behind WebRtcIPHandling (the one the WebRTC
 * extension API chrome.privacy.network.webRTCIPHandlingPolicy sets): a user
 * without admin rights can set it in the profile's Preferences file.
 */
export const CHROMIUM_WEBRTC_PREF = "webrtc.ip_handling_policy";

/**
 * How to keep Chromium's WebRTC UDP inside the proxy: the managed policy, or
 * the profile preference where policies cannot be written. Measured with
 * Chromium 156: either stops the page's STUN over UDP; the
 * --force-webrtc-ip-handling-policy switch did not, headless or not.
 *
 * @example
 * chromiumWebrtcFix("/etc/chromium/policies/managed")
 * // 'set the policy "WebRtcIPHandling": "disable_non_proxied_udp" in a JSON file in /etc/chromium/policies/managed/, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored'
 */
export function chromiumWebrtcFix(policyDir?: string): string {
  return (
    `${chromiumPolicies({ [CHROMIUM_POLICY.webRtcIpHandling]: CHROMIUM_WEBRTC_PROXIED_ONLY }, policyDir)}, ` +
    `or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": ${JSON.stringify(CHROMIUM_WEBRTC_PROXIED_ONLY)}} in its profile's Preferences file (Default/Preferences in the user data folder); ` +
    "the --force-webrtc-ip-handling-policy switch is ignored"
  );
}

/** The bypass rule that sends loopback through the proxy too (Chromium sends it direct by default). */
export const CHROMIUM_BYPASS_NOTHING = "<-loopback>";

/**
 * The proxy as Chromium's --proxy-server and ProxyServer policy take it.
 *
 * @example
 * chromiumProxyServer({ host: "::1", port: 1080 }) // "socks5://[::1]:1080"
 */
export function chromiumProxyServer(proxy: ProxyEndpoint): string {
  return `socks5://${proxyAddress(proxy)}`;
}

/**
 * The launch flags that keep everything a Chromium does remote, one argv
 * entry each (for spawning without a shell): names go to the proxy
 * (socks5, not socks4), loopback goes through it too, and the host resolver
 * answers nothing but the proxy's own name, so the DNS prefetcher cannot
 * look anything up here (Chromium's SOCKS guide recommends the last one).
 *
 * @example
 * chromiumLaunchArgs({ host: "127.0.0.1", port: 9001 })
 * // ["--proxy-server=socks5://127.0.0.1:9001", "--proxy-bypass-list=<-loopback>",
 * //  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
 */
export function chromiumLaunchArgs(proxy: ProxyEndpoint): string[] {
  return [
    `--proxy-server=${chromiumProxyServer(proxy)}`,
    `--proxy-bypass-list=${CHROMIUM_BYPASS_NOTHING}`,
    `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${unbracket(proxy.host)}`,
  ];
}

/**
 * The same flags as one line to paste into a shell.
 *
 * @example
 * chromiumLaunchFlags({ host: "127.0.0.1", port: 9001 })
 * // '--proxy-server=socks5://127.0.0.1:9001 --proxy-bypass-list="<-loopback>" --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"'
 */
export function chromiumLaunchFlags(proxy: ProxyEndpoint): string {
  return chromiumLaunchArgs(proxy).map(shellFlag).join(" ");
}

/** `--flag=value` as a shell takes it: the value in double quotes when it has spaces or shell characters. */
function shellFlag(arg: string): string {
  const [flag, value] = [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)];
  return /^[\w./:\[\]@-]*$/.test(value) ? arg : `${flag}="${value}"`;
}

/**
 * Chromium policies and their values, and where Linux reads them from (a JSON
 * file in `policyDir`); elsewhere policies come from the registry or a plist.
 *
 * @example
 * chromiumPolicies({ DnsOverHttpsMode: "off" }, "/etc/chromium/policies/managed")
 * // 'set the policy "DnsOverHttpsMode": "off" in a JSON file in /etc/chromium/policies/managed/'
 */
export function chromiumPolicies(policies: Record<string, string>, policyDir?: string): string {
  const entries = Object.entries(policies).map(([name, value]) => `${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  const where = policyDir === undefined ? "as a managed policy" : `in a JSON file in ${policyDir.replace(/\/?$/, "/")}`;
  return `set the ${entries.length === 1 ? "policy" : "policies"} ${entries.join(", ")} ${where}`;
}

/**
 * Whether a proxy a browser is set to is the tunnel: the same port, and the
 * same host or both on loopback (safetunnel's -D listens on both loopbacks).
 *
 * @example
 * pointsAtProxy("localhost", 9001, { host: "127.0.0.1", port: 9001 }) // true
 */
export function pointsAtProxy(host: string, port: number, proxy: ProxyEndpoint): boolean {
  if (Number(proxy.port) !== port) return false;
  const a = unbracket(host).toLowerCase();
  const b = unbracket(proxy.host).toLowerCase();
  const loopback = (name: string) => name === "localhost" || isLoopbackAddress(name);
  return a === b || (loopback(a) && loopback(b));
}

/** host:port as proxy URLs write it (IPv6 in brackets); the port may be a placeholder such as "N". */
function proxyAddress(proxy: ProxyEndpoint): string {
  return hostPort(proxy.host, proxy.port);
}

function chromiumFlag(proxy: ProxyEndpoint): string {
  return `--proxy-server=${chromiumProxyServer(proxy)}`;
}

function curlFlags(proxy: ProxyEndpoint, separator: string): string {
  const address = proxyAddress(proxy);
  return `--socks5-hostname ${address}${separator}-x socks5h://${address}`;
}

/** Firefox's proxy dialog takes the bare host (no IPv6 brackets) and the port apart. */
function firefoxProxy(proxy: ProxyEndpoint): string {
  return `SOCKS v5 host ${unbracket(proxy.host)} port ${proxy.port}`;
}

/**
 * Which app a program is, from its /proc/<pid>/comm (cut to 15 characters:
 * "Chromium-browse" is chromium-browser), or undefined for any other.
 * Forks are set up like their parent browser.
 *
 * @example
 * socksAppFromProgram("firefox-esr") // "firefox"
 * socksAppFromProgram("wget") // undefined
 */
export function socksAppFromProgram(program: string | undefined): SocksApp | undefined {
  const name = (program ?? "").toLowerCase();
  if (name.includes("firefox") || name.includes("librewolf") || name.includes("icecat")) return "firefox";
  if (name.includes("chrom") || name.includes("brave") || name.includes("edge")) return "chromium";
  if (name === "curl") return "curl";
  return undefined;
}

/**
 * The fix for a client that sent an IP address with SOCKS `version` (or as an HTTP proxy client), for the
 * app `program` names, or for the common apps when it names none we know.
 * `proxy` is the address the client reached us on, so the fix can be pasted.
 *
 * @example
 * refusalFix("curl", 5, { host: "127.0.0.1", port: 9001 })
 * // "use curl --socks5-hostname 127.0.0.1:9001 (or -x socks5h://127.0.0.1:9001)"
 */
export function refusalFix(program: string | undefined, version: 4 | 5 | "http", proxy: ProxyEndpoint): string {
  // An HTTP proxy client sends the name it is given: an address there came from the app or its user.
  if (version === "http") {
    return socksAppFromProgram(program) === "curl"
      ? `give curl a URL with the host name, not an address (curl -x http://${proxyAddress(proxy)} passes on the name)`
      : "give the app the host name, not an address (HTTP proxy clients pass on the name they are given), or use SOCKS5 with names";
  }
  switch (socksAppFromProgram(program)) {
    case "firefox":
      return version === 5
        ? `in Firefox set ${firefoxRemoteDns(5)} with ${firefoxProxy(proxy)}`
        : `in Firefox use ${firefoxProxy(proxy)} with ${firefoxRemoteDns(5)}, or keep SOCKS v4 and set ${firefoxRemoteDns(4)}`;
    case "chromium":
      return `start Chromium with ${chromiumFlag(proxy)} (socks5, not socks4)`;
    case "curl":
      return `use curl ${curlFlags(proxy, " (or ")})`;
    case undefined: {
      const firefox =
        version === 5
          ? `${FIREFOX_REMOTE_DNS[5].pref} = true`
          : `SOCKS v5 with ${FIREFOX_REMOTE_DNS[5].pref} = true, or ${FIREFOX_REMOTE_DNS[4].pref} = true for SOCKS v4`;
      const address = proxyAddress(proxy);
      return `make the app send names: Firefox: ${firefox}; Chromium: ${chromiumFlag(proxy)}; curl: --socks5-hostname ${address} or socks5h://`;
    }
  }
}

/**
 * The client set-up paragraph of --help (and of anything else that shows
 * every app at once), lines of at most 80 columns, no trailing newline.
 *
 * @example
 * clientSetupHelp()
 * // Client setup (N is the -D port):
 * //   Firefox:  SOCKS v5 host 127.0.0.1 port N with "Proxy DNS when using SOCKS
 * //             v5" (network.proxy.socks5_remote_dns = true); ...
 */
export function clientSetupHelp(proxy: ProxyEndpoint = { host: "127.0.0.1", port: "N" }): string {
  const v5 = FIREFOX_REMOTE_DNS[5];
  const v4 = FIREFOX_REMOTE_DNS[4];
  const entries: [string, string][] = [
    [
      "Firefox:",
      `${firefoxProxy(proxy)} with ${unbroken(`"${v5.box}"`)} ${unbroken(`(${v5.pref} = true)`)}; ` +
        `with SOCKS v4 instead, ${unbroken(`"${v4.box}"`)} ${unbroken(`(${v4.pref} = true)`)}`,
    ],
    // Without the resolver rule and the WebRTC policy, Chromium resolves WebRTC's STUN names itself.
    [
      "Chromium:",
      `${chromiumLaunchArgs(proxy).map((arg) => unbroken(shellFlag(arg))).join(" ")}, and the policy ${CHROMIUM_POLICY.webRtcIpHandling} = ${CHROMIUM_WEBRTC_PROXIED_ONLY}`,
    ],
    ["curl:", curlFlags(proxy, " or ")],
  ];
  const heading = typeof proxy.port === "string" ? `Client setup (${proxy.port} is the -D port):` : "Client setup:";
  return [heading, ...entries.flatMap(([app, text]) => hangingIndent(`  ${app.padEnd(10)}`, text, 80))].join("\n");
}

/** A phrase the help text does not break across lines (a pref, a checkbox label). */
function unbroken(phrase: string): string {
  return phrase.replace(/ /g, "\u00a0");
}

/** `text` after `lead`, wrapped between words to `width`, continuation lines indented like it. */
function hangingIndent(lead: string, text: string, width: number): string[] {
  const lines: string[] = [];
  let line = lead;
  for (const word of text.split(" ")) {
    if (line.length > lead.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(lead.length) + word;
    } else {
      line += (line.length > lead.length ? " " : "") + word;
    }
  }
  lines.push(line);
  return lines.map((l) => l.replace(/\u00a0/g, " "));
}
