/**
 * Entry point: argv in, exit status out. Everything the program touches of
 * the process (argv, environment, stderr, signals, exit) is handled here and
 * passed inward, so the rest runs the same on Node, in the single binary and
 * on Deno.
 */
import process from "node:process";
import { constants, homedir, hostname, userInfo } from "node:os";
import { parseCommandLine, type ExecPlan, type NcPlan, type TunnelPlan } from "./cli.ts";
import { createLogger, type Logger } from "./log.ts";
import { TunnelError, describeError } from "./errors.ts";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { passwdUids } from "./forward/access.ts";
import { openFileLimits } from "./forward/connection-limit.ts";
import { isBackgroundProcess } from "./background/background-end.ts";
import { denoPermissionFlags, denoPermissionQuery, type DenoResources } from "./platform/deno-permissions.ts";
import { join, resolve } from "node:path";
import { logTarget, syslogProblem } from "./log-destination.ts";

async function main(argv: string[]): Promise<number> {
  const writeErr = (line: string): void => {
    process.stderr.write(line + "\n");
  };
  let plan;
  try {
    plan = parseCommandLine(argv);
  } catch (err) {
    writeErr(`safetunnel: ${describeError(err)}`);
    return err instanceof TunnelError ? err.exitCode : 255;
  }
  if (plan.command === "help" || plan.command === "version") {
    const out = plan.command === "version" && plan.stream === "stderr" ? process.stderr : process.stdout;
    // `safetunnel --help | head` closes the pipe early; that is not an error.
    out.on("error", () => {});
    out.write(plan.text.endsWith("\n") ? plan.text : plan.text + "\n");
    return 0;
  }
  // Node starts its inspector on SIGUSR1 (any local account could then attach
  // and run code here) and Deno dies of it: it is ours from the start, and a
  // running tunnel answers it with its status (tunnel-process.ts).
  let onStatusRequest: (() => void) | undefined;
  if (process.platform !== "win32") process.on("SIGUSR1", () => onStatusRequest?.());
  // Decided once, now: the parent that started it could be gone after the first await.
  const backgroundProcess = plan.command === "tunnel" && plan.background && isBackgroundProcess(process.env, process.ppid);
  // Where log lines go can change once (-f: to the foreground until the tunnel is up, then syslog or -E).
  let sink = writeErr;
  const log = createLogger({ verbosity: plan.command === "leakcheck" ? 0 : plan.verbosity, json: plan.json, write: (line) => sink(line) });
  // Another program's run: its signals and exit status are its own, not a tunnel's.
  if (plan.command === "exec" || plan.command === "nc") return runClient(plan, log);
  // Signals are ours from the start: before the tunnel is up they end the
  // run with 255 (prompts restore the terminal on exit); once it is up, the
  // tunnel stops gracefully; a second signal does not wait for that.
  let onStop: ((signal: string) => void) | undefined;
  let stopping = false;
  const signals: NodeJS.Signals[] = process.platform === "win32" ? ["SIGINT", "SIGTERM"] : ["SIGINT", "SIGTERM", "SIGHUP"];
  // SIGHUP asks a running tunnel for a new connection now (as autossh and
  // chisel users expect); before that, or where nothing reconnects, it stops
  // like the others.
  let onReconnect: (() => void) | undefined;
  for (const signal of signals) {
    process.on(signal, () => {
      if (signal === "SIGHUP" && onReconnect !== undefined && !stopping) {
        onReconnect();
        return;
      }
      if (onStop !== undefined && !stopping) {
        stopping = true;
        onStop(signal);
        return;
      }
      const before = plan.command === "tunnel" ? " before the tunnel was up" : "";
      log.error(`safetunnel: ${stopping ? "stopped" : "interrupted"} by ${signal}${stopping ? "" : before}.`);
      process.exit(plan.command === "leakcheck" || plan.command === "browser" ? 2 : 255);
    });
  }
  const onStopSignal = (handler: (signal: string) => void): void => {
    onStop = handler;
  };
  const onReconnectSignal = process.platform === "win32" ? undefined : (handler: () => void): void => {
    onReconnect = handler;
  };
  try {
    // Loaded only now: --version and --help answer without parsing ssh2 and the rest (start-up time).
    if (plan.command === "leakcheck") {
      const { runLeakcheck } = await import("./leakcheck/run.ts");
      return await runLeakcheck(plan, {
        out: (line) => void process.stdout.write(line + "\n"),
        note: (line) => {
          if (!plan.json) writeErr(line);
        },
        platform: process.platform,
        home: process.env["HOME"] ?? homedir(),
        env: process.env,
        openUrl: (url) => openInBrowser(url, (problem) => log.warn(`cannot open a browser (${problem}); open the URL yourself.`)),
        onStopSignal,
      });
    }
    if (plan.command === "browser") {
      const { runBrowser } = await import("./clients/browser.ts");
      return await runBrowser(plan, {
        out: (line) => void process.stdout.write(line + "\n"),
        note: writeErr,
        platform: process.platform,
        home: process.env["HOME"] ?? homedir(),
        env: process.env,
        onStopSignal,
      });
    }
    if (plan.command === "serve") {
      const { runServe } = await import("./serve/run.ts");
      return await runServe(plan, {
        log,
        platform: process.platform,
        env: process.env,
        homeDir: process.env["HOME"] ?? homedir(),
        localHostname: hostname(),
        onStopSignal,
      });
    }
    const environment = {
      homeDir: process.env["HOME"] ?? homedir(),
      localUser: safeUserName(),
      agentSocket: process.env["SSH_AUTH_SOCK"] || undefined,
      platform: process.platform,
      env: process.env,
      localHostname: hostname(),
      ...(typeof process.getuid === "function" ? { uid: process.getuid() } : {}),
      log,
      runtime: ("Deno" in globalThis ? "deno" : "node") as "deno" | "node",
      userIds: () => {
        try {
          return passwdUids(readFileSync("/etc/passwd", "utf8"));
        } catch {
          return new Map<string, number>();
        }
      },
      openFileLimit: () => {
        try {
          return openFileLimits(readFileSync("/proc/self/limits", "utf8")).soft;
        } catch {
          return undefined;
        }
      },
      // Linux: one entry per open descriptor (proc(5)); the read's own is one of them.
      openDescriptors: async () => (process.platform === "linux" ? (await readdir("/proc/self/fd")).length : undefined),
      onStopSignal,
      ...(onReconnectSignal !== undefined ? { onReconnectSignal } : {}),
    };
    if (plan.command === "demo") {
      const { runDemo } = await import("./demo.ts");
      return await runDemo(plan, environment);
    }
    if (plan.printUnit) {
      const { systemdUnit } = await import("./service-unit.ts");
      const program = selfCommand(tunnelResources(plan, environment.homeDir));
      process.stdout.write(systemdUnit({ program, args: argv.filter((word) => word !== "--print-unit"), absolute: (path) => resolve(path) }));
      return 0;
    }
    if (plan.background && !backgroundProcess) {
      const self = selfCommand(backgroundResources(plan, environment.homeDir));
      // Checked here, before anything starts: where the background process will log.
      const target = logTarget(plan, true);
      const logsTo = target.kind === "file" ? target.path : "syslog";
      const problem = target.kind === "syslog" ? syslogProblem(process.platform) : undefined;
      if (problem !== undefined) throw new TunnelError("NO_SYSLOG", problem);
      // A reader that goes away (a pipe to grep -m1) must not end this process before the background one is up or gone.
      process.stderr.on("error", () => {});
      const { runInBackground } = await import("./background/foreground.ts");
      const { openTerminal } = await import("./ssh/prompt.ts");
      const outcome = await runInBackground(self, argv, {
        spawn,
        env: process.env,
        pid: process.pid,
        openTty: openTerminal,
        writeErr,
        writeErrRaw: (chunk) => void process.stderr.write(chunk),
        onStopSignal,
      });
      if (!outcome.ready) return outcome.status;
      log.info(`In the background as PID ${outcome.pid} (stop it with kill ${outcome.pid}); its log goes to ${logsTo}.`, { event: "background", pid: outcome.pid });
      return 0;
    }
    const { tunnelProcess } = await import("./tunnel-process.ts");
    const routing = await tunnelProcess(plan, {
      background: backgroundProcess,
      log,
      setSink: (next) => (sink = next),
      writeErr,
      onStatusRequest: (handler) => (onStatusRequest = handler),
    });
    try {
      const { runTunnel } = await import("./tunnel.ts");
      return await runTunnel(plan, { ...environment, ...routing.environment });
    } catch (err) {
      // Said while the lines still reach the foreground (-f before the tunnel was up).
      return reportFailure(err, log);
    } finally {
      await routing.close();
    }
  } catch (err) {
    return reportFailure(err, log);
  }
}

