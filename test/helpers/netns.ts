/**
 * A throwaway Linux network namespace for tests that must watch local DNS
 * without touching the machine's resolver: only a loopback interface, and a
 * resolv.conf of its own (`nameserver 127.0.0.1`, which `ip netns exec`
 * bind-mounts over /etc/resolv.conf for the processes it starts). Everything
 * a test starts in it (sshd, safetunnel, a DNS recorder, a browser) talks only
 * to the others: nothing leaves the namespace.
 *
 * `ip netns exec` execs the command in place (no fork), so the PID a test gets
 * is the program's own and it can be ended by that PID.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { randomBytes } from "node:crypto";
import { type CommandResult, delay, type ExitStatus, runCommand, within } from "./child.ts";
import { forgetDir, removeOnExit } from "./cleanup.ts";
import { cliPath, repoRoot, type Running, startProcess, waitForStdoutLine } from "./run.ts";
import { makeKey, SSHD_PATH, sshdConfig } from "./sshd.ts";

const IP = "/usr/sbin/ip";

export interface Netns {
  /** The namespace's name, as `ip netns` knows it. */
  name: string;
  /**
   * `/etc/netns/NAME`: a file or folder made here replaces /etc's of the same
   * name for programs started in the namespace (ip-netns(8) bind-mounts it at
   * each start), as resolv.conf does; removed with the namespace.
   */
  etcDir: string;
  /** Start `command args` inside the namespace (see `startProcess`); its PID is the program's own. */
  start(command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }): Running;
  /** Run `command args` to completion inside the namespace (see `runCommand`). */
  run(command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<CommandResult>;
  /**
   * Wait (up to `timeoutMs`, default 10 s) until a TCP socket listens on
   * `host:port` inside the namespace; fails at once with its stderr if `running` exits first.
   */
  waitForListen(port: number, host: string, running?: Running, timeoutMs?: number): Promise<void>;
  /** SIGKILL whatever still runs in the namespace (by PID), delete it and its /etc/netns folder. Safe to call twice. */
  remove(): Promise<void>;
}

/**
 * Why this process cannot make network namespaces, or undefined when it can
 * (root and an `ip` that can add and delete one).
 *
 * @example
 * const why = await netnsUnavailable();
 * if (why !== undefined) return t.skip(why);
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `network namespaces are Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "making a network namespace needs root";
  if (!existsSync(IP)) return `no ${IP} (apt-get install iproute2)`;
  const probe = `safetunnel-probe-${process.pid}-${randomBytes(3).toString("hex")}`;
  const added = await runCommand(IP, ["netns", "add", probe], { timeoutMs: 10_000 });
  if (added.code !== 0) return `ip netns add failed: ${added.stderr.trim()}`;
  await runCommand(IP, ["netns", "del", probe], { timeoutMs: 10_000 });
  return undefined;
}

/**
 * A new namespace with loopback up and `/etc/netns/NAME/resolv.conf` saying
 * `nameserver 127.0.0.1`. Removed by `remove()`, or when this process exits.
 *
 * @example
 * const netns = await createNetns();
 * try {
 *   const sshd = await startSshdInNetns(netns, { authorizedKeys: [key.publicLine] });
 * } finally {
 *   await netns.remove();
 * }
 */
