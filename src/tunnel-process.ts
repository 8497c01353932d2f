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
import { BACKGROUND_OF, BACKGROUND_TTY, handoffToForeground, isBackgroundProcess, type Handoff } from "./background/background-end.ts";
import { removePidFile, writePidFile } from "./background/pid-file.ts";
import { openLogFile, openSyslog, type LogDestination } from "./log-destination.ts";
import { LiveStatus, type RunningTunnel } from "./status/live-status.ts";
import { statusSummary } from "./status/status-line.ts";

export interface TunnelProcessEnvironment {
  log: Logger;
  /** Replaces where the logger's finished lines go. */
  setSink(sink: (line: string) => void): void;
  /** stderr, a line at a time. */
  writeErr(line: string): void;
}

export interface TunnelProcess {
  /** For runTunnel: the terminal for prompts (-f: the foreground's), and what to do once the forwards listen. */
  environment: { openTty?: () => TtyLike | null; onListening?: (status: RunningTunnel) => Promise<void> };
  /** After the run: the status line gone, the PID file removed, the log flushed and closed. */
  close(): Promise<void>;
}

/**
 * @example
 * const edges = await tunnelProcess(plan, { log, setSink: (next) => (sink = next), writeErr });
 * try { return await runTunnel(plan, { ...environment, ...edges.environment }); } finally { await edges.close(); }
 */
export async function tunnelProcess(plan: TunnelPlan, io: TunnelProcessEnvironment): Promise<TunnelProcess> {
  const { log, setSink } = io;
  const background = plan.background && isBackgroundProcess(process.env, process.ppid);
  let handoff: Handoff | undefined;
  if (background) {
    // Not passed on to what this process starts (askpass, logger).
    delete process.env[BACKGROUND_OF];
    const terminal = process.env[BACKGROUND_TTY] === "1";
    delete process.env[BACKGROUND_TTY];
    handoff = handoffToForeground(process.stdin, process.stdout, { terminal });
    setSink(handoff.log);
  }
  let destination: LogDestination | undefined;
  if (plan.logFile !== undefined) destination = openLogFile(plan.logFile);
  else if (plan.syslog || background) destination = await openSyslog({ platform: process.platform, pid: process.pid, spawn });
  const opened = destination;
  if (opened !== undefined) {
    // -f: the foreground shows what happens until the tunnel is up; the -E file keeps it too.
    setSink(
      handoff === undefined
        ? opened.write
        : (line) => {
            handoff.log(line);
            if (plan.logFile !== undefined) opened.write(line);
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
    if (process.platform !== "win32") {
      process.on("SIGUSR1", summary);
      cleanups.push(() => process.removeListener("SIGUSR1", summary));
    }
    // The log on stderr, stderr a terminal, and no -q or --json: a person is watching.
    if (opened === undefined && process.stderr.isTTY === true && log.verbosity >= 0 && !plan.json) {
      const live = new LiveStatus({ write: (text) => void process.stderr.write(text), columns: () => process.stderr.columns || 80 }, status);
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
 * Calls `then` each time Enter is pressed on the terminal that is stdin;
 * returns how to stop listening. A tunnel started with `&` is in the
 * background process group, where reading the terminal would stop it
 * (SIGTTIN): the signal is caught, the read fails, and only Enter is lost.
 */
function onEnter(then: () => void): () => void {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) return () => {};
  const ignoreTtin = (): void => {};
  if (process.platform !== "win32") process.on("SIGTTIN", ignoreTtin);
  const onData = (chunk: Buffer | string): void => {
    const text = typeof chunk === "string" ? chunk : chunk.toString("latin1");
    for (const ch of text) if (ch === "\n" || ch === "\r") then();
  };
  const onError = (): void => stop();
  const stop = (): void => {
    stdin.removeListener("data", onData);
    stdin.removeListener("error", onError);
    stdin.pause();
    if (process.platform !== "win32") process.removeListener("SIGTTIN", ignoreTtin);
  };
  stdin.on("data", onData);
  stdin.on("error", onError);
  return stop;
}