/** Logs a run's failure in one line; returns its exit status. */
function reportFailure(err: unknown, log: Logger): number {
  if (err instanceof TunnelError) {
    log.error(`safetunnel: ${err.message}`, { code: err.code });
    return err.exitCode;
  }
  log.error(`safetunnel: internal error: ${describeError(err)}; please report it with the -vvv output.`, { code: "INTERNAL" });
  if (log.debugEnabled(1) && err instanceof Error && err.stack) log.debug(1, err.stack);
  return 255;
}

/** `exec` and `nc`: failures before the program or connection runs are one line and their exit status. */
async function runClient(plan: ExecPlan | NcPlan, log: Logger): Promise<number> {
  try {
    if (plan.command === "nc") {
      const { runNc } = await import("./clients/nc.ts");
      return await runNc(plan, { stdin: process.stdin, stdout: process.stdout });
    }
    const { runExec } = await import("./clients/exec.ts");
    const outcome = await runExec(plan, {
      env: process.env,
      self: selfCommand(),
      terminal: process.stdin.isTTY === true || process.stdout.isTTY === true || process.stderr.isTTY === true,
      signals: process,
      platform: process.platform,
    });
    if ("status" in outcome) return outcome.status;
    // As a shell reports it: die of the same signal (listeners gone, so its default action runs).
    process.removeAllListeners(outcome.signal);
    process.kill(process.pid, outcome.signal);
    return 128 + (constants.signals[outcome.signal] ?? 0);
  } catch (err) {
    if (err instanceof TunnelError) {
      log.error(`safetunnel: ${err.message}`, { code: err.code });
      return err.exitCode;
    }
    log.error(`safetunnel: internal error: ${describeError(err)}; please report it.`, { code: "INTERNAL" });
    return plan.command === "exec" ? 125 : 1;
  }
}

