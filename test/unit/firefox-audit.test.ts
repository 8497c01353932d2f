import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadFirefoxInputs, parseProfilesIni, type BrowserFilesHost } from "../../src/leakcheck/browser-files.ts";
import { auditFirefox } from "../../src/leakcheck/firefox-audit.ts";
import { parseFirefoxPolicies, parsePrefsFile, resolveProfilePrefs } from "../../src/leakcheck/firefox-prefs.ts";
import type { Finding } from "../../src/leakcheck/findings.ts";
import { tempTrees } from "../helpers/temp-tree.ts";

const PROXY = { host: "127.0.0.1", port: 9001 };

const trees = tempTrees("safetunnel-browsers-");
after(() => trees.cleanup());

/** A fresh folder holding `files` (path relative to it -> text). */
const tree = (files: Record<string, string>): Promise<string> => trees.make(files);

const prefs = (entries: Record<string, string | number | boolean>): string =>
  Object.entries(entries)
    .map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});`)
    .join("\n") + "\n";

/** The manual SOCKS5 set-up with remote DNS, to the tunnel's port. */
const PROXY_PREFS = {
  "network.proxy.type": 1,
  "network.proxy.socks": "127.0.0.1",
  "network.proxy.socks_port": 9001,
  "network.proxy.socks_version": 5,
  "network.proxy.socks5_remote_dns": true,
};

/** Everything else leakcheck recommends: with it, a profile gives no finding at all. */
const HARDENED = {
  ...PROXY_PREFS,
  "network.proxy.allow_hijacking_localhost": true,
  "network.proxy.failover_direct": false,
  "network.proxy.allow_bypass": false,
  "media.peerconnection.ice.proxy_only_if_behind_proxy": true,
  "network.prefetch-next": false,
  "network.http.speculative-parallel-limit": 0,
  "network.connectivity-service.enabled": false,
  "network.captive-portal-service.enabled": false,
};

const INI = (...names: string[]) =>
  names.map((name, i) => `[Profile${i}]\nName=${name}\nIsRelative=1\nPath=${name}.dir\n${i === 0 ? "Default=1\n" : ""}`).join("\n") + "\n[General]\nStartWithLastProfile=1\nVersion=2\n";

/** A home (and system root) with Firefox profiles: name -> files of the profile folder. */
async function firefoxHost(profiles: Record<string, Record<string, string>>, system: Record<string, string> = {}): Promise<{ host: BrowserFilesHost; dir: (name: string) => string }> {
  const files: Record<string, string> = { "home/.mozilla/firefox/profiles.ini": INI(...Object.keys(profiles)) };
  for (const [name, content] of Object.entries(profiles)) {
    for (const [file, text] of Object.entries(content)) files[`home/.mozilla/firefox/${name}.dir/${file}`] = text;
  }
  for (const [path, text] of Object.entries(system)) files[`root/${path}`] = text;
  const base = await tree(files);
  await mkdir(join(base, "root"), { recursive: true });
  const host = { home: join(base, "home"), platform: "linux", env: {}, root: join(base, "root") };
  return { host, dir: (name) => join(base, "home", ".mozilla", "firefox", `${name}.dir`) };
}

async function audit(profiles: Record<string, Record<string, string>>, system: Record<string, string> = {}) {
  const { host, dir } = await firefoxHost(profiles, system);
  return { findings: auditFirefox(await loadFirefoxInputs(host), PROXY), dir, root: host.root };
}

const finding = (severity: Finding["severity"], detail: string, fix: string | null): Finding => ({ probe: "firefox", severity, detail, fix });

describe("parsePrefsFile", () => {
  test("reads strings, integers and booleans, with libpref's escapes and both quote kinds", () => {
    const text = [
      'user_pref("a", "say \\"hi\\" \\\\ \\n\\r \\x41 \\u00e9 \\ud83d\\ude00");',
      "user_pref('b', 'it\\'s');",
      'user_pref("c", -42);',
      'user_pref("d", +7);',
      'user_pref("e", true);',
      'user_pref("f", false);',
    ].join("\n");
    const parsed = parsePrefsFile(text);
    assert.deepEqual(parsed.errors, []);
    assert.deepEqual(
      parsed.statements.map((s) => [s.name, s.value, s.line]),
      [
        ["a", 'say "hi" \\ \n\r A é 😀', 1],
        ["b", "it's", 2],
        ["c", -42, 3],
        ["d", 7, 4],
        ["e", true, 5],
        ["f", false, 6],
      ],
    );
  });

  test("skips #, // and /* */ comments and still counts lines", () => {
    const parsed = parsePrefsFile('# Mozilla User Preferences\n/* a\n   block */\n// note\nuser_pref("x", 1); // trailing\n');
    assert.deepEqual(parsed.statements, [{ fn: "user_pref", name: "x", value: 1, locked: false, line: 5 }]);
  });

  test("reports a bad statement with its line and goes on after the next semicolon, as Firefox does", () => {
    const parsed = parsePrefsFile('user_pref("a", 1);\nuser_pref("b", nope);\nuser_pref("c", "\\q");\nuser_pref("d", 99999999999);\nuser_pref("e", 2);\n');
    assert.deepEqual(
      parsed.statements.map((s) => s.name),
      ["a", "e"],
    );
    assert.deepEqual(parsed.errors, [
      { line: 2, message: "expected a string, an integer, true or false" },
      { line: 3, message: "unexpected escape \\q" },
      { line: 4, message: "integer 99999999999 out of range" },
    ]);
  });

  test("takes locked and sticky on pref() and refuses attributes on user_pref()", () => {
    const parsed = parsePrefsFile('pref("a", 1, locked);\nsticky_pref("b", true, sticky);\nuser_pref("c", 1, locked);\n');
    assert.deepEqual(
      parsed.statements.map((s) => [s.fn, s.name, s.locked]),
      [
        ["pref", "a", true],
        ["sticky_pref", "b", false],
      ],
    );
    assert.deepEqual(parsed.errors, [{ line: 3, message: "user_pref takes no attributes" }]);
  });

  test("an unterminated string is an error, never a crash", () => {
    assert.deepEqual(parsePrefsFile('user_pref("a", "open').errors, [{ line: 1, message: "unterminated string" }]);
  });
});

describe("parseFirefoxPolicies", () => {
  test("maps the Proxy policy to the prefs ProxyPolicies.sys.mjs sets", () => {
    const parsed = parseFirefoxPolicies(
      JSON.stringify({ policies: { Proxy: { Mode: "manual", SOCKSProxy: "[::1]:1080", SOCKSVersion: 5, UseProxyForDNS: true, Passthrough: "" } } }),
    );
    assert.deepEqual(parsed.errors, []);
    assert.deepEqual(
      parsed.prefs.map((p) => [p.name, p.value, p.locked]),
      [
        ["network.proxy.type", 1, false],
        ["network.proxy.socks_remote_dns", true, false],
        ["network.proxy.socks5_remote_dns", true, false],
        ["network.proxy.socks_version", 5, false],
        ["network.proxy.no_proxies_on", "", false],
        ["network.proxy.socks", "[::1]", false],
        ["network.proxy.socks_port", 1080, false],
      ],
    );
  });

  test("a locked Proxy policy locks every proxy pref, the unset ones at their default", () => {
    const parsed = parseFirefoxPolicies('{"policies": {"Proxy": {"Mode": "autoConfig", "Locked": true}}}');
    assert.deepEqual(parsed.prefs[0], { name: "network.proxy.type", value: 2, locked: true, policy: "Proxy" });
    assert.ok(parsed.prefs.some((p) => p.name === "network.proxy.socks5_remote_dns" && p.value === undefined && p.locked));
  });

  test("DNSOverHTTPS Enabled sets network.trr.mode 2, disabled 5", () => {
    assert.deepEqual(parseFirefoxPolicies('{"policies": {"DNSOverHTTPS": {"Enabled": true, "ProviderURL": "https://doh.example/q"}}}').prefs, [
      { name: "network.trr.mode", value: 2, locked: false, policy: "DNSOverHTTPS" },
      { name: "network.trr.uri", value: "https://doh.example/q", locked: false, policy: "DNSOverHTTPS" },
    ]);
    assert.equal(parseFirefoxPolicies('{"policies": {"DNSOverHTTPS": {"Enabled": false, "Locked": true}}}').prefs[0]!.value, 5);
  });

  test("a policies.json that is not JSON sets nothing and says why", () => {
    const parsed = parseFirefoxPolicies("{ policies: ");
    assert.deepEqual(parsed.prefs, []);
    assert.match(parsed.errors[0]!, /^not JSON .*; Firefox ignores the whole file$/);
  });
});

describe("resolveProfilePrefs", () => {
  const file = (path: string, entries: Record<string, string | number | boolean>) => ({ path, text: prefs(entries) });

  test("user.js overrides prefs.js, and an unlocked policy only sets the default", () => {
    const resolved = resolveProfilePrefs({
      policies: { path: "/etc/policies.json", text: '{"policies": {"Proxy": {"Mode": "system", "SOCKSVersion": 4}}}' },
      prefsJs: file("/p/prefs.js", { "network.proxy.type": 2, "network.proxy.socks": "a" }),
      userJs: file("/p/user.js", { "network.proxy.type": 1 }),
    });
    assert.deepEqual(resolved.get("network.proxy.type"), { value: 1, origin: { kind: "user", file: "/p/user.js", line: 1 } });
    assert.deepEqual(resolved.get("network.proxy.socks"), { value: "a", origin: { kind: "user", file: "/p/prefs.js", line: 2 } });
    assert.deepEqual(resolved.get("network.proxy.socks_version"), { value: 4, origin: { kind: "policy", file: "/etc/policies.json", policy: "Proxy", locked: false } });
    assert.deepEqual(resolved.get("network.trr.mode"), { value: undefined, origin: { kind: "default" } });
  });

  test("a locked policy beats user.js and prefs.js", () => {
    const resolved = resolveProfilePrefs({
      policies: { path: "/etc/policies.json", text: '{"policies": {"Proxy": {"Mode": "system", "Locked": true}}}' },
      prefsJs: file("/p/prefs.js", { "network.proxy.type": 1 }),
      userJs: file("/p/user.js", { "network.proxy.type": 1, "network.proxy.socks5_remote_dns": false }),
    });
    assert.equal(resolved.get("network.proxy.type").value, 5);
    assert.deepEqual(resolved.get("network.proxy.socks5_remote_dns"), { value: undefined, origin: { kind: "policy", file: "/etc/policies.json", policy: "Proxy", locked: true } });
  });

  test("a locked pref() in an installation's default file beats the profile", () => {
    const resolved = resolveProfilePrefs({
      defaultFiles: [{ path: "/etc/firefox-esr/site.js", text: 'pref("network.proxy.type", 0, locked);\npref("network.trr.mode", 5);\n' }],
      userJs: file("/p/user.js", { "network.proxy.type": 1, "network.trr.mode": 2 }),
    });
    assert.equal(resolved.get("network.proxy.type").value, 0);
    assert.equal(resolved.get("network.trr.mode").value, 2);
  });
});

describe("parseProfilesIni", () => {
  test("lists [ProfileN] sections and ignores [General] and [Install...]", () => {
    const text = "[Install4F96D1932A9F858E]\nDefault=x.default-esr\nLocked=1\n\n[Profile1]\nName=work\nIsRelative=0\nPath=/data/work\n\n[Profile0]\nName=default-esr\nIsRelative=1\nPath=x.default-esr\nDefault=1\n\n[General]\nVersion=2\n";
    assert.deepEqual(parseProfilesIni(text), [
      { name: "work", path: "/data/work", isRelative: false, isDefault: false },
      { name: "default-esr", path: "x.default-esr", isRelative: true, isDefault: true },
    ]);
  });
});

describe("auditFirefox on fixture profiles", () => {
  test("a profile with manual SOCKS5 to the tunnel and every recommended pref gives no finding at all", async () => {
    const { findings } = await audit({ good: { "prefs.js": prefs(HARDENED) } });
    assert.deepEqual(findings, []);
  });

  test("a profile with only the proxy set up gives no leak, only the exposures and notes of Firefox's defaults", async () => {
    const { findings, dir } = await audit({ good: { "prefs.js": prefs(PROXY_PREFS) } });
    const label = `Firefox profile "good" (${dir("good")})`;
    assert.deepEqual(findings, [
      finding(
        "info",
        `${label}: network.proxy.allow_hijacking_localhost = false (Firefox's default): localhost, 127.0.0.1 and [::1] bypass the proxy and are reached on this machine`,
        "network.proxy.allow_hijacking_localhost = true",
      ),
      finding(
        "exposure",
        `${label}: network.proxy.failover_direct = true (Firefox's default): when the proxy fails, Firefox's own requests (updates, remote settings) retry directly, resolving their names on this machine`,
        "network.proxy.failover_direct = false",
      ),
      finding(
        "exposure",
        `${label}: network.proxy.allow_bypass = true (Firefox's default): Firefox's own services may mark a request to skip the proxy (Remote Settings does when the proxy fails) and connect directly`,
        "network.proxy.allow_bypass = false",
      ),
      finding(
        "exposure",
        `${label}: media.peerconnection.enabled = true (Firefox's default) and media.peerconnection.ice.proxy_only_if_behind_proxy = false (Firefox's default): ` +
          "WebRTC can send UDP around the proxy and show pages this machine's addresses; " +
          "media.peerconnection.ice.default_address_only = false (Firefox's default) and media.peerconnection.ice.no_host = false (Firefox's default) let it offer every local address too",
        "media.peerconnection.ice.proxy_only_if_behind_proxy = true (or media.peerconnection.enabled = false)",
      ),
      finding(
        "info",
        `${label}: network.prefetch-next = true (Firefox's default): Firefox fetches pages a page links with rel=prefetch or rel=next before you open them; ` +
          "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes",
        "network.prefetch-next = false",
      ),
      finding(
        "info",
        `${label}: network.http.speculative-parallel-limit = 20 (Firefox's default): Firefox opens connections to links under the mouse before they are clicked; ` +
          "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes",
        "network.http.speculative-parallel-limit = 0",
      ),
      finding(
        "exposure",
        `${label}: network.connectivity-service.enabled = true (Firefox's default): Firefox checks its connectivity (DNS lookups and a check page) at start-up and on every network change`,
        "network.connectivity-service.enabled = false",
      ),
      finding(
        "exposure",
        `${label}: network.captive-portal-service.enabled = true (Firefox's default): Firefox fetches Mozilla's captive-portal check page at start-up and on network changes`,
        "network.captive-portal-service.enabled = false",
      ),
    ]);
  });

  const MANUAL =
    'network.proxy.type = 1 with network.proxy.socks = "127.0.0.1", network.proxy.socks_port = 9001, network.proxy.socks_version = 5 and ' +
    'network.proxy.socks5_remote_dns = true (Manual proxy configuration: SOCKS v5 host 127.0.0.1 port 9001, "Proxy DNS when using SOCKS v5")';

  /** One bad pref on top of the hardened profile: [what is set, severity, detail after the label, fix]. */
  const badPrefs: [Record<string, string | number | boolean>, Finding["severity"], string, string | null][] = [
    [
      { "network.proxy.socks": "" },
      "leak",
      'network.proxy.type = 1 (prefs.js line 1) but network.proxy.socks = "" (prefs.js line 14): without a SOCKS host Firefox\'s guard against local DNS is off',
      MANUAL,
    ],
    [
      { "network.proxy.socks_port": 1080 },
      "info",
      'network.proxy.socks = "127.0.0.1" (prefs.js line 2) and network.proxy.socks_port = 1080 (prefs.js line 14) are not the tunnel at 127.0.0.1:9001, so this profile does not browse through it',
      'network.proxy.socks = "127.0.0.1" and network.proxy.socks_port = 9001',
    ],
    [
      { "network.proxy.socks5_remote_dns": false },
      "leak",
      "network.proxy.socks5_remote_dns = false (prefs.js line 14) with network.proxy.socks_version = 5 (prefs.js line 4): Firefox resolves names itself and sends the proxy addresses",
      'network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5")',
    ],
    [
      { "network.proxy.socks_version": 4 },
      "leak",
      "network.proxy.socks_remote_dns = false (Firefox's default) with network.proxy.socks_version = 4 (prefs.js line 14): Firefox resolves names itself and sends the proxy addresses (SOCKS v4 without 4a)",
      'network.proxy.socks_version = 5 with network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5"), or keep SOCKS v4 and set network.proxy.socks_remote_dns = true ("Proxy DNS when using SOCKS v4")',
    ],
    [
      { "network.proxy.socks_version": 6 },
      "leak",
      "network.proxy.socks_version = 6 (prefs.js line 14) is neither 4 nor 5, so Firefox's guard against local DNS is off",
      "network.proxy.socks_version = 5",
    ],
    [
      { "network.proxy.no_proxies_on": "localhost, 127.0.0.1, .corp.example, 192.168.0.0/16" },
      "leak",
      'network.proxy.no_proxies_on = "localhost, 127.0.0.1, .corp.example, 192.168.0.0/16" (prefs.js line 14) bypasses the proxy: names matching .corp.example are resolved on this machine, and 192.168.0.0/16 is reached directly',
      'network.proxy.no_proxies_on = ""',
    ],
    [
      { "network.proxy.no_proxies_on": "10.0.0.1 fe80::1 [::1]:8080" },
      "exposure",
      'network.proxy.no_proxies_on = "10.0.0.1 fe80::1 [::1]:8080" (prefs.js line 14) bypasses the proxy: 10.0.0.1, fe80::1 are reached directly',
      'network.proxy.no_proxies_on = ""',
    ],
    [
      { "network.proxy.allow_hijacking_localhost": false },
      "info",
      "network.proxy.allow_hijacking_localhost = false (prefs.js line 14): localhost, 127.0.0.1 and [::1] bypass the proxy and are reached on this machine",
      "network.proxy.allow_hijacking_localhost = true",
    ],
    [
      { "network.proxy.failover_direct": true },
      "exposure",
      "network.proxy.failover_direct = true (prefs.js line 14): when the proxy fails, Firefox's own requests (updates, remote settings) retry directly, resolving their names on this machine",
      "network.proxy.failover_direct = false",
    ],
    [
      { "network.proxy.allow_bypass": true },
      "exposure",
      "network.proxy.allow_bypass = true (prefs.js line 14): Firefox's own services may mark a request to skip the proxy (Remote Settings does when the proxy fails) and connect directly",
      "network.proxy.allow_bypass = false",
    ],
    [
      { "network.trr.mode": 3, "network.trr.uri": "https://doh.example/dns-query" },
      "info",
      'network.trr.mode = 3 (prefs.js line 14) turns on DNS over HTTPS (TRR only) with network.trr.uri = "https://doh.example/dns-query" (prefs.js line 15): ' +
        "its requests to https://doh.example/dns-query go through the proxy like other requests, and page names still go to the proxy as names",
      null,
    ],
    [
      { "media.peerconnection.ice.proxy_only_if_behind_proxy": false, "media.peerconnection.ice.no_host": true },
      "exposure",
      "media.peerconnection.enabled = true (Firefox's default) and media.peerconnection.ice.proxy_only_if_behind_proxy = false (prefs.js line 14): " +
        "WebRTC can send UDP around the proxy and show pages this machine's addresses; " +
        "media.peerconnection.ice.default_address_only = false (Firefox's default) and media.peerconnection.ice.no_host = true (prefs.js line 15) limit which local addresses it offers",
      "media.peerconnection.ice.proxy_only_if_behind_proxy = true (or media.peerconnection.enabled = false)",
    ],
    [
      { "network.predictor.enabled": true },
      "info",
      "network.predictor.enabled = true (prefs.js line 14): Firefox resolves and connects to hosts it predicts you will visit; " +
        "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes",
      "network.predictor.enabled = false",
    ],
    [
      { "network.prefetch-next": true },
      "info",
      "network.prefetch-next = true (prefs.js line 14): Firefox fetches pages a page links with rel=prefetch or rel=next before you open them; " +
        "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes",
      "network.prefetch-next = false",
    ],
    [
      { "network.http.speculative-parallel-limit": 6 },
      "info",
      "network.http.speculative-parallel-limit = 6 (prefs.js line 14): Firefox opens connections to links under the mouse before they are clicked; " +
        "Firefox's guard refuses the lookups and the connections go through the proxy, so this only matters if the proxy set-up changes",
      "network.http.speculative-parallel-limit = 0",
    ],
    [
      { "network.connectivity-service.enabled": true },
      "exposure",
      "network.connectivity-service.enabled = true (prefs.js line 14): Firefox checks its connectivity (DNS lookups and a check page) at start-up and on every network change",
      "network.connectivity-service.enabled = false",
    ],
    [
      { "network.captive-portal-service.enabled": true },
      "exposure",
      "network.captive-portal-service.enabled = true (prefs.js line 14): Firefox fetches Mozilla's captive-portal check page at start-up and on network changes",
      "network.captive-portal-service.enabled = false",
    ],
  ];

  for (const [set, severity, detail, fix] of badPrefs) {
    test(`${Object.entries(set)
      .map(([name, value]) => `${name} = ${JSON.stringify(value)}`)
      .join(" with ")} in a set-up profile gives exactly one ${severity} finding with its fix`, async () => {
      // Appended after the 13 hardened prefs, so the first bad one is on line 14.
      const text = prefs(HARDENED) + prefs(set);
      const { findings, dir } = await audit({ p: { "prefs.js": text } });
      assert.deepEqual(findings, [finding(severity, `Firefox profile "p" (${dir("p")}): ${detail}`, fix)]);
    });
  }

  test("SOCKS v4 with network.proxy.socks_remote_dns on (SOCKS4a) sends names and gives no finding", async () => {
    const { findings } = await audit({ p: { "prefs.js": prefs({ ...HARDENED, "network.proxy.socks_version": 4, "network.proxy.socks_remote_dns": true }) } });
    assert.deepEqual(findings, []);
  });

  const types: [number, string][] = [
    [0, "no proxy: Firefox connects directly and resolves every name on this machine"],
    [2, "a PAC file: Firefox's guard against local DNS covers only manual proxy settings, and a PAC file may return DIRECT or a plain SOCKS, which Firefox takes as SOCKS v4 (network.proxy.default_pac_script_socks_version = 4)"],
    [4, "WPAD auto-detection: Firefox's guard against local DNS covers only manual proxy settings"],
    [5, "the system proxy settings: Firefox's guard against local DNS covers only manual proxy settings"],
  ];
  for (const [type, why] of types) {
    test(`network.proxy.type ${type} is a leak even with remote DNS on, and so is DNS prefetch, which only manual settings turn off`, async () => {
      const { findings, dir } = await audit({ p: { "user.js": prefs({ ...HARDENED, "network.proxy.type": type }) } });
      const label = `Firefox profile "p" (${dir("p")})`;
      assert.deepEqual(findings, [
        finding("leak", `${label}: network.proxy.type = ${type} (user.js line 1) means ${why}`, MANUAL),
        finding("leak", `${label}: network.dns.disablePrefetch = false (Firefox's default): Firefox looks up the names of links on a page before they are clicked, on this machine`, "network.dns.disablePrefetch = true"),
      ]);
    });
  }

  test("a fresh profile (nothing set) gets the system proxy type, so it leaks through the type, prefetch and look-ahead", async () => {
    const { findings, dir } = await audit({ fresh: { "prefs.js": "// Mozilla User Preferences\n" } });
    const label = `Firefox profile "fresh" (${dir("fresh")})`;
    assert.deepEqual(
      findings.filter((f) => f.severity === "leak"),
      [
        finding("leak", `${label}: network.proxy.type = 5 (Firefox's default) means the system proxy settings: Firefox's guard against local DNS covers only manual proxy settings`, MANUAL),
        finding("leak", `${label}: network.dns.disablePrefetch = false (Firefox's default): Firefox looks up the names of links on a page before they are clicked, on this machine`, "network.dns.disablePrefetch = true"),
        finding(
          "leak",
          `${label}: network.prefetch-next = true (Firefox's default): Firefox fetches pages a page links with rel=prefetch or rel=next before you open them; without Firefox's guard against local DNS those names are resolved on this machine`,
          "network.prefetch-next = false",
        ),
        finding(
          "leak",
          `${label}: network.http.speculative-parallel-limit = 20 (Firefox's default): Firefox opens connections to links under the mouse before they are clicked; without Firefox's guard against local DNS those names are resolved on this machine`,
          "network.http.speculative-parallel-limit = 0",
        ),
      ],
    );
  });

  test("user.js overrides prefs.js: a bad user.js wins over a good prefs.js and is named as the source", async () => {
    const { findings, dir } = await audit({ p: { "prefs.js": prefs(HARDENED), "user.js": prefs({ "network.proxy.socks5_remote_dns": false }) } });
    assert.deepEqual(findings, [
      finding(
        "leak",
        `Firefox profile "p" (${dir("p")}): network.proxy.socks5_remote_dns = false (user.js line 1) with network.proxy.socks_version = 5 (prefs.js line 4): Firefox resolves names itself and sends the proxy addresses`,
        'network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5")',
      ),
    ]);
  });

  test("user.js overrides prefs.js: a good user.js repairs a bad prefs.js", async () => {
    const { findings } = await audit({ p: { "prefs.js": prefs({ ...HARDENED, "network.proxy.type": 5 }), "user.js": prefs({ "network.proxy.type": 1 }) } });
    assert.deepEqual(findings, []);
  });

  test("a locked Proxy policy overrides prefs.js and user.js, and the fix goes to the policy file", async () => {
    const policy = JSON.stringify({ policies: { Proxy: { Mode: "system", Locked: true } } });
    const { findings, dir, root } = await audit({ p: { "prefs.js": prefs(HARDENED), "user.js": prefs(PROXY_PREFS) } }, { "etc/firefox/policies/policies.json": policy });
    const file = join(root!, "etc/firefox/policies/policies.json");
    assert.deepEqual(findings, [
      finding(
        "leak",
        `Firefox profile "p" (${dir("p")}): network.proxy.type = 5 (Proxy policy in ${file}, locked) means the system proxy settings: Firefox's guard against local DNS covers only manual proxy settings`,
        `in ${file} set "Proxy": {"Mode": "manual", "SOCKSProxy": "127.0.0.1:9001", "SOCKSVersion": 5, "UseProxyForDNS": true, "Passthrough": ""}`,
      ),
      finding(
        "leak",
        `Firefox profile "p" (${dir("p")}): network.dns.disablePrefetch = false (Firefox's default): Firefox looks up the names of links on a page before they are clicked, on this machine`,
        "network.dns.disablePrefetch = true",
      ),
    ]);
  });

  test("an unlocked Proxy policy only sets defaults: the profile's own prefs still win", async () => {
    const policy = JSON.stringify({ policies: { Proxy: { Mode: "system", UseProxyForDNS: false } } });
    const { findings } = await audit({ p: { "prefs.js": prefs(HARDENED) } }, { "usr/lib/firefox-esr/distribution/policies.json": policy });
    assert.deepEqual(findings, []);
  });

  test("Firefox reads /etc/firefox/policies before the installation's distribution/policies.json, never both", async () => {
    const locked = (mode: string) => JSON.stringify({ policies: { Proxy: { Mode: mode, Locked: true } } });
    const { findings } = await audit(
      { p: { "prefs.js": prefs(HARDENED) } },
      {
        "etc/firefox/policies/policies.json": JSON.stringify({ policies: { Proxy: { Mode: "manual", SOCKSProxy: "127.0.0.1:9001", SOCKSVersion: 5, UseProxyForDNS: true, Locked: true } } }),
        "usr/lib/firefox-esr/distribution/policies.json": locked("none"),
      },
    );
    assert.deepEqual(findings, []);
  });

  test("a DNSOverHTTPS policy turning TRR on is a note, not a leak: Firefox's DoH goes through the proxy", async () => {
    const policy = JSON.stringify({ policies: { DNSOverHTTPS: { Enabled: true, Locked: true } } });
    const { findings, dir, root } = await audit({ p: { "prefs.js": prefs(HARDENED) } }, { "etc/firefox/policies/policies.json": policy });
    const file = join(root!, "etc/firefox/policies/policies.json");
    assert.deepEqual(findings, [
      finding(
        "info",
        `Firefox profile "p" (${dir("p")}): network.trr.mode = 2 (DNSOverHTTPS policy in ${file}, locked) turns on DNS over HTTPS (TRR first) with network.trr.uri = "" (Firefox's default): ` +
          "its requests to https://mozilla.cloudflare-dns.com/dns-query go through the proxy like other requests, and page names still go to the proxy as names",
        null,
      ),
    ]);
  });

  test("a locked pref in Debian's /etc/firefox-esr defaults beats the profile", async () => {
    const { findings, dir, root } = await audit({ p: { "prefs.js": prefs(HARDENED) } }, { "etc/firefox-esr/site.js": 'pref("network.proxy.socks5_remote_dns", false, locked);\n' });
    assert.deepEqual(findings, [
      finding(
        "leak",
        `Firefox profile "p" (${dir("p")}): network.proxy.socks5_remote_dns = false (${join(root!, "etc/firefox-esr/site.js")} line 1, locked) with network.proxy.socks_version = 5 (prefs.js line 4): Firefox resolves names itself and sends the proxy addresses`,
        'network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5")',
      ),
    ]);
  });

  test("with two profiles only the one that is not set up gets findings", async () => {
    const { findings, dir } = await audit({ ready: { "prefs.js": prefs(HARDENED) }, other: { "prefs.js": prefs({ ...HARDENED, "network.proxy.type": 0 }) } });
    assert.deepEqual(findings, [
      finding("leak", `Firefox profile "other" (${dir("other")}): network.proxy.type = 0 (prefs.js line 1) means no proxy: Firefox connects directly and resolves every name on this machine`, MANUAL),
      finding(
        "leak",
        `Firefox profile "other" (${dir("other")}): network.dns.disablePrefetch = false (Firefox's default): Firefox looks up the names of links on a page before they are clicked, on this machine`,
        "network.dns.disablePrefetch = true",
      ),
    ]);
  });

  test("a prefs.js Firefox could not parse is reported line by line and the rest still counts", async () => {
    const { findings, dir } = await audit({ p: { "prefs.js": prefs(HARDENED) + 'user_pref("broken", );\n' } });
    assert.deepEqual(findings, [finding("info", `Firefox profile "p" (${dir("p")}): ${join(dir("p"), "prefs.js")}: line 14: expected a string, an integer, true or false`, null)]);
  });

  test("no profiles.ini anywhere gives one note naming every place looked", async () => {
    const base = await tree({ "home/.keep": "" });
    const host = { home: join(base, "home"), platform: "linux", env: { XDG_CONFIG_HOME: join(base, "xdg") }, root: base };
    const findings = auditFirefox(await loadFirefoxInputs(host), PROXY);
    const looked = [".mozilla/firefox", "../xdg/mozilla/firefox", "snap/firefox/common/.mozilla/firefox", ".var/app/org.mozilla.firefox/.mozilla/firefox", ".var/app/org.mozilla.firefox/config/mozilla/firefox"].map(
      (p) => join(base, "home", p),
    );
    assert.deepEqual(findings, [finding("info", `No Firefox profile found (looked for profiles.ini in ${looked.join(", ")})`, null)]);
  });

  test("profiles are found under $XDG_CONFIG_HOME/mozilla/firefox and by absolute path", async () => {
    const base = await tree({ "elsewhere/prefs.js": prefs(HARDENED) });
    await mkdir(join(base, "xdg/mozilla/firefox"), { recursive: true });
    await writeFile(join(base, "xdg/mozilla/firefox/profiles.ini"), `[Profile0]\nName=abs\nIsRelative=0\nPath=${join(base, "elsewhere")}\n`);
    const inputs = await loadFirefoxInputs({ home: join(base, "home"), platform: "linux", env: { XDG_CONFIG_HOME: join(base, "xdg") }, root: base });
    assert.deepEqual(
      inputs.profiles.map((p) => [p.name, p.dir, p.prefsJs !== undefined]),
      [["abs", join(base, "elsewhere"), true]],
    );
    assert.deepEqual(auditFirefox(inputs, PROXY), []);
  });

  test("on macOS and Windows the profiles folder is the platform's", async () => {
    const base = await tree({
      "home/Library/Application Support/Firefox/profiles.ini": INI("mac"),
      "home/Library/Application Support/Firefox/mac.dir/prefs.js": prefs(HARDENED),
      "appdata/Mozilla/Firefox/profiles.ini": INI("win"),
      "appdata/Mozilla/Firefox/win.dir/prefs.js": prefs(HARDENED),
    });
    const mac = await loadFirefoxInputs({ home: join(base, "home"), platform: "darwin", env: {}, root: base });
    const win = await loadFirefoxInputs({ home: join(base, "home"), platform: "win32", env: { APPDATA: join(base, "appdata") }, root: base });
    assert.deepEqual(mac.profiles.map((p) => p.name), ["mac"]);
    assert.deepEqual(win.profiles.map((p) => p.name), ["win"]);
  });
});
