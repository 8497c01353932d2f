import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { auditBrowserSetup, loadChromiumInstalls, type BrowserFilesHost } from "../../src/leakcheck/browser-files.ts";
import { auditChromium, chromiumSwitches, mergeChromiumPolicies, parseCommandLine, parseProxyRules } from "../../src/leakcheck/chromium-audit.ts";
import type { Finding } from "../../src/leakcheck/findings.ts";
import { tempTrees } from "../helpers/temp-tree.ts";

const PROXY = { host: "127.0.0.1", port: 9001 };
const FLAGS = 'start Chromium with --proxy-server=socks5://127.0.0.1:9001 --proxy-bypass-list="<-loopback>" --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"';

const trees = tempTrees("safetunnel-chromium-");
after(() => trees.cleanup());

/** A fresh folder holding `files` (path relative to it -> text). */
const tree = (files: Record<string, string>): Promise<string> => trees.make(files);

/** Policies that set everything up: with them (and DoH off), Chromium gives no finding. */
const GOOD_POLICIES = {
  DnsOverHttpsMode: "off",
  WebRtcIPHandling: "disable_non_proxied_udp",
  ProxyMode: "fixed_servers",
  ProxyServer: "socks5://127.0.0.1:9001",
  ProxyBypassList: "<-loopback>",
};

interface Fixture {
  localState?: unknown;
  /** Profile folder -> its Preferences JSON. */
  profiles?: Record<string, unknown>;
  /** File name in /etc/chromium/policies/managed -> JSON (or raw text). */
  policies?: Record<string, unknown>;
  /** pid -> argv of a process in the fixture /proc. */
  processes?: Record<number, string[]>;
}

/** A home, /etc and /proc holding one Chromium set-up. */
async function chromiumHost(fixture: Fixture): Promise<{ host: BrowserFilesHost; base: string }> {
  const files: Record<string, string> = {};
  const json = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value));
  if (fixture.localState !== undefined) files["home/.config/chromium/Local State"] = json(fixture.localState);
  for (const [name, preferences] of Object.entries(fixture.profiles ?? {})) files[`home/.config/chromium/${name}/Preferences`] = json(preferences);
  for (const [name, policy] of Object.entries(fixture.policies ?? {})) files[`root/etc/chromium/policies/managed/${name}`] = json(policy);
  for (const [pid, argv] of Object.entries(fixture.processes ?? {})) files[`root/proc/${pid}/cmdline`] = argv.join("\0") + "\0";
  files["home/.keep"] = "";
  files["root/.keep"] = "";
  const base = await tree(files);
  return { host: { home: join(base, "home"), platform: "linux", env: {}, root: join(base, "root") }, base };
}

async function audit(fixture: Fixture) {
  const { host, base } = await chromiumHost(fixture);
  const installs = await loadChromiumInstalls(host);
  return { findings: installs.flatMap((install) => auditChromium(install, PROXY)), base, installs };
}

const finding = (severity: Finding["severity"], detail: string, fix: string | null): Finding => ({ probe: "chromium", severity, detail, fix });

describe("parseProxyRules", () => {
  test("one list for every URL: scheme-less is HTTP, socks:// is SOCKS5, direct:// is direct", () => {
    assert.deepEqual(parseProxyRules("socks5://127.0.0.1:9001, socks://h, 10.0.0.1:3128 ,direct://"), {
      kind: "list",
      proxies: [
        { scheme: "socks5", host: "127.0.0.1", port: 9001, text: "socks5://127.0.0.1:9001" },
        { scheme: "socks5", host: "h", port: 1080, text: "socks://h" },
        { scheme: "http", host: "10.0.0.1", port: 3128, text: "10.0.0.1:3128", implicit: true },
        { scheme: "direct", host: "", port: 0, text: "direct://" },
      ],
    });
  });

  test("scheme=list entries, where a scheme-less entry under socks= is SOCKS4", () => {
    assert.deepEqual(parseProxyRules("https=socks5://[::1]:1080;socks=127.0.0.1:9001"), {
      kind: "per-scheme",
      http: [],
      https: [{ scheme: "socks5", host: "::1", port: 1080, text: "socks5://[::1]:1080" }],
      ftp: [],
      fallback: [{ scheme: "socks4", host: "127.0.0.1", port: 9001, text: "127.0.0.1:9001", implicit: true }],
    });
  });

  test("an empty string has no rules and an unknown scheme is invalid", () => {
    assert.deepEqual(parseProxyRules(""), { kind: "empty" });
    assert.deepEqual(parseProxyRules("gopher://h:70"), { kind: "list", proxies: [{ scheme: "invalid", host: "h:70", port: 0, text: "gopher://h:70" }] });
  });
});

