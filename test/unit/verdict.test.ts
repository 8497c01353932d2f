import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Finding } from "../../src/leakcheck/findings.ts";
import { decideCaptureVerdict, decideVerdict, sortFindings, type CanaryOutcome, type VerdictInput } from "../../src/leakcheck/verdict.ts";

const PROXY = { host: "127.0.0.1", port: 9001 };
const BY_NAME: CanaryOutcome = { arrivedByName: true, program: "firefox-esr", waitedSeconds: 4 };
const NOTHING: CanaryOutcome = { arrivedByName: false, waitedSeconds: 60 };

function input(overrides: Partial<VerdictInput>): VerdictInput {
  return { proxy: PROXY, proxyCheck: { kind: "ours" }, canary: BY_NAME, ipLiteralRequests: [], findings: [], ...overrides };
}

const ARRIVED: Finding = { probe: "canary", severity: "info", detail: "The canary arrived through the proxy as a name from firefox-esr", fix: null };
const RESOLVER_INFO: Finding = { probe: "resolver", severity: "info", detail: "systemd-resolve holds a socket to a DNS server: UDP 192.0.2.2:49153 -> 10.255.255.53:53", fix: null };
const SUSPECT: Finding = { probe: "resolver", severity: "info", detail: "suspect, not counted as a lookup: chromium holds UDP 192.0.2.2:59890 -> 8.8.8.8:53 connected with nothing queued", fix: null };
const CANDIDATE: Finding = { probe: "webrtc", severity: "exposure", detail: "a host candidate carries 192.168.1.20", fix: "set media.peerconnection.ice.default_address_only = true" };
const STUN_UDP: Finding = { probe: "webrtc", severity: "leak", detail: "a STUN packet reached 192.168.1.5:40000 around the proxy", fix: "set media.peerconnection.ice.proxy_only_if_behind_proxy = true" };
const CANARY_LOOKUP: Finding = { probe: "resolver", severity: "leak", detail: "firefox-esr looked up the canary name locally", fix: "set network.proxy.socks5_remote_dns = true" };
const FIREFOX_PAC: Finding = { probe: "firefox", severity: "leak", detail: "profile default-esr: network.proxy.type = 2 (PAC)", fix: "set network.proxy.type = 1" };
const CHROMIUM_DOH: Finding = { probe: "chromium", severity: "exposure", detail: "DnsOverHttpsMode is not off", fix: 'set the policy DnsOverHttpsMode = "off"' };

describe("decideVerdict: PASS", () => {
  test("the canary by name and nothing else is PASS, exit 0, with the canary's info finding", () => {
    assert.deepEqual(decideVerdict(input({})), {
      verdict: "PASS",
      exitCode: 0,
      findings: [ARRIVED],
      summary: "The canary arrived through the proxy as a name and nothing leaked",
    });
  });

  test("exposure and info findings (a WebRTC candidate, Chromium's suspect probe socket) never turn PASS into LEAK", () => {
    const result = decideVerdict(input({ findings: [SUSPECT, CANDIDATE, RESOLVER_INFO, CHROMIUM_DOH] }));
    assert.equal(result.verdict, "PASS");
    assert.equal(result.exitCode, 0);
    assert.deepEqual(result.findings, [CANDIDATE, CHROMIUM_DOH, ARRIVED, SUSPECT, RESOLVER_INFO]);
  });

  test("a leaking setting of a browser other than the one that fetched the canary is listed, and PASS says so", () => {
    const result = decideVerdict(input({ canary: { ...BY_NAME, program: "chromium" }, findings: [FIREFOX_PAC] }));
    assert.deepEqual(result, {
      verdict: "PASS",
      exitCode: 0,
      findings: [FIREFOX_PAC, { ...ARRIVED, detail: "The canary arrived through the proxy as a name from chromium" }],
      summary: "The canary arrived through the proxy as a name and nothing leaked; 1 setting above would leak in a browser not tested here",
    });
  });
});

const CURL_REQUEST_DETAIL =
  "1 SOCKS5 request from curl carried an IP address instead of a name (first: 93.184.216.34:443) and was refused: the client resolved those names locally";
