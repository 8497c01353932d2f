/**
 * How `safetunnel browser` sets up a browser so that nothing leaks: the
 * Firefox prefs and the Chromium switches and profile files, from the same
 * names and values leakcheck audits (client-setup.ts). Pure: the proxy in,
 * prefs, arguments and file contents out; browser.ts writes and launches.
 */
import {
  CHROMIUM_WEBRTC_PROXIED_ONLY,
  chromiumLaunchArgs,
  FIREFOX_PREF,
  type FirefoxPrefValue,
  type ProxyEndpoint,
} from "../client-setup.ts";
import { unbracket } from "../address.ts";

export type BrowserKind = "firefox" | "chromium";

export interface BrowserSetupOptions {
  /** --no-webrtc: Firefox's WebRTC off rather than kept inside the proxy. */
  webrtc: boolean;
}

/**
 * The prefs of a Firefox profile that sends everything through the tunnel:
 * - manual SOCKS5 with remote DNS, the one set-up under which Firefox will
 *   not resolve names itself (DNSServiceBase::DNSForbiddenByActiveProxy);
 * - nothing around the proxy: no direct failover, no bypass of it for
 *   Firefox's own services, no bypass list, loopback through it too;
 * - DNS-over-HTTPS off (`network.trr.mode` 5), its requests being lookups too;
 * - WebRTC only through the proxy (`media.peerconnection.ice.proxy_only`), or off;
 * - no prefetching, prediction or speculative connections (they resolve
 *   names before a request exists), no connectivity or captive-portal checks;
 * - a quiet first start: no default-browser question, no welcome pages.
 *
 * @example
 * firefoxPrefs({ host: "127.0.0.1", port: 9001 }, { webrtc: true })["network.proxy.socks_port"] // 9001
 */
export function firefoxPrefs(proxy: ProxyEndpoint, options: BrowserSetupOptions): Record<string, FirefoxPrefValue> {
  return {
    [FIREFOX_PREF.proxyType]: 1,
    [FIREFOX_PREF.socksHost]: unbracket(proxy.host),
    [FIREFOX_PREF.socksPort]: Number(proxy.port),
    [FIREFOX_PREF.socksVersion]: 5,
    [FIREFOX_PREF.socks5RemoteDns]: true,
    [FIREFOX_PREF.socks4RemoteDns]: true,
    [FIREFOX_PREF.autoconfigUrl]: "",
    [FIREFOX_PREF.failoverDirect]: false,
    [FIREFOX_PREF.allowBypass]: false,
    [FIREFOX_PREF.noProxiesOn]: "",
    [FIREFOX_PREF.allowHijackingLocalhost]: true,
    [FIREFOX_PREF.trrMode]: 5,
    [FIREFOX_PREF.webrtcEnabled]: options.webrtc,
    [FIREFOX_PREF.webrtcProxyOnly]: true,
    [FIREFOX_PREF.dnsDisablePrefetch]: true,
    [FIREFOX_PREF.predictorEnabled]: false,
    [FIREFOX_PREF.prefetchNext]: false,
    [FIREFOX_PREF.speculativeParallelLimit]: 0,
    [FIREFOX_PREF.connectivityService]: false,
    [FIREFOX_PREF.captivePortalService]: false,
    "browser.shell.checkDefaultBrowser": false,
    "browser.aboutwelcome.enabled": false,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "datareporting.policy.firstRunURL": "",
  };
}

/**
 * A user.js holding `prefs`, keeping every line of `existing` (a kept
 * profile's own user.js) except the ones that set one of them. Firefox reads
 * user.js after prefs.js at every start, so these win over what the profile
 * had.
 *
 * @example
 * firefoxUserJs({ "network.proxy.type": 1 }, 'user_pref("network.proxy.type", 0);\nuser_pref("a", 1);\n')
 * // 'user_pref("a", 1);\nuser_pref("network.proxy.type", 1);\n'
 */