describe("command lines and policy files", () => {
  test("a /proc cmdline splits on NUL and its switches keep the last value", () => {
    const argv = parseCommandLine("/usr/lib/chromium/chromium\0--proxy-server=socks4://a\0--incognito\0--proxy-server=socks5://b\0--\0--not-a-switch\0");
    assert.deepEqual(argv, ["/usr/lib/chromium/chromium", "--proxy-server=socks4://a", "--incognito", "--proxy-server=socks5://b", "--", "--not-a-switch"]);
    assert.deepEqual(
      [...chromiumSwitches(argv)],
      [
        ["proxy-server", "socks5://b"],
        ["incognito", ""],
      ],
    );
  });

  test("managed policy files merge in lexicographic order, the later file winning, and a broken file is skipped", () => {
    const merged = mergeChromiumPolicies([
      { path: "/m/b.json", text: '{"ProxyMode": "direct"}' },
      { path: "/m/a.json", text: '{"ProxyMode": "system", "DnsOverHttpsMode": "off"}' },
      { path: "/m/c.json", text: "{not json" },
    ]);
    assert.deepEqual([...merged.policies], [
      ["ProxyMode", { value: "direct", file: "/m/b.json" }],
      ["DnsOverHttpsMode", { value: "off", file: "/m/a.json" }],
    ]);
    assert.deepEqual(merged.problems, ["/m/c.json is not a JSON object, so Chromium ignores it"]);
  });
});