export async function createNetns(prefix = "safetunnel"): Promise<Netns> {
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const etcDir = join("/etc/netns", name);
  const added = await runCommand(IP, ["netns", "add", name], { timeoutMs: 10_000 });
  if (added.code !== 0) throw new Error(`ip netns add ${name} failed: ${added.stderr.trim()}`);
  const removeAtExit = (): void => {
    spawnSync(IP, ["netns", "del", name], { stdio: "ignore", timeout: 5000 });
  };
  process.once("exit", removeAtExit);
  removeOnExit(etcDir);
  let removing: Promise<void> | undefined;
  const netns: Netns = {
    name,
    etcDir,
    start: (command, args, options = {}) => startProcess(IP, ["netns", "exec", name, command, ...args], options),
    run: (command, args, options = {}) => runCommand(IP, ["netns", "exec", name, command, ...args], options),
    waitForListen: (port, host, running, timeoutMs = 10_000) => waitForListenIn(netns, port, host, running, timeoutMs),
    remove() {
      removing ??= (async () => {
        // Whatever is still in the namespace was started by this test (or is a child of it): end it by PID.
        const pids = await runCommand(IP, ["netns", "pids", name], { timeoutMs: 10_000 }).catch(() => undefined);
        for (const pid of (pids?.stdout ?? "").split(/\s+/).filter((word) => /^\d+$/.test(word))) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // Already gone.
          }
        }
        await runCommand(IP, ["netns", "del", name], { timeoutMs: 10_000 }).catch(() => undefined);
        process.removeListener("exit", removeAtExit);
        await rm(etcDir, { recursive: true, force: true });
        forgetDir(etcDir);
      })();
      return removing;
    },
  };
  try {
    await mkdir(etcDir, { recursive: true });
    await writeFile(join(etcDir, "resolv.conf"), "nameserver 127.0.0.1\n");
    // lo, and a "LAN" interface with a default route: browsers gather WebRTC
    // candidates and try STUN only when a network seems to be there. Both ends
    // of the veth pair stay in the namespace and its peer has no address, so
    // whatever goes out on it ends there.
    for (const args of [
      ["link", "set", "lo", "up"],
      ["link", "add", "lan0", "type", "veth", "peer", "name", "lan1"],
      ["addr", "add", "10.200.0.2/24", "dev", "lan0"],
      ["link", "set", "lan1", "up"],
      ["link", "set", "lan0", "up"],
      ["route", "add", "default", "via", "10.200.0.1", "dev", "lan0"],
    ]) {
      const done = await runCommand(IP, ["-n", name, ...args], { timeoutMs: 10_000 });
      if (done.code !== 0) throw new Error(`ip -n ${name} ${args.join(" ")} failed: ${done.stderr.trim()}`);
    }
  } catch (err) {
    await netns.remove();
    throw err;
  }
  return netns;
}

/** True when `ss` run in the namespace shows a TCP listener on host:port. */
async function listensIn(netns: Netns, port: number, host: string): Promise<boolean> {
  const result = await netns.run("ss", ["-Hltn"], { timeoutMs: 5000 });
  const local = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return result.stdout.split("\n").some((line) => line.split(/\s+/).includes(local));
}

async function waitForListenIn(netns: Netns, port: number, host: string, running: Running | undefined, timeoutMs: number): Promise<void> {
  let ended: ExitStatus | undefined;
  void running?.exited.then((status) => (ended = status));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && ended === undefined) {
    if (await listensIn(netns, port, host)) return;
    await delay(50);
  }
  const stderr = running === undefined ? "" : `; stderr: ${running.stderr().trim()}`;
  if (ended !== undefined) throw new Error(`process exited (code ${ended.code}, signal ${ended.signal}) before listening on ${host}:${port} in ${netns.name}${stderr}`);
  throw new Error(`nothing listening on ${host}:${port} in ${netns.name} after ${timeoutMs} ms${stderr}`);
}

/** Variables that would let a test reach the developer's own agent or prompts (as `startCli` scrubs them). */
const SCRUBBED = ["SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY"];

/**
 * `startCli` inside the namespace: `node dist/safetunnel.cjs ...args` with
 * HOME set, the agent and prompt variables removed and stdin closed.
 *
 * @example
 * const tunnel = startCliInNetns(netns, ["-N", "-D", "127.0.0.1:1080", ...loginArgs], { home: home.home });
 * await netns.waitForListen(1080, "127.0.0.1", tunnel);
 */
