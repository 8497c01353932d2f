/**
 * `safetunnel browser` with the real browsers, headless, and a PAC file from
 * the -D port used by a real Firefox: every local lookup is watched in a
 * network namespace the test creates (as in leakcheck-browsers.test.ts), with
 * a private sshd, `safetunnel -N -v -D`, a DNS server on 127.0.0.1:53 that
 * records every question, and a page server on 127.0.0.1:8080 that the
 * browser reaches by the name localhost, through the tunnel. No packet leaves
 * the namespace; sshd permits forwarding to localhost:8080 only.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test, type TestContext } from "node:test";
import { within } from "../helpers/child.ts";
import { recordedQueries } from "../helpers/dns-recorder.ts";
import { createNetns, netnsUnavailable, type Netns, type NetnsSshd, startCliInNetns, startDnsRecorderInNetns, startSshdInNetns } from "../helpers/netns.ts";
import { type Home, type Running, waitForStdoutLine } from "../helpers/run.ts";
import { makeHomeWithKey } from "../helpers/tunnel.ts";
import { waitFor } from "../helpers/wait.ts";

const SOCKS_PORT = 1080;
const PAGE_PORT = 8080;
const FIREFOX = "/usr/bin/firefox-esr";
const CHROMIUM = "/usr/bin/chromium";
const DEBUG_PORT = 9222;

/** A page server: one line per request on stdout, `GET /path localhost:8080`. */
const PAGE_SERVER = `
const server = require("node:http").createServer((req, res) => {
  console.log(req.method + " " + req.url + " " + req.headers.host);
  res.writeHead(200, { "content-type": "text/html" });
  res.end("<!DOCTYPE html><title>page</title><p>loopback page");
});
server.listen(${PAGE_PORT}, "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => process.exit(0));
`;

/**
 * Prints the text of the canary page's verdict paragraph, read over Chromium's
 * DevTools protocol (Runtime.evaluate) at 127.0.0.1:PORT, once it says
 * "Verdict:" (at most 15 s). Node 20 has WebSocket behind --experimental-websocket.
 */
const READ_VERDICT = `
const port = process.argv[1];
const deadline = Date.now() + 15000;
(async () => {
  for (;;) {
    const targets = await (await fetch("http://127.0.0.1:" + port + "/json/list")).json();
    const page = targets.find((t) => t.type === "page" && t.url.includes(".canary.safetunnel.invalid"));
    if (page !== undefined) {
      const text = await new Promise((resolve, reject) => {
        const socket = new WebSocket(page.webSocketDebuggerUrl);
        socket.onopen = () => socket.send(JSON.stringify({ id: 1, method: "Runtime.evaluate", params: { expression: "document.getElementById('verdict').textContent", returnByValue: true } }));
        socket.onmessage = (m) => { const r = JSON.parse(m.data); if (r.id === 1) { socket.close(); resolve(r.result.result.value); } };
        socket.onerror = () => reject(new Error("DevTools socket failed"));
      });
      if (String(text).startsWith("Verdict:") || Date.now() > deadline) { console.log(text); return; }
    } else if (Date.now() > deadline) { console.log("no canary page among " + JSON.stringify(targets.map((t) => t.url))); return; }
    await new Promise((r) => setTimeout(r, 300));
  }
})().catch((err) => { console.log("error: " + err.message); });
`;

