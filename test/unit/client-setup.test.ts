import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chromiumLaunchArgs,
  chromiumLaunchFlags,
  chromiumPolicies,
  chromiumWebrtcFix,
  clientSetupHelp,
  FIREFOX_PREF,
  firefoxManualSocks,
  firefoxPrefSetting,
  firefoxProxyPolicy,
  firefoxRemoteDns,
  pointsAtProxy,
  refusalFix,
  socksAppFromProgram,
} from "../../src/client-setup.ts";

const PROXY = { host: "127.0.0.1", port: 9001 };

describe("socksAppFromProgram", () => {
  test("knows Firefox and its forks, Chromium and its relatives, and curl by their /proc comm names", () => {
    const expected: [string, string | undefined][] = [
      ["firefox", "firefox"],
      ["firefox-esr", "firefox"],
      ["librewolf", "firefox"],
      ["chromium", "chromium"],
      ["Chromium-browse", "chromium"],
      ["chrome", "chromium"],
      ["brave", "chromium"],
      ["msedge", "chromium"],
      ["curl", "curl"],
      ["wget", undefined],
      ["curlftpfs", undefined],
    ];
    for (const [program, app] of expected) assert.equal(socksAppFromProgram(program), app, program);
    assert.equal(socksAppFromProgram(undefined), undefined);
  });
});

describe("refusalFix", () => {
  test("Firefox over SOCKS5: socks5_remote_dns, the box that sets it, host and port", () => {
    assert.equal(
      refusalFix("firefox", 5, PROXY),
      'in Firefox set network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5") with SOCKS v5 host 127.0.0.1 port 9001',
    );
  });

  test("Firefox over SOCKS4: SOCKS v5 with socks5_remote_dns, or socks_remote_dns for v4 (not the SOCKS5 pref alone)", () => {
    assert.equal(
      refusalFix("firefox", 4, PROXY),
      'in Firefox use SOCKS v5 host 127.0.0.1 port 9001 with network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5"), ' +
        'or keep SOCKS v4 and set network.proxy.socks_remote_dns = true ("Proxy DNS when using SOCKS v4")',
    );
  });

  test("Chromium over either version: socks5://, since socks4:// always resolves locally", () => {
    for (const version of [4, 5] as const) {
      assert.equal(refusalFix("chromium", version, PROXY), "start Chromium with --proxy-server=socks5://127.0.0.1:9001 (socks5, not socks4)");
    }
  });

  test("curl: --socks5-hostname or socks5h://", () => {
    assert.equal(refusalFix("curl", 5, PROXY), "use curl --socks5-hostname 127.0.0.1:9001 (or -x socks5h://127.0.0.1:9001)");
    assert.equal(refusalFix("curl", 4, PROXY), "use curl --socks5-hostname 127.0.0.1:9001 (or -x socks5h://127.0.0.1:9001)");
  });

  test("an unknown app over SOCKS5 gets every common fix", () => {
    assert.equal(
      refusalFix(undefined, 5, PROXY),
      "make the app send names: Firefox: network.proxy.socks5_remote_dns = true; Chromium: --proxy-server=socks5://127.0.0.1:9001; " +
        "curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
    );
  });

  test("an unknown app over SOCKS4 gets Firefox's pref for each version", () => {
    assert.equal(
      refusalFix("wget", 4, PROXY),
      "make the app send names: Firefox: SOCKS v5 with network.proxy.socks5_remote_dns = true, or network.proxy.socks_remote_dns = true " +
        "for SOCKS v4; Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
    );
  });

  test("an IPv6 proxy address is bracketed in URLs and flags, bare in Firefox's host field", () => {
    const proxy = { host: "::1", port: 1080 };
    assert.match(refusalFix("curl", 5, proxy), /--socks5-hostname \[::1\]:1080 \(or -x socks5h:\/\/\[::1\]:1080\)/);
    assert.match(refusalFix("chromium", 5, proxy), /socks5:\/\/\[::1\]:1080/);
    assert.match(refusalFix("firefox", 5, proxy), /SOCKS v5 host ::1 port 1080$/);
  });
});

describe("clientSetupHelp", () => {
  test("the help paragraph, with N for the port", () => {
    assert.equal(
      clientSetupHelp(),
      [
        "Client setup (N is the -D port):",
        '  Firefox:  SOCKS v5 host 127.0.0.1 port N with "Proxy DNS when using SOCKS v5"',
        "            (network.proxy.socks5_remote_dns = true); with SOCKS v4 instead,",
        '            "Proxy DNS when using SOCKS v4"',
        "            (network.proxy.socks_remote_dns = true)",
        "  Chromium: --proxy-server=socks5://127.0.0.1:N",
        '            --proxy-bypass-list="<-loopback>"',
        '            --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", and the',
        "            policy WebRtcIPHandling = disable_non_proxied_udp",
        "  curl:     --socks5-hostname 127.0.0.1:N or -x socks5h://127.0.0.1:N",
      ].join("\n"),
    );
  });

  test("a real address fills in every app's setup, and no line passes 80 columns", () => {
    const text = clientSetupHelp({ host: "::1", port: 10800 });
    assert.match(text, /^Client setup:\n/);
    assert.match(text, /SOCKS v5 host ::1 port 10800 with/);
    assert.match(text, /--proxy-server=socks5:\/\/\[::1\]:10800/);
    assert.match(text, /--socks5-hostname \[::1\]:10800 or -x socks5h:\/\/\[::1\]:10800/);
    for (const line of text.split("\n")) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
  });

  test("says the same as the refusal fixes: each app's pref or flag appears in both", () => {
    const help = clientSetupHelp({ host: "127.0.0.1", port: 9001 });
    for (const [program, version] of [["firefox", 5], ["firefox", 4], ["chromium", 4], ["curl", 5]] as const) {
      const flags = refusalFix(program, version, PROXY).match(/network\.proxy\.\w+|--[\w-]+=socks5:\/\/\S+|--socks5-hostname \S+/g) ?? [];
      assert.ok(flags.length > 0, program);
      for (const flag of flags) assert.ok(help.includes(flag), `help names ${flag}`);
    }
  });
});