const CURL_FIX = "use curl --socks5-hostname 127.0.0.1:9001 (or -x socks5h://127.0.0.1:9001)";
const FIREFOX_SOCKS5_FIX = 'in Firefox set network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5") with SOCKS v5 host 127.0.0.1 port 9001';

describe("decideVerdict: IP-address requests from a program other than the browser under test", () => {
  test("are listed as leaks saying so, yet PASS when the tested browser is named, and the summary counts them with the settings of untested browsers", () => {
    const result = decideVerdict(
      input({
        ipLiteralRequests: [
          { destination: "93.184.216.34:443", version: 5, program: "curl" },
          { destination: "198.51.100.7:80", version: 5, program: "chromium" },
          { destination: "198.51.100.8:80", version: 5, program: "chromium" },
        ],
        findings: [{ ...CHROMIUM_DOH, severity: "leak" }],
      }),
    );
    assert.deepEqual(result, {
      verdict: "PASS",
      exitCode: 0,
      findings: [
        { probe: "canary", severity: "leak", detail: `${CURL_REQUEST_DETAIL}; curl is not the browser under test (the canary came from firefox-esr)`, fix: CURL_FIX },
        {
          probe: "canary",
          severity: "leak",
          detail:
            "2 SOCKS5 requests from chromium carried an IP address instead of a name (first: 198.51.100.7:80) and were refused: the client resolved those names locally; " +
            "chromium is not the browser under test (the canary came from firefox-esr)",
          fix: "start Chromium with --proxy-server=socks5://127.0.0.1:9001 (socks5, not socks4)",
        },
        { ...CHROMIUM_DOH, severity: "leak" },
        ARRIVED,
      ],
      summary:
        "The canary arrived through the proxy as a name and nothing leaked; 1 setting above would leak in a browser not tested here, " +
        "and 2 leaks above are from programs not tested here (curl, chromium)",
    });
  });

  test("a program of no kind leakcheck knows, or a browser's process under another name, may be the browser: it counts", () => {
    for (const program of ["wget", "Socket Process", "vivaldi-bin"]) {
      const result = decideVerdict(input({ ipLiteralRequests: [{ destination: "198.51.100.7:80", version: 5, program }] }));
      assert.equal(result.verdict, "LEAK", program);
      assert.equal(result.summary, "1 leak (canary): apply the fixes above and run leakcheck again", program);
    }
  });

  test("every program that fetched the canary is under test: a curl request counts when curl fetched it too", () => {
    const canary: CanaryOutcome = { ...BY_NAME, programs: ["firefox-esr", "curl"] };
    const result = decideVerdict(input({ canary, ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "curl" }] }));
    assert.deepEqual(result.findings[0], { probe: "canary", severity: "leak", detail: CURL_REQUEST_DETAIL, fix: CURL_FIX });
    assert.equal(result.verdict, "LEAK");
  });

  test("a capture that could not be read makes a clean run UNTESTED, naming why; a leak still decides", () => {
    const incomplete = "the capture /tmp/dns.pcap could not be read, so its lookups were not checked";
    assert.deepEqual(decideVerdict(input({ incomplete })), {
      verdict: "UNTESTED",
      exitCode: 2,
      findings: [ARRIVED],
      summary: `The canary arrived through the proxy as a name, but ${incomplete}`,
    });
    assert.equal(decideVerdict(input({ incomplete, ipLiteralRequests: [{ destination: "198.51.100.7:80", version: 5, program: "firefox-esr" }] })).verdict, "LEAK");
  });

  test("one from curl alone: PASS, the summary naming curl", () => {
    assert.deepEqual(decideVerdict(input({ ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "curl" }] })), {
      verdict: "PASS",
      exitCode: 0,
      findings: [{ probe: "canary", severity: "leak", detail: `${CURL_REQUEST_DETAIL}; curl is not the browser under test (the canary came from firefox-esr)`, fix: CURL_FIX }, ARRIVED],
      summary: "The canary arrived through the proxy as a name and nothing leaked; 1 leak above is from a program not tested here (curl)",
    });
  });

  test("from the program that fetched the canary: LEAK", () => {
    assert.deepEqual(decideVerdict(input({ ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "firefox-esr" }] })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [
        {
          probe: "canary",
          severity: "leak",
          detail: "1 SOCKS5 request from firefox-esr carried an IP address instead of a name (first: 93.184.216.34:443) and was refused: the client resolved those names locally",
          fix: FIREFOX_SOCKS5_FIX,
        },
        ARRIVED,
      ],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("from the same browser under another process name (firefox, the canary from firefox-esr): LEAK", () => {
    assert.deepEqual(decideVerdict(input({ ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "firefox" }] })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [
        {
          probe: "canary",
          severity: "leak",
          detail: "1 SOCKS5 request from firefox carried an IP address instead of a name (first: 93.184.216.34:443) and was refused: the client resolved those names locally",
          fix: FIREFOX_SOCKS5_FIX,
        },
        ARRIVED,
      ],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("from a program leakcheck could not name: LEAK, it may be the browser", () => {
    assert.deepEqual(decideVerdict(input({ ipLiteralRequests: [{ destination: "198.51.100.7:443", version: 5 }] })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [
        {
          probe: "canary",
          severity: "leak",
          detail:
            "1 SOCKS5 request from a client leakcheck could not name carried an IP address instead of a name (first: 198.51.100.7:443) and was refused: the client resolved those names locally",
          fix:
            "make the app send names: Firefox: network.proxy.socks5_remote_dns = true; Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
        },
        ARRIVED,
      ],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("from curl when the browser that fetched the canary could not be named: LEAK", () => {
    assert.deepEqual(decideVerdict(input({ canary: { arrivedByName: true, waitedSeconds: 4 }, ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "curl" }] })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [
        { probe: "canary", severity: "leak", detail: CURL_REQUEST_DETAIL, fix: CURL_FIX },
        { probe: "canary", severity: "info", detail: "The canary arrived through the proxy as a name", fix: null },
      ],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("with no canary arriving, the canary's absence is still LEAK", () => {
    const absent: Finding = {
      probe: "canary",
      severity: "leak",
      detail: "Nothing arrived through the proxy for the canary within 60 s: the browser resolved its name locally (and found nothing) or does not use the proxy",
      fix:
        "use SOCKS v5 at 127.0.0.1:9001 in the browser and make the app send names: Firefox: network.proxy.socks5_remote_dns = true; " +
        "Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
    };
    const curl = [{ destination: "93.184.216.34:443", version: 5, program: "curl" }] as const;
    // No browser named: curl's request counts too.
    assert.deepEqual(decideVerdict(input({ canary: NOTHING, ipLiteralRequests: curl })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [absent, { probe: "canary", severity: "leak", detail: CURL_REQUEST_DETAIL, fix: CURL_FIX }],
      summary: "2 leaks (canary): apply the fixes above and run leakcheck again",
    });
    // A browser named though nothing arrived (CanaryOutcome allows it): curl's request does not decide, the absence does.
    assert.deepEqual(decideVerdict(input({ canary: { ...NOTHING, program: "firefox-esr" }, ipLiteralRequests: curl })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [absent, { probe: "canary", severity: "leak", detail: `${CURL_REQUEST_DETAIL}; curl is not the browser under test (the canary came from firefox-esr)`, fix: CURL_FIX }],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("stopped before the canary arrived, with only curl's request seen: LEAK, since no browser was named", () => {
    const result = decideVerdict(input({ canary: { ...NOTHING, waitedSeconds: 12, interrupted: true }, ipLiteralRequests: [{ destination: "93.184.216.34:443", version: 5, program: "curl" }] }));
    assert.deepEqual(result, {
      verdict: "LEAK",
      exitCode: 1,
      findings: [{ probe: "canary", severity: "leak", detail: CURL_REQUEST_DETAIL, fix: CURL_FIX }],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });
});

describe("decideVerdict: LEAK", () => {
  test("nothing arriving within the wait is LEAK, exit 1, with the set-up fix for every browser", () => {
    assert.deepEqual(decideVerdict(input({ canary: NOTHING })), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [
        {
          probe: "canary",
          severity: "leak",
          detail: "Nothing arrived through the proxy for the canary within 60 s: the browser resolved its name locally (and found nothing) or does not use the proxy",
          fix:
            "use SOCKS v5 at 127.0.0.1:9001 in the browser and make the app send names: Firefox: network.proxy.socks5_remote_dns = true; " +
            "Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
        },
      ],
      summary: "1 leak (canary): apply the fixes above and run leakcheck again",
    });
  });

  test("the canary by name but also looked up locally is LEAK", () => {
    const result = decideVerdict(input({ findings: [CANARY_LOOKUP] }));
    assert.deepEqual([result.verdict, result.exitCode, result.summary], ["LEAK", 1, "1 leak (resolver): apply the fixes above and run leakcheck again"]);
  });

  test("WebRTC UDP around the proxy is LEAK even when the canary arrived by name", () => {
    const result = decideVerdict(input({ findings: [CANDIDATE, STUN_UDP] }));
    assert.deepEqual([result.verdict, result.exitCode], ["LEAK", 1]);
    assert.deepEqual(result.findings, [STUN_UDP, CANDIDATE, ARRIVED]);
  });

  test("IP-address SOCKS requests during the test are LEAK, one finding per program and SOCKS version, counted", () => {
    // The canary's program unnamed: every request may be the browser's, so all decide.
    const result = decideVerdict(
      input({
        canary: { arrivedByName: true, waitedSeconds: 4 },
        ipLiteralRequests: [
          { destination: "93.184.216.34:443", version: 5, program: "chromium" },
          { destination: "[2001:db8::1]:80", version: 5, program: "chromium" },
          { destination: "10.0.0.1:80", version: 4, program: "firefox-esr" },
          { destination: "198.51.100.7:443", version: 5 },
        ],
      }),
    );
    assert.deepEqual(result, {
      verdict: "LEAK",
      exitCode: 1,
      summary: "3 leaks (canary): apply the fixes above and run leakcheck again",
      findings: [
        {
          probe: "canary",
          severity: "leak",
          detail: "2 SOCKS5 requests from chromium carried an IP address instead of a name (first: 93.184.216.34:443) and were refused: the client resolved those names locally",
          fix: "start Chromium with --proxy-server=socks5://127.0.0.1:9001 (socks5, not socks4)",
        },
        {
          probe: "canary",
          severity: "leak",
          detail: "1 SOCKS4 request from firefox-esr carried an IP address instead of a name (first: 10.0.0.1:80) and was refused: the client resolved those names locally",
          fix:
            'in Firefox use SOCKS v5 host 127.0.0.1 port 9001 with network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5"), ' +
            'or keep SOCKS v4 and set network.proxy.socks_remote_dns = true ("Proxy DNS when using SOCKS v4")',
        },
        {
          probe: "canary",
          severity: "leak",
          detail: "1 SOCKS5 request from a client leakcheck could not name carried an IP address instead of a name (first: 198.51.100.7:443) and was refused: the client resolved those names locally",
          fix:
            "make the app send names: Firefox: network.proxy.socks5_remote_dns = true; Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://",
        },
        { probe: "canary", severity: "info", detail: "The canary arrived through the proxy as a name", fix: null },
      ],
    });
  });

  test("a leaking setting of the browser that fetched the canary is LEAK, and so is any when no program was named", () => {
    assert.equal(decideVerdict(input({ findings: [FIREFOX_PAC] })).verdict, "LEAK");
    const unnamed = decideVerdict(input({ canary: { arrivedByName: true, waitedSeconds: 4 }, findings: [FIREFOX_PAC] }));
    assert.deepEqual([unnamed.verdict, unnamed.exitCode, unnamed.summary], ["LEAK", 1, "1 leak (firefox): apply the fixes above and run leakcheck again"]);
  });

  test("a leak seen before leakcheck was stopped is LEAK even though the canary never came", () => {
    const result = decideVerdict(input({ canary: { ...NOTHING, waitedSeconds: 12, interrupted: true }, findings: [STUN_UDP] }));
    assert.deepEqual([result.verdict, result.exitCode, result.findings], ["LEAK", 1, [STUN_UDP]]);
  });
});

describe("decideVerdict: UNTESTED", () => {
  test("nothing listening at --proxy is UNTESTED, exit 2, saying what was found and how to start the tunnel; the canary is not judged", () => {
    assert.deepEqual(decideVerdict(input({ proxyCheck: { kind: "absent", found: "nothing listens on 127.0.0.1:9001" }, canary: NOTHING, findings: [RESOLVER_INFO, FIREFOX_PAC] })), {
      verdict: "UNTESTED",
      exitCode: 2,
      findings: [FIREFOX_PAC, RESOLVER_INFO],
      summary: "Could not test: nothing listens on 127.0.0.1:9001; start the tunnel first (safetunnel -D 9001 user@host)",
    });
  });

  test("the start-the-tunnel fix names the host too when --proxy is not 127.0.0.1", () => {
    const result = decideVerdict(input({ proxy: { host: "::1", port: 1080 }, proxyCheck: { kind: "absent", found: "nothing listens on [::1]:1080" }, canary: NOTHING }));
    assert.equal(result.summary, "Could not test: nothing listens on [::1]:1080; start the tunnel first (safetunnel -D [::1]:1080 user@host)");
  });

  test("a SOCKS server that is not safetunnel is UNTESTED, exit 2", () => {
    const result = decideVerdict(input({ proxyCheck: { kind: "foreign", found: "127.0.0.1:9001 answers SOCKS5 but not leakcheck's control request" }, canary: NOTHING }));
    assert.deepEqual(result, {
      verdict: "UNTESTED",
      exitCode: 2,
      findings: [],
      summary: "Could not test: 127.0.0.1:9001 answers SOCKS5 but not leakcheck's control request; point --proxy at safetunnel's own -D port: only it answers leakcheck's canaries",
    });
  });

  test("stopped (Ctrl-C) before the canary arrived and with nothing leaked is UNTESTED, exit 2, not LEAK", () => {
    assert.deepEqual(decideVerdict(input({ canary: { ...NOTHING, waitedSeconds: 12, interrupted: true }, findings: [RESOLVER_INFO] })), {
      verdict: "UNTESTED",
      exitCode: 2,
      findings: [RESOLVER_INFO],
      summary: "Stopped after 12 s before the canary arrived: open the canary URL in the browser and let leakcheck wait",
    });
  });
});

describe("sortFindings", () => {
  test("puts leaks first, then exposure, then info, keeping the given order within each", () => {
    const info2: Finding = { ...RESOLVER_INFO, detail: "second info" };
    const leak2: Finding = { ...CANARY_LOOKUP, detail: "second leak" };
    assert.deepEqual(sortFindings([RESOLVER_INFO, CANDIDATE, STUN_UDP, info2, CHROMIUM_DOH, leak2]), [STUN_UDP, leak2, CANDIDATE, CHROMIUM_DOH, RESOLVER_INFO, info2]);
  });

  test("does not change the array it is given", () => {
    const given = [RESOLVER_INFO, STUN_UDP];
    sortFindings(given);
    assert.deepEqual(given, [RESOLVER_INFO, STUN_UDP]);
  });
});

describe("decideCaptureVerdict", () => {
  const LOOKUP: Finding = { probe: "resolver", severity: "leak", detail: "The canary a.canary.safetunnel.invalid was looked up", fix: "make the browser send names to the proxy" };
  const NAMES: Finding = { probe: "resolver", severity: "info", detail: "1 other name was looked up", fix: null };

  test("a canary looked up in the capture is LEAK, leaks first", () => {
    assert.deepEqual(decideCaptureVerdict({ found: "nothing is listening on 127.0.0.1:1080", findings: [NAMES, LOOKUP] }), {
      verdict: "LEAK",
      exitCode: 1,
      findings: [LOOKUP, NAMES],
      summary: "1 leak in the capture (resolver): apply the fixes above and run leakcheck again with the tunnel",
    });
  });

  test("no leak in the capture is UNTESTED (exit 2): the browser itself was not tested", () => {
    assert.deepEqual(decideCaptureVerdict({ found: "nothing is listening on 127.0.0.1:1080", findings: [NAMES] }), {
      verdict: "UNTESTED",
      exitCode: 2,
      findings: [NAMES],
      summary:
        "Only the capture was read (nothing is listening on 127.0.0.1:1080): no canary was looked up in it, but the browser itself was not tested; start the tunnel and run leakcheck while the browser opens the canary URL",
    });
  });
});