export function startCliInNetns(netns: Netns, args: string[], options: { home: string; env?: Record<string, string> }): Running {
  const script = cliPath();
  if (!existsSync(script)) throw new Error(`${script} is missing: run the build first (npm run build)`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SCRUBBED) delete env[name];
  Object.assign(env, { HOME: options.home }, options.env ?? {});
  return netns.start(process.execPath, [script, ...args], { env });
}

/**
 * Starts the DNS recorder (dns-recorder.ts) on 127.0.0.1:53 inside the
 * namespace, the resolver its resolv.conf names, and waits until it listens:
 * every lookup a process there makes shows up on its stdout.
 *
 * @example
 * const dns = await startDnsRecorderInNetns(netns);
 * recordedQueries(dns.stdout()) // [] until something resolves a name
 */
export async function startDnsRecorderInNetns(netns: Netns): Promise<Running> {
  const dns = netns.start(process.execPath, ["--import", "tsx", join(repoRoot(), "test", "helpers", "dns-recorder.ts"), "127.0.0.1", "53"], { cwd: repoRoot() });
  try {
    await waitForStdoutLine(dns, /^\{"ready":"127\.0\.0\.1:53"\}$/, "the DNS recorder to listen on 127.0.0.1:53 in the namespace");
  } catch (err) {
    await dns.stop();
    throw err;
  }
  return dns;
}

export interface NetnsSshd {
  host: "127.0.0.1";
  port: number;
  user: string;
  /** A known_hosts line for its host key: "[127.0.0.1]:PORT ssh-ed25519 AAAA...". */
  knownHostsLine(): string;
  logs(): string;
  /** SIGTERM it by PID (SIGKILL after 5 s) and remove its folder. */
  stop(): Promise<void>;
}

/**
 * A private OpenSSH sshd on 127.0.0.1:`port` inside the namespace (a fresh
 * namespace has every port free), configured as `startSshd` does: its own host
 * key, PidFile and AuthorizedKeysFile in a temp folder, keys only.
 * `extraConfig` lines go first, so they win.
 *
 * @example
 * const sshd = await startSshdInNetns(netns, { authorizedKeys: [key.publicLine], extraConfig: ["PermitOpen 127.0.0.1:1"] });
 */
export async function startSshdInNetns(netns: Netns, options: { authorizedKeys: string[]; extraConfig?: string[]; port?: number }): Promise<NetnsSshd> {
  const port = options.port ?? 2222;
  try {
    await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  } catch {
    // Not root: then there is no namespace either.
  }
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-netns-sshd-"));
  removeOnExit(dir);
  const cleanup = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    forgetDir(dir);
  };
  let sshd: Running | undefined;
  try {
    const hostKey = await makeKey(dir, "ssh_host_ed25519_key");
    await writeFile(join(dir, "authorized_keys"), options.authorizedKeys.map((line) => `${line}\n`).join(""), { mode: 0o600 });
    const config = await sshdConfig({ dir, listenAddress: "127.0.0.1", port, hostKeys: [hostKey], extraConfig: options.extraConfig ?? [] });
    const configPath = join(dir, "sshd_config");
    await writeFile(configPath, config, { mode: 0o600 });
    const started = netns.start(SSHD_PATH, ["-D", "-e", "-f", configPath]);
    sshd = started;
    await netns.waitForListen(port, "127.0.0.1", started);
    const [algorithm, blob] = hostKey.publicLine.split(" ");
    let stopping: Promise<void> | undefined;
    return {
      host: "127.0.0.1",
      port,
      user: userInfo().username,
      knownHostsLine: () => `[127.0.0.1]:${port} ${algorithm} ${blob}`,
      logs: () => started.stderr(),
      stop() {
        stopping ??= (async () => {
          await started.stop("SIGTERM");
          await cleanup();
        })();
        return stopping;
      },
    };
  } catch (err) {
    if (sshd !== undefined) await within(sshd.stop("SIGKILL"), 10_000);
    await cleanup();
    throw err;
  }
}
