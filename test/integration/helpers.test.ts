/**
 * Proves the integration-test toolkit against the real OpenSSH client and
 * server, curl and the `socks` package, all on loopback. safetunnel itself is
 * not involved: if these pass, a failing safetunnel test is about safetunnel.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../helpers/child.ts";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { cliPath, makeHome, repoRoot, type Running, runCli, startCli, startProcess, waitForListen } from "../helpers/run.ts";
import { connectOutcome, readAll } from "../helpers/sockets.ts";
import { type KeyPair, makeKey, type Sshd, startAgent, startSshd } from "../helpers/sshd.ts";
import { closedPort, deterministicBytes, freePort, sha256, startEchoTarget, startHttpTarget } from "../helpers/targets.ts";
import { waitFor } from "../helpers/wait.ts";

let scratch: string;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-helpers-test-"));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The real ssh client, pinned to one key and one known_hosts file, never the user's ~/.ssh. */
async function sshArgs(sshd: Sshd, identity: { key?: KeyPair; agentSocket?: string }, knownHosts = sshd.knownHostsLine()): Promise<string[]> {
  const knownHostsPath = join(scratch, `known_hosts-${sshd.port}-${Math.random().toString(36).slice(2)}`);
  await writeFile(knownHostsPath, `${knownHosts}\n`);
  return [
    "-F", "/dev/null",
    "-o", "BatchMode=yes",
    "-o", `UserKnownHostsFile=${knownHostsPath}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `IdentityAgent=${identity.agentSocket ?? "none"}`,
    // IdentitiesOnly would also hide the agent's keys; naming a missing file keeps ssh off ~/.ssh/id_* instead.
    "-o", `IdentitiesOnly=${identity.agentSocket === undefined ? "yes" : "no"}`,
    "-i", identity.key?.privatePath ?? join(scratch, "no-such-key"),
    "-p", String(sshd.port),
  ];
}

/** Start `ssh -N -D` and wait until its SOCKS port accepts connections. */
async function startTunnel(sshd: Sshd, identity: { key?: KeyPair; agentSocket?: string }): Promise<{ ssh: Running; socksPort: number }> {
  const socksPort = await freePort();
  const ssh = startProcess("ssh", [
    ...(await sshArgs(sshd, identity)),
    "-o", "ExitOnForwardFailure=yes",
    "-N", "-D", `127.0.0.1:${socksPort}`,
    `${sshd.user}@${sshd.host}`,
  ]);
  await waitForListen(socksPort, "127.0.0.1", ssh);
  return { ssh, socksPort };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

async function fingerprint(key: KeyPair): Promise<string> {
  const result = await runCommand("ssh-keygen", ["-l", "-f", key.publicPath]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

describe("makeKey", () => {
  test("makes an ed25519 key whose .pub line ends in the name and whose type is the algorithm", async () => {
    const key = await makeKey(scratch, "plain");
    assert.equal(key.privatePath, join(scratch, "plain"));
    assert.equal(key.publicPath, join(scratch, "plain.pub"));
    assert.equal(key.type, "ssh-ed25519");
    assert.match(key.publicLine, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ plain$/);
    assert.equal(key.passphrase, undefined);
    assert.equal((await stat(key.privatePath)).mode & 0o777, 0o600);
  });

  test("makes rsa and ecdsa keys when asked", async () => {
    const rsa = await makeKey(scratch, "rsa", { type: "rsa" });
    const ecdsa = await makeKey(scratch, "ecdsa", { type: "ecdsa" });
    assert.equal(rsa.type, "ssh-rsa");
    assert.match(rsa.publicLine, /^ssh-rsa AAAAB3NzaC1yc2E\S+ rsa$/);
    assert.equal(ecdsa.type, "ecdsa-sha2-nistp256");
    assert.match(ecdsa.publicLine, /^ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY\S+ ecdsa$/);
  });

  test("encrypts the private key so that only its passphrase unlocks it", async () => {
    const key = await makeKey(scratch, "locked", { passphrase: "correct horse" });
    assert.equal(key.passphrase, "correct horse");
    const right = await runCommand("ssh-keygen", ["-y", "-P", "correct horse", "-f", key.privatePath]);
    assert.equal(right.code, 0, right.stderr);
    assert.equal(right.stdout.trim(), key.publicLine);
    const wrong = await runCommand("ssh-keygen", ["-y", "-P", "wrong", "-f", key.privatePath]);
    assert.equal(wrong.code, 255);
    assert.match(wrong.stderr, /incorrect passphrase/);
  });
});

describe("a tunnel through startSshd with the real ssh -D", () => {
  let sshd: Sshd;
  let key: KeyPair;
  let tunnel: { ssh: Running; socksPort: number };
  let proxy: string;
  let http: Awaited<ReturnType<typeof startHttpTarget>>;
  let echo: Awaited<ReturnType<typeof startEchoTarget>>;

  before(async () => {
    key = await makeKey(scratch, "tunnel");
    sshd = await startSshd({ authorizedKeys: [key.publicLine] });
    http = await startHttpTarget();
    echo = await startEchoTarget();
    tunnel = await startTunnel(sshd, { key });
    proxy = `127.0.0.1:${tunnel.socksPort}`;
  });

  after(async () => {
    await tunnel?.ssh.stop();
    await sshd?.stop();
    await http?.stop();
    await echo?.stop();
  });

  test("curl --socks5-hostname fetches /hello by name and the target sees that name", async () => {
    const before = http.requests.length;
    const result = await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.toString(), "hello from target\n");
    assert.deepEqual(http.requests.slice(before), [`localhost:${http.port}`]);
    assert.match(sshd.logs(), new RegExp(`Accepted publickey for ${sshd.user} from 127\\.0\\.0\\.1 `));
  });

  test("curl reaches the target with each of --socks5, --socks4 and --socks4a", async () => {
    for (const flag of ["--socks5", "--socks4", "--socks4a"] as const) {
      const result = await curlThroughSocks(flag, proxy, `${http.url}/hello`);
      assert.equal(result.code, 0, `${flag}: ${result.stderr}`);
      assert.equal(result.stdout.toString(), "hello from target\n", flag);
    }
  });

  test("3 MB of seeded bytes arrive intact, hashing like deterministicBytes", async () => {
    const n = 3_000_000;
    const result = await curlThroughSocks("--socks5-hostname", proxy, `${http.url}/bytes/${n}?seed=7`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, n);
    assert.equal(sha256(result.stdout), sha256(deterministicBytes(n, 7)));
    assert.notEqual(sha256(result.stdout), sha256(deterministicBytes(n, 8)));
  });

  test("socksConnect reaches the echo target by name and the echo honours half-close", async () => {
    const before = echo.connections;
    const result = await socksConnect({ host: "127.0.0.1", port: tunnel.socksPort }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const received = readAll(result.socket);
    result.socket.end("ping through the tunnel");
    assert.equal((await received).toString(), "ping through the tunnel");
    assert.equal(echo.connections, before + 1);
  });

  test("socksConnect reports the error instead of throwing when no proxy listens", async () => {
    const result = await socksConnect({ host: "127.0.0.1", port: await closedPort() }, { host: "localhost", port: echo.port });
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.error, /ECONNREFUSED/);
  });
});

describe("startSshd", () => {
  test("refuses a client key that is not in authorizedKeys", async () => {
    const allowed = await makeKey(scratch, "allowed");
    const other = await makeKey(scratch, "other");
    const sshd = await startSshd({ authorizedKeys: [allowed.publicLine] });
    try {
      const result = await runCommand("ssh", [...(await sshArgs(sshd, { key: other })), `${sshd.user}@127.0.0.1`, "true"]);
      assert.equal(result.code, 255);
      assert.match(result.stderr, /Permission denied \(publickey\)/);
    } finally {
      await sshd.stop();
    }
  });

  test("knownHostsLine() is the first host key exactly as ssh-keyscan reads it", async () => {
    const sshd = await startSshd({ authorizedKeys: [], hostKeyTypes: ["rsa", "ed25519"] });
    try {
      assert.equal(sshd.hostKeys.length, 2);
      assert.equal(sshd.hostKeys[0]?.type, "ssh-rsa");
      const scan = await runCommand("ssh-keyscan", ["-t", "rsa", "-p", String(sshd.port), "127.0.0.1"]);
      assert.equal(scan.stdout.trim(), sshd.knownHostsLine());
      assert.equal(sshd.knownHostsLine().split(" ")[0], `[127.0.0.1]:${sshd.port}`);
      const blob = sshd.hostKeys[0]?.publicLine.split(" ")[1];
      assert.equal(sshd.knownHostsLine({ hostname: "gateway.test" }), `[gateway.test]:${sshd.port} ssh-rsa ${blob}`);
      const ed = await runCommand("ssh-keyscan", ["-t", "ed25519", "-p", String(sshd.port), "127.0.0.1"]);
      assert.equal(ed.stdout.trim(), `[127.0.0.1]:${sshd.port} ${sshd.hostKeys[1]?.publicLine.split(" ").slice(0, 2).join(" ")}`);
    } finally {
      await sshd.stop();
    }
  });

  test("ssh with StrictHostKeyChecking=yes refuses the server when known_hosts names another key", async () => {
    const key = await makeKey(scratch, "mismatch");
    const sshd = await startSshd({ authorizedKeys: [key.publicLine] });
    try {
      const impostor = await makeKey(scratch, "impostor-host");
      const wrongLine = `[127.0.0.1]:${sshd.port} ${impostor.publicLine.split(" ").slice(0, 2).join(" ")}`;
      const result = await runCommand("ssh", [...(await sshArgs(sshd, { key }, wrongLine)), `${sshd.user}@127.0.0.1`, "true"]);
      assert.equal(result.code, 255);
      assert.match(result.stderr, /Host key verification failed\./);
    } finally {
      await sshd.stop();
    }
  });

  test("extraConfig comes first, so it overrides a default such as AllowTcpForwarding", async () => {
    const key = await makeKey(scratch, "noforward");
    const sshd = await startSshd({ authorizedKeys: [key.publicLine], extraConfig: ["AllowTcpForwarding no"] });
    const http = await startHttpTarget();
    const tunnel = await startTunnel(sshd, { key });
    try {
      const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${tunnel.socksPort}`, `http://localhost:${http.port}/hello`);
      assert.equal(result.code, 97);
      assert.equal(result.stdout.length, 0);
      assert.deepEqual(http.requests, []);
      assert.match(sshd.logs(), new RegExp(`refused local port forward: originator 127\\.0\\.0\\.1 port \\d+, target localhost port ${http.port}`));
    } finally {
      await tunnel.ssh.stop();
      await sshd.stop();
      await http.stop();
    }
  });

  test("fails with sshd's own complaint when the config is invalid", async () => {
    await assert.rejects(startSshd({ authorizedKeys: [], extraConfig: ["NoSuchKeyword yes"] }), /sshd did not start[\s\S]*Bad configuration option: NoSuchKeyword/i);
  });

  test("refuses a listen address that is not loopback", async () => {
    await assert.rejects(startSshd({ authorizedKeys: [], listenAddress: "0.0.0.0" }), /loopback only, not 0\.0\.0\.0/);
  });

  test("listens on ::1 when asked and names it [::1]:PORT", async (t) => {
    if ((await connectOutcome(1, "::1")) === "EADDRNOTAVAIL") return t.skip("no IPv6 loopback here");
    const sshd = await startSshd({ authorizedKeys: [], listenAddress: "::1" });
    try {
      assert.equal(sshd.host, "::1");
      const scan = await runCommand("ssh-keyscan", ["-t", "ed25519", "-p", String(sshd.port), "::1"]);
      assert.equal(scan.stdout.trim(), sshd.knownHostsLine());
      assert.equal(sshd.knownHostsLine().split(" ")[0], `[::1]:${sshd.port}`);
      assert.equal(await connectOutcome(sshd.port, "127.0.0.1"), "ECONNREFUSED");
    } finally {
      await sshd.stop();
    }
  });

  test("dropConnections() ends a live session while the listener keeps serving", async () => {
    const key = await makeKey(scratch, "drop");
    const sshd = await startSshd({ authorizedKeys: [key.publicLine] });
    const tunnel = await startTunnel(sshd, { key });
    try {
      await waitFor(() => sshd.logs().includes("Accepted publickey"), "the session to be accepted");
      assert.equal(await sshd.dropConnections(), 1);
      const status = await tunnel.ssh.exited;
      assert.equal(status.code, 255);
      assert.equal(processAlive(sshd.pid), true);
      const scan = await runCommand("ssh-keyscan", ["-t", "ed25519", "-p", String(sshd.port), "127.0.0.1"]);
      assert.equal(scan.stdout.trim(), sshd.knownHostsLine());
    } finally {
      await tunnel.ssh.stop();
      await sshd.stop();
    }
  });

  test("a test process that forgets stop() still exits, taking its sshd and agent with it", async () => {
    const script = join(scratch, "forgetful.mts");
    const helpers = new URL("../helpers/sshd.ts", import.meta.url).href;
    await writeFile(
      script,
      `import { startAgent, startSshd } from ${JSON.stringify(helpers)};
       const sshd = await startSshd({ authorizedKeys: [] });
       const agent = await startAgent();
       console.log(JSON.stringify({ sshd: sshd.pid, dir: sshd.dir, agent: agent.pid, socket: agent.socketPath }));`,
    );
    const result = await runCommand(process.execPath, ["--import", "tsx", script], { cwd: repoRoot(), timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    const left = JSON.parse(result.stdout) as { sshd: number; dir: string; agent: number; socket: string };
    await waitFor(() => !processAlive(left.sshd) && !processAlive(left.agent), "the forgotten sshd and agent to end");
    assert.equal(existsSync(left.dir), false);
    assert.equal(existsSync(left.socket), false);
  });

  test("stop() ends the sshd PID, frees the port and removes the temp dir", async () => {
    const sshd = await startSshd({ authorizedKeys: [] });
    assert.equal(processAlive(sshd.pid), true);
    assert.equal(existsSync(join(sshd.dir, "sshd_config")), true);
    assert.equal((await readFile(join(sshd.dir, "sshd.pid"), "utf8")).trim(), String(sshd.pid));
    await sshd.stop();
    assert.equal(processAlive(sshd.pid), false);
    assert.equal(existsSync(sshd.dir), false);
    assert.equal(await connectOutcome(sshd.port), "ECONNREFUSED");
    await sshd.stop();
  });
});