/**
 * How to run this program again (`exec`'s GIT_SSH_COMMAND, `-f`'s background
 * process): the single binary alone (its argv[1] is itself); on Node the
 * script after Node and its flags; on Deno `deno run` with the permissions
 * this run has for `resources` (deno-permissions.ts), never prompting: as
 * ssh's ProxyCommand, stdin is the SSH stream, and -f's has no terminal.
 */
function selfCommand(resources: DenoResources = {}): string[] {
  const script = process.argv[1];
  const deno = denoPermissionQuery();
  if (deno !== undefined) return [process.execPath, "run", ...denoPermissionFlags(deno, resources), ...(script === undefined ? [] : [script])];
  if (script === undefined || script === process.execPath) return [process.execPath];
  return [process.execPath, ...process.execArgv, script];
}

/**
 * What -f's background process touches, for Deno's permissions: the SSH
 * files, the log and PID files, the host name and uid, logger(1). Under Deno
 * -f also needs the whole environment and running programs (Deno's
 * child_process reads the environment to start anything).
 */
function backgroundResources(plan: TunnelPlan, homeDir: string): DenoResources {
  const deno = denoPermissionQuery();
  if (deno !== undefined && !(deno({ name: "env" }) && deno({ name: "run" }))) {
    throw new TunnelError("USAGE", "under Deno, -f starts safetunnel again in the background, which needs --allow-env and --allow-run; add them, or run without -f");
  }
  return tunnelResources(plan, homeDir);
}

/** What a tunnel run touches, for Deno's permissions (a unit's ExecStart, -f's background process). */
function tunnelResources(plan: TunnelPlan, homeDir: string): DenoResources {
  const ssh = join(homeDir, ".ssh");
  const identities = plan.configLines.filter((line) => line.keyword === "identityfile").flatMap((line) => line.args);
  const socksPassword = plan.socksAuth !== undefined && "passwordFile" in plan.socksAuth ? [plan.socksAuth.passwordFile.replace(/^~\//, `${homeDir}/`)] : [];
  const files = [plan.logFile, plan.pidFile].filter((file): file is string => file !== undefined);
  return {
    // The PID file is read back before it is removed (pid-file.ts).
    // /etc/passwd: --allow-users names.
    read: [ssh, "/etc/ssh", "/etc/passwd", ...(plan.configFile !== undefined ? [plan.configFile] : []), ...identities, ...socksPassword, ...(plan.pidFile !== undefined ? [plan.pidFile] : [])],
    write: [join(ssh, "known_hosts"), ...files],
    sys: ["hostname", "uid"],
    run: ["logger"],
  };
}

/** The desktop's own opener: xdg-open(1), macOS open(1), Windows `start`. */
function openInBrowser(url: string, onProblem: (problem: string) => void): void {
  const [command, args] =
    process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["cmd", ["/c", "start", "", url]] : ["xdg-open", [url]];
  try {
    const child = spawn(command, args as string[], { detached: true, stdio: "ignore" });
    child.once("error", (err) => onProblem(`${command}: ${err.message}`));
    child.unref();
  } catch (err) {
    onProblem(`${command}: ${describeError(err)}`);
  }
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env["USER"] ?? process.env["USERNAME"] ?? "user";
  }
}

/**
 * process.exit() does not wait for output still queued (stderr to a pipe is
 * asynchronous on macOS and Windows, and a long last line can be cut): exit
 * once stderr and stdout have drained, or after 2 s at most.
 */
function exitAfterFlush(status: number): void {
  // Should the loop empty first (a stream gone with EPIPE), the status still holds.
  process.exitCode = status;
  const pending = [process.stderr, process.stdout].filter((stream) => stream.writableLength > 0);
  if (pending.length === 0) process.exit(status);
  let left = pending.length;
  for (const stream of pending) {
    // The callback of an empty write runs once everything before it is written ('drain' comes only after a write that returned false).
    stream.write("", () => {
      if (--left === 0) process.exit(status);
    });
  }
  setTimeout(() => process.exit(status), 2000).unref();
}

// If every socket and timer is gone while main() is still waiting, something
// dropped an event; say so rather than exit 0 in silence.
let finished = false;
process.once("beforeExit", () => {
  if (!finished) {
    process.stderr.write("safetunnel: internal error: stopped waiting with nothing left to do; please report it with the -vvv output.\n");
    process.exit(255);
  }
});

main(process.argv.slice(2)).then(
  (status) => {
    finished = true;
    // Exit explicitly: ssh2 keepalive timers or a lingering socket must not keep us alive.
    exitAfterFlush(status);
  },
  (err: unknown) => {
    process.stderr.write(`safetunnel: internal error: ${describeError(err)}\n`);
    process.exit(255);
  },
);
