/**
 * Probe 4's I/O: finds and reads the browsers' and the system's settings
 * files, and hands their text to the pure audits (firefox-audit.ts,
 * chromium-audit.ts, system-resolver.ts). Everything it depends on is
 * injected: the home folder, the platform, the environment, and `root`, the
 * folder system paths (/etc, /usr, /proc, /run) hang from, so tests run on
 * fixture trees in temp folders.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import type { ProxyEndpoint } from "../client-setup.ts";
import { auditChromium, chromiumSwitches, parseCommandLine, type ChromiumInstall, type ChromiumProfile, type RunningChromium } from "./chromium-audit.ts";
import { auditFirefox, type FirefoxInputs, type FirefoxProfile } from "./firefox-audit.ts";
import type { TextFile } from "./firefox-prefs.ts";
import type { Finding } from "./findings.ts";
import { auditSystemResolver, type SystemResolverInputs } from "./system-resolver.ts";

/** Where probe 4 looks. */
export interface BrowserFilesHost {
  home: string;
  platform: string;
  env: Readonly<Record<string, string | undefined>>;
  /** The folder system paths hang from. @default "/" */
  root?: string;
}

/** A system path under the host's root. */
function system(host: BrowserFilesHost, ...parts: string[]): string {
  return join(host.root ?? "/", ...parts);
}

type Read = { text: string } | { missing: true } | { error: string };

