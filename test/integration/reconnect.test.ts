/**
 * Staying up through outages, against the real sshd on loopback: the SOCKS
 * listener stays while the connection is gone, requests meanwhile get reply
 * 0x03 (never a direct connection, never a hang), a transfer cut by the
 * outage is closed, and once the server is back the same process serves
 * again: sshd killed and restarted twenty times in a row, and a server whose
 * network went away (nothing answers) three times. SIGHUP asks for
 * a new connection at once. A changed host key on reconnect stops the tunnel
 * with OpenSSH's warning and exit 255.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { socks5Open, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { readFile } from "node:fs/promises";
import { writeAskpass } from "../helpers/askpass.ts";
import { assertNoCrash, makeHome, startCli, stderrLines, waitForLine, waitForListen, type Home, type Running } from "../helpers/run.ts";
import { makeKey, startSshd, type Sshd } from "../helpers/sshd.ts";
import { freePort, HELLO, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { makeHomeWithKey, startSocksTunnel } from "../helpers/tunnel.ts";
import { waitFor } from "../helpers/wait.ts";

/** Keepalives and timeouts short enough for a test; the behaviour is the default one. */
const FAST = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "-o", "ConnectTimeout=2"];

/** Every byte our SOCKS port sends after the method choice for a CONNECT to host:port, up to its FIN. */
async function socks5Outcome(proxyPort: number, host: string, port: number): Promise<string> {
  const client = await socks5Open(proxyPort, socks5Request(host, port));
  try {
    return (await client.readToEnd()).toString("hex");
  } finally {
    client.destroy();
  }
}

function count(cli: Running, pattern: RegExp): number {
  return stderrLines(cli).filter((line) => pattern.test(line)).length;
}

const LOST = /^Warning: Connection to 127\.0\.0\.1 lost: .*; reconnecting\./;
const BACK = /^Reconnected to 127\.0\.0\.1 after \d+(\.\d)? s down; new connections go through again\.$/;

