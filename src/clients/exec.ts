/**
 * `safetunnel exec [--proxy HOST:PORT] -- COMMAND [ARGS]`: COMMAND runs with
 * the tunnel as its proxy (proxy-env.ts), with nothing to configure, no root
 * and no LD_PRELOAD; its exit status and signals are passed through, as
 * env(1) and timeout(1) do (their 125, 126 and 127 for our own failures).
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { connect } from "node:net";
import { TunnelError, errnoCode, echoValue } from "../errors.ts";
import { hostPort } from "../address.ts";
import { proxyEnvironment } from "./proxy-env.ts";
import type { ProxyAddress } from "./socks-connect.ts";

export interface ExecPlan {
  command: "exec";
  proxy: ProxyAddress;
  /** COMMAND and its arguments, as given. */
  argv: string[];
  verbosity: number;
  json: boolean;
}

/** How COMMAND ended. */
export type ExecOutcome = { status: number } | { signal: NodeJS.Signals };

/** The signals passed on to COMMAND (SIGINT, SIGQUIT and SIGHUP only when no terminal sends them to it already). */
type Relayed = "SIGTERM" | "SIGHUP" | "SIGINT" | "SIGQUIT";

export interface ExecIo {
  env: Readonly<Record<string, string | undefined>>;
  /** How to run this program again, for COMMAND's ssh (`safetunnel nc`). */
  self: readonly string[];
  /**
   * Run from a terminal (stdin, stdout or stderr is one): Ctrl-C, Ctrl-\ and
   * the hangup reach COMMAND from it (the same process group, the shell's
   * job), so relaying them would deliver them twice.
   */
  terminal: boolean;
  /** Where our own signals arrive (the process). */
  signals: { on(signal: Relayed, listener: () => void): unknown; removeListener(signal: Relayed, listener: () => void): unknown };
  /** @default node:child_process spawn */
  spawn?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
  platform: NodeJS.Platform;
}

/** Exit status for our own failures before COMMAND ran (env(1), timeout(1)). */
const EXEC_FAILED = 125;

/**
 * @example
 * const outcome = await runExec({ command: "exec", proxy: { host: "127.0.0.1", port: 9001 }, argv: ["curl", "https://example.org"], verbosity: 0, json: false }, io);
 * // { status: 0 }
 */
export async function runExec(plan: ExecPlan, io: ExecIo): Promise<ExecOutcome> {
  await checkProxy(plan.proxy);
  const [command, ...args] = plan.argv as [string, ...string[]];
  const env = proxyEnvironment(plan.proxy, io.self, io.env);
  const spawn = io.spawn ?? nodeSpawn;
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: "inherit", env, windowsHide: false });
  } catch (err) {
    // Node refuses some programs before starting them (on Windows a .cmd or .bat without a shell: EINVAL).
    throw spawnFailure(command, err as Error, io.platform);
  }
  const relayed: Relayed[] = io.platform === "win32" ? [] : io.terminal ? ["SIGTERM"] : ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"];
  // Taken even when not relayed: a terminal's Ctrl-C is COMMAND's to act on, not a reason for us to go first.
  const listened: Relayed[] = io.platform === "win32" ? [] : ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"];
  const listeners = new Map<Relayed, () => void>();
  for (const signal of listened) {
    const listener = (): void => {
      if (relayed.includes(signal)) child.kill(signal);
    };
    listeners.set(signal, listener);
    io.signals.on(signal, listener);
  }
  try {
    return await new Promise<ExecOutcome>((resolve, reject) => {
      child.once("error", (err) => reject(spawnFailure(command, err, io.platform)));
      child.once("exit", (code, signal) => resolve(signal !== null ? { signal } : { status: code ?? EXEC_FAILED }));
    });
  } finally {
    for (const [signal, listener] of listeners) io.signals.removeListener(signal, listener);
  }
}