describe("startAgent", () => {
  test("holds an added key exactly as ssh-add -l lists it", async () => {
    const agent = await startAgent();
    try {
      const key = await makeKey(scratch, "agent-plain");
      const env = { ...process.env, SSH_AUTH_SOCK: agent.socketPath };
      const empty = await runCommand("ssh-add", ["-l"], { env });
      assert.equal(empty.code, 1);
      assert.equal(empty.stdout, "The agent has no identities.\n");
      await agent.add(key);
      const listed = await runCommand("ssh-add", ["-l"], { env });
      assert.equal(listed.code, 0);
      assert.equal(listed.stdout, await fingerprint(key));
    } finally {
      await agent.stop();
    }
  });

  test("adds a passphrase-protected key by answering ssh-add through askpass", async () => {
    const agent = await startAgent();
    try {
      const key = await makeKey(scratch, "agent-locked", { type: "ecdsa", passphrase: "it's a 'quoted' secret" });
      await agent.add(key);
      const listed = await runCommand("ssh-add", ["-l"], { env: { ...process.env, SSH_AUTH_SOCK: agent.socketPath } });
      assert.equal(listed.stdout, await fingerprint(key));
      await assert.rejects(agent.add({ ...key, passphrase: "wrong" }), /ssh-add .* failed/);
    } finally {
      await agent.stop();
    }
  });

  test("lets ssh log in to startSshd with the agent's key and no key file", async () => {
    const key = await makeKey(scratch, "agent-login");
    const agent = await startAgent();
    const sshd = await startSshd({ authorizedKeys: [key.publicLine] });
    try {
      await agent.add(key);
      const args = [...(await sshArgs(sshd, { agentSocket: agent.socketPath })), `${sshd.user}@127.0.0.1`, "echo logged-in"];
      const result = await runCommand("ssh", args);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "logged-in\n");
    } finally {
      await sshd.stop();
      await agent.stop();
    }
  });

  test("stop() ends the agent PID and removes its socket", async () => {
    const agent = await startAgent();
    assert.equal(processAlive(agent.pid), true);
    assert.equal(existsSync(agent.socketPath), true);
    await agent.stop();
    assert.equal(processAlive(agent.pid), false);
    assert.equal(existsSync(agent.socketPath), false);
  });
});