/** A file's text; missing (ENOENT, ENOTDIR, EISDIR) or unreadable (anything else) told apart. */
async function read(path: string): Promise<Read> {
  try {
    return { text: await readFile(path, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return { missing: true };
    return { error: `${path}: ${code || (error as Error).message}` };
  }
}

/** A folder's entries, sorted; undefined when it is not there or cannot be listed. */
async function list(path: string): Promise<string[] | undefined> {
  try {
    return (await readdir(path)).sort();
  } catch {
    return undefined;
  }
}

/** Reads `path` into `files` or `unreadable`; true when it exists. */
async function collect(path: string, unreadable: string[]): Promise<TextFile | undefined> {
  const result = await read(path);
  if ("text" in result) return { path, text: result.text };
  if ("error" in result) unreadable.push(result.error);
  return undefined;
}

/** One [Profile*] section of profiles.ini. */
export interface ProfilesIniEntry {
  name: string;
  path: string;
  isRelative: boolean;
  isDefault: boolean;
}

/**
 * The profiles a profiles.ini lists (toolkit/profile/nsToolkitProfileService.cpp:
 * [Profile0], [Profile1], ... with Name=, Path=, IsRelative=, Default=).
 *
 * @example
 * parseProfilesIni("[Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd.default-esr\nDefault=1\n")
 * // [{ name: "default-esr", path: "abcd.default-esr", isRelative: true, isDefault: true }]
 */
export function parseProfilesIni(text: string): ProfilesIniEntry[] {
  const entries: ProfilesIniEntry[] = [];
  let current: Record<string, string> | undefined;
  const flush = () => {
    if (current?.["Path"] !== undefined && current["Path"] !== "") {
      entries.push({
        name: current["Name"] ?? current["Path"],
        path: current["Path"],
        isRelative: current["IsRelative"] !== "0",
        isDefault: current["Default"] === "1",
      });
    }
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    const section = /^\[(.*)\]$/.exec(line);
    if (section !== null) {
      flush();
      current = /^Profile\d+$/.test(section[1]!) ? {} : undefined;
      continue;
    }
    const eq = line.indexOf("=");
    if (current !== undefined && eq > 0) current[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  flush();
  return entries;
}

/** The folder of a config location honouring $XDG_CONFIG_HOME (only an absolute one, as the XDG spec says). */
function xdgConfigHome(host: BrowserFilesHost): string {
  const xdg = host.env["XDG_CONFIG_HOME"];
  return xdg !== undefined && isAbsolute(xdg) ? xdg : join(host.home, ".config");
}

/**
 * Where Firefox keeps profiles.ini on this platform, every place a Firefox
 * of this user may have used:
 * - Linux: ~/.mozilla/firefox; $XDG_CONFIG_HOME/mozilla/firefox (Firefox
 *   with XDG support uses it when ~/.mozilla does not exist:
 *   toolkit/xre/test/gtest TestXDGDirs); the snap's
 *   ~/snap/firefox/common/.mozilla/firefox; the Flatpak's
 *   ~/.var/app/org.mozilla.firefox/.mozilla/firefox (and its XDG config
 *   folder). Debian's firefox-esr uses the same ~/.mozilla/firefox.
 * - macOS: ~/Library/Application Support/Firefox.
 * - Windows: %APPDATA%\Mozilla\Firefox.
 */
export function firefoxProfileRoots(host: BrowserFilesHost): string[] {
  if (host.platform === "darwin") return [join(host.home, "Library", "Application Support", "Firefox")];
  if (host.platform === "win32") return [join(host.env["APPDATA"] ?? join(host.home, "AppData", "Roaming"), "Mozilla", "Firefox")];
  const flatpak = join(host.home, ".var", "app", "org.mozilla.firefox");
  return [
    join(host.home, ".mozilla", "firefox"),
    join(xdgConfigHome(host), "mozilla", "firefox"),
    join(host.home, "snap", "firefox", "common", ".mozilla", "firefox"),
    join(flatpak, ".mozilla", "firefox"),
    join(flatpak, "config", "mozilla", "firefox"),
  ];
}

/**
 * The policies.json files Firefox may read, in its order: on Linux
 * /etc/firefox/policies/policies.json wins when it exists (SysConfD, used by
 * every Firefox including the snap); otherwise the installation's
 * distribution/policies.json (Debian's firefox-esr: /usr/lib/firefox-esr/distribution).
 * Firefox reads one file only, so the first that exists is the one.
 */
export function firefoxPolicyFiles(host: BrowserFilesHost): string[] {
  if (host.platform === "darwin") return [system(host, "Applications", "Firefox.app", "Contents", "Resources", "distribution", "policies.json")];
  if (host.platform === "win32") {
    const programFiles = host.env["ProgramFiles"] ?? "C:\\Program Files";
    return [join(programFiles, "Mozilla Firefox", "distribution", "policies.json")];
  }
  return [
    system(host, "etc", "firefox", "policies", "policies.json"),
    ...FIREFOX_INSTALL_DIRS.map((dir) => system(host, ...dir, "distribution", "policies.json")),
  ];
}

/** Linux installation folders of Firefox (Debian/Ubuntu packages, Fedora's lib64, Mozilla's tarball in /opt). */
const FIREFOX_INSTALL_DIRS = [
  ["usr", "lib", "firefox"],
  ["usr", "lib", "firefox-esr"],
  ["usr", "lib64", "firefox"],
  ["opt", "firefox"],
];

/**
 * Folders of default-pref files an installation reads at start-up: its
 * defaults/pref/, and Debian's /etc/firefox-esr (firefox-esr links
 * browser/defaults/syspref there).
 */
export function firefoxDefaultPrefDirs(host: BrowserFilesHost): string[] {
  if (host.platform !== "linux") return [];
  return [...FIREFOX_INSTALL_DIRS.map((dir) => system(host, ...dir, "defaults", "pref")), system(host, "etc", "firefox-esr")];
}

/**
 * Finds every Firefox profile and reads what shapes its prefs.
 *
 * @example
 * await loadFirefoxInputs({ home: "/home/u", platform: "linux", env: {} })
 * // { profiles: [{ name: "default-esr", dir: "/home/u/.mozilla/firefox/ab.default-esr", prefsJs: {...} }], ... }
 */
export async function loadFirefoxInputs(host: BrowserFilesHost): Promise<FirefoxInputs> {
  const unreadable: string[] = [];
  const profiles: FirefoxProfile[] = [];
  const seen = new Set<string>();
  const searched = firefoxProfileRoots(host);
  for (const root of searched) {
    const ini = await collect(join(root, "profiles.ini"), unreadable);
    if (ini === undefined) continue;
    for (const entry of parseProfilesIni(ini.text)) {
      const dir = entry.isRelative ? join(root, ...entry.path.split("/")) : entry.path;
      if (seen.has(dir)) continue;
      seen.add(dir);
      const prefsJs = await collect(join(dir, "prefs.js"), unreadable);
      const userJs = await collect(join(dir, "user.js"), unreadable);
      profiles.push({ name: entry.name, dir, ...(prefsJs ? { prefsJs } : {}), ...(userJs ? { userJs } : {}) });
    }
  }
  let policies: TextFile | undefined;
  for (const path of firefoxPolicyFiles(host)) {
    policies = await collect(path, unreadable);
    if (policies !== undefined) break;
  }
  const defaultFiles: TextFile[] = [];
  for (const dir of firefoxDefaultPrefDirs(host)) {
    for (const name of (await list(dir)) ?? []) {
      if (!name.endsWith(".js")) continue;
      const file = await collect(join(dir, name), unreadable);
      if (file !== undefined) defaultFiles.push(file);
    }
  }
  return {
    profiles,
    searched,
    ...(policies ? { policies } : {}),
    ...(defaultFiles.length > 0 ? { defaultFiles } : {}),
    ...(unreadable.length > 0 ? { unreadable } : {}),
  };
}

/** A Chromium-family browser: where its user data and (on Linux) its managed policies are, and how its processes are named. */
interface ChromiumLocation {
  browser: string;
  userDataDir: string;
  policyDir?: string;
  /** Matches argv[0] of its processes. */
  program: RegExp;
}

/**
 * Where Chromium and Google Chrome keep user data and policies
 * (docs/user_data_dir.md: $CHROME_CONFIG_HOME, else $XDG_CONFIG_HOME, else
 * ~/.config on Linux; policies in /etc/chromium/policies/managed for
 * Debian's chromium and /etc/opt/chrome/policies/managed for Chrome).
 */
export function chromiumLocations(host: BrowserFilesHost): ChromiumLocation[] {
  if (host.platform === "darwin") {
    const support = join(host.home, "Library", "Application Support");
    return [
      { browser: "Chromium", userDataDir: join(support, "Chromium"), program: /Chromium$/ },
      { browser: "Google Chrome", userDataDir: join(support, "Google", "Chrome"), program: /Google Chrome$/ },
    ];
  }
  if (host.platform === "win32") {
    const local = host.env["LOCALAPPDATA"] ?? join(host.home, "AppData", "Local");
    return [
      { browser: "Chromium", userDataDir: join(local, "Chromium", "User Data"), program: /chrome\.exe$/i },
      { browser: "Google Chrome", userDataDir: join(local, "Google", "Chrome", "User Data"), program: /chrome\.exe$/i },
    ];
  }
  const configHome = host.env["CHROME_CONFIG_HOME"] !== undefined && isAbsolute(host.env["CHROME_CONFIG_HOME"]) ? host.env["CHROME_CONFIG_HOME"] : xdgConfigHome(host);
  return [
    { browser: "Chromium", userDataDir: join(configHome, "chromium"), policyDir: system(host, "etc", "chromium", "policies", "managed"), program: /(^|\/)chromium(-browser)?$/ },
    { browser: "Google Chrome", userDataDir: join(configHome, "google-chrome"), policyDir: system(host, "etc", "opt", "chrome", "policies", "managed"), program: /(^|\/)(google-)?chrome(-stable)?$/ },
  ];
}

/**
 * Browser processes (not their renderers and helpers, which carry --type=)
 * from `/proc/PID/cmdline`, Linux only.
 */
export async function findRunningChromium(host: BrowserFilesHost, program: RegExp): Promise<RunningChromium[]> {
  if (host.platform !== "linux") return [];
  const running: RunningChromium[] = [];
  for (const name of (await list(system(host, "proc"))) ?? []) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await read(system(host, "proc", name, "cmdline"));
    if (!("text" in cmdline) || cmdline.text === "") continue;
    const argv = parseCommandLine(cmdline.text);
    if (!program.test(argv[0] ?? "") || chromiumSwitches(argv).has("type")) continue;
    running.push({ pid: Number(name), cmdline: cmdline.text });
  }
  return running.sort((a, b) => a.pid - b.pid);
}

/** The profile folders of a user data directory: Local State's profile.info_cache, else those with a Preferences file. */
async function chromiumProfiles(userDataDir: string, localState: TextFile | undefined, unreadable: string[]): Promise<ChromiumProfile[]> {
  let names: string[] = [];
  try {
    const cache = (JSON.parse(localState?.text ?? "{}") as { profile?: { info_cache?: Record<string, unknown> } }).profile?.info_cache;
    if (cache !== undefined && cache !== null && typeof cache === "object") names = Object.keys(cache).sort();
  } catch {
    // The audit reports a Local State that is not JSON.
  }
  if (names.length === 0) names = ((await list(userDataDir)) ?? []).filter((name) => name === "Default" || /^Profile \d+$/.test(name));
  const profiles: ChromiumProfile[] = [];
  for (const name of names) {
    const dir = join(userDataDir, name);
    const preferences = await collect(join(dir, "Preferences"), unreadable);
    profiles.push({ name, dir, ...(preferences ? { preferences } : {}) });
  }
  return profiles;
}

/**
 * Every Chromium-family browser with user data or managed policies here.
 *
 * @example
 * await loadChromiumInstalls({ home: "/home/u", platform: "linux", env: {} })
 * // [{ browser: "Chromium", userDataDir: "/home/u/.config/chromium", profiles: [...], policies: [...], ... }]
 */
export async function loadChromiumInstalls(host: BrowserFilesHost): Promise<ChromiumInstall[]> {
  const installs: ChromiumInstall[] = [];
  for (const location of chromiumLocations(host)) {
    const unreadable: string[] = [];
    const hasUserData = (await list(location.userDataDir)) !== undefined;
    const policies: TextFile[] = [];
    if (location.policyDir !== undefined) {
      // Chromium reads every regular file of the folder, whatever its name.
      for (const name of (await list(location.policyDir)) ?? []) {
        const file = await collect(join(location.policyDir, name), unreadable);
        if (file !== undefined) policies.push(file);
      }
    }
    if (!hasUserData && policies.length === 0) continue;
    const localState = hasUserData ? await collect(join(location.userDataDir, "Local State"), unreadable) : undefined;
    const profiles = hasUserData ? await chromiumProfiles(location.userDataDir, localState, unreadable) : [];
    installs.push({
      browser: location.browser,
      userDataDir: location.userDataDir,
      profiles,
      policies,
      running: await findRunningChromium(host, location.program),
      ...(localState ? { localState } : {}),
      ...(location.policyDir !== undefined ? { policyDir: location.policyDir } : {}),
      ...(unreadable.length > 0 ? { unreadable } : {}),
    });
  }
  return installs;
}

/** /etc/resolv.conf, where it links, and systemd-resolved's upstream list. */
export async function loadSystemResolverInputs(host: BrowserFilesHost): Promise<SystemResolverInputs> {
  if (host.platform !== "linux") return { platform: host.platform };
  const unreadable: string[] = [];
  const path = system(host, "etc", "resolv.conf");
  const resolvConf = await collect(path, unreadable);
  let target: string | undefined;
  try {
    target = await readlink(path);
  } catch {
    // Not a link.
  }
  const resolvedUpstream = await collect(system(host, "run", "systemd", "resolve", "resolv.conf"), unreadable);
  return {
    platform: host.platform,
    ...(resolvConf ? { resolvConf: { path: "/etc/resolv.conf", text: resolvConf.text } } : {}),
    ...(target !== undefined ? { resolvConfTarget: target } : {}),
    ...(resolvedUpstream ? { resolvedUpstream: { path: "/run/systemd/resolve/resolv.conf", text: resolvedUpstream.text } } : {}),
  };
}

/**
 * Probe 4 in full: Firefox, Chromium-family browsers and the system's
 * resolvers, read from this host and judged against the tunnel's `proxy`.
 *
 * @example
 * await auditBrowserSetup({ home: homedir(), platform: process.platform, env: process.env }, { host: "127.0.0.1", port: 9001 })
 */
export async function auditBrowserSetup(host: BrowserFilesHost, proxy: ProxyEndpoint): Promise<Finding[]> {
  const [firefox, chromium, resolver] = await Promise.all([loadFirefoxInputs(host), loadChromiumInstalls(host), loadSystemResolverInputs(host)]);
  const findings = [...auditFirefox(firefox, proxy)];
  if (chromium.length === 0) {
    const where = chromiumLocations(host).map((location) => location.userDataDir);
    findings.push({ probe: "chromium", severity: "info", detail: `No Chromium or Google Chrome found (looked in ${where.join(", ")})`, fix: null });
  }
  for (const install of chromium) findings.push(...auditChromium(install, proxy));
  findings.push(...auditSystemResolver(resolver));
  return findings;
}
