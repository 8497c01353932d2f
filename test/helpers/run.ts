/**
 * Run the built CLI (`dist/safetunnel.cjs`) or any other program the way an
 * integration test needs: no tty, a throwaway HOME, no inherited ssh-agent,
 * output captured, every wait bounded.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { delay, type ExitStatus, spawnCapturing, stopChild, within } from "./child.ts";
import { forgetDir, removeOnExit } from "./cleanup.ts";
import { waitFor } from "./wait.ts";

/**
 * The repository root: the nearest folder above this file holding package.json.
 *
 * @example
 * join(repoRoot(), "dist", "safetunnel.cjs");
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 10; i++) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
}

/**
 * Absolute path of the built CLI.
 *
 * @example
 * cliPath(); // "/work/main/dist/safetunnel.cjs"
 */
export function cliPath(): string {
  return join(repoRoot(), "dist", "safetunnel.cjs");
}

export interface Running {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has ended and its output has been read. */
  exited: Promise<ExitStatus>;
  /** Send `signal` (default SIGTERM) to this PID, SIGKILL after 5 s; resolves with how it ended. */
  stop(signal?: NodeJS.Signals): Promise<ExitStatus>;
}

/**
 * Spawn any program with stdin closed and stdout/stderr captured as text.
 *
 * @example
 * const ssh = startProcess("ssh", ["-N", "-D", "1080", "host"]);
 * await waitForListen(1080, "127.0.0.1", ssh);
 * await ssh.stop();
 */
export function startProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Running {
  const { watched, output } = spawnCapturing(command, args, options);
  let spawnFailure = "";
  const exited = watched.exited.then(async (status) => {
    const spawnError = watched.spawnError();
    if (spawnError !== undefined) spawnFailure = `cannot run ${command}: ${spawnError.message}\n`;
    // 'close' waits for the pipes; a grandchild holding them open must not hang us.
    else await within(output.closed, 2000);
    return status;
  });
  return {
    pid: watched.pid,
    stdout: output.stdout,
    stderr: () => output.stderr() + spawnFailure,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      await stopChild(watched, signal);
      return exited;
    },
  };
}

/** Variables that would let a test reach the developer's own agent or prompts. */
const SCRUBBED = ["SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY"];

export interface CliOptions {
  /** Added to (and overriding) the scrubbed environment; give SSH_AUTH_SOCK here to use an agent. */
  env?: Record<string, string>;
  /** HOME for the child; default a new empty temp dir, removed when the child ends. */
  home?: string;
  /** Run this script instead of dist/safetunnel.cjs (for testing the helpers themselves). */
  script?: string;
}

/**
 * Start `node dist/safetunnel.cjs ...args` with HOME pointed away from the real
 * ~/.ssh, SSH_AUTH_SOCK, SSH_ASKPASS and DISPLAY removed unless given in `env`,
 * and stdin closed (no tty).
 *
 * @example
 * const cli = startCli(["-N", "-D", String(port), "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], { home: home.home });
 * await waitForListen(port, "127.0.0.1", cli);
 * await cli.stop();
 */
export function startCli(args: string[], options: CliOptions = {}): Running {
  const script = options.script ?? cliPath();
  if (!existsSync(script)) throw new Error(`${script} is missing: run the build first (npm run build)`);
  let home = options.home;
  let ownHome: string | undefined;
  if (home === undefined) {
    ownHome = mkdtempSync(join(tmpdir(), "safetunnel-home-"));
    removeOnExit(ownHome);
    home = ownHome;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SCRUBBED) delete env[name];
  Object.assign(env, { HOME: home }, options.env ?? {});
  const running = startProcess(process.execPath, [script, ...args], { env });
  if (ownHome !== undefined) {
    const dir = ownHome;
    running.exited.finally(() => {
      rmSync(dir, { recursive: true, force: true });
      forgetDir(dir);
    });
  }
  return running;
}

/**
 * Run the CLI to completion; kills it and rejects (with its stderr) after
 * `timeoutMs` (default 20 s).
 *
 * @example
 * const { code, stderr } = await runCli(["-V"]);
 */
export async function runCli(
  args: string[],
  options: CliOptions & { timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = startCli(args, options);
  const timeoutMs = options.timeoutMs ?? 20_000;
  const status = await within(running.exited, timeoutMs);
  if (status === undefined) {
    await running.stop("SIGKILL");
    throw new Error(`safetunnel ${args.join(" ")} did not exit within ${timeoutMs} ms; stderr: ${running.stderr().trim()}`);
  }
  return { code: status.code, stdout: running.stdout(), stderr: running.stderr() };
}

function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1000);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Wait until something accepts TCP connections on host:port (retrying for up
 * to `timeoutMs`, default 10 s); rejects at once with the child's stderr if
 * `running` exits first.
 *
 * @example
 * await waitForListen(1080, "127.0.0.1", cli);
 */
