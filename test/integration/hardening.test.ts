/**
 * The review's hardening fixes, end to end against the built CLI: ssh_config
 * settings that must not be silently skipped (ProxyCommand, KnownHostsCommand,
 * RevokedHostKeys), private keys others can read, RSA host keys without SHA-1,
 * ConnectTimeout during the banner, server text on the terminal, signals
 * before the tunnel is up, --allow-ip lists, IdentityAgent ${VAR} and time
 * units. A real OpenSSH sshd serves everything it can; an in-process ssh2
 * `Server` stands in only where a server must send what sshd never would
 * (escape sequences in prompts and disconnect reasons), as in
 * fault-injection.test.ts.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import type { Connection, Server as Ssh2Server } from "ssh2";
import { delay, runCommand, within } from "../helpers/child.ts";
import { curlThroughSocks } from "../helpers/curl.ts";
import { assertNoCrash, makeHomeSet, runCli, startCli, waitForExit, waitForListen, type Home, type Running } from "../helpers/run.ts";
import { makeKey, sha256Fingerprint, startAgent, startSshd, type Agent, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { freePort, HELLO, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { assertFetchesHello, assertWorkingTunnel } from "../helpers/tunnel.ts";

const PASSPHRASE = "hardening passphrase";

let scratch: string;
let sshd: Sshd;
let http: HttpTarget;
/** In sshd's authorized_keys. */
let clientKey: KeyPair;
/** Also authorized: the "second good key". */
let otherKey: KeyPair;
/** Authorized and encrypted with PASSPHRASE. */
let lockedKey: KeyPair;
const homes = makeHomeSet();
const running: Running[] = [];
const stoppers: { stop(): Promise<void> }[] = [];

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-hardening-"));
  clientKey = await makeKey(scratch, "client");
  otherKey = await makeKey(scratch, "other");
  lockedKey = await makeKey(scratch, "locked", { passphrase: PASSPHRASE });
  sshd = await startSshd({ authorizedKeys: [clientKey.publicLine, otherKey.publicLine, lockedKey.publicLine] });
  http = await startHttpTarget();
});

