/**
 * A private OpenSSH sshd (and ssh-agent) for integration tests: its own temp
 * dir, host keys, authorized_keys and loopback port; no system changes beyond
 * `mkdir -p /run/sshd`, which sshd needs for privilege separation when root.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { delay, runCommand, stopChild, watchChild, type WatchedChild } from "./child.ts";
import { forgetDir, removeOnExit } from "./cleanup.ts";
import { freePort } from "./targets.ts";

export const SSHD_PATH = "/usr/sbin/sshd";

export type KeyType = "ed25519" | "rsa" | "ecdsa";

export interface KeyPair {
  privatePath: string;
  publicPath: string;
  /** The .pub line: "ssh-ed25519 AAAA... comment". */
  publicLine: string;
  /** The key's algorithm name as in `publicLine` ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"). */
  type: string;
  /** Set when the private key is encrypted; `startAgent().add` uses it. */
  passphrase?: string;
}

/**
 * Make a fresh key pair with ssh-keygen at `dir/name` (and `dir/name.pub`),
 * comment `name`, no passphrase unless given.
 *
 * @example
 * const key = await makeKey(dir, "id_ed25519");
 * key.publicLine; // "ssh-ed25519 AAAAC3... id_ed25519"
 */
export async function makeKey(dir: string, name: string, options: { type?: KeyType; passphrase?: string } = {}): Promise<KeyPair> {
  const privatePath = join(dir, name);
  const publicPath = `${privatePath}.pub`;
  const passphrase = options.passphrase ?? "";
  const result = await runCommand("ssh-keygen", ["-q", "-t", options.type ?? "ed25519", "-N", passphrase, "-f", privatePath, "-C", name]);
  if (result.code !== 0) throw new Error(`ssh-keygen failed for ${privatePath}: ${result.stderr.trim()}`);
  const publicLine = (await readFile(publicPath, "utf8")).trim();
  const type = publicLine.split(" ")[0] ?? "";
  return { privatePath, publicPath, publicLine, type, ...(passphrase === "" ? {} : { passphrase }) };
}

/**
 * The SHA256 fingerprint of a public key file, as `ssh-keygen -lf` prints it
 * and as OpenSSH's messages quote it.
 *
 * @example
 * await sha256Fingerprint(key.publicPath); // "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
 */
