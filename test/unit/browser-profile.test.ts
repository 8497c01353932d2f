import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { browserCandidates, chromiumArgs, chromiumLocalState, chromiumPreferences, firefoxPrefs, firefoxUserJs, snapOf } from "../../src/clients/browser-profile.ts";
import { findBrowser, runBrowser } from "../../src/clients/browser.ts";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseBrowserArgs } from "../../src/cli/client-args.ts";

const proxy = { host: "127.0.0.1", port: 9001 };

describe("firefoxPrefs", () => {
  test("sets every pref the set-up needs, as leakcheck's audit names them", () => {
    const prefs = firefoxPrefs(proxy, { webrtc: true });
    const expected: Record<string, string | number | boolean> = {
      "network.proxy.type": 1,
      "network.proxy.socks": "127.0.0.1",
      "network.proxy.socks_port": 9001,
      "network.proxy.socks_version": 5,
      "network.proxy.socks5_remote_dns": true,
      "network.proxy.failover_direct": false,
      "network.proxy.allow_bypass": false,
      "network.proxy.no_proxies_on": "",
      "network.proxy.allow_hijacking_localhost": true,
      "network.trr.mode": 5,
      "media.peerconnection.enabled": true,
      "media.peerconnection.ice.proxy_only": true,
      "network.dns.disablePrefetch": true,
      "network.predictor.enabled": false,
      "network.prefetch-next": false,
      "network.http.speculative-parallel-limit": 0,
      "network.connectivity-service.enabled": false,
      "network.captive-portal-service.enabled": false,
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(prefs[name], value, name);
  });

  test("--no-webrtc turns WebRTC off; an IPv6 proxy goes in without brackets", () => {
    assert.equal(firefoxPrefs(proxy, { webrtc: false })["media.peerconnection.enabled"], false);
    assert.equal(firefoxPrefs({ host: "[::1]", port: 1 }, { webrtc: true })["network.proxy.socks"], "::1");
  });

  test("user.js: a kept profile's own lines stay, ours replace the ones they set", () => {
    const existing = '// mine\nuser_pref("network.proxy.type", 0);\nuser_pref("browser.startup.page", 3);\n\n';
    assert.equal(
      firefoxUserJs({ "network.proxy.type": 1, "network.proxy.socks": "127.0.0.1" }, existing),
      '// mine\nuser_pref("browser.startup.page", 3);\nuser_pref("network.proxy.type", 1);\nuser_pref("network.proxy.socks", "127.0.0.1");\n',
    );
  });
});

describe("Chromium's switches and files", () => {
  test("the switches: profile, socks5, loopback through the proxy, resolver rules, QUIC off", () => {
    assert.deepEqual(chromiumArgs(proxy, "/tmp/p"), [
      "--user-data-dir=/tmp/p",
      "--proxy-server=socks5://127.0.0.1:9001",
      "--proxy-bypass-list=<-loopback>",
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
      "--disable-quic",
      "--no-first-run",
      "--no-default-browser-check",
    ]);
  });

  test("Preferences and Local State keep what a kept profile had", () => {
    assert.deepEqual(chromiumPreferences({ webrtc: { multiple_routes_enabled: false }, profile: { name: "x" } }), {
      webrtc: { multiple_routes_enabled: false, ip_handling_policy: "disable_non_proxied_udp" },
      profile: { name: "x" },
    });
    assert.deepEqual(chromiumLocalState({ dns_over_https: { mode: "secure", templates: "https://x/" } }), { dns_over_https: { mode: "off", templates: "https://x/" } });
  });
});

describe("finding a browser", () => {
  test("candidates by platform", () => {
    assert.deepEqual(browserCandidates("firefox", "linux", {}), { names: ["firefox", "firefox-esr", "librewolf"], paths: [] });
    assert.deepEqual(browserCandidates("firefox", "darwin", { HOME: "/Users/a" }).paths, ["/Applications/Firefox.app/Contents/MacOS/firefox", "/Users/a/Applications/Firefox.app/Contents/MacOS/firefox"]);
    assert.deepEqual(browserCandidates("chromium", "darwin", {}).paths.at(-1), "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge");
    assert.deepEqual(browserCandidates("chromium", "win32", { LOCALAPPDATA: "C:\\Users\\a\\AppData\\Local" }), {
      names: ["chrome.exe", "chromium.exe", "msedge.exe", "brave.exe"],
      paths: [
        "C:\\Users\\a\\AppData\\Local\\Google\\Chrome\\Application\\chrome.exe",
        "C:\\Users\\a\\AppData\\Local\\Chromium\\Application\\chrome.exe",
        "C:\\Users\\a\\AppData\\Local\\Microsoft\\Edge\\Application\\msedge.exe",
        "C:\\Users\\a\\AppData\\Local\\BraveSoftware\\Brave-Browser\\Application\\brave.exe",
      ],
    });
  });

  test("a kept profile that a running browser holds (its lock file) is refused with status 2 and what to do", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safetunnel-locked-profile-"));
    try {
      await symlink("127.0.0.1:+4242", join(dir, "SingletonLock"));
      // Found on PATH, never started: the lock is checked first.
      await mkdir(join(dir, "bin"));
      await writeFile(join(dir, "bin", "chromium"), "");
      const plan = { command: "browser" as const, browser: "chromium" as const, proxy: { host: "127.0.0.1", port: 1080 }, profile: dir, webrtc: true, browserArgs: [], verbosity: 0, json: false };
      const env = { out: () => {}, note: () => {}, platform: "linux", home: dir, env: { PATH: join(dir, "bin") }, onStopSignal: () => {}, leakcheck: async () => assert.fail("no check for a profile in use") };
      await assert.rejects(runBrowser(plan, env as never), (err: Error & { code?: string; exitCode?: number }) => err.code === "BROWSER_PROFILE_IN_USE" && err.exitCode === 2 && /is open in a running Chromium .*SingletonLock exists\): close that browser first/.test(err.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("none on PATH: status 2 and a message naming what was looked for", () => {
    assert.throws(
      () => findBrowser("firefox", "linux", { PATH: "/nonexistent" }),
      (err: Error & { code?: string; exitCode?: number }) =>
        err.code === "BROWSER_NOT_FOUND" && err.exitCode === 2 && /^browser: no Firefox found \(looked for firefox, firefox-esr, librewolf on PATH/.test(err.message),
    );
  });
});

describe("browser arguments", () => {
  test("a browser, --proxy, --profile, and everything after -- for the browser", () => {
    assert.deepEqual(parseBrowserArgs(["chromium", "--proxy=9001", "--profile", "/p", "--", "--headless", "http://x/"]), {
      command: "browser",
      browser: "chromium",
      proxy: { host: "127.0.0.1", port: 9001 },
      profile: "/p",
      webrtc: true,
      browserArgs: ["--headless", "http://x/"],
      verbosity: 0,
      json: false,
    });
  });

  test("bad input is a one-line usage error naming the fix", () => {
    assert.throws(() => parseBrowserArgs(["opera"]), /browser: unknown browser 'opera': give firefox or chromium/);
    assert.throws(() => parseBrowserArgs(["--headless"]), /browser: unknown option '--headless' \(the browser's own options go after --\)/);
    assert.throws(() => parseBrowserArgs(["chromium", "--no-webrtc"]), /--no-webrtc is for Firefox/);
    assert.throws(() => parseBrowserArgs(["firefox", "chromium"]), /one browser at a time/);
    assert.throws(() => parseBrowserArgs(["--profile"]), /browser: --profile needs a value/);
  });
});

describe("snap browsers", () => {
  test("/snap/bin/NAME, or a wrapper script that runs it, is that snap; anything else is not", () => {
    assert.equal(snapOf("/snap/bin/firefox", undefined), "firefox");
    assert.equal(snapOf("/usr/bin/chromium-browser", '#!/bin/sh\nexec /snap/bin/chromium "$@"\n'), "chromium");
    assert.equal(snapOf("/usr/bin/firefox-esr", undefined), undefined);
    assert.equal(snapOf("/usr/bin/firefox", '#!/bin/sh\nexec /usr/lib/firefox/firefox "$@"\n'), undefined);
    assert.equal(snapOf("/usr/bin/odd", "not a script /snap/bin/x"), undefined);
  });
});
