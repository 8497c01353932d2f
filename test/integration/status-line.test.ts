/**
 * The live status line, on a real pseudo-terminal (test/helpers/pty-drive.py)
 * against the loopback sshd: it appears, counts what goes through, says
 * "reconnecting" while the server is down, prints the full summary on Enter
 * and SIGUSR1, and is gone when the tunnel stops. With stderr on a pipe, or
 * with -q, there is no status line at all: scripts see the plain log.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { cliPath, repoRoot, startCli, startProcess, waitForListen, type Home, type Running } from "../helpers/run.ts";
import { runCommand } from "../helpers/child.ts";
import { join } from "node:path";
import process from "node:process";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { startInTerminal } from "../helpers/terminal.ts";
import { loginArgs, startSshdWithHome } from "../helpers/tunnel.ts";
import { waitFor } from "../helpers/wait.ts";

/** The CLI's PID under the pty driver (its only child). */
function cliUnderDriver(driver: Running): number {
  const children = readFileSync(`/proc/${driver.pid}/task/${driver.pid}/children`, "utf8").trim().split(" ");
  assert.equal(children.length, 1, `the driver has one child: ${children.join(",")}`);
  return Number(children[0]);
}

describe("the live status line", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  const running: Running[] = [];

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
  });

  after(async () => {
    for (const child of running) await child.stop("SIGKILL");
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
  });

  test("on a terminal: drawn in place, counts a request and a refusal, Enter and SIGUSR1 print the summary, 'reconnecting' while sshd is down, cleared at the end", async () => {
    const port = await freePort();
    // Enter is typed once the refusal shows in the status line (with curl's name, or its
    // address when /proc could not tell in time on a busy machine).
    const run = startInTerminal(["-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home, answers: [["| 1 refused (", "\r"]], env: { PTY_COLUMNS: "200" } });
    running.push(run);
    const screen = (): string => run.stdout();
    await waitForListen(port, "127.0.0.1", run);
    await waitFor(() => screen().includes("\r\x1b[K[up "), "the status line", screen);
    assert.match(screen(), /\r\x1b\[K\[up \d+s\] 0 open \| 0 refused \| 0 failed \| up 0 B, 0 B\/s \| down 0 B, 0 B\/s/);

    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/bytes/1000000`);
    assert.equal(named.code, 0, named.stderr);
    const literal = await curlThroughSocks("--socks5", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.notEqual(literal.code, 0);
    // The refusal's log line is written above the status line, which is drawn again under it.
    await waitFor(() => /\r\x1b\[KWarning: Refused SOCKS5 CONNECT [^\r\n]*\r\n\[up /.test(screen()), "the refusal line above the status line", screen);
    await waitFor(() => /\| 1 refused \((curl|127\.0\.0\.1)\) \| 0 failed \| up \d+ B, [\d.]+ [k]?B\/s \| down 1\.0 MB, /.test(screen()), "the counters in the status line", screen);
    // Enter: the echoed line is cleared, the summary printed above.
    const enterSummary = /\x1b\[A\r\x1b\[K\r\x1b\[KStatus: up for \d+s; [01] open; 1 connection, \d+ B up, 1\.0 MB down, 1 refused \(IP address\), 0 failed\.\r\n\[up /;
    await waitFor(() => enterSummary.test(screen()), "Enter to be answered with the summary above the status line", screen);

    const cli = cliUnderDriver(run);
    const before = screen().split("Status: ").length;
    process.kill(cli, "SIGUSR1");
    await waitFor(() => screen().split("Status: ").length > before, "the SIGUSR1 summary", screen);

    await sshd.kill();
    try {
      await waitFor(() => /\r\x1b\[K\[reconnecting \d+s\] 0 open \| 1 refused \((curl|127\.0\.0\.1)\) \|/.test(screen()), "the status line to say reconnecting", screen);
      assert.match(screen(), /Warning: Connection to 127\.0\.0\.1 lost: /);
    } finally {
      await sshd.restart();
    }
    await waitFor(() => /Reconnected to 127\.0\.0\.1 after [^\r\n]*\r\n\[up \d+s\]/.test(screen()), "the reconnection and the status line up again", screen);

    const status = await run.stop("SIGTERM");
    assert.equal(status.code, 0, screen());
    // The summary goes above the line, then the line is cleared: the terminal is left with the plain log.
    assert.match(screen(), /\r\x1b\[KStopped by SIGINT: 1 connection, [^\r\n]*\r\n\[up [^\r\n]*\r\x1b\[K$/);
  });

  /** An interactive bash on a pty (job control on), typing `answers` as their cues appear. */
  function shellInTerminal(answers: [string, string][]): Running {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, TERM: "dumb", PTY_COLUMNS: "200" };
    delete env["SSH_AUTH_SOCK"];
    const shell = startProcess("python3", [join(repoRoot(), "test", "helpers", "pty-drive.py"), JSON.stringify(answers), "--", "bash", "--norc", "--noprofile", "-i"], { env });
    running.push(shell);
    return shell;
  }

  /** The tunnel's command line, as typed at the shell. */
  function typed(port: number): string {
    return [process.execPath, cliPath(), "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)].join(" ");
  }

  async function stopJob(port: number): Promise<void> {
    const pids = (await runCommand("pgrep", ["-f", `-D 127\\.0\\.0\\.1:${port} `])).stdout.trim().split("\n").filter((pid) => pid !== "");
    for (const pid of pids) process.kill(Number(pid), "SIGTERM");
  }

  test("started with & from an interactive shell: no status line over the prompt, and typing at the shell does not stop the tunnel", async () => {
    const port = await freePort();
    const shell = shellInTerminal([
      ["# ", `${typed(port)} &\r`],
      ["proxy listening", "echo typed-at-the-shell\r"],
      ["typed-at-the-shell\r\n", "echo done-typing\r"],
    ]);
    try {
      await waitForListen(port, "127.0.0.1", shell);
      await waitFor(() => shell.stdout().includes("done-typing\r\n"), "the shell to take the typing", () => shell.stdout());
      const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(named.code, 0, `${named.stderr}\n${shell.stdout()}`);
      assert.doesNotMatch(shell.stdout(), /\[up |\x1b\[K/, "no status line drawn by a background job");
    } finally {
      await stopJob(port);
    }
  });

  test("Ctrl-Z then bg: the line stops being drawn, the shell's typing does not stop the tunnel, and it still serves", async () => {
    const port = await freePort();
    const shell = shellInTerminal([
      ["# ", `${typed(port)}\r`],
      ["[up ", "\x1a"],
      ["Stopped", "bg\r"],
      ["# ", "echo typed-at-the-shell\r"],
      ["typed-at-the-shell\r\n", "echo done-typing\r"],
    ]);
    try {
      await waitFor(() => shell.stdout().includes("done-typing\r\n"), "the shell to take the typing after bg", () => shell.stdout());
      const before = shell.stdout().length;
      const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(named.code, 0, `${named.stderr}\n${shell.stdout()}`);
      await new Promise((resolve) => setTimeout(resolve, 1200));
      assert.doesNotMatch(shell.stdout().slice(before), /\[up /, "no redraw while in the background");
    } finally {
      await stopJob(port);
    }
  });

  test("stderr on a pipe: no status line and no escape sequences; SIGUSR1 still prints the summary", async () => {
    const port = await freePort();
    const cli = startCli(["-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    await waitForListen(port, "127.0.0.1", cli);
    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(named.code, 0, named.stderr);
    // curl is done, but the tunnel may not have seen its socket close yet: 0 or 1 open.
    process.kill(cli.pid, "SIGUSR1");
    await waitFor(() => cli.stderr().includes("Status: "), "the SIGUSR1 summary", () => cli.stderr());
    assert.equal((await cli.stop("SIGTERM")).code, 0);
    assert.match(cli.stderr(), /^Status: up for \d+s; [01] open; 1 connection, \d+ B up, \d+ B down, 0 refused \(IP address\), 0 failed\.$/m);
    assert.doesNotMatch(cli.stderr(), /\x1b|\[up /);
  });

  test("-q on a terminal: no status line", async () => {
    const port = await freePort();
    const run = startInTerminal(["-q", "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home, answers: [] });
    running.push(run);
    await waitForListen(port, "127.0.0.1", run);
    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(named.code, 0, named.stderr);
    assert.equal((await run.stop("SIGTERM")).code, 0);
    assert.equal(run.stdout(), "");
  });
});
