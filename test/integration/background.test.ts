/**
 * `-f` as `ssh -f`: the foreground exits 0 once every forward listens, the
 * background process serves and stops on SIGTERM with its summary in the log;
 * a run that never gets there exits 255 and leaves nothing behind. Against
 * the loopback sshd, with the built CLI.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { makeKey, startSshd, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { cliPath, makeHome, repoRoot, runCli, startCli, type Home } from "../helpers/run.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { startInTerminal } from "../helpers/terminal.ts";
import { runCommand, within } from "../helpers/child.ts";
import { waitFor } from "../helpers/wait.ts";

const PASSPHRASE = "background-passphrase-7";

/** PIDs of processes whose command line holds `marker` as one word (this suite's unique ports and files). */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(marker)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** One word for sh -c, single-quoted. */
function shellWord(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("-f: to the background once the forwards listen", () => {
  let home: Home;
  let plainKey: KeyPair;
  let lockedKey: KeyPair;
  let sshd: Sshd;
  let http: HttpTarget;
  let dir: string;
  /** Background processes this suite started, killed by PID if a test left one. */
  const started: number[] = [];

  before(async () => {
    home = await makeHome();
    plainKey = await makeKey(home.sshDir, "plain");
    lockedKey = await makeKey(home.sshDir, "locked", { passphrase: PASSPHRASE });
    sshd = await startSshd({ authorizedKeys: [plainKey.publicLine, lockedKey.publicLine] });
    await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
    http = await startHttpTarget();
    dir = await mkdtemp(join(tmpdir(), "safetunnel-background-"));
  });

  after(async () => {
    for (const pid of started) if (alive(pid)) process.kill(pid, "SIGKILL");
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const login = (key: KeyPair): string[] => ["-i", key.privatePath, "-o", "IdentitiesOnly=yes", "-p", String(sshd.port), `${sshd.user}@127.0.0.1`];

  test("the foreground exits 0 only once the SOCKS port answers; the background serves, and SIGTERM stops it with its summary in the -E file", async () => {
    const port = await freePort();
    const log = join(dir, "first.log");
    const pidFile = join(dir, "first.pid");
    const result = await runCli(["-f", "-N", "-D", `127.0.0.1:${port}`, "-E", log, "--pid-file", pidFile, ...login(plainKey)], { home: home.home, timeoutMs: 30_000 });
    const pid = Number((await readFile(pidFile, "utf8").catch(() => "0")).trim());
    if (pid > 0) started.push(pid);
    assert.equal(result.code, 0, result.stderr);
    const listening = `SOCKS and HTTP proxy listening on 127.0.0.1:${port} (-D 127.0.0.1:${port}); names are resolved by the SSH server, IP-address requests are refused.`;
    assert.equal(result.stderr, `${listening}\nIn the background as PID ${pid} (stop it with kill ${pid}); its log goes to ${log}.\n`);
    assert.equal(result.stdout, "");
    // No wait: the port answered before the foreground exited.
    const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(fetched.stdout.toString(), "hello from target\n");
    assert.ok(alive(pid), "the background process runs");
    // Its own session: no terminal can send it SIGHUP or Ctrl-C.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.equal(Number(fields[3]), pid, `the background process leads its own session (${stat})`);
    process.kill(pid, "SIGTERM");
    await waitFor(() => !alive(pid), "the background process to stop on SIGTERM");
    assert.equal(existsSync(pidFile), false, "the PID file is removed");
    const written = await readFile(log, "utf8");
    assert.match(written, new RegExp(`^${listening.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\n`));
    assert.match(written, /\nStopped by SIGTERM: 1 connection, \d+ B up, \d+ B down, 0 refused \(IP address\), 0 failed\.\n$/);
  });

  test("a failed forward with ExitOnForwardFailure=yes: 255 and the error in the foreground, nothing left running or listening", async () => {
    const port = await freePort();
    const log = join(dir, "failed.log");
    // -L to a port the SOCKS forward takes first: the second forward cannot listen.
    const result = await runCli(
      ["-f", "-N", "-o", "ExitOnForwardFailure=yes", "-D", `127.0.0.1:${port}`, "-L", `127.0.0.1:${port}:localhost:${http.port}`, "-E", log, ...login(plainKey)],
      { home: home.home, timeoutMs: 30_000 },
    );
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /a forwarding failed and ExitOnForwardFailure is set/);
    assert.doesNotMatch(result.stderr, /In the background/);
    assert.deepEqual(processesWith(log), [], "no safetunnel with this -E file is left");
    const probe = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.notEqual(probe.code, 0, "nothing listens on the port");
  });

  test("a login that fails: 255 with ssh's error on the foreground's stderr, and no background process", async () => {
    const port = await freePort();
    const log = join(dir, "refused.log");
    const stranger = await makeKey(home.sshDir, "stranger");
    const result = await runCli(["-f", "-N", "-D", `127.0.0.1:${port}`, "-E", log, "-o", "BatchMode=yes", ...login(stranger)], { home: home.home, timeoutMs: 30_000 });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /Permission denied/);
    assert.deepEqual(processesWith(log), []);
  });

  test("a passphrase asked on the foreground's terminal, not echoed; then the foreground exits 0 and the tunnel serves", async () => {
    const port = await freePort();
    const log = join(dir, "terminal.log");
    const pidFile = join(dir, "terminal.pid");
    const run = startInTerminal(["-f", "-N", "-D", `127.0.0.1:${port}`, "-E", log, "--pid-file", pidFile, ...login(lockedKey)], {
      home: home.home,
      answers: [[`Enter passphrase for key '${lockedKey.privatePath}': `, `${PASSPHRASE}\r`]],
    });
    const status = await within(run.exited, 45_000);
    const pid = Number((await readFile(pidFile, "utf8").catch(() => "0")).trim());
    if (pid > 0) started.push(pid);
    assert.deepEqual(status, { code: 0, signal: null }, run.stdout() + run.stderr());
    assert.match(run.stdout(), new RegExp(`Enter passphrase for key '${lockedKey.privatePath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}': \\r+\\n`));
    assert.doesNotMatch(run.stdout(), new RegExp(PASSPHRASE), "the passphrase is not echoed");
    assert.match(run.stdout(), new RegExp(`In the background as PID ${pid} `));
    const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(fetched.code, 0, fetched.stderr);
    process.kill(pid, "SIGTERM");
    await waitFor(() => !alive(pid), "the background process to stop on SIGTERM");
  });

  test("the foreground killed while a passphrase is asked: the background process stops too, saying why in the -E file", async () => {
    const port = await freePort();
    const log = join(dir, "abandoned.log");
    const run = startInTerminal(["-f", "-N", "-D", `127.0.0.1:${port}`, "-E", log, ...login(lockedKey)], { home: home.home, answers: [] });
    await waitFor(() => run.stdout().includes("Enter passphrase for key"), "the passphrase prompt", () => run.stdout());
    const foreground = Number(readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, "utf8").trim());
    const [background] = processesWith(log).filter((pid) => pid !== foreground);
    assert.ok(background !== undefined, "a background process runs");
    started.push(background);
    process.kill(foreground, "SIGKILL");
    await waitFor(() => !alive(background), "the background process to stop once its foreground is gone");
    assert.match(await readFile(log, "utf8"), /^safetunnel: -f: the foreground process went away before the tunnel was up; stopping\.$/m);
    await run.stop("SIGKILL");
  });

  test("SIGUSR1 before the tunnel is up changes nothing: no inspector (Node's default), no exit", async () => {
    const port = await freePort();
    const run = startInTerminal(["-N", "-D", `127.0.0.1:${port}`, ...login(lockedKey)], { home: home.home, answers: [] });
    await waitFor(() => run.stdout().includes("Enter passphrase for key"), "the passphrase prompt", () => run.stdout());
    const cli = Number(readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, "utf8").trim());
    process.kill(cli, "SIGUSR1");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(alive(cli), "still running");
    assert.doesNotMatch(run.stdout(), /Debugger|inspector/i);
    const inspector = await runCommand("ss", ["-Hltn", "sport = :9229"]);
    assert.equal(inspector.stdout.trim(), "", "nothing listens on the inspector's port");
    await run.stop("SIGTERM");
  });

  test("-f with nowhere to log (no syslog daemon here, no -E): 255 naming -E, and nothing started", async (t) => {
    if (existsSync("/dev/log")) {
      t.skip("this machine has a syslog daemon (/dev/log)");
      return;
    }
    const port = await freePort();
    const result = await runCli(["-f", "-N", "-D", `127.0.0.1:${port}`, ...login(plainKey)], { home: home.home, timeoutMs: 30_000 });
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stderr, "safetunnel: no syslog daemon here (/dev/log does not exist) for the log of -f or -y; give -E FILE to log to a file instead\n");
    assert.deepEqual(processesWith(`127.0.0.1:${port}`), []);
  });

  test("-f without -E logs to syslog: logger(1) delivers the lines to /dev/log as safetunnel[PID], the SIGTERM summary last", async (t) => {
    if (process.getuid?.() !== 0 || !existsSync("/usr/bin/unshare") || !existsSync("/usr/bin/logger")) {
      t.skip("needs root, unshare(1) and logger(1): the syslog socket is made in a private mount namespace");
      return;
    }
    const port = await freePort();
    const record = join(dir, "syslog.txt");
    const pidFile = join(dir, "syslog.pid");
    const cli = [process.execPath, cliPath(), "-f", "-N", "-D", `127.0.0.1:${port}`, "--pid-file", pidFile, ...login(plainKey)].map(shellWord).join(" ");
    const curl = ["curl", "-q", "-sS", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`].map(shellWord).join(" ");
    const script = `${cli} && ${curl} && kill -TERM "$(cat ${shellWord(pidFile)})"`;
    const result = await runCommand(
      "unshare",
      ["--mount", "--propagation", "private", "bash", join(repoRoot(), "test", "helpers", "syslog-namespace.sh"), record, "Stopped by SIGTERM", "--", "bash", "-c", script],
      { env: { ...process.env, HOME: home.home }, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "hello from target\n");
    const pid = /In the background as PID (\d+) /.exec(result.stderr)?.[1];
    assert.ok(pid !== undefined, result.stderr);
    assert.match(result.stderr, /its log goes to syslog\.\n$/);
    const messages = (await readFile(record, "utf8")).trimEnd().split("\n");
    const tag = `safetunnel[${pid}]: `;
    for (const message of messages) assert.match(message, new RegExp(`^<\\d+>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d ${tag.replace(/[[\]]/g, "\\$&")}`), message);
    const texts = messages.map((message) => message.slice(message.indexOf(tag) + tag.length));
    // The lines of the time before "ready" went to the foreground, not to syslog; after it, only the summary was logged.
    assert.equal(texts.length, 1, messages.join("\n"));
    assert.match(texts[0]!, /^Stopped by SIGTERM: 1 connection, \d+ B up, \d+ B down, 0 refused \(IP address\), 0 failed\.$/);
    await waitFor(() => !existsSync(pidFile), "the PID file to be removed");
  });

  test("-E without -f: the tunnel's lines go to the file, none to stderr; --pid-file holds its PID while it runs", async () => {
    const port = await freePort();
    const log = join(dir, "foreground.log");
    const pidFile = join(dir, "foreground.pid");
    const run = startCli(["-N", "-D", `127.0.0.1:${port}`, "-E", log, "--pid-file", pidFile, ...login(plainKey)], { home: home.home });
    try {
      await waitFor(() => existsSync(pidFile), "the PID file");
      assert.equal(readFileSync(pidFile, "utf8"), `${run.pid}\n`);
    } finally {
      await run.stop("SIGTERM");
    }
    assert.equal(run.stderr(), "");
    assert.equal(existsSync(pidFile), false);
    assert.match(await readFile(log, "utf8"), /^SOCKS and HTTP proxy listening on [^\n]*\nStopped by SIGTERM: 0 connections, /);
  });
});