export async function sha256Fingerprint(publicPath: string): Promise<string> {
  const result = await runCommand("ssh-keygen", ["-lf", publicPath, "-E", "sha256"]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split(" ")[1] ?? "";
}

export interface Sshd {
  host: string;
  port: number;
  pid: number;
  dir: string;
  hostKeys: KeyPair[];
  /** The user tests log in as: whoever runs the tests (sshd only lets a non-root server's own user in). */
  user: string;
  /** A known_hosts line for the first host key, e.g. "[127.0.0.1]:PORT ssh-ed25519 AAAA...". */
  knownHostsLine(options?: { hostname?: string }): string;
  /** What sshd wrote to stderr so far (the last few MiB). */
  logs(): string;
  /**
   * End the connections already accepted (the per-connection sshd processes),
   * as a network drop would; the listener keeps running. Returns how many were signalled.
   */
  dropConnections(): Promise<number>;
  /**
   * SIGSTOP the listener: connections are still queued by the kernel but nobody
   * answers them, as with a server whose network went away. `resume()` undoes it.
   */
  pause(): void;
  resume(): void;
  /**
   * SIGSTOP the per-connection processes (the listener keeps serving): their
   * clients see a server that went silent. Returns their PIDs, for SIGCONT or
   * SIGKILL afterwards.
   */
  freezeConnections(): Promise<number[]>;
  /**
   * SIGKILL the listener and every connection it accepted, as a crash or a
   * reboot of the server would: clients see their connections reset and new
   * ones refused. `restart()` brings it back.
   */
  kill(): Promise<void>;
  /** Start sshd again on the same address, port, host keys and authorized_keys (after `kill()`). */
  restart(): Promise<void>;
  /**
   * SIGTERM the listener PID only (SIGKILL after 5 s), wait for it, remove the
   * temp dir. As with a real sshd restart, connections already accepted live on
   * until their clients leave; call `dropConnections()` first to end them.
   */
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** Lines for authorized_keys (e.g. `key.publicLine`). */
  authorizedKeys: string[];
  /** Default ["ed25519"]; the first one is what `knownHostsLine()` describes. */
  hostKeyTypes?: KeyType[];
  /**
   * sshd_config lines. They go before the defaults, so they win (sshd keeps the
   * first value of most keywords); from the first `Match` line on they go last.
   */
  extraConfig?: string[];
  /** "127.0.0.1" (default) or "::1"; anything off loopback is refused. */
  listenAddress?: string;
  /** Listen on this port (a restart on the same address); by default a free one. */
  port?: number;
}

const MAX_LOG_CHARS = 4 * 1024 * 1024;
const BIND_FAILED = /Address already in use|Cannot bind any address/;

let sshdVersion: Promise<[number, number]> | undefined;

/** OpenSSH version of SSHD_PATH as [major, minor], read once from `sshd -V`. */
function readSshdVersion(): Promise<[number, number]> {
  sshdVersion ??= runCommand(SSHD_PATH, ["-V"], { timeoutMs: 5000 }).then((result) => {
    const match = /OpenSSH_(\d+)\.(\d+)/.exec(result.stdout + result.stderr);
    return match === null ? [0, 0] : [Number(match[1]), Number(match[2])];
  });
  return sshdVersion;
}

function isLoopback(address: string): boolean {
  return address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/** `[host]:port` as known_hosts and ListenAddress spell a non-default port. */
function hostPort(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * The sshd_config of a private test server: its own host keys, pid file and
 * authorized_keys in `dir`, keys only, forwarding allowed, `extraConfig` in
 * OpenSSH's order (before the first Match line, first value wins).
 *
 * @example
 * await writeFile(configPath, await sshdConfig({ dir, listenAddress: "127.0.0.1", port, hostKeys: [key], extraConfig: [] }));
 */
export async function sshdConfig(options: {
  dir: string;
  listenAddress: string;
  port: number;
  hostKeys: KeyPair[];
  extraConfig: string[];
}): Promise<string> {
  const firstMatch = options.extraConfig.findIndex((line) => /^\s*match\s/i.test(line));
  const early = firstMatch === -1 ? options.extraConfig : options.extraConfig.slice(0, firstMatch);
  const late = firstMatch === -1 ? [] : options.extraConfig.slice(firstMatch);
  const [major, minor] = await readSshdVersion();
  // OpenSSH 9.8 added penalties that would lock out 127.0.0.1 after a few failing tests.
  const penalties = major > 9 || (major === 9 && minor >= 8) ? ["PerSourcePenalties no"] : [];
  const listen = options.listenAddress.includes(":") ? `[${options.listenAddress}]:${options.port}` : `${options.listenAddress}:${options.port}`;
  return [
    ...early,
    `ListenAddress ${listen}`,
    ...options.hostKeys.map((key) => `HostKey ${key.privatePath}`),
    `PidFile ${join(options.dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(options.dir, "authorized_keys")}`,
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "AllowTcpForwarding yes",
    "MaxStartups 200:30:300",
    "MaxSessions 100",
    "PrintMotd no",
    "UseDNS no",
    "LogLevel VERBOSE",
    ...penalties,
    ...late,
    "",
  ].join("\n");
}

/** True once a TCP connect to host:port reads an SSH-2.0 banner. */
function readsBanner(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = "";
    const socket = connect({ host, port });
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      seen += chunk;
      if (seen.includes("SSH-2.0-")) finish(true);
    });
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(seen.includes("SSH-2.0-")));
  });
}

