/**
 * The same sources run on Deno 2 unchanged (node: specifiers, .ts imports, no
 * Node-only globals). `deno check` pins the rules; a real tunnel through a real
 * sshd pins that ssh2 and our sockets behave there (TCP_NODELAY on the SSH
 * socket, chacha20-poly1305 offered first).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, test } from "node:test";
import { runCommand } from "../helpers/child.ts";
import { curlThroughSocks } from "../helpers/curl.ts";
import { repoRoot, startProcess, waitForLine, waitForListen, type Home } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";
import { denoExecutable } from "../helpers/deno.ts";

const DENO = denoExecutable();

/**
 * The permissions the README gives `deno run` for a tunnel, with the user's
 * ~/.ssh as `sshDir`: the network; reading the SSH files and /etc/ssh;
 * writing known_hosts (a new
 * host's key, once confirmed); the environment variables the
 * program reads; the host name (ssh_config's %l and %L) and the user id.
 */
function denoTunnelPermissions(sshDir: string): string[] {
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${sshDir},/etc/ssh`,
    `--allow-write=${sshDir}/known_hosts`,
    "--allow-env=HOME,USER,USERNAME,LOGNAME,SSH_AUTH_SOCK,SSH_ASKPASS,SSH_ASKPASS_REQUIRE,DISPLAY,WAYLAND_DISPLAY",
    "--allow-sys=hostname,uid",
  ];
}

/**
 * The permissions the README gives `deno run` for serve: the network; reading
 * authorized_keys and the config folder; writing the config folder (the host
 * key, made on the first run); HOME and XDG_CONFIG_HOME; the host name and the
 * interface addresses (the known_hosts line it prints).
 */
function denoServePermissions(sshDir: string, configDir: string): string[] {
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${sshDir},${configDir}`,
    `--allow-write=${configDir}`,
    "--allow-env=HOME,XDG_CONFIG_HOME",
    "--allow-sys=hostname,networkInterfaces",
  ];
}

/**
 * The permissions the README gives `deno run` for exec: the network (to check
 * the tunnel), the whole environment (the command inherits it) and running
 * the command; `nc`, run again by ssh, gets its own from exec.
 */
const DENO_EXEC_PERMISSIONS = ["--no-prompt", "--allow-net", "--allow-env", "--allow-run"];

let home: Home;
let sshd: Sshd;
let http: HttpTarget;

before(async () => {
  ({ home, sshd } = await startSshdWithHome());
  http = await startHttpTarget();
});

after(async () => {
  await sshd?.stop();
  await http?.stop();
  await home?.cleanup();
});

test("deno check accepts the sources as they are", async () => {
  const result = await runCommand(DENO, ["check", "--quiet", "src/main.ts"], { cwd: repoRoot(), timeoutMs: 120_000 });
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

test("under Deno with the README's permissions, -D tunnels a name through a real sshd, refuses an IP with 0x02, and exits 0 on SIGINT", async () => {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, NO_COLOR: "1" };
  delete env["SSH_AUTH_SOCK"];
  // The README's permissions, no wider: anything more it needed would fail here (--no-prompt) instead of asking.
  const permissions = denoTunnelPermissions(join(home.home, ".ssh"));
  const run = startProcess(DENO, ["run", ...permissions, join(repoRoot(), "src", "main.ts"), "-D", String(port), "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], { env, cwd: repoRoot() });
  try {
    await waitForListen(port, "127.0.0.1", run, 60_000);
    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/bytes/4194304`);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout.length, 4194304);
    const literal = await curlThroughSocks("--socks5", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(literal.code, 97, literal.stderr);
    assert.match(literal.stderr, /\(2\)/);
  } finally {
    const status = await run.stop("SIGINT");
    assert.equal(status.code, 0, run.stderr());
  }
  // Deno lets a program read /proc only with --allow-all: the account check is off, and said so.
  assert.match(run.stderr(), /^Any program of any account on this machine can use these ports: Deno reads \/proc only with --allow-all, so safetunnel cannot tell who connects\. To require a password on -D, use --socks-auth USER:@FILE\.$/m);
  assert.match(run.stderr(), /Refused SOCKS5 CONNECT to 127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+/);
  assert.match(run.stderr(), /Stopped by SIGINT: 1 connection, \d+ B up, 4\.2 MB down, 1 refused \(IP address\), 0 failed\./);
});

test("under Deno with the README's permissions, serve is the home end: OpenSSH's ssh -N -D through it, curl by name, a summary on SIGINT", async () => {
  const servePort = await freePort();
  const socksPort = await freePort();
  const configHome = join(home.home, ".config");
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, XDG_CONFIG_HOME: configHome, NO_COLOR: "1" };
  await writeFile(join(home.home, ".ssh", "authorized_keys"), await readFile(join(home.home, ".ssh", "id_ed25519.pub")), { mode: 0o600 });
  const permissions = denoServePermissions(join(home.home, ".ssh"), join(configHome, "safetunnel"));
  const serve = startProcess(DENO, ["run", ...permissions, join(repoRoot(), "src", "main.ts"), "serve", "--listen", `127.0.0.1:${servePort}`], { env, cwd: repoRoot() });
  let ssh: ReturnType<typeof startProcess> | undefined;
  try {
    await waitForListen(servePort, "127.0.0.1", serve, 60_000);
    const line = await waitForLine(serve, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${servePort} ssh-ed25519 `), "the known_hosts line");
    const knownHosts = join(home.home, "known_hosts_deno_serve");
    await writeFile(knownHosts, `${line}\n`);
    ssh = startProcess("ssh", [
      "-F", "none", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
      "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes",
      "-i", join(home.home, ".ssh", "id_ed25519"), "-p", String(servePort), "-N", "-D", `127.0.0.1:${socksPort}`, "me@127.0.0.1",
    ]);
    await waitForListen(socksPort, "127.0.0.1", ssh);
    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout.toString(), "hello from target\n");
  } finally {
    await ssh?.stop();
    const status = await serve.stop("SIGINT");
    assert.equal(status.code, 0, serve.stderr());
  }
  assert.match(serve.stderr(), /^Stopped by SIGINT: 1 login, 0 failed logins, 1 connection, /m);
});

