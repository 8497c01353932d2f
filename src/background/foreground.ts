/**
 * `-f`, the foreground half: start this program again as a background
 * process (its own session, no terminal), show its log lines and lend it the
 * terminal for prompts until it says every forward is listening, then exit 0
 * and leave it running, as `ssh -f` forks after authentication. If it ends
 * before that, its status (255 when it gives none) is ours.
 *
 * Node cannot fork, so the background process is a fresh run of the same
 * command line (the single binary, node and its script, or deno run); it
 * knows what it is from BACKGROUND_OF (background-end.ts).
 */
import process from "node:process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { decodeUpMessage, encodeMessage, LineSplitter } from "./handoff-protocol.ts";
import { BACKGROUND_OF, BACKGROUND_TTY } from "./background-end.ts";
import type { TtyLike } from "../ssh/prompt.ts";

export interface ForegroundEnvironment {
  /** child_process.spawn, or a fake. */
  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess;
  env: Record<string, string | undefined>;
  pid: number;
  /** The terminal, or null without one (prompt.ts openTerminal). */
  openTty(): TtyLike | null;
  /** Writes one finished line to stderr. */
  writeErr(line: string): void;
  /** Writes the background process's own stderr bytes (a crash before it could log) as they come. */
  writeErrRaw(chunk: Uint8Array): void;
  /** Registers what to do on SIGINT, SIGTERM or SIGHUP while waiting. */
  onStopSignal(handler: (signal: string) => void): void;
}

/** How the foreground ended: the background process is up (its PID), or it ended first with this status. */
export type ForegroundOutcome = { ready: true; pid: number } | { ready: false; status: number };

/**
 * @example
 * const outcome = await runInBackground(["/usr/local/bin/safetunnel"], ["-f", "-N", "-D", "9001", "home"], environment);
 * process.exitCode = outcome.ready ? 0 : outcome.status;
 */
export async function runInBackground(self: readonly string[], argv: readonly string[], environment: ForegroundEnvironment): Promise<ForegroundOutcome> {
  const [command, ...selfArgs] = self;
  if (command === undefined) throw new Error("runInBackground: no command to run");
  // Whether there is a terminal to lend, known before the background process asks.
  const probe = environment.openTty();
  probe?.close();
  const env: Record<string, string | undefined> = { ...environment.env, [BACKGROUND_OF]: String(environment.pid) };
  if (probe !== null) env[BACKGROUND_TTY] = "1";
  else delete env[BACKGROUND_TTY];
  const child = environment.spawn(command, [...selfArgs, ...argv], {
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
    env: env as NodeJS.ProcessEnv,
    windowsHide: true,
  });

  let tty: TtyLike | null = null;
  let raw = false;
  const releaseTty = (): void => {
    if (tty === null) return;
    if (raw) tty.setRawMode(false);
    tty.close();
    tty = null;
    raw = false;
  };
  const terminal = (): TtyLike | null => (tty ??= environment.openTty());

  // Whatever ends this process (a second signal exits at once), the terminal is not left in raw mode.
  process.once("exit", releaseTty);
  return new Promise<ForegroundOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: ForegroundOutcome): void => {
      if (settled) return;
      settled = true;
      process.removeListener("exit", releaseTty);
      releaseTty();
      child.stdin?.end();
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
      resolve(outcome);
    };
    const answer = (keys: string | null): void => {
      if (!settled) child.stdin?.write(encodeMessage({ type: "tty-keys", keys }));
    };
    const lines = new LineSplitter(
      (line) => {
        const message = decodeUpMessage(line);
        if (message === undefined) return;
        switch (message.type) {
          case "log":
            environment.writeErr(message.line);
            break;
          case "tty-write":
            terminal()?.write(message.text);
            break;
          case "tty-raw": {
            const open = terminal();
            if (open !== null) {
              open.setRawMode(message.raw);
              raw = message.raw;
            }
            break;
          }
          case "tty-read": {
            const open = terminal();
            if (open === null) answer(null);
            else void open.read().then(answer, () => answer(null));
            break;
          }
          case "tty-close":
            releaseTty();
            break;
          case "ready":
            finish({ ready: true, pid: message.pid });
            break;
        }
      },
      () => {},
    );
    child.stdin?.on("error", () => {});
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => lines.push(chunk));
    child.stderr?.on("data", (chunk: Uint8Array) => environment.writeErrRaw(chunk));
    child.once("error", (err) => {
      environment.writeErr(`safetunnel: -f: cannot start the background process (${err.message}); run without -f`);
      finish({ ready: false, status: 255 });
    });
    // 'close', not 'exit': every line it wrote before it ended is read by then.
    child.once("close", (code, signal) => {
      if (settled) return;
      if (code === null || code === 0) {
        environment.writeErr(`safetunnel: -f: the background process ended${signal !== null ? ` by ${signal}` : ""} before the tunnel was up.`);
      }
      finish({ ready: false, status: code === null || code === 0 ? 255 : code });
    });
    // Ctrl-C or a kill while waiting ends the background process too, by the same signal: it was not up yet.
    environment.onStopSignal((signal) => {
      if (!settled && child.pid !== undefined) child.kill(signal as NodeJS.Signals);
    });
  });
}