export function firefoxUserJs(prefs: Readonly<Record<string, FirefoxPrefValue>>, existing = ""): string {
  const ours = new Set(Object.keys(prefs));
  const kept = existing
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => {
      const name = /^\s*user_pref\(\s*"([^"]+)"/.exec(line)?.[1];
      return name === undefined || !ours.has(name);
    });
  const set = Object.entries(prefs).map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});`);
  return `${[...kept, ...set].join("\n")}\n`;
}

/**
 * Chromium's switches for `profileDir`: the proxy switches leakcheck's audit
 * expects (socks5, loopback through it, a host resolver that answers nothing
 * but the proxy), QUIC off, no first-run questions.
 *
 * @example
 * chromiumArgs({ host: "127.0.0.1", port: 9001 }, "/tmp/p")
 * // ["--user-data-dir=/tmp/p", "--proxy-server=socks5://127.0.0.1:9001", "--proxy-bypass-list=<-loopback>", ...]
 */
export function chromiumArgs(proxy: ProxyEndpoint, profileDir: string): string[] {
  return [`--user-data-dir=${profileDir}`, ...chromiumLaunchArgs(proxy), "--disable-quic", "--no-first-run", "--no-default-browser-check"];
}

/** A JSON object as Chromium keeps its Preferences and Local State files. */
export type JsonObject = { [key: string]: unknown };

/**
 * The profile preferences (`Default/Preferences`): WebRTC's UDP only through
 * the proxy, as the WebRtcIPHandling policy would set it (desktop Chromium
 * ignores the command-line switch). `existing` is a kept profile's file.
 *
 * @example
 * chromiumPreferences({}) // { webrtc: { ip_handling_policy: "disable_non_proxied_udp" } }
 */
export function chromiumPreferences(existing: JsonObject): JsonObject {
  return { ...existing, webrtc: { ...asObject(existing["webrtc"]), ip_handling_policy: CHROMIUM_WEBRTC_PROXIED_ONLY } };
}

/**
 * The browser-wide `Local State`: DNS-over-HTTPS off (its requests carry
 * LOAD_BYPASS_PROXY and go direct).
 *
 * @example
 * chromiumLocalState({}) // { dns_over_https: { mode: "off" } }
 */
export function chromiumLocalState(existing: JsonObject): JsonObject {
  return { ...existing, dns_over_https: { ...asObject(existing["dns_over_https"]), mode: "off" } };
}

function asObject(value: unknown): JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
}

/** Where a browser may be installed, by platform: names looked up on PATH, then full paths. */
export interface BrowserCandidates {
  names: string[];
  paths: string[];
}

/**
 * Where to look for `kind`: its usual program names on PATH (forks that take
 * the same prefs or switches included), then the usual install paths of
 * macOS and Windows.
 *
 * @example
 * browserCandidates("firefox", "linux", {}) // { names: ["firefox", "firefox-esr", "librewolf"], paths: [] }
 */
export function browserCandidates(kind: BrowserKind, platform: string, env: Readonly<Record<string, string | undefined>>): BrowserCandidates {
  const windows = platform === "win32";
  const names = (
    kind === "firefox"
      ? ["firefox", "firefox-esr", "librewolf"]
      : windows
        ? ["chrome", "chromium", "msedge", "brave"]
        : ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "brave-browser", "microsoft-edge"]
  ).map((n) => (windows ? `${n}.exe` : n));
  const paths: string[] = [];
  if (platform === "darwin") {
    const apps =
      kind === "firefox"
        ? ["Firefox.app/Contents/MacOS/firefox"]
        : [
            "Chromium.app/Contents/MacOS/Chromium",
            "Google Chrome.app/Contents/MacOS/Google Chrome",
            "Brave Browser.app/Contents/MacOS/Brave Browser",
            "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
          ];
    // The system's Applications folder, then the user's own (a drag-and-drop install without admin rights).
    const home = env["HOME"];
    for (const root of ["/Applications", ...(home !== undefined && home !== "" ? [`${home}/Applications`] : [])]) for (const app of apps) paths.push(`${root}/${app}`);
  } else if (windows) {
    const roots = [env["ProgramFiles"], env["ProgramFiles(x86)"], env["LOCALAPPDATA"]].filter((root): root is string => root !== undefined && root !== "");
    const tails =
      kind === "firefox"
        ? ["Mozilla Firefox\\firefox.exe"]
        : ["Google\\Chrome\\Application\\chrome.exe", "Chromium\\Application\\chrome.exe", "Microsoft\\Edge\\Application\\msedge.exe", "BraveSoftware\\Brave-Browser\\Application\\brave.exe"];
    for (const root of roots) for (const tail of tails) paths.push(`${root}\\${tail}`);
  }
  return { names, paths };
}

/**
 * The snap a browser runs as, or undefined. Ubuntu installs Firefox and
 * Chromium as snaps, whose /tmp is private to the snap: a profile made in
 * our /tmp is not there for them. `path` is what was found (/snap/bin/NAME,
 * or a wrapper script such as Ubuntu's /usr/bin/firefox that execs it);
 * `head` is the start of that file, when it is small enough to be a script.
 *
 * @example
 * snapOf("/snap/bin/firefox", undefined) // "firefox"
 * snapOf("/usr/bin/chromium-browser", "#!/bin/sh\nexec /snap/bin/chromium \"$@\"\n") // "chromium"
 */
export function snapOf(path: string, head: string | undefined): string | undefined {
  const direct = /^\/snap\/bin\/([A-Za-z0-9][A-Za-z0-9-]*)$/.exec(path);
  if (direct !== null) return direct[1];
  if (head === undefined || !head.startsWith("#!")) return undefined;
  return /\/snap\/bin\/([A-Za-z0-9][A-Za-z0-9-]*)/.exec(head)?.[1];
}