describe("targets", () => {
  test("deterministicBytes is xorshift32 from the seed, little-endian", () => {
    assert.equal(deterministicBytes(8).toString("hex"), "2120040001060804");
    assert.equal(deterministicBytes(8, 1).toString("hex"), "2120040001060804");
    assert.equal(deterministicBytes(3, 1).toString("hex"), "212004");
    assert.equal(deterministicBytes(0).length, 0);
    assert.notEqual(deterministicBytes(8, 0).toString("hex"), "0000000000000000");
    assert.equal(sha256(Buffer.from("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("the HTTP target streams /bytes/<n> identical to deterministicBytes across chunks, and 404s others", async () => {
    const http = await startHttpTarget();
    try {
      const n = 200_003;
      const response = await fetch(`${http.url}/bytes/${n}?seed=42`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-length"), String(n));
      const body = Buffer.from(await response.arrayBuffer());
      assert.equal(sha256(body), sha256(deterministicBytes(n, 42)));
      assert.equal((await fetch(`${http.url}/nothing`)).status, 404);
      assert.deepEqual(http.requests, [`127.0.0.1:${http.port}`, `127.0.0.1:${http.port}`]);
    } finally {
      await http.stop();
    }
  });

  test("the HTTP target listens on ::1 with a bracketed URL", async (t) => {
    if ((await connectOutcome(1, "::1")) === "EADDRNOTAVAIL") return t.skip("no IPv6 loopback here");
    const http = await startHttpTarget("::1");
    try {
      assert.equal(http.url, `http://[::1]:${http.port}`);
      assert.equal(await (await fetch(`${http.url}/hello`)).text(), "hello from target\n");
    } finally {
      await http.stop();
    }
  });

  test("the echo target echoes everything sent before the client's FIN, then ends", async () => {
    const echo = await startEchoTarget();
    try {
      const socket = connect({ port: echo.port, host: "127.0.0.1" });
      const received = readAll(socket);
      socket.write("first ");
      socket.end("second");
      assert.equal((await received).toString(), "first second");
      assert.equal(echo.connections, 1);
    } finally {
      await echo.stop();
    }
  });

  test("closedPort() is a loopback port that refuses connections", async () => {
    assert.equal(await connectOutcome(await closedPort()), "ECONNREFUSED");
  });
});

describe("run helpers", () => {
  let scripts: string;

  before(async () => {
    scripts = await mkdtemp(join(tmpdir(), "safetunnel-fake-cli-"));
  });

  after(async () => {
    await rm(scripts, { recursive: true, force: true });
  });

  async function fakeCli(name: string, source: string): Promise<string> {
    const path = join(scripts, `${name}.cjs`);
    await writeFile(path, source);
    return path;
  }

  test("cliPath() is dist/safetunnel.cjs under the repository root", () => {
    assert.equal(cliPath(), join(repoRoot(), "dist", "safetunnel.cjs"));
    assert.equal(existsSync(join(repoRoot(), "package.json")), true);
  });

  test("startCli gives the child the chosen HOME, no SSH_AUTH_SOCK, no tty and an empty stdin", async () => {
    const script = await fakeCli(
      "env",
      `let input = "";
       process.stdin.on("data", (c) => (input += c));
       process.stdin.on("end", () => {
         console.log(JSON.stringify({ home: process.env.HOME, sock: process.env.SSH_AUTH_SOCK ?? null, extra: process.env.EXTRA ?? null, tty: Boolean(process.stdin.isTTY), input, args: process.argv.slice(2) }));
       });`,
    );
    const home = await makeHome();
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = "/nonexistent/agent.sock";
    try {
      const plain = await runCli(["-D", "1080"], { script, home: home.home });
      assert.equal(plain.code, 0, plain.stderr);
      assert.deepEqual(JSON.parse(plain.stdout), { home: home.home, sock: null, extra: null, tty: false, input: "", args: ["-D", "1080"] });
      const withAgent = await runCli([], { script, home: home.home, env: { SSH_AUTH_SOCK: "/given.sock", EXTRA: "yes" } });
      assert.deepEqual(JSON.parse(withAgent.stdout), { home: home.home, sock: "/given.sock", extra: "yes", tty: false, input: "", args: [] });
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      await home.cleanup();
    }
  });

  test("startCli without a home uses a fresh empty temp dir and removes it afterwards", async () => {
    const script = await fakeCli("home", `const fs = require("node:fs"); console.log(JSON.stringify({ home: process.env.HOME, entries: fs.readdirSync(process.env.HOME) }));`);
    const result = await runCli([], { script });
    const seen = JSON.parse(result.stdout) as { home: string; entries: string[] };
    assert.notEqual(seen.home, process.env.HOME);
    assert.deepEqual(seen.entries, []);
    assert.equal(existsSync(seen.home), false);
  });

  test("startCli refuses to start when the script has not been built", () => {
    assert.throws(() => startCli([], { script: join(scripts, "missing.cjs") }), /missing\.cjs is missing: run the build first/);
  });

  test("runCli kills a CLI that does not finish in time and rejects with its stderr", async () => {
    const script = await fakeCli("hang", `console.error("still thinking"); setInterval(() => {}, 1000);`);
    await assert.rejects(runCli([], { script, timeoutMs: 1500 }), /did not exit within 1500 ms; stderr: still thinking/);
  });

  test("stop() delivers the chosen signal and reports how the CLI ended", async () => {
    const script = await fakeCli("signal", `process.on("SIGINT", () => process.exit(7)); console.log("ready"); setInterval(() => {}, 1000);`);
    const cli = startCli([], { script });
    await waitFor(() => cli.stdout() === "ready\n", "the fake CLI to start");
    assert.deepEqual(await cli.stop("SIGINT"), { code: 7, signal: null });
    assert.deepEqual(await cli.stop(), { code: 7, signal: null });
  });

  test("waitForListen resolves once the CLI listens", async () => {
    const port = await freePort();
    const script = await fakeCli("listen", `require("node:net").createServer((s) => s.end()).listen(${port}, "127.0.0.1");`);
    const cli = startCli([], { script });
    try {
      await waitForListen(port, "127.0.0.1", cli);
      assert.equal(await connectOutcome(port), "connected");
    } finally {
      await cli.stop();
    }
  });

  test("waitForListen rejects early with the CLI's stderr when it exits first", async () => {
    const script = await fakeCli("fail", `console.error("safetunnel: cannot bind"); process.exit(255);`);
    const cli = startCli([], { script });
    await assert.rejects(waitForListen(await closedPort(), "127.0.0.1", cli), /exited \(code 255, signal null\) before listening.*stderr: safetunnel: cannot bind/);
  });

  test("makeHome writes ~/.ssh/config and known_hosts in a private .ssh and cleanup removes it", async () => {
    const home = await makeHome();
    await home.writeConfig("Host gw\n  Port 2222\n");
    await home.writeKnownHosts("[127.0.0.1]:2222 ssh-ed25519 AAAA\n");
    assert.equal(home.sshDir, join(home.home, ".ssh"));
    assert.equal((await stat(home.sshDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(home.sshDir, "config"))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(home.sshDir, "config"), "utf8"), "Host gw\n  Port 2222\n");
    assert.equal(await readFile(join(home.sshDir, "known_hosts"), "utf8"), "[127.0.0.1]:2222 ssh-ed25519 AAAA\n");
    await home.cleanup();
    assert.equal(existsSync(home.home), false);
  });
});