after(async () => {
  for (const cli of running) await cli.stop("SIGKILL");
  for (const stopper of stoppers) await stopper.stop();
  await sshd?.stop();
  await http?.stop();
  await homes.cleanup();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

/** A HOME with no keys whose known_hosts trusts `server` (the shared sshd by default), or is empty for null. */
function trustingHome(server: { knownHostsLine(): string } | null = sshd): Promise<Home> {
  return server === null ? homes.trusting() : homes.trusting(server);
}

function start(args: string[], home: Home, env: Record<string, string> = {}): Running {
  const cli = startCli(args, { home: home.home, env });
  running.push(cli);
  return cli;
}

/** `-N -D socksPort -p port ...extra user@127.0.0.1` */
function tunnelArgs(socksPort: number, extra: string[], port = sshd.port): string[] {
  return ["-N", "-D", String(socksPort), "-p", String(port), ...extra, `${sshd.user}@127.0.0.1`];
}

function stderrLines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/** Start the CLI, prove the tunnel carries a fetch, stop it with SIGTERM (exit 0); returns stderr. */
function runWorkingTunnel(args: string[], socksPort: number, home: Home, env: Record<string, string> = {}): Promise<string> {
  return assertWorkingTunnel(start(args, home, env), socksPort, http);
}

/** sshd (LogLevel VERBOSE) logs "Accepted publickey ... ED25519 SHA256:..." for the key that got in. */
async function acceptedBySshd(server: Sshd, keyPair: KeyPair): Promise<boolean> {
  const fingerprint = await sha256Fingerprint(keyPair.publicPath);
  return new RegExp(`Accepted publickey for \\S+ from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${fingerprint.replace(/[+/]/g, "\\$&")}`).test(server.logs());
}

/** A plain TCP server on loopback that accepts, counts and never writes (no SSH banner). */
async function startTcpServer(): Promise<{ port: number; readonly connections: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: NetServer = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const handle = {
    port: (server.address() as { port: number }).port,
    get connections() {
      return connections;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  stoppers.push(handle);
  return handle;
}

async function writeConfig(name: string, lines: string[]): Promise<string> {
  const path = join(scratch, name);
  await writeFile(path, lines.map((line) => `${line}\n`).join(""), { mode: 0o600 });
  return path;
}

describe("ssh_config settings safetunnel cannot honour are refused, not skipped", () => {
  const refusals: [keyword: string, value: string, extra: RegExp | undefined][] = [
    ["ProxyCommand", "nc -X 5 -x 127.0.0.1:9050 %h %p", /ProxyJump/],
    ["KnownHostsCommand", "/bin/echo %H", undefined],
    ["RevokedHostKeys", "/etc/ssh/revoked_keys", undefined],
    // ssh would re-read the config for the canonical name, whose Host block may route elsewhere.
    ["CanonicalizeHostname", "yes", undefined],
    ["CanonicalizeHostname", "always", undefined],
  ];
  for (const [index, [keyword, value, extra]] of refusals.entries()) {
    // "CanonicalizeHostname yes", "... always"; the others are named by keyword alone.
    const setting = refusals.filter(([other]) => other === keyword).length > 1 ? `${keyword} ${value}` : keyword;
    test(`${setting} for the host in an -F config exits 255 with one line naming ${keyword}, the file and its line${extra === undefined ? "" : ", and ProxyJump"}, and connects nowhere`, async () => {
      const standIn = await startTcpServer();
      const config = await writeConfig(`refuse-${index}-${keyword}`, [
        "# a comment, so the setting is not on line 1",
        "Host refused",
        "  HostName 127.0.0.1",
        `  Port ${standIn.port}`,
        `  ${keyword} ${value}`,
      ]);
      const home = await trustingHome();
      // ConnectTimeout: a regression that connects fails in 2 s, not at runCli's 20 s limit.
      const result = await runCli(["-N", "-D", String(await freePort()), "-o", "ConnectTimeout=2", "-F", config, "refused"], { home: home.home });
      assert.equal(result.code, 255, result.stderr);
      const lines = stderrLines(result.stderr);
      assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
      const line = lines[0]!;
      assert.ok(line.includes(keyword), line);
      assert.ok(line.includes(`${config} line 5`), line);
      if (extra !== undefined) assert.match(line, extra);
      assertNoCrash(result.stderr);
      // Nothing was attempted: the stand-in host never saw a TCP connection.
      await delay(200);
      assert.equal(standIn.connections, 0);
    });
  }

  test("ProxyCommand given with -o is refused the same way, without a contradictory 'ignoring it' warning", async () => {
    const standIn = await startTcpServer();
    const home = await trustingHome();
    const result = await runCli(["-N", "-D", String(await freePort()), "-o", "ProxyCommand=nc %h %p", "-p", String(standIn.port), "127.0.0.1"], {
      home: home.home,
    });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
    assert.match(lines[0]!, /ProxyCommand/);
    assert.match(lines[0]!, /ProxyJump/);
    assert.doesNotMatch(result.stderr, /ignoring it/);
    await delay(200);
    assert.equal(standIn.connections, 0);
  });

  test("ProxyCommand none is accepted: the tunnel connects directly and works", async () => {
    const config = await writeConfig("proxycommand-none", [
      "Host direct",
      "  HostName 127.0.0.1",
      `  Port ${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${clientKey.privatePath}`,
      "  ProxyCommand none",
    ]);
    const home = await trustingHome();
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-N", "-D", String(socksPort), "-F", config, "direct"], socksPort, home);
    assert.doesNotMatch(stderr, /ProxyCommand is set|cannot run it/);
  });

  test("CanonicalizeHostname given with -o is refused the same way, without an 'ignoring it' warning", async () => {
    const standIn = await startTcpServer();
    const home = await trustingHome();
    const result = await runCli(["-N", "-D", String(await freePort()), "-o", "CanonicalizeHostname=yes", "-o", "ConnectTimeout=2", "-p", String(standIn.port), "127.0.0.1"], {
      home: home.home,
    });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
    assert.match(lines[0]!, /CanonicalizeHostname/);
    assert.match(lines[0]!, /command line \(-o\)/);
    assert.doesNotMatch(result.stderr, /ignoring it/);
    await delay(200);
    assert.equal(standIn.connections, 0);
  });

  test("CanonicalizeHostname no is accepted without a word: the tunnel connects directly and works", async () => {
    const config = await writeConfig("canonicalize-no", [
      "Host plainname",
      "  HostName 127.0.0.1",
      `  Port ${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${clientKey.privatePath}`,
      "  CanonicalizeHostname no",
    ]);
    const home = await trustingHome();
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-N", "-D", String(socksPort), "-F", config, "plainname"], socksPort, home);
    assert.doesNotMatch(stderr, /Canonicalize|^Warning: /m);
  });

  test("a Match canonical block that sets ProxyJump exits 255 with one line naming Match canonical, ProxyJump, the file and its line, and connects nowhere", async () => {
    const standIn = await startTcpServer();
    const config = await writeConfig("match-canonical-proxyjump", [
      "Host routed",
      "  HostName 127.0.0.1",
      `  Port ${standIn.port}`,
      "Match canonical host 127.0.0.1",
      "  ProxyJump bastion.invalid",
    ]);
    const home = await trustingHome();
    const result = await runCli(["-N", "-D", String(await freePort()), "-o", "ConnectTimeout=2", "-F", config, "routed"], { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
    assert.ok(lines[0]!.includes(`${config} line 4`), lines[0]);
    assert.ok(lines[0]!.includes("Match canonical"), lines[0]);
    assert.match(lines[0]!, /proxyjump/i);
    assertNoCrash(result.stderr);
    await delay(200);
    assert.equal(standIn.connections, 0);
  });

  test("a Match final all block with only SendEnv LANG (a distribution's default) draws no warning at all, and the tunnel works", async () => {
    const config = await writeConfig("match-final-sendenv", [
      "Host finalpass",
      "  HostName 127.0.0.1",
      `  Port ${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${clientKey.privatePath}`,
      "Match final all",
      "  SendEnv LANG",
    ]);
    const home = await trustingHome();
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-N", "-D", String(socksPort), "-F", config, "finalpass"], socksPort, home);
    assert.doesNotMatch(stderr, /Match|SendEnv|^Warning: /m);
  });

  test("Ciphers in the config draws one warning naming it, the file and the line, and the connection still works", async () => {
    const config = await writeConfig("ciphers", [
      "Host ciphered",
      "  HostName 127.0.0.1",
      `  Port ${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${clientKey.privatePath}`,
      "  Ciphers aes128-ctr",
    ]);
    const home = await trustingHome();
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-N", "-D", String(socksPort), "-F", config, "ciphered"], socksPort, home);
    const warnings = stderrLines(stderr).filter((line) => line.includes("Ciphers"));
    assert.deepEqual(warnings, [`Warning: Ciphers (${config} line 6) is not supported; safetunnel uses its own modern defaults for ciphered.`]);
  });
});

describe("a private key file others can read (mode 0644, owned by the user running safetunnel)", () => {
  let openKey: string;

  before(async () => {
    // The check applies to files the user owns; these tests create it as whoever runs them.
    openKey = join(scratch, "group_readable_key");
    await copyFile(clientKey.privatePath, openKey);
    await chmod(openKey, 0o644);
  });

  function assertUnprotectedWarning(stderr: string): void {
    const line = stderrLines(stderr).find((candidate) => candidate.includes("UNPROTECTED PRIVATE KEY FILE"));
    assert.ok(line !== undefined, `no UNPROTECTED PRIVATE KEY FILE warning:\n${stderr}`);
    assert.match(line, /^Warning: /);
    assert.ok(line.includes(openKey), line);
    assert.ok(line.includes("0644"), line);
    assert.ok(line.includes(`chmod 600 ${openKey}`), line);
  }

  test("as the only -i key: warns UNPROTECTED PRIVATE KEY FILE with the path and 'chmod 600', does not use it, exits 255 Permission denied", async () => {
    const home = await trustingHome();
    const before = sshd.logs().length;
    const result = await runCli(tunnelArgs(await freePort(), ["-i", openKey]), { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    assertUnprotectedWarning(result.stderr);
    assert.ok(result.stderr.includes(`${sshd.user}@127.0.0.1: Permission denied (publickey)`), result.stderr);
    assert.doesNotMatch(sshd.logs().slice(before), /Accepted publickey/);
    assertNoCrash(result.stderr);
  });

  test("followed by a good -i key: warns about the first, logs in with the second", async () => {
    const home = await trustingHome();
    const socksPort = await freePort();
    const before = sshd.logs().length;
    const stderr = await runWorkingTunnel(tunnelArgs(socksPort, ["-i", openKey, "-i", otherKey.privatePath]), socksPort, home);
    assertUnprotectedWarning(stderr);
    const logs = sshd.logs().slice(before);
    const otherFingerprint = await sha256Fingerprint(otherKey.publicPath);
    const openFingerprint = await sha256Fingerprint(clientKey.publicPath);
    assert.ok(logs.includes(`ED25519 ${otherFingerprint}`), logs);
    assert.ok(!logs.includes(openFingerprint), `sshd saw the unprotected key:\n${logs}`);
    assert.equal(await acceptedBySshd(sshd, otherKey), true);
  });
});

describe("host key algorithms", () => {
  let rsaSshd: Sshd;
  let sha1Sshd: Sshd;

  before(async () => {
    rsaSshd = await startSshd({ authorizedKeys: [clientKey.publicLine], hostKeyTypes: ["rsa"] });
    stoppers.push(rsaSshd);
    sha1Sshd = await startSshd({ authorizedKeys: [clientKey.publicLine], hostKeyTypes: ["rsa"], extraConfig: ["HostKeyAlgorithms ssh-rsa"] });
    stoppers.push(sha1Sshd);
  });

  test("an sshd with only an RSA host key is accepted (rsa-sha2), the key is added as an ssh-rsa line, and that line is used next time", async () => {
    const home = await trustingHome(null);
    const rsaBlob = rsaSshd.hostKeys[0]!.publicLine.split(" ")[1]!;
    let socksPort = await freePort();
    const firstStderr = await runWorkingTunnel(
      tunnelArgs(socksPort, ["-i", clientKey.privatePath, "-o", "StrictHostKeyChecking=accept-new"], rsaSshd.port),
      socksPort,
      home,
    );
    assert.match(firstStderr, new RegExp(`Permanently added '\\[127\\.0\\.0\\.1\\]:${rsaSshd.port}' \\(RSA\\)`));
    const knownHosts = await readFile(join(home.sshDir, "known_hosts"), "utf8");
    const lines = knownHosts.trim().split("\n");
    assert.equal(lines.length, 1, knownHosts);
    assert.ok(lines[0]!.endsWith(` ssh-rsa ${rsaBlob}`), knownHosts);
    const found = await runCommand("ssh-keygen", ["-F", `[127.0.0.1]:${rsaSshd.port}`, "-f", join(home.sshDir, "known_hosts")]);
    assert.equal(found.code, 0, found.stderr);

    // Second run with strict checking: only that ssh-rsa line can make it pass.
    socksPort = await freePort();
    const secondStderr = await runWorkingTunnel(
      tunnelArgs(socksPort, ["-i", clientKey.privatePath, "-o", "StrictHostKeyChecking=yes"], rsaSshd.port),
      socksPort,
      home,
    );
    assert.doesNotMatch(secondStderr, /Permanently added|Host key verification failed/);
    assert.equal(await readFile(join(home.sshDir, "known_hosts"), "utf8"), knownHosts);
    // sshd logs the signature algorithm it used for the host key only at DEBUG; the client
    // offered no "ssh-rsa" (SHA-1), so the handshake can only have used rsa-sha2-512/256.
  });

  test("a known_hosts ssh-rsa line written by hand matches the RSA host key under StrictHostKeyChecking=yes", async () => {
    const home = await trustingHome(rsaSshd);
    assert.match(rsaSshd.knownHostsLine(), / ssh-rsa /);
    const socksPort = await freePort();
    await runWorkingTunnel(tunnelArgs(socksPort, ["-i", clientKey.privatePath, "-o", "StrictHostKeyChecking=yes"], rsaSshd.port), socksPort, home);
  });

  test("an sshd that offers only ssh-rsa (SHA-1) host key signatures is refused: exit 255, one line about the host key algorithm negotiation, every time", async () => {
    const home = await trustingHome(sha1Sshd);
    // Twenty tries: the server hangs up as soon as negotiation fails, and which of the
    // two failures the client sees first must not change what the user is told.
    for (let attempt = 1; attempt <= 20; attempt++) {
      const result = await runCli(tunnelArgs(await freePort(), ["-i", clientKey.privatePath], sha1Sshd.port), { home: home.home });
      assert.equal(result.code, 255, result.stderr);
      const lines = stderrLines(result.stderr);
      assert.equal(lines.length, 1, `attempt ${attempt}: expected one line, got:\n${result.stderr}`);
      assert.ok(lines[0]!.includes(`127.0.0.1 port ${sha1Sshd.port}`), lines[0]);
      assert.match(lines[0]!, /negotiat/i, `attempt ${attempt}`);
      assert.match(lines[0]!, /host key/i, `attempt ${attempt}`);
      assertNoCrash(result.stderr);
    }
    assert.match(sha1Sshd.logs(), /no matching host key type found/);
  });
});

describe("ConnectTimeout covers the SSH banner", () => {
  test("-o ConnectTimeout=2 against a server that accepts and never sends a banner exits 255 'timed out during banner exchange'", async () => {
    const silent = await startTcpServer();
    const home = await trustingHome(null);
    const cli = start(tunnelArgs(await freePort(), ["-o", "ConnectTimeout=2", "-o", "BatchMode=yes"], silent.port), home);
    const status = await within(cli.exited, 15_000);
    assert.ok(status !== undefined, `still waiting after 15 s; stderr:\n${cli.stderr()}`);
    assert.equal(status.code, 255, cli.stderr());
    assert.equal(silent.connections, 1);
    const lines = stderrLines(cli.stderr());
    assert.equal(lines.length, 1, cli.stderr());
    assert.ok(lines[0]!.includes(`Connection to 127.0.0.1 port ${silent.port} timed out during banner exchange`), lines[0]);
    assertNoCrash(cli.stderr());
  });
});

/** ssh2 is CommonJS; Node's ESM loader only sees `module.exports` as the default export. */
async function loadServerClass(): Promise<typeof Ssh2Server> {
  const mod = (await import("ssh2")) as unknown as { default: typeof import("ssh2") };
  return mod.default.Server;
}

/**
 * Send SSH_MSG_DISCONNECT with our own description: ssh2's `disconnect()`
 * always sends an empty one. Built like Protocol.disconnect(), with the text.
 */
function disconnectWithText(conn: Connection, reason: number, text: string): void {
  type Writer = { allocStartKEX: number; alloc(size: number, force: boolean): Buffer; finalize(packet: Buffer, force: boolean): Buffer };
  const protocol = (conn as unknown as { _protocol: { _packetRW: { write: Writer } } })._protocol;
  const { sendPacket } = createRequire(import.meta.url)("ssh2/lib/protocol/utils.js") as { sendPacket(proto: unknown, packet: Buffer, bypass: boolean): void };
  const description = Buffer.from(text, "utf8");
  const writer = protocol._packetRW.write;
  const p = writer.allocStartKEX;
  const packet = writer.alloc(1 + 4 + 4 + description.length + 4, true);
  packet[p] = 1; // SSH_MSG_DISCONNECT
  packet.writeUInt32BE(reason, p + 1);
  packet.writeUInt32BE(description.length, p + 5);
  description.copy(packet, p + 9);
  packet.writeUInt32BE(0, p + 9 + description.length); // language tag
  sendPacket(protocol, writer.finalize(packet, true), true);
  (conn as unknown as { _sock: Socket })._sock.end();
}

describe("text from the server reaches the terminal and askpass with control characters made visible", () => {
  const PROMPT = "\x1b[2JVerification code: ";
  const INSTRUCTIONS = "Read this\x1b]0;owned\x07 carefully";
  const GOODBYE = "Too many attempts\x1b[31m\x07\x9b2J, bye";
  let serverPort: number;
  let knownHostsLine: string;

  before(async () => {
    const hostKey = await makeKey(scratch, "fault_host");
    const Server = await loadServerClass();
    const sockets = new Set<Socket>();
    const server = new Server({ hostKeys: [await readFile(hostKey.privatePath)] }, (conn) => {
      const socket = (conn as unknown as { _sock: Socket })._sock;
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      conn.on("error", () => {});
      conn.on("authentication", (ctx) => {
        if (ctx.method !== "keyboard-interactive") {
          ctx.reject(["keyboard-interactive"]);
          return;
        }
        ctx.prompt([{ prompt: PROMPT, echo: false }], "Title\x1b[1m", INSTRUCTIONS, () => {
          // 2 = SSH_DISCONNECT_PROTOCOL_ERROR: the client reports the description.
          disconnectWithText(conn, 2, GOODBYE);
        });
      });
    });
    server.on("error", () => {});
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    serverPort = (server.address() as { port: number }).port;
    const [algorithm, blob] = hostKey.publicLine.split(" ");
    knownHostsLine = `[127.0.0.1]:${serverPort} ${algorithm} ${blob}`;
    stoppers.push({
      async stop() {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    });
  });

  test("a keyboard-interactive prompt with \\x1b[2J reaches askpass as the visible text \\x1b[2J, and a disconnect reason with control characters reaches stderr escaped", async () => {
    const home = await homes.make();
    await home.writeKnownHosts(`${knownHostsLine}\n`);
    const promptLog = join(home.home, "prompt");
    const askpass = join(home.home, "askpass.sh");
    await writeFile(askpass, `#!/bin/sh\nprintf '%s' "$1" > '${promptLog}'\necho 123456\n`, { mode: 0o700 });
    await chmod(askpass, 0o700);
    const cli = start(["-N", "-D", String(await freePort()), "-p", String(serverPort), "faultuser@127.0.0.1"], home, {
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
    });
    assert.equal(await waitForExit(cli), 255, cli.stderr());

    const seen = await readFile(promptLog);
    assert.equal(seen.includes(0x1b), false, `askpass got a raw ESC: ${JSON.stringify(seen.toString())}`);
    assert.equal(seen.toString("utf8"), "(faultuser@127.0.0.1) \\x1b[2JVerification code: ");

    const stderr = cli.stderr();
    assert.equal(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(stderr), false, `a raw control character on stderr: ${JSON.stringify(stderr)}`);
    // OpenSSH shows the keyboard-interactive name and instructions before the prompt, through strnvis().
    const lines = stderrLines(stderr);
    assert.deepEqual(lines.slice(0, 2), ["Title\\x1b[1m", "Read this\\x1b]0;owned\\x07 carefully"], JSON.stringify(stderr));
    assert.equal(lines.length, 3, JSON.stringify(stderr));
    assert.ok(lines[2]!.startsWith("safetunnel: "), lines[2]);
    assert.ok(lines[2]!.includes(`127.0.0.1 port ${serverPort}`), lines[2]);
    assert.ok(lines[2]!.endsWith(": Too many attempts\\x1b[31m\\x07\\x9b2J, bye"), JSON.stringify(lines[2]));
    assertNoCrash(stderr);
  });
});

describe("a signal while waiting for a passphrase, before the tunnel is up", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} exits 255 with 'interrupted by ${signal} before the tunnel was up' and leaves no askpass child running`, async () => {
      const home = await trustingHome();
      const pidFile = join(home.home, "askpass.pid");
      const askpass = join(home.home, "slow-askpass.sh");
      await writeFile(askpass, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`, { mode: 0o700 });
      await chmod(askpass, 0o700);
      const socksPort = await freePort();
      const cli = start(tunnelArgs(socksPort, ["-i", lockedKey.privatePath]), home, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force" });
      let sleeper: number | undefined;
      try {
        for (let i = 0; i < 200 && sleeper === undefined; i++) {
          const text = existsSync(pidFile) ? (await readFile(pidFile, "utf8")).trim() : "";
          if (/^\d+$/.test(text)) sleeper = Number(text);
          else await delay(50);
        }
        assert.ok(sleeper !== undefined, `the askpass program never ran; stderr:\n${cli.stderr()}`);
        const status = await cli.stop(signal);
        assert.equal(status.code, 255, cli.stderr());
        assert.equal(status.signal, null);
        assert.ok(cli.stderr().includes(`interrupted by ${signal} before the tunnel was up`), cli.stderr());
        assertNoCrash(cli.stderr());
        await assert.rejects(waitForListen(socksPort, "127.0.0.1", undefined, 300));
        // The askpass program must not outlive safetunnel.
        let alive = true;
        for (let i = 0; i < 40 && alive; i++) {
          alive = isRunning(sleeper);
          if (alive) await delay(50);
        }
        assert.equal(alive, false, `askpass (pid ${sleeper}) is still running after safetunnel exited`);
      } finally {
        if (sleeper !== undefined && isRunning(sleeper)) {
          try {
            process.kill(sleeper, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      }
    });
  }
});

/** True while `pid` exists and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Field 3 of /proc/PID/stat, after the ")" that ends the command name: the state.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return true;
  }
}

/** SOCKS5 CONNECT to an IPv4 literal (ATYP 1); every byte the proxy sends until it closes, or the first 10 when it stays open. */
async function socks5ConnectIPv4(proxyPort: number, address: string, port: number): Promise<{ reply: Buffer; socket: Socket; rest(): Promise<Buffer> }> {
  const socket = connect({ port: proxyPort, host: "127.0.0.1" });
  await Promise.race([
    once(socket, "connect"),
    once(socket, "error").then(([err]) => {
      throw err;
    }),
  ]);
  let data = Buffer.alloc(0);
  let ended = false;
  socket.on("data", (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
  socket.on("end", () => (ended = true));
  socket.on("close", () => (ended = true));
  socket.on("error", () => (ended = true));
  const waitFor = async (condition: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 200 && !condition(); i++) await delay(50);
    assert.ok(condition(), `timed out waiting for ${what}; got ${data.toString("hex")}`);
  };
  socket.write(Buffer.from([0x05, 0x01, 0x00]));
  await waitFor(() => data.length >= 2 || ended, "the method choice");
  assert.deepEqual(data.subarray(0, 2), Buffer.from([0x05, 0x00]));
  data = data.subarray(2);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  socket.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x01, ...address.split(".").map(Number)]), portBytes]));
  await waitFor(() => data.length >= 10 || ended, "the CONNECT reply");
  const reply = data.subarray(0, 10);
  data = data.subarray(10);
  return {
    reply,
    socket,
    async rest() {
      await waitFor(() => ended, "the end of the stream");
      return data;
    },
  };
}

describe("--allow-ip given twice and as a comma list", () => {
  let second: { port: number; stop(): Promise<void> };

  before(async () => {
    // A target on 127.0.0.2 (all of 127/8 is loopback on Linux): says hello and closes.
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      socket.end("hello from 127.0.0.2\n");
    });
    server.listen(0, "127.0.0.2");
    await once(server, "listening");
    second = {
      port: (server.address() as { port: number }).port,
      async stop() {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    stoppers.push(second);
  });

  const forms: [string, string[]][] = [
    ["--allow-ip twice", ["--allow-ip", "127.0.0.1", "--allow-ip", "127.0.0.2/32"]],
    ["--allow-ip with a comma list", ["--allow-ip", "127.0.0.1/32,127.0.0.2"]],
  ];
  for (const [what, flags] of forms) {
    test(`${what} lets both listed addresses through, logs each, and still refuses 127.0.0.3 with 0x02`, async () => {
      const home = await trustingHome();
      const socksPort = await freePort();
      const cli = start(tunnelArgs(socksPort, [...flags, "-i", clientKey.privatePath]), home);
      try {
        await waitForListen(socksPort, "127.0.0.1", cli);
        const first = await curlThroughSocks("--socks5", `127.0.0.1:${socksPort}`, `${http.url}/hello`);
        assert.equal(first.code, 0, `${first.stderr}; safetunnel: ${cli.stderr()}`);
        assert.equal(first.stdout.toString(), HELLO);

        const viaSecond = await socks5ConnectIPv4(socksPort, "127.0.0.2", second.port);
        try {
          assert.deepEqual(viaSecond.reply, Buffer.from([0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
          assert.equal((await viaSecond.rest()).toString(), "hello from 127.0.0.2\n");
        } finally {
          viaSecond.socket.destroy();
        }

        const refused = await socks5ConnectIPv4(socksPort, "127.0.0.3", second.port);
        try {
          assert.deepEqual(refused.reply, Buffer.from([0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
          assert.deepEqual(await refused.rest(), Buffer.alloc(0));
        } finally {
          refused.socket.destroy();
        }
      } finally {
        const status = await cli.stop("SIGTERM");
        assert.equal(status.code, 0, cli.stderr());
      }
      const lines = stderrLines(cli.stderr());
      assert.ok(lines.some((line) => line.startsWith(`Allowing IP destination 127.0.0.1:${http.port} for 127.0.0.1:`) && line.includes("--allow-ip 127.0.0.1/32")), cli.stderr());
      assert.ok(lines.some((line) => line.startsWith(`Allowing IP destination 127.0.0.2:${second.port} for 127.0.0.1:`) && line.includes("--allow-ip 127.0.0.2/32")), cli.stderr());
      assert.ok(lines.some((line) => line.startsWith(`Warning: Refused SOCKS5 CONNECT to 127.0.0.3:${second.port}`)), cli.stderr());
    });
  }
});

describe("IdentityAgent ${VAR}", () => {
  let agent: Agent;

  before(async () => {
    agent = await startAgent();
    stoppers.push(agent);
    await agent.add(otherKey);
  });

  async function agentConfig(): Promise<string> {
    return writeConfig("identity-agent", [
      "Host viaagent",
      "  HostName 127.0.0.1",
      `  Port ${sshd.port}`,
      `  User ${sshd.user}`,
      "  IdentityAgent ${SAFETUNNEL_TEST_AGENT}",
    ]);
  }

  test("with the variable set to an ssh-agent socket, the agent's key logs in", async () => {
    const config = await agentConfig();
    const home = await trustingHome();
    const socksPort = await freePort();
    const before = sshd.logs().length;
    await runWorkingTunnel(["-N", "-D", String(socksPort), "-F", config, "viaagent"], socksPort, home, { SAFETUNNEL_TEST_AGENT: agent.socketPath });
    const fingerprint = await sha256Fingerprint(otherKey.publicPath);
    assert.match(sshd.logs().slice(before), new RegExp(`Accepted publickey for \\S+ from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${fingerprint.replace(/[+/]/g, "\\$&")}`));
  });

  test("with the variable unset, exits 255 naming the variable", async () => {
    const config = await agentConfig();
    const home = await trustingHome();
    const result = await runCli(["-N", "-D", String(await freePort()), "-F", config, "viaagent"], { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /IdentityAgent/);
    assert.match(lines[0]!, /SAFETUNNEL_TEST_AGENT/);
    assert.match(lines[0]!, /not set/);
    assertNoCrash(result.stderr);
  });
});

describe("time values take OpenSSH's units", () => {
  test("-o ServerAliveInterval=1s -o ServerAliveCountMax=1 is accepted, sends a keepalive every second, and the tunnel stays up", async () => {
    // sshd logs each keepalive@openssh.com global request at DEBUG1.
    const debugSshd = await startSshd({ authorizedKeys: [clientKey.publicLine], extraConfig: ["LogLevel DEBUG1"] });
    stoppers.push(debugSshd);
    const home = await trustingHome(debugSshd);
    const socksPort = await freePort();
    const args = tunnelArgs(socksPort, ["-i", clientKey.privatePath, "-o", "ServerAliveInterval=1s", "-o", "ServerAliveCountMax=1", "-o", "ConnectTimeout=1m"], debugSshd.port);
    const cli = start(args, home);
    const keepalives = (): number => debugSshd.logs().split("\n").filter((line) => /global_request: rtype keepalive@openssh\.com/.test(line)).length;
    try {
      await waitForListen(socksPort, "127.0.0.1", cli);
      // Bounded: "1s" read as 1000 s (or not at all) would never get here.
      for (let i = 0; i < 200 && keepalives() < 3; i++) await delay(50);
      assert.ok(keepalives() >= 3, `sshd saw ${keepalives()} keepalives; sshd log:\n${debugSshd.logs().slice(-2000)}`);
      assert.equal(await within(cli.exited, 0), undefined, `safetunnel exited; stderr:\n${cli.stderr()}`);
      await assertFetchesHello(cli, socksPort, http);
    } finally {
      const status = await cli.stop("SIGTERM");
      assert.equal(status.code, 0, cli.stderr());
    }
    assert.doesNotMatch(cli.stderr(), /Bad value|Warning/);
  });

  test("-o ConnectTimeout=soon exits 255 with \"Bad value 'soon'\"", async () => {
    const home = await trustingHome();
    const result = await runCli(tunnelArgs(await freePort(), ["-o", "ConnectTimeout=soon"]), { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.ok(lines[0]!.includes("Bad value 'soon'"), lines[0]);
    assert.match(lines[0]!, /ConnectTimeout/i);
  });
});

describe("a huge value is echoed cut short, not whole", () => {
  /**
   * One line on stderr, exit 255, the value shown as its start and its length.
   * 1 MB cannot go through argv (Linux caps one argument at 128 KiB,
   * MAX_ARG_STRLEN), so -o carries 100,000 characters and a config file 1 MiB.
   */
  function assertCutShort(result: { code: number | null; stderr: string }, length: number): void {
    assert.equal(result.code, 255, result.stderr.slice(0, 2000));
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr.slice(0, 2000));
    assert.ok(Buffer.byteLength(result.stderr) < 1024, `stderr is ${Buffer.byteLength(result.stderr)} bytes: ${result.stderr.slice(0, 2000)}`);
    // echoValue: 199 characters, an ellipsis, the closing quote if any, the length.
    assert.match(lines[0]!, new RegExp(`a{199}…['"]? \\(${length} characters\\)`));
    assert.doesNotMatch(lines[0]!, /a{200}/);
  }

  test("-o HostName= with 100,000 characters exits 255 with one line of under 1 KB that gives the start and the length", async () => {
    const home = await trustingHome(null);
    const result = await runCli(["-o", `HostName=${"a".repeat(100_000)}`, "-D", "1", "x"], { home: home.home });
    assertCutShort(result, 100_000);
    assert.match(result.stderr, /^safetunnel: connect to host a+… \(100000 characters\) port 22: /);
  });

  test("a HostName of 1 MiB in a config file exits 255 the same way", async () => {
    const home = await trustingHome(null);
    const config = await writeConfig("huge-hostname.conf", ["Host x", `  HostName ${"a".repeat(1_048_576)}`]);
    assertCutShort(await runCli(["-F", config, "-D", "1", "x"], { home: home.home }), 1_048_576);
  });

  test("a -D spec and an unknown -o option of 100,000 characters are cut the same way", async () => {
    const home = await trustingHome(null);
    assertCutShort(await runCli(["-D", "a".repeat(100_000), "x"], { home: home.home }), 100_000);
    assertCutShort(await runCli(["-o", "a".repeat(100_000), "-D", "1", "x"], { home: home.home }), 100_000);
  });
});