describe("leakcheck's set-up texts", () => {
  test("a Firefox pref is written as about:config shows it, strings quoted", () => {
    assert.equal(firefoxPrefSetting(FIREFOX_PREF.noProxiesOn, ""), 'network.proxy.no_proxies_on = ""');
    assert.equal(firefoxPrefSetting(FIREFOX_PREF.proxyType, 1), "network.proxy.type = 1");
    assert.equal(firefoxPrefSetting(FIREFOX_PREF.socks5RemoteDns, true), "network.proxy.socks5_remote_dns = true");
  });

  test("Firefox's manual SOCKS v5 set-up names every pref and the dialog, IPv6 bare in both", () => {
    assert.equal(
      firefoxManualSocks({ host: "[::1]", port: 1080 }),
      'network.proxy.type = 1 with network.proxy.socks = "::1", network.proxy.socks_port = 1080, network.proxy.socks_version = 5 and ' +
        'network.proxy.socks5_remote_dns = true (Manual proxy configuration: SOCKS v5 host ::1 port 1080, "Proxy DNS when using SOCKS v5")',
    );
  });

  test("the Firefox Proxy policy takes host:port with IPv6 in brackets", () => {
    assert.equal(
      firefoxProxyPolicy({ host: "::1", port: 1080 }),
      '"Proxy": {"Mode": "manual", "SOCKSProxy": "[::1]:1080", "SOCKSVersion": 5, "UseProxyForDNS": true, "Passthrough": ""}',
    );
  });

  test("Chromium's launch flags: one argv entry each, and quoted where a shell needs it", () => {
    assert.deepEqual(chromiumLaunchArgs(PROXY), [
      "--proxy-server=socks5://127.0.0.1:9001",
      "--proxy-bypass-list=<-loopback>",
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]);
    assert.equal(
      chromiumLaunchFlags({ host: "localhost", port: 9001 }),
      '--proxy-server=socks5://localhost:9001 --proxy-bypass-list="<-loopback>" --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE localhost"',
    );
  });

  test("Chromium policies name the managed folder on Linux and stay generic elsewhere", () => {
    assert.equal(
      chromiumPolicies({ DnsOverHttpsMode: "off" }, "/etc/chromium/policies/managed"),
      'set the policy "DnsOverHttpsMode": "off" in a JSON file in /etc/chromium/policies/managed/',
    );
    assert.equal(chromiumPolicies({ ProxyMode: "fixed_servers", ProxyServer: "socks5://127.0.0.1:9001" }), 'set the policies "ProxyMode": "fixed_servers", "ProxyServer": "socks5://127.0.0.1:9001" as a managed policy');
  });

  test("chromiumWebrtcFix names the policy, where it goes, and the profile preference for users without admin rights", () => {
    assert.equal(
      chromiumWebrtcFix("/etc/chromium/policies/managed"),
      `set the policy "WebRtcIPHandling": "disable_non_proxied_udp" in a JSON file in /etc/chromium/policies/managed/, or, without admin rights, with Chromium closed, "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"} in its profile's Preferences file (Default/Preferences in the user data folder); the --force-webrtc-ip-handling-policy switch is ignored`,
    );
  });

  test("a browser's proxy is the tunnel when the port matches and the hosts are equal or both loopback", () => {
    assert.equal(pointsAtProxy("localhost", 9001, PROXY), true);
    assert.equal(pointsAtProxy("[::1]", 9001, PROXY), true);
    assert.equal(pointsAtProxy("127.0.0.1", 1080, PROXY), false);
    assert.equal(pointsAtProxy("192.0.2.1", 9001, PROXY), false);
    assert.equal(pointsAtProxy("Proxy.Example", 1080, { host: "proxy.example", port: 1080 }), true);
  });

  test("refusal lines and leakcheck give the same Firefox pref and Chromium flag", () => {
    assert.ok(refusalFix("firefox", 5, PROXY).includes(firefoxRemoteDns(5)));
    assert.ok(refusalFix("firefox", 4, PROXY).includes(firefoxRemoteDns(4)));
    assert.ok(refusalFix("chromium", 4, PROXY).includes(chromiumLaunchArgs(PROXY)[0]!));
  });
});
