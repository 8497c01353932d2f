/**
 * On a shared machine only the account that started the tunnel (and root)
 * may use its ports. A second local user that this test creates (and
 * removes) runs curl through -D and through -L: refused, and named once in
 * the log; with --allow-users that user gets through. Needs root (to create
 * the user and run curl as it); skipped otherwise.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { startProcess, waitForLine, waitForListen, type Home, type Running } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort, HELLO, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { loginArgs, startSshdWithHome, startSocksTunnel } from "../helpers/tunnel.ts";
import { repoRoot, startCli } from "../helpers/run.ts";
import { denoExecutable } from "../helpers/deno.ts";
import { join } from "node:path";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const canCreateUsers = isRoot && spawnSync("useradd", ["--help"], { stdio: "ignore" }).error === undefined;

/** curl run as `user` (runuser), with no proxy variables; its exit code and stderr. */
async function curlAs(user: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = startProcess("/usr/sbin/runuser", ["-u", user, "--", "/usr/bin/curl", "-q", "-sS", "--max-time", "10", ...args], { env: { PATH: "/usr/bin:/bin" } });
  const status = await run.exited;
  return { code: status.code ?? -1, stdout: run.stdout(), stderr: run.stderr() };
}

describe("only the tunnel's own account may use its ports", { skip: canCreateUsers ? false : "needs root and useradd" }, () => {
  const user = `st-test-${randomBytes(3).toString("hex")}`;
  let uid: number;
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  const running: Running[] = [];

  before(async () => {
    const added = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user], { encoding: "utf8" });
    assert.equal(added.status, 0, added.stderr);
    uid = Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
  });

  after(async () => {
    for (const cli of running) await cli.stop();
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
    spawnSync("userdel", [user], { stdio: "ignore" });
  });

  test("another user is refused on -D (SOCKS 0x02) and -L, named in one log line; root's own curl gets through", async () => {
    const localPort = await freePort();
    const { cli, port } = await startSocksTunnel(sshd, home, ["-L", `127.0.0.1:${localPort}:localhost:${http.port}`]);
    running.push(cli);
    await waitForListen(localPort, "127.0.0.1", cli);
    const mine = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(mine.stdout.toString(), HELLO);

    const socks = await curlAs(user, ["--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`]);
    assert.equal(socks.code, 97, socks.stderr);
    assert.match(socks.stderr, /\(2\)/);
    await waitForLine(cli, new RegExp(`^Warning: -D 127\\.0\\.0\\.1:${port}: refused a connection from 127\\.0\\.0\\.1:\\d+: it belongs to uid ${uid}, not to the account running the tunnel \\(uid 0\\)\\. To let that account in: --allow-users ${uid}$`), "the refusal line");

    const forwarded = await curlAs(user, [`http://127.0.0.1:${localPort}/hello`]);
    assert.notEqual(forwarded.code, 0);
    assert.doesNotMatch(forwarded.stdout, /hello from target/);
    // The second refusal of that uid within 10 s is folded: still one warning line.
    assert.equal(cli.stderr().split("\n").filter((line) => line.startsWith("Warning:") && line.includes(`uid ${uid}`)).length, 1);
  });

  test("under Deno with --allow-all (the only way Deno lets it read /proc), another user is refused on -D too", async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, NO_COLOR: "1" };
    delete env["SSH_AUTH_SOCK"];
    const cli = startProcess(denoExecutable(), ["run", "--allow-all", join(repoRoot(), "src", "main.ts"), "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { env, cwd: repoRoot() });
    running.push(cli);
    await waitForListen(port, "127.0.0.1", cli, 60_000);
    const theirs = await curlAs(user, ["--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`]);
    assert.equal(theirs.code, 97, theirs.stderr);
    assert.match(theirs.stderr, /\(2\)/);
    await waitForLine(cli, new RegExp(`^Warning: -D 127\\.0\\.0\\.1:${port}: refused a connection from 127\\.0\\.0\\.1:\\d+: it belongs to uid ${uid}, not to the account running the tunnel \\(uid 0\\)\\.`), "the refusal line");
    const mine = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(mine.stdout.toString(), HELLO);
    assert.doesNotMatch(cli.stderr(), /Any program of any account/);
  });

  test("--allow-users lets that user in", async () => {
    const port = await freePort();
    const cli = startCli(["-N", "--allow-users", user, "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    await waitForListen(port, "127.0.0.1", cli);
    const theirs = await curlAs(user, ["--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`]);
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.equal(theirs.stdout, HELLO);
  });
});