describe("auditChromium on fixture set-ups", () => {
  test("Chromium set up by managed policies gives no finding at all", async () => {
    const { findings } = await audit({ profiles: { Default: {} }, policies: { "safetunnel.json": GOOD_POLICIES } });
    assert.deepEqual(findings, []);
  });

  test('DNS over HTTPS "automatic" in Local State is an exposure with the policy that turns it off', async () => {
    const { findings, base } = await audit({
      localState: { dns_over_https: { mode: "automatic", templates: "" } },
      profiles: { Default: {} },
      policies: { "p.json": { ...GOOD_POLICIES, DnsOverHttpsMode: undefined } },
    });
    const dir = join(base, "home/.config/chromium");
    assert.deepEqual(findings, [
      finding(
        "exposure",
        `Chromium (${dir}): "dns_over_https.mode": "automatic" in ${join(dir, "Local State")}: Chromium's DNS-over-HTTPS requests skip the proxy (LOAD_BYPASS_PROXY), ` +
          "so it upgrades the lookups it makes itself to DoH when the system's resolver offers it, and sends them straight from this machine",
        `set the policy "DnsOverHttpsMode": "off" in a JSON file in ${join(base, "root/etc/chromium/policies/managed")}/`,
      ),
    ]);
  });

  test("with no DoH setting anywhere Chromium's default, automatic, is assumed and reported", async () => {
    const { findings, base } = await audit({ profiles: { Default: {} }, policies: { "p.json": { ...GOOD_POLICIES, DnsOverHttpsMode: undefined } } });
    assert.deepEqual(findings, [
      finding(
        "exposure",
        `Chromium (${join(base, "home/.config/chromium")}): secure DNS mode "automatic" (Chromium's default; no DnsOverHttpsMode policy, nothing in Local State): ` +
          "Chromium's DNS-over-HTTPS requests skip the proxy (LOAD_BYPASS_PROXY), so it upgrades the lookups it makes itself to DoH when the system's resolver offers it, and sends them straight from this machine",
        `set the policy "DnsOverHttpsMode": "off" in a JSON file in ${join(base, "root/etc/chromium/policies/managed")}/`,
      ),
    ]);
  });

  test('a DnsOverHttpsMode policy of "secure" beats Local State\'s "off" and is named with its file', async () => {
    const { findings, base } = await audit({
      localState: { dns_over_https: { mode: "off" } },
      profiles: { Default: {} },
      policies: { "p.json": { ...GOOD_POLICIES, DnsOverHttpsMode: "secure" } },
    });
    const policyDir = join(base, "root/etc/chromium/policies/managed");
    assert.deepEqual(findings, [
      finding(
        "exposure",
        `Chromium (${join(base, "home/.config/chromium")}): policy "DnsOverHttpsMode": "secure" in ${join(policyDir, "p.json")}: ` +
          "Chromium's DNS-over-HTTPS requests skip the proxy (LOAD_BYPASS_PROXY), so every name it resolves itself goes to the DoH server straight from this machine",
        `set the policy "DnsOverHttpsMode": "off" in a JSON file in ${policyDir}/`,
      ),
    ]);
  });

  test("WebRtcIPHandling missing is an exposure for each profile whose own pref does not keep UDP behind the proxy", async () => {
    const { findings, base } = await audit({
      localState: { profile: { info_cache: { Default: {}, "Profile 1": {}, "Profile 2": {} } } },
      profiles: {
        Default: {},
        "Profile 1": { webrtc: { ip_handling_policy: "disable_non_proxied_udp" } },
        "Profile 2": { webrtc: { ip_handling_policy: "default_public_interface_only" } },
      },
      policies: { "p.json": { ...GOOD_POLICIES, WebRtcIPHandling: undefined } },
    });
    const dir = join(base, "home/.config/chromium");
    const fix = `set the policy "WebRtcIPHandling": "disable_non_proxied_udp" in a JSON file in ${join(base, "root/etc/chromium/policies/managed")}/, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored`;
    assert.deepEqual(findings, [
      finding(
        "exposure",
        `Chromium (${dir}): profile "Default" has no WebRtcIPHandling policy or webrtc.ip_handling_policy, so WebRTC IP handling is "default": WebRTC can send UDP around the proxy and show pages this machine's addresses`,
        fix,
      ),
      finding(
        "exposure",
        `Chromium (${dir}): "webrtc.ip_handling_policy": "default_public_interface_only" in ${join(dir, "Profile 2/Preferences")}: WebRTC can send UDP around the proxy and show pages this machine's addresses`,
        fix,
      ),
    ]);
  });

  test("a WebRtcIPHandling policy other than disable_non_proxied_udp is reported once, whatever the profiles say", async () => {
    const { findings, base } = await audit({
      profiles: { Default: { webrtc: { ip_handling_policy: "disable_non_proxied_udp" } } },
      policies: { "p.json": { ...GOOD_POLICIES, WebRtcIPHandling: "default" } },
    });
    const policyDir = join(base, "root/etc/chromium/policies/managed");
    assert.deepEqual(findings, [
      finding(
        "exposure",
        `Chromium (${join(base, "home/.config/chromium")}): policy "WebRtcIPHandling": "default" in ${join(policyDir, "p.json")}: WebRTC can send UDP around the proxy and show pages this machine's addresses`,
        `set the policy "WebRtcIPHandling": "disable_non_proxied_udp" in a JSON file in ${policyDir}/, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored`,
      ),
    ]);
  });

  /** The proxy policies' findings for one ProxyServer value, everything else good. */
  async function proxyServerFindings(server: string, bypass = "<-loopback>") {
    const { findings, base } = await audit({ profiles: { Default: {} }, policies: { "p.json": { ...GOOD_POLICIES, ProxyServer: server, ProxyBypassList: bypass } } });
    const file = join(base, "root/etc/chromium/policies/managed/p.json");
    const fix = (policies: string) => `set the ${policies} in a JSON file in ${join(base, "root/etc/chromium/policies/managed")}/`;
    return { findings, file, label: `Chromium (${join(base, "home/.config/chromium")})`, fix };
  }
  const PROXY_POLICIES = 'policies "ProxyMode": "fixed_servers", "ProxyServer": "socks5://127.0.0.1:9001", "ProxyBypassList": "<-loopback>"';

  test("a scheme-less entry under socks= is SOCKS4, resolved on this machine: a leak", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("socks=127.0.0.1:9001");
    assert.deepEqual(findings, [
      finding(
        "leak",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "socks=127.0.0.1:9001" in ${file}: ` +
          "127.0.0.1:9001 has no scheme under socks=, which Chromium reads as SOCKS4: Chromium resolves names on this machine and sends the proxy addresses",
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("socks4:// is a leak too", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("socks4://127.0.0.1:9001");
    assert.deepEqual(findings, [
      finding(
        "leak",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "socks4://127.0.0.1:9001" in ${file}: ` +
          "socks4://127.0.0.1:9001 is SOCKS4: Chromium resolves names on this machine and sends the proxy addresses",
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("a scheme-less ProxyServer is an HTTP proxy: not a leak, but not the tunnel's SOCKS port either", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("127.0.0.1:9001");
    assert.deepEqual(findings, [
      finding(
        "info",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "127.0.0.1:9001" in ${file}: ` +
          "127.0.0.1:9001 has no scheme, which Chromium reads as an HTTP proxy, not the tunnel's SOCKS port",
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("a direct:// fallback after the tunnel is a leak: requests go direct when the proxy fails", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("socks5://127.0.0.1:9001,direct://");
    assert.deepEqual(findings, [
      finding(
        "leak",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "socks5://127.0.0.1:9001,direct://" in ${file}: ` +
          "requests fall back to direct:// when socks5://127.0.0.1:9001 fails",
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("proxying only https= leaves http URLs direct", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("https=socks5://127.0.0.1:9001");
    assert.deepEqual(findings, [
      finding(
        "leak",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "https=socks5://127.0.0.1:9001" in ${file}: http URLs have no proxy in it and go direct`,
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("a SOCKS5 proxy elsewhere is a note: this Chromium does not browse through the tunnel", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("socks5://127.0.0.1:1080");
    assert.deepEqual(findings, [
      finding(
        "info",
        `${label}: policy "ProxyMode": "fixed_servers" in ${file} with policy "ProxyServer": "socks5://127.0.0.1:1080" in ${file}: socks5://127.0.0.1:1080 is not the tunnel at 127.0.0.1:9001`,
        fix(PROXY_POLICIES),
      ),
    ]);
  });

  test("a bypass list with names and <local> is a leak, and without <-loopback> loopback goes direct", async () => {
    const { findings, file, label, fix } = await proxyServerFindings("socks5://127.0.0.1:9001", "<local>;*.corp.example, 10.0.0.0/8, localhost");
    const shown = `policy "ProxyBypassList": "<local>;*.corp.example, 10.0.0.0/8, localhost" in ${file}`;
    assert.deepEqual(findings, [
      finding("leak", `${label}: ${shown}: names matching <local> (names without a dot), *.corp.example bypass the proxy and are resolved on this machine`, fix('policy "ProxyBypassList": "<-loopback>"')),
      finding("info", `${label}: ${shown}, without <-loopback>: localhost, 127/8, [::1] and 169.254/16 go direct, not through the proxy`, fix('policy "ProxyBypassList": "<-loopback>"')),
    ]);
  });

  for (const [mode, why] of [
    ["direct", "Chromium connects directly and resolves every name on this machine"],
    ["system", "Chromium follows the desktop's proxy settings, not the tunnel"],
    ["pac_script", "a PAC file decides, whose SOCKS means SOCKS4 and which may return DIRECT"],
    ["auto_detect", "Chromium looks for a PAC file (WPAD), whose SOCKS means SOCKS4 and which may return DIRECT"],
  ]) {
    test(`ProxyMode "${mode}" is a leak, and overrides the running browser's --proxy-server`, async () => {
      const { findings, base } = await audit({
        profiles: { Default: {} },
        policies: { "p.json": { ...GOOD_POLICIES, ProxyMode: mode } },
        processes: { 4242: ["/usr/lib/chromium/chromium", "--proxy-server=socks5://127.0.0.1:9001"] },
      });
      const file = join(base, "root/etc/chromium/policies/managed/p.json");
      assert.deepEqual(findings, [
        finding(
          "leak",
          `Chromium (${join(base, "home/.config/chromium")}): policy "ProxyMode": "${mode}" in ${file}: ${why} (the policy overrides the running browser's --proxy-* flags)`,
          `set the ${PROXY_POLICIES} in a JSON file in ${join(base, "root/etc/chromium/policies/managed")}/`,
        ),
      ]);
    });
  }

  test("ProxySettings replaces the separate proxy policies", async () => {
    const { findings } = await audit({
      profiles: { Default: {} },
      policies: { "p.json": { ...GOOD_POLICIES, ProxyMode: "direct", ProxySettings: { ProxyMode: "fixed_servers", ProxyServer: "socks5://localhost:9001", ProxyBypassList: "<-loopback>" } } },
    });
    assert.deepEqual(findings, []);
  });

  test("the later policy file wins: z.json's direct mode beats a.json's tunnel", async () => {
    const { findings } = await audit({ profiles: { Default: {} }, policies: { "a.json": GOOD_POLICIES, "z.json": { ProxyServerMode: 0 } } });
    assert.equal(findings.length, 0, "ProxyMode in a.json still wins over the old ProxyServerMode");
    const { findings: later } = await audit({ profiles: { Default: {} }, policies: { "a.json": GOOD_POLICIES, "z.json": { ProxyMode: "direct" } } });
    assert.deepEqual(
      later.map((f) => [f.severity, f.detail.replace(/^.*?: policy/, "policy").replace(/ in \/.*?z\.json/, " in z.json")]),
      [["leak", 'policy "ProxyMode": "direct" in z.json: Chromium connects directly and resolves every name on this machine']],
    );
  });

  test("a policy file that is not JSON is reported and skipped", async () => {
    const { findings, base } = await audit({ profiles: { Default: {} }, policies: { "a.json": GOOD_POLICIES, "b.json": "{ nope" } });
    assert.deepEqual(findings, [
      finding("info", `Chromium (${join(base, "home/.config/chromium")}): ${join(base, "root/etc/chromium/policies/managed/b.json")} is not a JSON object, so Chromium ignores it`, null),
    ]);
  });

  const NO_PROXY_POLICY = { DnsOverHttpsMode: "off", WebRtcIPHandling: "disable_non_proxied_udp" };

  test("without a proxy policy or a running Chromium the launch flags are recommended", async () => {
    const { findings, base } = await audit({ profiles: { Default: {} }, policies: { "p.json": NO_PROXY_POLICY } });
    assert.deepEqual(findings, [finding("info", `Chromium (${join(base, "home/.config/chromium")}): no running Chromium to read its launch flags from, and no proxy policy`, FLAGS)]);
  });

  test("a running Chromium with the recommended flags gives no finding; its renderers are not looked at", async () => {
    const { findings, installs } = await audit({
      profiles: { Default: {} },
      policies: { "p.json": NO_PROXY_POLICY },
      processes: {
        100: ["/usr/lib/chromium/chromium", "--proxy-server=socks5://127.0.0.1:9001", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
        101: ["/usr/lib/chromium/chromium", "--type=renderer", "--no-proxy-server"],
        102: ["/usr/bin/curl", "--socks5", "127.0.0.1:9001"],
      },
    });
    assert.deepEqual(installs[0]!.running!.map((process) => process.pid), [100]);
    assert.deepEqual(findings, []);
  });

  test("a running Chromium with socks4:// is a leak, and one without --proxy-server follows the desktop", async () => {
    const { findings } = await audit({
      profiles: { Default: {} },
      policies: { "p.json": NO_PROXY_POLICY },
      processes: { 200: ["/usr/lib/chromium/chromium", "--proxy-server=socks4://127.0.0.1:9001"], 300: ["/usr/lib/chromium/chromium", "--incognito"] },
    });
    assert.deepEqual(
      findings.map((f) => [f.severity, f.detail.replace(/^Chromium \(.*?\): /, ""), f.fix]),
      [
        ["leak", "Chromium pid 200 runs with --proxy-server=socks4://127.0.0.1:9001: socks4://127.0.0.1:9001 is SOCKS4: Chromium resolves names on this machine and sends the proxy addresses", FLAGS],
        ["info", "Chromium pid 200 runs without --proxy-bypass-list: localhost, 127/8, [::1] and 169.254/16 go direct, not through the proxy", FLAGS],
        ["leak", "Chromium pid 300 runs without --proxy-server: Chromium follows the desktop's proxy settings, not the tunnel", FLAGS],
      ],
    );
  });

  test("a running Chromium through the tunnel but without --host-resolver-rules gets a note about the DNS prefetcher", async () => {
    const { findings } = await audit({
      profiles: { Default: {} },
      policies: { "p.json": NO_PROXY_POLICY },
      processes: { 400: ["/usr/lib/chromium/chromium", "--proxy-server=socks5://127.0.0.1:9001", "--proxy-bypass-list=<-loopback>"] },
    });
    assert.deepEqual(
      findings.map((f) => [f.severity, f.detail.replace(/^Chromium \(.*?\): /, "")]),
      [["info", "Chromium pid 400 runs without --host-resolver-rules: its DNS prefetcher may still look names up on this machine (Chromium's SOCKS guide)"]],
    );
  });

  test("Google Chrome is read from ~/.config/google-chrome and /etc/opt/chrome/policies/managed", async () => {
    const base = await tree({
      "home/.config/google-chrome/Default/Preferences": "{}",
      "root/etc/opt/chrome/policies/managed/p.json": JSON.stringify(GOOD_POLICIES),
    });
    const installs = await loadChromiumInstalls({ home: join(base, "home"), platform: "linux", env: {}, root: join(base, "root") });
    assert.deepEqual(
      installs.map((install) => [install.browser, install.userDataDir, install.policyDir, install.profiles.map((p) => p.name)]),
      [["Google Chrome", join(base, "home/.config/google-chrome"), join(base, "root/etc/opt/chrome/policies/managed"), ["Default"]]],
    );
    assert.deepEqual(auditChromium(installs[0]!, PROXY), []);
  });

  test("with no Chromium or Chrome at all probe 4 says so once", async () => {
    const base = await tree({ "home/.keep": "", "root/etc/resolv.conf": "nameserver 192.0.2.53\n" });
    const findings = await auditBrowserSetup({ home: join(base, "home"), platform: "linux", env: {}, root: join(base, "root") }, PROXY);
    assert.deepEqual(
      findings.filter((f) => f.probe === "chromium"),
      [finding("info", `No Chromium or Google Chrome found (looked in ${join(base, "home/.config/chromium")}, ${join(base, "home/.config/google-chrome")})`, null)],
    );
  });
});
