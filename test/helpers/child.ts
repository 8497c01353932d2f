/**
 * Small, bounded process plumbing shared by the helpers: how a child ended,
 * and how to end it (a signal, then SIGKILL after a grace period).
 */
import { spawn, type ChildProcess } from "node:child_process";
import process from "node:process";
import { forgetPid, killOnExit } from "./cleanup.ts";

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** A child with a promise for its end; `spawnError` is set if it never started. */
export interface WatchedChild {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitStatus>;
  hasExited(): boolean;
  spawnError(): Error | undefined;
}

/**
 * Track a freshly spawned child: registers exit-time cleanup and resolves
 * `exited` once it ends (or fails to start, as `{ code: null, signal: null }`).
 *
 * @example
 * const watched = watchChild(spawn("sleep", ["60"]));
 * await stopChild(watched);
 */
export function watchChild(child: ChildProcess): WatchedChild {
  let done = false;
  let error: Error | undefined;
  const pid = child.pid ?? -1;
  if (pid > 0) killOnExit(pid);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      if (pid > 0) forgetPid(pid);
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      error = err;
      // 'exit' does not follow a failed spawn, so end here.
      if (child.pid === undefined) {
        done = true;
        resolve({ code: null, signal: null });
      }
    });
  });
  return { child, pid, exited, hasExited: () => done, spawnError: () => error };
}

/**
 * Resolves with the value, or with `undefined` after `ms` (the timer is cleared either way).
 *
 * @example
 * const status = await within(watched.exited, 5000);
 * if (status === undefined) console.log("still running");
 */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves after `ms` milliseconds (for bounded retry loops).
 *
 * @example
 * for (let i = 0; i < 20 && !ready(); i++) await delay(50);
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Send `signal` to this child only (by its PID), wait up to `graceMs`, then
 * SIGKILL and wait again; throws if it still has not ended.
 *
 * @example
 * const status = await stopChild(watched, "SIGINT");
 */
export async function stopChild(watched: WatchedChild, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<ExitStatus> {
  // An unref'd child would let the event loop end while we wait for it.
  watched.child.ref();
  if (!watched.hasExited()) {
    try {
      watched.child.kill(signal);
    } catch {
      // Raced with its exit.
    }
    const first = await within(watched.exited, graceMs);
    if (first !== undefined) return first;
    try {
      watched.child.kill("SIGKILL");
    } catch {
      // Raced with its exit.
    }
    const second = await within(watched.exited, 5000);
    if (second === undefined) throw new Error(`pid ${watched.pid} did not exit even after SIGKILL`);
    return second;
  }
  return watched.exited;
}

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a command to completion with stdin closed, killing it after `timeoutMs`
 * (then rejecting, with what it printed so far).
 *
 * @example
 * const { code, stdout } = await runCommand("ssh-keygen", ["-lf", key.publicPath]);
 */
export async function runCommand(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const { watched, output } = spawnCapturing(command, args, options);
  const status = await within(watched.exited, options.timeoutMs ?? 20_000);
  if (status === undefined) {
    await stopChild(watched, "SIGKILL");
    throw new Error(`${command} ${args.join(" ")} did not finish in ${options.timeoutMs ?? 20_000} ms; stderr: ${output.stderr().trim()}`);
  }
  const spawnError = watched.spawnError();
  if (spawnError !== undefined) throw new Error(`cannot run ${command}: ${spawnError.message}`);
  // Output can trail 'exit' slightly; 'close' may never come if a grandchild holds the pipe.
  await within(output.closed, 2000);
  return { code: status.code, signal: status.signal, stdout: output.stdout(), stderr: output.stderr() };
}

/** What a child printed so far, as text. */
export interface CapturedText {
  stdout(): string;
  stderr(): string;
  /** Resolves on the child's 'close' (both pipes ended), which can trail 'exit'. */
  closed: Promise<void>;
}

/**
 * Spawn with stdin closed, watch the child (see `watchChild`) and capture its
 * stdout and stderr as text.
 *
 * @example
 * const { watched, output } = spawnCapturing("ssh", ["-V"]);
 * await watched.exited;
 * output.stderr(); // "OpenSSH_9.2p1 ..."
 */
export function spawnCapturing(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): { watched: WatchedChild; output: CapturedText } {
  const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
  const watched = watchChild(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  return { watched, output: { stdout: () => stdout, stderr: () => stderr, closed } };
}