export async function waitForListen(port: number, host: string, running?: Running, timeoutMs = 10_000): Promise<void> {
  let ended: ExitStatus | undefined;
  running?.exited.then((status) => (ended = status));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ended !== undefined) break;
    if (await canConnect(port, host)) return;
    await delay(50);
  }
  if (ended === undefined && running !== undefined) {
    // It may have exited while we were connecting.
    ended = await within(running.exited, 0);
  }
  const stderr = running === undefined ? "" : `; stderr: ${running.stderr().trim()}`;
  if (ended !== undefined) {
    throw new Error(`process exited (code ${ended.code}, signal ${ended.signal}) before listening on ${host}:${port}${stderr}`);
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms${stderr}`);
}

/**
 * The non-empty lines of a run's stderr (a `Running` or a `runCli` result),
 * from character `since` on (default: all of it).
 *
 * @example
 * const offset = cli.stderr().length;
 * // ... make the CLI log something ...
 * stderrLines(cli, offset).filter((line) => line.startsWith("Refused"));
 */
export function stderrLines(from: { stderr(): string } | { stderr: string }, since = 0): string[] {
  const text = typeof from.stderr === "string" ? from.stderr : from.stderr();
  return text
    .slice(since)
    .split("\n")
    .filter((line) => line !== "");
}

/**
 * Wait (up to 10 s) until the CLI has written a stderr line, after character
 * `since`, that matches `pattern` (a RegExp, or a string the line contains);
 * resolves with that line. Fails naming `what` when time runs out, or as soon
 * as the CLI exits without writing one.
 *
 * @example
 * const line = await waitForLine(cli, /^Allocated port \d+ /, "the allocated port line");
 */
export async function waitForLine(cli: Running, pattern: RegExp | string, what: string, since = 0): Promise<string> {
  return waitForLineOf(cli, () => stderrLines(cli, since), pattern, what, () => `stderr: ${cli.stderr().slice(since).trim()}`);
}

/**
 * `waitForLine` for stdout (leakcheck prints its URL and report there).
 *
 * @example
 * const url = await waitForStdoutLine(check, /^http:\/\//, "the canary URL");
 */
export async function waitForStdoutLine(cli: Running, pattern: RegExp | string, what: string): Promise<string> {
  return waitForLineOf(cli, () => cli.stdout().split("\n"), pattern, what, () => `stdout: ${cli.stdout().trim()}; stderr: ${cli.stderr().trim()}`);
}

async function waitForLineOf(cli: Running, lines: () => string[], pattern: RegExp | string, what: string, state: () => string): Promise<string> {
  const matches = (line: string): boolean => (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line));
  let exited = false;
  void cli.exited.then(() => (exited = true));
  let found: string | undefined;
  await waitFor(
    () => {
      found = lines().find(matches);
      return found !== undefined || exited;
    },
    what,
    state,
  );
  if (found === undefined) assert.fail(`safetunnel exited before ${what}; ${state()}`);
  return found;
}

/**
 * The exit code of a run that must end on its own; fails (with its stderr)
 * if it is still running after `ms` (default 20 s, a bound, not an expectation).
 *
 * @example
 * assert.equal(await waitForExit(cli), 255, cli.stderr());
 */
export async function waitForExit(cli: Running, ms = 20_000): Promise<number | null> {
  const status = await within(cli.exited, ms);
  assert.ok(status !== undefined, `safetunnel did not exit within ${ms} ms; stderr:\n${cli.stderr()}`);
  return status.code;
}

/**
 * Assert the CLI's stderr shows no crash: no JavaScript stack trace, no
 * "internal error", no uncaught exception text.
 *
 * @example
 * assertNoCrash(cli.stderr());
 */
export function assertNoCrash(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at .+[(:]\d+/m, `a stack trace on stderr:\n${stderr}`);
  assert.doesNotMatch(stderr, /internal error|Uncaught|TypeError|ReferenceError|node:internal/i, `a crash on stderr:\n${stderr}`);
}

export interface Home {
  home: string;
  /** `home/.ssh`, mode 0700. */
  sshDir: string;
  /** Write `~/.ssh/config` (mode 0600). */
  writeConfig(text: string): Promise<void>;
  /** Write `~/.ssh/known_hosts`. */
  writeKnownHosts(text: string): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * A throwaway HOME with an empty `.ssh` folder.
 *
 * @example
 * const home = await makeHome();
 * await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
 * startCli([...], { home: home.home });
 * await home.cleanup();
 */
export async function makeHome(): Promise<Home> {
  const home = await mkdtemp(join(tmpdir(), "safetunnel-home-"));
  removeOnExit(home);
  const sshDir = join(home, ".ssh");
  await mkdir(sshDir, { mode: 0o700 });
  return {
    home,
    sshDir,
    writeConfig: (text) => writeFile(join(sshDir, "config"), text, { mode: 0o600 }),
    writeKnownHosts: (text) => writeFile(join(sshDir, "known_hosts"), text, { mode: 0o644 }),
    async cleanup() {
      await rm(home, { recursive: true, force: true });
      forgetDir(home);
    },
  };
}

export interface HomeSet {
  /** A new HOME (see `makeHome`), removed by `cleanup()`. */
  make(): Promise<Home>;
  /** A new HOME whose known_hosts holds each server's `knownHostsLine()`, in order (an empty file for none). */
  trusting(...servers: { knownHostsLine(): string }[]): Promise<Home>;
  /** Remove every HOME made so far. */
  cleanup(): Promise<void>;
}

/**
 * Throwaway HOMEs for one test file, removed together in its `after` hook.
 *
 * @example
 * const homes = makeHomeSet();
 * after(() => homes.cleanup());
 * const home = await homes.trusting(sshd);
 * startCli([...], { home: home.home });
 */
export function makeHomeSet(): HomeSet {
  const made: Home[] = [];
  const make = async (): Promise<Home> => {
    const home = await makeHome();
    made.push(home);
    return home;
  };
  return {
    make,
    async trusting(...servers) {
      const home = await make();
      await home.writeKnownHosts(servers.map((server) => `${server.knownHostsLine()}\n`).join(""));
      return home;
    },
    async cleanup() {
      for (const home of made.splice(0)) await home.cleanup();
    },
  };
}