/** PIDs whose parent is `pid`, from /proc (Linux only; elsewhere none). */
async function childPids(pid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Fields after the ")" that ends the command name: state, ppid, ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/**
 * Start a private sshd on a free loopback port and wait until it sends its
 * banner. Retries on a new port when the one picked was taken meanwhile.
 *
 * @example
 * const key = await makeKey(dir, "id_ed25519");
 * const sshd = await startSshd({ authorizedKeys: [key.publicLine] });
 * // ssh -i key.privatePath -p sshd.port sshd.user@127.0.0.1
 * await sshd.stop();
 */
export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const listenAddress = options.listenAddress ?? "127.0.0.1";
  if (!isLoopback(listenAddress)) throw new Error(`startSshd listens on loopback only, not ${listenAddress}`);
  try {
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  } catch {
    // Not root: sshd then runs without privilege separation and does not need it.
  }
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-sshd-"));
  removeOnExit(dir);
  try {
    const hostKeys: KeyPair[] = [];
    for (const type of options.hostKeyTypes ?? ["ed25519"]) hostKeys.push(await makeKey(dir, `ssh_host_${type}_key`, { type }));
    const authorizedKeysPath = join(dir, "authorized_keys");
    await writeFile(authorizedKeysPath, options.authorizedKeys.map((line) => `${line}\n`).join(""), { mode: 0o600 });
    const configPath = join(dir, "sshd_config");

    let lastLogs = "";
    for (let attempt = 1; attempt <= (options.port === undefined ? 5 : 1); attempt++) {
      const port = options.port ?? (await freePort(listenAddress));
      await writeFile(configPath, await sshdConfig({ dir, listenAddress, port, hostKeys, extraConfig: options.extraConfig ?? [] }), { mode: 0o600 });
      const started = await launch(configPath, listenAddress, port);
      if ("watched" in started) return makeSshd({ ...started, dir, hostKeys, host: listenAddress, port, configPath });
      lastLogs = started.logs;
      if (!started.bindFailed) break;
    }
    throw new Error(`sshd did not start; its stderr:\n${lastLogs.trim()}`);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    forgetDir(dir);
    throw err;
  }
}

interface Launched {
  watched: WatchedChild;
  logs: () => string;
}

async function launch(configPath: string, host: string, port: number): Promise<Launched | { logs: string; bindFailed: boolean }> {
  const child: ChildProcess = spawn(SSHD_PATH, ["-D", "-e", "-f", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  const watched = watchChild(child);
  let logs = "";
  const append = (chunk: string): void => {
    logs += chunk;
    if (logs.length > MAX_LOG_CHARS) logs = logs.slice(logs.length - MAX_LOG_CHARS / 2);
  };
  child.stdout?.setEncoding("utf8").on("data", append);
  child.stderr?.setEncoding("utf8").on("data", append);
  // A test that forgets stop() must not keep its process alive; the exit hook kills sshd.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();

  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !watched.hasExited()) {
    if (await readsBanner(host, port, 1000)) return { watched, logs: () => logs };
    await delay(50);
  }
  const spawnError = watched.spawnError();
  if (spawnError !== undefined) return { logs: `cannot run ${SSHD_PATH}: ${spawnError.message}`, bindFailed: false };
  if (!watched.hasExited()) {
    await stopChild(watched, "SIGKILL");
    return { logs: `no SSH banner on ${host}:${port} within 5 s\n${logs}`, bindFailed: false };
  }
  // Let the last stderr lines arrive.
  await delay(50);
  return { logs, bindFailed: BIND_FAILED.test(logs) };
}

function makeSshd(parts: Launched & { dir: string; hostKeys: KeyPair[]; host: string; port: number; configPath: string }): Sshd {
  const { dir, hostKeys, host, port } = parts;
  let { watched } = parts;
  let logs = parts.logs;
  let stopping: Promise<void> | undefined;
  return {
    host,
    port,
    get pid() {
      return watched.pid;
    },
    dir,
    hostKeys,
    user: userInfo().username,
    knownHostsLine(options = {}) {
      const [algorithm, blob] = (hostKeys[0]?.publicLine ?? "").split(" ");
      return `${hostPort(options.hostname ?? host, port)} ${algorithm} ${blob}`;
    },
    logs: () => logs(),
    async kill() {
      const children = await childPids(watched.pid);
      await stopChild(watched, "SIGKILL");
      for (const pid of children) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    },
    async restart() {
      if (!watched.hasExited()) throw new Error("sshd is still running: kill() it first");
      const started = await launch(parts.configPath, host, port);
      if (!("watched" in started)) throw new Error(`sshd did not start again on port ${port}; its stderr:\n${started.logs.trim()}`);
      ({ watched, logs } = started);
    },
    async dropConnections() {
      const pids = await childPids(watched.pid);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // Already gone.
        }
      }
      return pids.length;
    },
    pause() {
      process.kill(watched.pid, "SIGSTOP");
    },
    async freezeConnections() {
      const pids = await childPids(watched.pid);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGSTOP");
        } catch {
          // Already gone.
        }
      }
      return pids;
    },
    resume() {
      process.kill(watched.pid, "SIGCONT");
    },
    stop() {
      stopping ??= (async () => {
        // A paused listener would never see the SIGTERM.
        try {
          process.kill(watched.pid, "SIGCONT");
        } catch {
          // Already gone.
        }
        await stopChild(watched, "SIGTERM");
        await rm(dir, { recursive: true, force: true });
        forgetDir(dir);
      })();
      return stopping;
    },
  };
}