describe("reconnecting after the SSH connection drops", () => {
  let home: Home;
  let publicLine: string;
  let sshd: Sshd;
  let http: HttpTarget;
  const running: Running[] = [];

  before(async () => {
    const made = await makeHomeWithKey();
    home = made.home;
    publicLine = made.key.publicLine;
    sshd = await startSshd({ authorizedKeys: [publicLine] });
    await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
    http = await startHttpTarget();
  });

  after(async () => {
    for (const cli of running) await cli.stop("SIGKILL");
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
  });

  test("sshd killed mid-transfer and restarted, 20 times: the transfer is closed, the listener stays, requests meanwhile get 0x03, and the same process serves after each", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, FAST);
    running.push(cli);
    const total = 1024 * 1024 * 1024;
    for (let outage = 1; outage <= 20; outage++) {
      // A transfer in flight: 1 GiB asked for, flowing when the server dies.
      const opened = await socksConnect({ host: "127.0.0.1", port }, { host: "localhost", port: http.port });
      assert.ok(opened.ok, `before outage ${outage}: ${opened.ok ? "" : opened.error}\n${cli.stderr()}`);
      const transfer = opened.socket;
      let received = 0;
      let closed = false;
      transfer.on("data", (chunk: Buffer) => (received += chunk.length));
      transfer.on("error", () => {});
      transfer.on("close", () => (closed = true));
      transfer.write(`GET /bytes/${total} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      try {
        await waitFor(() => received > 0, `the transfer before outage ${outage} to start`);
        await sshd.kill();
        await waitFor(() => count(cli, LOST) >= outage, `outage ${outage} to be noticed`, () => cli.stderr());
        // Closed, not left hanging, and short of what was asked for.
        await waitFor(() => closed, `the transfer cut by outage ${outage} to be closed`);
        assert.ok(received < total, `outage ${outage}: ${received} bytes`);
        assert.equal(await socks5Outcome(port, "localhost", http.port), socks5Reply(0x03).toString("hex"), `outage ${outage}`);
      } finally {
        transfer.destroy();
        await sshd.restart();
      }
      // Backoff may have reached a few seconds while the server was down: twice waitFor's bound.
      await waitFor(() => count(cli, BACK) >= outage, `reconnect ${outage}`, () => cli.stderr()).catch(() =>
        waitFor(() => count(cli, BACK) >= outage, `reconnect ${outage}`, () => cli.stderr()),
      );
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(fetched.code, 0, `after outage ${outage}: ${fetched.stderr}\n${cli.stderr()}`);
      assert.equal(fetched.stdout.toString(), HELLO);
    }
    const status = await cli.stop("SIGINT");
    assert.equal(status.code, 0);
    assert.match(cli.stderr(), /^Stopped by SIGINT: 40 connections, .*, 20 outages \(\d+ s down\)\.$/m);
    assertNoCrash(cli.stderr());
  });

  test("a server whose network goes away (connections cut, new ones unanswered), 3 times: 0x03 meanwhile, served after each", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, FAST);
    running.push(cli);
    for (let outage = 1; outage <= 3; outage++) {
      // Nobody answers new connections, and the sessions die.
      sshd.pause();
      try {
        await sshd.dropConnections();
        await waitFor(() => count(cli, LOST) >= outage, `outage ${outage} to be noticed`, () => cli.stderr());
        assert.equal(await socks5Outcome(port, "localhost", http.port), socks5Reply(0x03).toString("hex"), `outage ${outage}`);
      } finally {
        sshd.resume();
      }
      await waitFor(() => count(cli, BACK) >= outage, `reconnect ${outage}`, () => cli.stderr()).catch(() =>
        waitFor(() => count(cli, BACK) >= outage, `reconnect ${outage}`, () => cli.stderr()),
      );
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(fetched.code, 0, `after outage ${outage}: ${fetched.stderr}\n${cli.stderr()}`);
      assert.equal(fetched.stdout.toString(), HELLO);
    }
    assert.equal((await cli.stop("SIGINT")).code, 0);
    assert.match(cli.stderr(), /^Stopped by SIGINT: 3 connections, .*, 3 outages \(\d+ s down\)\.$/m);
  });

  test("a frozen server is noticed by the keepalives, and a fresh connection serves", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, FAST);
    running.push(cli);
    const frozen = await sshd.freezeConnections();
    assert.equal(frozen.length, 1);
    try {
      await waitForLine(cli, /^Warning: Connection to 127\.0\.0\.1 lost: .*(timeout|not responding).*; reconnecting\./i, "the keepalive timeout");
      await waitForLine(cli, BACK, "the reconnected line");
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.equal(fetched.stdout.toString(), HELLO);
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
    assert.equal((await cli.stop("SIGTERM")).code, 0);
  });

  test("a key unlocked with a passphrase at the start is not asked for again on reconnect", async () => {
    const keyHome = await makeHome();
    try {
      const key = await makeKey(keyHome.sshDir, "id_ed25519", { passphrase: "correct horse" });
      const keyed = await startSshd({ authorizedKeys: [key.publicLine] });
      try {
        await keyHome.writeKnownHosts(`${keyed.knownHostsLine()}\n`);
        const askpass = await writeAskpass(keyHome.home, "askpass", "correct horse");
        const port = await freePort();
        const cli = startCli(["-N", ...FAST, "-D", `127.0.0.1:${port}`, "-o", "StrictHostKeyChecking=yes", "-p", String(keyed.port), `${keyed.user}@127.0.0.1`], {
          home: keyHome.home,
          env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
        });
        running.push(cli);
        await waitForListen(port, "127.0.0.1", cli);
        await keyed.dropConnections();
        await waitForLine(cli, BACK, "the reconnected line");
        const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
        assert.equal(fetched.stdout.toString(), HELLO);
        // Asked once, at the start.
        assert.equal((await readFile(askpass.log, "utf8")).trim().split("\n").length, 1);
        await cli.stop();
      } finally {
        await keyed.stop();
      }
    } finally {
      await keyHome.cleanup();
    }
  });

  test("SIGHUP makes a new connection at once; the listener stays", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, FAST);
    running.push(cli);
    process.kill(cli.pid, "SIGHUP");
    await waitForLine(cli, /^Reconnecting to 127\.0\.0\.1 now, as asked \(SIGHUP\)\.$/, "the SIGHUP line");
    await waitForLine(cli, BACK, "the reconnected line");
    const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(fetched.stdout.toString(), HELLO);
    assert.equal((await cli.stop("SIGTERM")).code, 0);
  });

  test("a changed host key on reconnect stops everything with OpenSSH's warning, exit 255", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, FAST);
    running.push(cli);
    const oldPort = sshd.port;
    await sshd.dropConnections();
    await sshd.stop();
    // Another server on the same address and port, with a key of its own.
    sshd = await startSshd({ authorizedKeys: [publicLine], port: oldPort });
    const status = await cli.exited;
    assert.equal(status.code, 255, cli.stderr());
    assert.match(cli.stderr(), /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!/);
    assert.match(cli.stderr(), /^Tunnel closed: /m);
    // The listener is gone with it: nothing can go around the tunnel.
    await assert.rejects(socks5Open(port, socks5Request("localhost", http.port)));
  });
});
