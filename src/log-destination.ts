/**
 * Where log lines go other than stderr, as ssh(1) offers: `-E FILE` appends
 * them to a file, `-y` (and `-f` without `-E`) sends them to syslog. Node has
 * no syslog client (a datagram to /dev/log needs Unix datagram sockets), so
 * lines go through logger(1), one long-lived process reading them from its
 * stdin, which util-linux's and the BSDs' logger both do.
 */
import { closeSync, existsSync, openSync, writeSync } from "node:fs";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { TunnelError, describeError, echoValue } from "./errors.ts";

/**
 * Where a tunnel run's log goes, as ssh decides it: -y to syslog even with
 * -E, -E to its file, -f alone to syslog (nobody is left at the terminal),
 * otherwise stderr.
 *
 * @example
 * logTarget({ syslog: false, logFile: undefined }, true) // { kind: "syslog" }
 */
export function logTarget(options: { syslog: boolean; logFile: string | undefined }, background: boolean): { kind: "stderr" } | { kind: "syslog" } | { kind: "file"; path: string } {
  if (options.syslog) return { kind: "syslog" };
  if (options.logFile !== undefined) return { kind: "file", path: options.logFile };
  return background ? { kind: "syslog" } : { kind: "stderr" };
}

export interface LogDestination {
  /** Writes one finished line (without its newline). */
  write(line: string): void;
  /** Flushes and releases it: the file closed, logger(1) given its last line and ended. */
  close(): Promise<void>;
}

/**
 * `-E FILE`: lines appended to FILE (made 0600 if new), written as they come,
 * so a crash loses nothing already logged.
 *
 * @example
 * const file = openLogFile("/home/me/tunnel.log"); file.write("Stopped by SIGTERM: ..."); await file.close();
 */
export function openLogFile(path: string): LogDestination {
  let fd: number;
  try {
    fd = openSync(path, "a", 0o600);
  } catch (err) {
    throw new TunnelError("LOG_FILE", `-E: cannot open the log file ${echoValue(path, "'")} (${describeError(err)}); give a file this account can write`);
  }
  let open = true;
  return {
    write(line) {
      if (!open) return;
      try {
        writeSync(fd, `${line}\n`);
      } catch {
        // A full disk must not stop the tunnel; there is nowhere left to say so.
      }
    },
    async close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** What to do when syslog cannot take the log. */
const INSTEAD = "give -E FILE to log to a file instead";

/** The syslog socket logger(1) writes to: syslog(3)'s _PATH_LOG (<syslog.h> on each system). */
export function syslogSocket(platform: string): string | undefined {
  if (platform === "linux" || platform === "openbsd") return "/dev/log";
  if (platform === "darwin") return "/var/run/syslog";
  if (platform === "freebsd") return "/var/run/log";
  return undefined;
}

/**
 * Why syslog cannot take the log here, as a message naming -E, or undefined
 * when it can; checked by -f's foreground before it starts anything.
 *
 * @example
 * syslogProblem("win32", () => false) // "this system has no syslog for the log of -f or -y; give -E FILE to log to a file instead"
 */
export function syslogProblem(platform: string, exists: (path: string) => boolean = existsSync): string | undefined {
  const socket = syslogSocket(platform);
  if (socket === undefined) return `this system has no syslog for the log of -f or -y; ${INSTEAD}`;
  let there: boolean;
  try {
    there = exists(socket);
  } catch {
    // Not allowed to look (Deno without read access to it): logger(1) will find out.
    return undefined;
  }
  if (!there) return `no syslog daemon here (${socket} does not exist) for the log of -f or -y; ${INSTEAD}`;
  return undefined;
}

export interface SyslogEnvironment {
  platform: string;
  pid: number;
  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess;
  /** Whether a path exists. @default node:fs existsSync */
  exists?(path: string): boolean;
}

/**
 * `-y`, or `-f` without `-E`: lines to syslog through logger(1), tagged
 * `safetunnel[PID]` as syslog(3) would tag them. Checked before the tunnel
 * starts: no syslog socket, or no logger, is an error that names `-E FILE`.
 *
 * @example
 * const syslog = await openSyslog({ platform: process.platform, pid: process.pid, spawn });
 */
export async function openSyslog(environment: SyslogEnvironment): Promise<LogDestination> {
  const problem = syslogProblem(environment.platform, environment.exists);
  if (problem !== undefined) throw new TunnelError("NO_SYSLOG", problem);
  // Its own process group: Ctrl-C or a hangup on the terminal is the tunnel's to handle (a summary to log, a reconnect), not logger's to die of.
  const child = environment.spawn("logger", ["-t", `safetunnel[${environment.pid}]`], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (err) => reject(new TunnelError("NO_SYSLOG", `cannot run logger(1) for the log of -f or -y (${describeError(err)}); ${INSTEAD}`)));
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.stdin?.on("error", () => {});
  // logger must not keep the tunnel's process alive on its own.
  child.unref();
  (child.stdin as { unref?: () => void } | null)?.unref?.();
  return {
    write(line) {
      // logger reads one message per line, so a message of several lines becomes several.
      if (child.exitCode === null) child.stdin?.write(`${line}\n`);
    },
    async close() {
      child.stdin?.end();
      // Bounded: a logger that hangs must not keep the tunnel from exiting.
      await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
    },
  };
}