export interface Agent {
  socketPath: string;
  pid: number;
  /** ssh-add the key (answering its passphrase through SSH_ASKPASS when it has one). */
  add(key: KeyPair): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start a private ssh-agent on a socket in a new temp dir.
 *
 * @example
 * const agent = await startAgent();
 * await agent.add(key);
 * startCli([...], { env: { SSH_AUTH_SOCK: agent.socketPath } });
 */
export async function startAgent(): Promise<Agent> {
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-agent-"));
  removeOnExit(dir);
  const socketPath = join(dir, "agent.sock");
  const child = spawn("ssh-agent", ["-D", "-a", socketPath], { stdio: ["ignore", "pipe", "pipe"] });
  const watched = watchChild(child);
  let logs = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (logs += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (logs += chunk));
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopChild(watched, "SIGTERM");
      await rm(dir, { recursive: true, force: true });
      forgetDir(dir);
    })();
    return stopping;
  };

  const deadline = Date.now() + 5000;
  let ready = false;
  while (!ready && Date.now() < deadline && !watched.hasExited()) {
    ready = await new Promise<boolean>((resolve) => {
      const socket = connect(socketPath);
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (!ready) await delay(50);
  }
  if (!ready) {
    await stop();
    const spawnError = watched.spawnError();
    throw new Error(`ssh-agent did not start: ${spawnError?.message ?? logs.trim()}`);
  }

  let askpassCount = 0;
  return {
    socketPath,
    pid: watched.pid,
    stop,
    async add(key) {
      const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: socketPath };
      delete env.SSH_ASKPASS;
      delete env.SSH_ASKPASS_REQUIRE;
      const cleanup: string[] = [];
      if (key.passphrase !== undefined) {
        askpassCount += 1;
        const secretPath = join(dir, `passphrase-${askpassCount}`);
        const scriptPath = join(dir, `askpass-${askpassCount}.sh`);
        await writeFile(secretPath, key.passphrase, { mode: 0o600 });
        const answered = join(dir, `answered-${askpassCount}`);
        const quote = (path: string): string => `'${path.replaceAll("'", `'\\''`)}'`;
        // ssh-add asks again after a wrong passphrase until it gets an empty answer or askpass
        // fails: answer once, then fail, so a wrong passphrase ends instead of looping.
        const script = `#!/bin/sh\n[ -e ${quote(answered)} ] && exit 1\n: > ${quote(answered)}\ncat ${quote(secretPath)}\necho\n`;
        await writeFile(scriptPath, script, { mode: 0o700 });
        await chmod(scriptPath, 0o700);
        cleanup.push(secretPath, scriptPath, answered);
        // OpenSSH 8.4+: use the askpass program even without DISPLAY or a tty.
        env.SSH_ASKPASS = scriptPath;
        env.SSH_ASKPASS_REQUIRE = "force";
      }
      try {
        const result = await runCommand("ssh-add", [key.privatePath], { env, timeoutMs: 10_000 });
        if (result.code !== 0) throw new Error(`ssh-add ${key.privatePath} failed (${result.code}): ${result.stderr.trim()}`);
      } finally {
        for (const path of cleanup) await rm(path, { force: true });
      }
    },
  };
}
