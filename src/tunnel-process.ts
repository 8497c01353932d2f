/**
 * What a tunnel run does with its process, around runTunnel: where the log
 * goes (stderr, -E FILE, -y syslog), the PID file, -f's hand-off to the
 * foreground, the live status line on a terminal, and the summary on SIGUSR1
 * or Enter. Opened before connecting, so a log that cannot be written stops
 * the run first; closed after the last line.
 */
import process from "node:process";
import { spawn } from "node:child_process";
import type { TunnelPlan } from "./cli.ts";
import type { Logger } from "./log.ts";
import type { TtyLike } from "./ssh/prompt.ts";
import { BACKGROUND_OF, BACKGROUND_TTY, handoffToForeground, type Handoff } from "./background/background-end.ts";
import { readFileSync } from "node:fs";
import { removePidFile, writePidFile } from "./background/pid-file.ts";
import { logTarget, openLogFile, openSyslog, type LogDestination } from "./log-destination.ts";
import { LiveStatus, type RunningTunnel } from "./status/live-status.ts";
import { statusSummary } from "./status/status-line.ts";

export interface TunnelProcessEnvironment {
  /** This is -f's background process (background-end.ts isBackgroundProcess, decided at start). */
  background: boolean;
  log: Logger;
  /** Replaces where the logger's finished lines go. */
  setSink(sink: (line: string) => void): void;
  /** stderr, a line at a time. */
  writeErr(line: string): void;
  /** Sets what SIGUSR1 does (main.ts owns the signal from the start). */
  onStatusRequest(handler: (() => void) | undefined): void;
}

export interface TunnelProcess {
  /** For runTunnel: the terminal for prompts (-f: the foreground's), and what to do once the forwards listen. */
  environment: { openTty?: () => TtyLike | null; onListening?: (status: RunningTunnel) => Promise<void> };
  /** After the run: the status line gone, the PID file removed, the log flushed and closed. */
  close(): Promise<void>;
}

/**
 * @example
 * const edges = await tunnelProcess(plan, { background: false, log, setSink: (next) => (sink = next), writeErr, onStatusRequest: (h) => (onUsr1 = h) });
 * try { return await runTunnel(plan, { ...environment, ...edges.environment }); } finally { await edges.close(); }
 */
export async function tunnelProcess(plan: TunnelPlan, io: TunnelProcessEnvironment): Promise<TunnelProcess> {
  const { log, setSink, background } = io;
  let handoff: Handoff | undefined;
  if (background) {
    // Not passed on to what this process starts (askpass, logger).
    delete process.env[BACKGROUND_OF];
    const terminal = process.env[BACKGROUND_TTY] === "1";
    delete process.env[BACKGROUND_TTY];
    handoff = handoffToForeground(process.stdin, process.stdout, {
      terminal,
      onAbandoned: () => {
        // Nobody is left to tell: the -E file, if any, is.
        log.error("safetunnel: -f: the foreground process went away before the tunnel was up; stopping.");
        process.exit(255);
      },
    });
    setSink(handoff.log);
  }
  const target = logTarget(plan, background);
  const destination: LogDestination | undefined =
    target.kind === "syslog" ? await openSyslog({ platform: process.platform, pid: process.pid, spawn }) : target.kind === "file" ? openLogFile(target.path) : undefined;
  const opened = destination;
  if (opened !== undefined) {
    // -f: the foreground shows what happens until the tunnel is up; the -E file keeps it too.
    setSink(
      handoff === undefined
        ? opened.write
        : (line) => {
            handoff.log(line);
            if (target.kind === "file") opened.write(line);
          },
    );
  }

  const cleanups: (() => void)[] = [];
  let pidWritten = false;
  const onListening = async (status: RunningTunnel): Promise<void> => {
    if (plan.pidFile !== undefined) {
      writePidFile(plan.pidFile, process.pid);
      pidWritten = true;
    }
    if (handoff !== undefined && opened !== undefined) {
      setSink(opened.write);
      handoff.ready(process.pid);
      // The foreground's end of stderr closes as it exits: a late write (a runtime warning) must not end the tunnel with EPIPE.
      process.stderr.on("error", () => {});
    }
    const summary = (): void => log.info(statusSummary(status.connection(), status.stats, Date.now(), status.outages()), { event: "status", ...status.stats });
    // dd(1)'s convention: SIGUSR1 prints where things stand and goes on.
    io.onStatusRequest(summary);
    cleanups.push(() => io.onStatusRequest(undefined));
    // The log on stderr, stderr a terminal, and no -q or --json: a person is watching.
    if (opened === undefined && process.stderr.isTTY === true && log.verbosity >= 0 && !plan.json) {
      const live = new LiveStatus({ write: (text) => void process.stderr.write(text), columns: () => process.stderr.columns || 80 }, status, { visible: () => inForeground() !== false });
      setSink((line) => live.above(line));
      live.start();
      cleanups.push(() => {
        live.stop();
        setSink(io.writeErr);
      });
      cleanups.push(
        onEnter(() => {
          // The terminal echoed the Enter: the cursor is on the line under the status line.
          live.afterEnter();
          summary();
        }),
      );
    }
  };

  return {
    environment: {
      ...(handoff !== undefined ? { openTty: () => handoff.openTty() } : {}),
      onListening,
    },
    async close() {
      for (const cleanup of cleanups.splice(0).reverse()) cleanup();
      if (pidWritten && plan.pidFile !== undefined) removePidFile(plan.pidFile, process.pid);
      await destination?.close();
    },
  };
}

/**
 * Whether this process is in its terminal's foreground process group, where
 * Linux says (/proc/self/stat: pgrp and tpgid, proc(5)); undefined elsewhere.
 * A job started with `&`, or put there with Ctrl-Z and `bg`, is not: reading
 * the terminal would stop it (SIGTTIN) and drawing would write over the
 * shell's prompt.
 */
function inForeground(): boolean | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[2] === fields[5];
  } catch {
    return undefined;
  }
}

/**
 * Calls `then` each time Enter is pressed on the terminal that is stdin, on
 * Linux only, and only while this process is in the terminal's foreground
 * group (checked at start, and again each time it is continued after Ctrl-Z:
 * it stops reading before it stops); returns how to stop listening.
 */
function onEnter(then: () => void): () => void {
  const stdin = process.stdin;
  if (stdin.isTTY !== true || inForeground() !== true) return () => {};
  let reading = false;
  const onData = (chunk: Buffer | string): void => {
    const text = typeof chunk === "string" ? chunk : chunk.toString("latin1");
    for (const ch of text) if (ch === "\n" || ch === "\r") then();
  };
  const read = (on: boolean): void => {
    if (on === reading) return;
    reading = on;
    if (on) {
      stdin.on("data", onData);
      stdin.resume();
    } else {
      stdin.removeListener("data", onData);
      stdin.pause();
    }
  };
  const onError = (): void => read(false);
  // Ctrl-Z: stop reading first, then stop as the terminal asked (the default action, taken by hand once handled).
  const onSuspend = (): void => {
    read(false);
    process.kill(process.pid, "SIGSTOP");
  };
  const onContinue = (): void => read(inForeground() === true);
  stdin.on("error", onError);
  process.on("SIGTSTP", onSuspend);
  process.on("SIGCONT", onContinue);
  read(true);
  return () => {
    read(false);
    stdin.removeListener("error", onError);
    process.removeListener("SIGTSTP", onSuspend);
    process.removeListener("SIGCONT", onContinue);
  };
}
