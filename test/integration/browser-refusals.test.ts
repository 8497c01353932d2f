/**
 * A real browser through the built CLI and a private OpenSSH sshd: headless
 * Chromium (Debian's chromium) loads pages whose resources are IP-address
 * URLs, so it sends SOCKS5 CONNECTs carrying addresses. Every refusal must
 * name the program, folded to one warning, with the Chromium fix.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadInChromium } from "../helpers/chromium.ts";
import { type Home, type Running, startCli, stderrLines, waitForListen } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort } from "../helpers/targets.ts";
import { loginArgs, startSshdWithHome } from "../helpers/tunnel.ts";

describe("headless Chromium through safetunnel -D", () => {
  let home: Home;
  let sshd: Sshd;
  let profile: string;
  const running: Running[] = [];

  before(async () => {
    // Chromium's own background requests (update and account hosts) come
    // through the proxy as names; PermitOpen makes sshd refuse them without
    // resolving them, so nothing here looks anything up off this machine.
    ({ home, sshd } = await startSshdWithHome({ extraConfig: ["PermitOpen 127.0.0.1:1"] }));
    profile = await mkdtemp(join(tmpdir(), "safetunnel-chromium-"));
  });

  after(async () => {
    for (const cli of running) await cli.stop("SIGKILL");
    await sshd?.stop();
    await home?.cleanup();
    if (profile !== undefined) await rm(profile, { recursive: true, force: true });
  });

  test("every refusal of a page's IP-address requests names chromium, and the one warning gives the Chromium fix", async () => {
    const port = await freePort();
    const cli = startCli(["-N", "-v", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    await waitForListen(port, "127.0.0.1", cli);

    // TEST-NET addresses (RFC 5737): refused before anything is opened, so nothing is ever reached.
    const images = ["192.0.2.10", "192.0.2.11", "198.51.100.7", "203.0.113.9"].map((ip) => `<img src="http://${ip}/x.png">`).join("");
    const result = await loadInChromium({ profile, proxyServer: `socks5://127.0.0.1:${port}`, url: `data:text/html,${images}`, extraArgs: ["--virtual-time-budget=3000"] });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });

    const refusals = stderrLines(cli).filter((line) => /Refused SOCKS5 CONNECT to /.test(line));
    const targets = new Set(refusals.map((line) => /CONNECT to ([\d.]+):80 /.exec(line)?.[1]));
    assert.deepEqual([...targets].sort(), ["192.0.2.10", "192.0.2.11", "198.51.100.7", "203.0.113.9"], cli.stderr());
    for (const line of refusals) assert.match(line, /from 127\.0\.0\.1:\d+ \(chromium\)/, `unnamed refusal: ${line}`);
    const warnings = refusals.filter((line) => line.startsWith("Warning: "));
    assert.equal(warnings.length, 1, cli.stderr());
    assert.match(warnings[0]!, new RegExp(`Fix: start Chromium with --proxy-server=socks5://127\\.0\\.0\\.1:${port} \\(socks5, not socks4\\)\\.`));
    const summary = stderrLines(cli).at(-1)!;
    assert.match(summary, new RegExp(`^Stopped by SIGTERM: 0 connections, 0 B up, 0 B down, ${refusals.length} refused \\(IP address\\), \\d+ failed\\.$`));
  });
});
