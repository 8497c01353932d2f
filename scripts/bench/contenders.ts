/**
 * What `npm run bench` compares, each started the way its users start it,
 * all against the same loopback sshd and the same key: OpenSSH's `ssh -N -D`
 * (its default cipher, and aes128-gcm, its fastest here), and `safetunnel -N
 * -D` as the bundle on Node, the sources on Deno and the linux-x64 single
 * executable (the last two when they exist). With `serve`, OpenSSH's ssh
 * through `safetunnel serve` instead of sshd: the far end's cost.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { repoRoot, startProcess, waitForListen, type Home, type Running } from "../../test/helpers/run.ts";
import { makeKey, type KeyPair, type Sshd } from "../../test/helpers/sshd.ts";
import { freePort } from "../../test/helpers/targets.ts";
import { denoExecutable } from "../../test/helpers/deno.ts";

export interface Contender {
  /** Short column name: "ssh", "node", ... */
  name: string;
  /** What it is, for the table's legend. */
  description: string;
  /** Whether it is OpenSSH's client (the ratios' reference). */
  openssh: boolean;
  /** Starts it with its SOCKS proxy on 127.0.0.1:port. */
  start(port: number): Running;
  /** Measured for throughput and small requests only (a variant whose start-up and memory are another column's). */
  throughputOnly?: boolean;
}

export interface Rig {
  sshd: Sshd;
  home: Home;
  key: KeyPair;
}

/** OpenSSH's client with no config file but ours: the key, the known host, no prompts. */
function sshArgs(rig: Rig, port: number, knownHosts: string): string[] {
  return [
    "-N",
    "-F",
    "/dev/null",
    "-i",
    rig.key.privatePath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-p",
    String(port),
  ];
}

function safetunnelArgs(rig: Rig, socksPort: number, extra: string[] = []): string[] {
  return [...extra, "-N", "-F", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-p", String(rig.sshd.port), "-D", `127.0.0.1:${socksPort}`, `${rig.sshd.user}@127.0.0.1`];
}

/** The single executable, where build:binaries made it. */
export function binaryPath(): string {
  return join(repoRoot(), "dist", "safetunnel-linux-x64");
}

/**
 * The contenders present on this machine, OpenSSH first. `only` keeps those
 * named (always with OpenSSH's default, the reference).
 */
export function contenders(rig: Rig, only?: readonly string[]): Contender[] {
  const knownHosts = join(rig.home.sshDir, "known_hosts");
  const env = { ...process.env, HOME: rig.home.home, NO_COLOR: "1" };
  const bundle = join(repoRoot(), "dist", "safetunnel.cjs");
  const all: Contender[] = [
    {
      name: "ssh",
      description: "OpenSSH ssh -N -D, its default cipher",
      openssh: true,
      start: (port) => startProcess("ssh", [...sshArgs(rig, rig.sshd.port, knownHosts), "-D", `127.0.0.1:${port}`, `${rig.sshd.user}@127.0.0.1`]),
    },
    {
      name: "ssh-gcm",
      description: "OpenSSH ssh -N -D -c aes128-gcm@openssh.com",
      openssh: true,
      start: (port) => startProcess("ssh", [...sshArgs(rig, rig.sshd.port, knownHosts), "-c", "aes128-gcm@openssh.com", "-D", `127.0.0.1:${port}`, `${rig.sshd.user}@127.0.0.1`]),
    },
    {
      name: "node",
      description: `safetunnel -N -D, the bundle on Node ${process.version}`,
      openssh: false,
      start: (port) => startProcess(process.execPath, [bundle, ...safetunnelArgs(rig, port)], { env }),
    },
    {
      name: "node-any",
      description: "the same with --allow-users '*': no check of who owns each connection (what that check costs)",
      openssh: false,
      throughputOnly: true,
      start: (port) => startProcess(process.execPath, [bundle, ...safetunnelArgs(rig, port, ["--allow-users", "*"])], { env }),
    },
  ];
  let deno: string | undefined;
  try {
    deno = denoExecutable();
  } catch {
    deno = undefined;
  }
  if (deno !== undefined) {
    const denoPath = deno;
    all.push({
      name: "deno",
      description: "safetunnel -N -D, the sources on Deno (deno run --allow-all)",
      openssh: false,
      start: (port) => startProcess(denoPath, ["run", "--allow-all", join(repoRoot(), "src", "main.ts"), ...safetunnelArgs(rig, port)], { env }),
    });
  }
  if (existsSync(binaryPath())) {
    all.push({
      name: "binary",
      description: "safetunnel -N -D, the linux-x64 single executable",
      openssh: false,
      start: (port) => startProcess(binaryPath(), safetunnelArgs(rig, port), { env }),
    });
  }
  return only === undefined ? all : all.filter((contender) => contender.name === "ssh" || only.includes(contender.name));
}

export interface ServeEnd {
  port: number;
  process: Running;
  /** OpenSSH's ssh -N -D through this serve. */
  contender: Contender;
  stop(): Promise<void>;
}

/**
 * `safetunnel serve` (the bundle on Node) on a loopback port, taking the
 * rig's key, and OpenSSH's client set up to go through it.
 */
export async function startServeEnd(rig: Rig): Promise<ServeEnd> {
  const port = await freePort();
  const hostKey = await makeKey(rig.home.home, "serve_host_key");
  const authorizedKeys = join(rig.home.home, "serve_authorized_keys");
  const knownHosts = join(rig.home.home, "serve_known_hosts");
  await writeFile(authorizedKeys, `${rig.key.publicLine}\n`, { mode: 0o600 });
  const [algorithm, blob] = hostKey.publicLine.split(" ");
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${algorithm} ${blob}\n`);
  const bundle = join(repoRoot(), "dist", "safetunnel.cjs");
  const serve = startProcess(process.execPath, [bundle, "serve", "--listen", `127.0.0.1:${port}`, "--authorized-keys", authorizedKeys, "--host-key", hostKey.privatePath], {
    env: { ...process.env, HOME: rig.home.home, XDG_CONFIG_HOME: join(rig.home.home, ".config"), NO_COLOR: "1" },
  });
  await waitForListen(port, "127.0.0.1", serve, 30_000);
  return {
    port,
    process: serve,
    contender: {
      name: "ssh>serve",
      description: "OpenSSH ssh -N -D through safetunnel serve (Node) instead of sshd",
      openssh: false,
      start: (socksPort) => startProcess("ssh", [...sshArgs(rig, port, knownHosts), "-D", `127.0.0.1:${socksPort}`, "me@127.0.0.1"]),
    },
    stop: async () => void (await serve.stop("SIGTERM")),
  };
}