/**
 * The tunnel must be there, and be safetunnel's -D port with no login: the
 * programs get HTTP_PROXY pointing at its HTTP side and no credentials, so
 * without either every request of COMMAND would fail, one by one, with a
 * tool's own unclear error. Asked with a CONNECT to a `.invalid` name, which
 * the tunnel answers itself (never through SSH, RFC 6761), quietly: 407
 * means a login is needed, any other HTTP answer is the HTTP side, no HTTP
 * answer is some other proxy (`ssh -D` speaks only SOCKS).
 */
async function checkProxy(proxy: ProxyAddress): Promise<void> {
  const where = hostPort(proxy.host, proxy.port);
  const refuse = (message: string): TunnelError => new TunnelError("PROXY_UNREACHABLE", `exec: ${message}`, { exitCode: EXEC_FAILED });
  const status = await new Promise<number | undefined>((resolve, reject) => {
    const socket = connect({ host: proxy.host, port: proxy.port });
    let answer = "";
    const timer = setTimeout(() => finish(undefined), 10_000);
    function finish(value: number | undefined): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    }
    socket.once("error", (err) => {
      clearTimeout(timer);
      socket.destroy();
      if (answer !== "" || errnoCode(err) === "ECONNRESET") return finish(undefined);
      const fix = errnoCode(err) === "ECONNREFUSED" ? `start the tunnel first (safetunnel -D ${proxy.port} user@host) or give its port with --proxy` : "check --proxy";
      reject(refuse(`no tunnel at ${where} (${err.message}): ${fix}`));
    });
    socket.once("connect", () => socket.write(`CONNECT ${CHECK_NAME}:1 HTTP/1.1\r\nHost: ${CHECK_NAME}:1\r\n\r\n`));
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      answer += chunk;
      const line = /^HTTP\/1\.[01] ([1-5][0-9][0-9]) /.exec(answer);
      if (line !== null) finish(Number(line[1]));
      else if (answer.length >= 16 || !"HTTP/1.1 ".startsWith(answer.slice(0, 9))) finish(undefined);
    });
    socket.once("end", () => finish(undefined));
  });
  if (status === 407) {
    throw refuse(`the tunnel at ${where} asks for a login (--socks-auth), which the programs exec runs are not given: use a -D port without --socks-auth for exec`);
  }
  if (status === undefined) {
    throw refuse(`${where} is not a safetunnel -D port (no HTTP proxy answered there, and exec points programs at one; ssh -D speaks only SOCKS): start safetunnel -D ${proxy.port} user@host, or give its port with --proxy`);
  }
}

/** A name the tunnel answers itself (RFC 6761 reserves .invalid): asking it opens nothing anywhere. */
const CHECK_NAME = "exec-check.safetunnel.invalid";

function spawnFailure(command: string, err: Error, platform: string): TunnelError {
  const code = errnoCode(err);
  // Windows finds only .exe and .com without a shell; npm, yarn and the like are .cmd files.
  const windows = platform === "win32" ? `; a .cmd or .bat program (npm, yarn) runs through cmd: safetunnel exec -- cmd /d /c ${command}` : "";
  if (code === "ENOENT") {
    return new TunnelError("COMMAND_NOT_FOUND", `exec: ${echoValue(command, "'")}: command not found (it runs without a shell: give a program on PATH or its path${windows})`, { exitCode: 127 });
  }
  if (code === "EINVAL" && platform === "win32") {
    return new TunnelError("COMMAND_NOT_FOUND", `exec: cannot run ${echoValue(command, "'")} without a shell${windows}`, { exitCode: 126 });
  }
  if (code === "EACCES") return new TunnelError("COMMAND_NOT_FOUND", `exec: ${echoValue(command, "'")}: permission denied (not executable)`, { exitCode: 126 });
  return new TunnelError("COMMAND_NOT_FOUND", `exec: cannot run ${echoValue(command, "'")}: ${err.message}`, { exitCode: 126 });
}