test("under Deno with the README's permissions, exec gives curl and ssh the tunnel: curl by name with no proxy flags, ssh through Deno's own nc", async () => {
  const tunnel = await startSocksTunnel(sshd, home, ["-v"]);
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, NO_COLOR: "1" };
    const own = [
      "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes",
      `-o UserKnownHostsFile=${join(home.sshDir, "known_hosts")} -o HostKeyAlias=[127.0.0.1]:${sshd.port}`,
      `-i ${join(home.sshDir, "id_ed25519")} -p ${sshd.port}`,
    ].join(" ");
    env["GIT_SSH_COMMAND"] = own;
    const script = `curl -sS http://localhost:${http.port}/hello && eval "$GIT_SSH_COMMAND ${sshd.user}@localhost echo through-nc"`;
    const run = startProcess(DENO, ["run", ...DENO_EXEC_PERMISSIONS, join(repoRoot(), "src", "main.ts"), "exec", "--proxy", tunnel.proxy, "--", "sh", "-c", script], { env, cwd: repoRoot() });
    const status = await run.exited;
    assert.equal(status.code, 0, `exec: ${run.stderr()}\ntunnel: ${tunnel.cli.stderr()}`);
    assert.equal(run.stdout(), "hello from target\nthrough-nc\n");
  } finally {
    assert.equal((await tunnel.cli.stop("SIGTERM")).code, 0);
  }
  assert.match(tunnel.cli.stderr(), new RegExp(`HTTP GET localhost:${http.port}\\b`));
  assert.match(tunnel.cli.stderr(), new RegExp(`SOCKS5 CONNECT localhost:${sshd.port}\\b`));
});

test("under Deno with the README's permissions for -f, the foreground exits 0 once the port answers; the background process runs under deno with no more than those, and stops on SIGTERM", async () => {
  const port = await freePort();
  const scratch = await mkdtemp(join(tmpdir(), "safetunnel-deno-f-"));
  const log = join(scratch, "tunnel.log");
  const pidFile = join(scratch, "tunnel.pid");
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, NO_COLOR: "1" };
  delete env["SSH_AUTH_SOCK"];
  const sshDir = join(home.home, ".ssh");
  const permissions = [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${sshDir},/etc/ssh,${pidFile}`,
    `--allow-write=${sshDir}/known_hosts,${log},${pidFile}`,
    "--allow-env",
    "--allow-run",
    "--allow-sys=hostname,uid",
  ];
  const args = ["-f", "-D", `127.0.0.1:${port}`, "-E", log, "--pid-file", pidFile, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`];
  let pid = 0;
  try {
    const foreground = await runCommand(DENO, ["run", ...permissions, join(repoRoot(), "src", "main.ts"), ...args], { cwd: repoRoot(), env, timeoutMs: 90_000 });
    pid = Number((await readFile(pidFile, "utf8").catch(() => "0")).trim());
    assert.equal(foreground.code, 0, foreground.stderr);
    assert.match(foreground.stderr, new RegExp(`^In the background as PID ${pid} `, "m"));
    const named = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(named.code, 0, named.stderr);
    const command = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    assert.deepEqual(command.slice(0, 2), [DENO, "run"]);
    const given = command.slice(2, command.indexOf(join(repoRoot(), "src", "main.ts")));
    assert.deepEqual(given, [
      "--no-prompt",
      "--allow-net",
      `--allow-read=${sshDir},/etc/ssh,${pidFile}`,
      `--allow-write=${sshDir}/known_hosts,${log},${pidFile}`,
      "--allow-env",
      "--allow-sys=hostname,uid",
      "--allow-run",
    ]);
  } finally {
    if (pid > 0) process.kill(pid, "SIGTERM");
  }
  for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(existsSync(pidFile), false);
  assert.match(await readFile(log, "utf8"), /\nStopped by SIGTERM: 1 connection, /);
  await rm(scratch, { recursive: true, force: true });
});

test("under Deno without --allow-run, -f says what it needs and starts nothing", async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home.home, NO_COLOR: "1" };
  const result = await runCommand(DENO, ["run", "--no-prompt", "--allow-net", "--allow-env", "--allow-sys", join(repoRoot(), "src", "main.ts"), "-f", "-D", "1080", "home.invalid"], { cwd: repoRoot(), env, timeoutMs: 60_000 });
  assert.equal(result.code, 255);
  assert.equal(result.stderr, "safetunnel: under Deno, -f starts safetunnel again in the background, which needs --allow-env and --allow-run; add them, or run without -f\n");
});