describe("safetunnel browser and the PAC file, with real browsers in a network namespace", () => {
  let unavailable: string | undefined;
  let netns: Netns | undefined;
  let home: Home | undefined;
  let sshd: NetnsSshd | undefined;
  let dns: Running | undefined;
  let pages: Running | undefined;
  let tunnel: Running | undefined;
  let scratch: string | undefined;
  const running: Running[] = [];

  before(async () => {
    unavailable = await netnsUnavailable();
    if (unavailable !== undefined) return;
    scratch = await mkdtemp(join(tmpdir(), "safetunnel-browser-command-"));
    netns = await createNetns("safetunnel-bc");
    dns = await startDnsRecorderInNetns(netns);
    running.push(dns);
    pages = netns.start(process.execPath, ["-e", PAGE_SERVER]);
    running.push(pages);
    await waitForStdoutLine(pages, /^ready$/, "the page server");
    const made = await makeHomeWithKey();
    home = made.home;
    sshd = await startSshdInNetns(netns, { authorizedKeys: [made.key.publicLine], extraConfig: [`PermitOpen localhost:${PAGE_PORT}`] });
    await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
    tunnel = startCliInNetns(
      netns,
      ["-N", "-v", "-D", `127.0.0.1:${SOCKS_PORT}`, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-p", String(sshd.port), `${sshd.user}@127.0.0.1`],
      { home: home.home },
    );
    running.push(tunnel);
    await netns.waitForListen(SOCKS_PORT, "127.0.0.1", tunnel);
  });

  after(async () => {
    for (const child of running) await within(child.stop("SIGKILL"), 15_000);
    await sshd?.stop();
    await netns?.remove();
    await home?.cleanup();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  function skipped(t: TestContext, browser: string): boolean {
    const why =
      unavailable !== undefined
        ? `no network namespace, so local lookups cannot be watched: ${unavailable}`
        : netns === undefined || tunnel === undefined
          ? "the namespace set-up failed (see the before hook)"
          : !existsSync(browser)
            ? `${browser} is not installed (scripts/ensure-test-tools.sh installs it)`
            : undefined;
    if (why !== undefined) t.skip(why);
    return why !== undefined;
  }

  /** The page server saw `path` asked for by the name localhost, and the tunnel carried it as SOCKS5 by name. */
  async function assertPageThroughTunnel(path: string, since: { pages: number; tunnel: number }): Promise<void> {
    await waitFor(
      () => pages!.stdout().slice(since.pages).includes(`GET ${path} localhost:${PAGE_PORT}\n`),
      `the page server to be asked for ${path} by name`,
      () => pages!.stdout().slice(since.pages),
    );
    assert.match(tunnel!.stderr().slice(since.tunnel), new RegExp(`: SOCKS5 CONNECT localhost:${PAGE_PORT} from 127\\.0\\.0\\.1:\\d+`));
  }

  function mark(): { pages: number; tunnel: number; dns: number } {
    return { pages: pages!.stdout().length, tunnel: tunnel!.stderr().length, dns: recordedQueries(dns!.stdout()).length };
  }

  /** `safetunnel browser ...` in the namespace, until its verdict line; returns it running. */
  async function startBrowserCommand(args: string[], dir: string): Promise<{ command: Running; verdict: string }> {
    const command = startCliInNetns(netns!, ["browser", ...args], { home: dir, env: { MOZ_CRASHREPORTER_DISABLE: "1", TMPDIR: dir } });
    running.push(command);
    const verdict = await waitForStdoutLine(command, /^verdict +/, "the verdict line");
    return { command, verdict };
  }

  /** SIGTERM by PID: the browser is closed, the fresh profile removed, the status is the verdict's. */
  async function stopBrowserCommand(command: Running): Promise<void> {
    const profile = /with a fresh profile \(([^,]+), removed when it closes\)/.exec(command.stderr())?.[1];
    assert.ok(profile !== undefined, command.stderr());
    assert.ok(existsSync(profile), `the profile ${profile} exists while the browser runs`);
    const status = await within(command.stop("SIGTERM"), 30_000);
    assert.deepEqual(status, { code: 0, signal: null }, command.stderr());
    assert.ok(!existsSync(profile), `the fresh profile ${profile} is removed`);
  }

  test("Firefox: the first page is the canary (PASS printed), a loopback page given after -- comes through the tunnel by name", async (t) => {
    if (skipped(t, FIREFOX)) return;
    const dir = await mkdtemp(join(scratch!, "firefox-"));
    const since = mark();
    const { command, verdict } = await startBrowserCommand(["firefox", "--proxy", `127.0.0.1:${SOCKS_PORT}`, "--", "--headless", `http://localhost:${PAGE_PORT}/firefox-page`], dir);
    for (const line of command.stdout().trimEnd().split("\n")) t.diagnostic(`browser: ${line}`);
    assert.match(verdict, /^verdict +PASS /, command.stdout());
    assert.match(command.stdout(), new RegExp(`^The leak check, opening in firefox\\S* through 127\\.0\\.0\\.1:${SOCKS_PORT}:\\n`));
    assert.match(command.stdout(), /canary +info +The canary arrived through the proxy as a name from firefox/);
    await assertPageThroughTunnel("/firefox-page", since);
    const asked = recordedQueries(dns!.stdout()).slice(since.dns).map((query) => `${query.name} ${query.type}`);
    assert.deepEqual(asked, [], "nothing was looked up on the namespace's DNS server");
    await stopBrowserCommand(command);
  });

  test("Chromium: PASS printed, then a loopback page opened in it comes through the tunnel by name", async (t) => {
    if (skipped(t, CHROMIUM)) return;
    const dir = await mkdtemp(join(scratch!, "chromium-"));
    const since = mark();
    // Headless Chromium opens one URL only (the canary): the page is opened afterwards through its debugging port.
    const { command, verdict } = await startBrowserCommand(
      ["chromium", "--proxy", `127.0.0.1:${SOCKS_PORT}`, "--", "--headless", "--no-sandbox", "--disable-gpu", `--remote-debugging-port=${DEBUG_PORT}`],
      dir,
    );
    for (const line of command.stdout().trimEnd().split("\n")) t.diagnostic(`browser: ${line}`);
    assert.match(verdict, /^verdict +PASS /, command.stdout());
    // The page shows the verdict too.
    const shown = await netns!.run(process.execPath, ["--experimental-websocket", "-e", READ_VERDICT, String(DEBUG_PORT)], { timeoutMs: 30_000 });
    assert.equal(shown.stdout.trim(), "Verdict: PASS. The canary arrived through the proxy as a name and nothing leaked.", shown.stderr);
    const opened = await netns!.run("curl", ["-q", "-sS", "--max-time", "10", "-X", "PUT", `http://127.0.0.1:${DEBUG_PORT}/json/new?http://localhost:${PAGE_PORT}/chromium-page`]);
    assert.equal(opened.code, 0, opened.stderr);
    await assertPageThroughTunnel("/chromium-page", since);
    const asked = recordedQueries(dns!.stdout()).slice(since.dns).map((query) => `${query.name} ${query.type}`);
    assert.deepEqual(asked, [], "nothing was looked up on the namespace's DNS server");
    await stopBrowserCommand(command);
  });

  test("no tunnel at --proxy: status 2 and no browser started", async (t) => {
    if (skipped(t, FIREFOX)) return;
    const dir = await mkdtemp(join(scratch!, "absent-"));
    const command = startCliInNetns(netns!, ["browser", "firefox", "--proxy", "127.0.0.1:1", "--", "--headless"], { home: dir });
    running.push(command);
    const status = await within(command.exited, 30_000);
    assert.deepEqual(status, { code: 2, signal: null }, command.stderr());
    assert.match(command.stdout(), /^verdict +UNTESTED +Could not test: nothing is listening on 127\.0\.0\.1:1;/m);
    assert.doesNotMatch(command.stderr(), /Starting /);
  });

  test("Firefox set to the -D port's /proxy.pac fetches it and sends a page through the tunnel as SOCKS5 by name", async (t) => {
    if (skipped(t, FIREFOX)) return;
    const dir = await mkdtemp(join(scratch!, "pac-"));
    const profile = join(dir, "profile");
    await mkdir(profile, { recursive: true });
    const prefs: Record<string, string | number | boolean> = {
      "network.proxy.type": 2,
      "network.proxy.autoconfig_url": `http://127.0.0.1:${SOCKS_PORT}/proxy.pac`,
      "network.proxy.allow_hijacking_localhost": true,
      "network.proxy.failover_direct": false,
      "network.proxy.allow_bypass": false,
      "network.trr.mode": 5,
      "network.dns.disablePrefetch": true,
      "network.prefetch-next": false,
      "network.http.speculative-parallel-limit": 0,
      "network.captive-portal-service.enabled": false,
      "network.connectivity-service.enabled": false,
      "browser.shell.checkDefaultBrowser": false,
      "browser.aboutwelcome.enabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
      "toolkit.telemetry.enabled": false,
      "app.update.enabled": false,
      "browser.safebrowsing.malware.enabled": false,
      "browser.safebrowsing.phishing.enabled": false,
    };
    await writeFile(join(profile, "user.js"), Object.entries(prefs).map(([n, v]) => `user_pref(${JSON.stringify(n)}, ${JSON.stringify(v)});\n`).join(""));
    const since = mark();
    const firefox = netns!.start(FIREFOX, ["--headless", "--no-remote", "--profile", profile, `http://localhost:${PAGE_PORT}/pac-page`], {
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: dir, MOZ_CRASHREPORTER_DISABLE: "1", TMPDIR: dir },
    });
    running.push(firefox);
    try {
      await assertPageThroughTunnel("/pac-page", since);
    } finally {
      await within(firefox.stop("SIGTERM"), 15_000);
    }
    const asked = recordedQueries(dns!.stdout()).slice(since.dns).map((query) => `${query.name} ${query.type}`);
    t.diagnostic(`asked of the namespace's DNS server under the PAC: ${JSON.stringify(asked)}`);
  });
});
