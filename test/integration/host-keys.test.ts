/**
 * Host key verification end to end: the built CLI against a real sshd, with
 * known_hosts files written the way OpenSSH writes them (plain, hashed with
 * `ssh-keygen -H`, `@revoked`) and StrictHostKeyChecking in each of its modes.
 *
 * Debian's /etc/ssh/ssh_config sets `HashKnownHosts yes`, which (first value
 * wins) would decide the style of appended lines; the tests that pin that
 * style pass `-F` with a config of their own so the system file is not read.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { writeAskpass } from "../helpers/askpass.ts";
import { runCommand } from "../helpers/child.ts";
import { makeHomeSet, runCli, startCli, waitForListen, type Home, type Running } from "../helpers/run.ts";
import { connectOutcome } from "../helpers/sockets.ts";
import { makeKey, sha256Fingerprint as keygenFingerprint, startSshd, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { assertFetchesHello, assertWorkingTunnel } from "../helpers/tunnel.ts";

let scratch: string;
let clientKey: KeyPair;
let impostor: KeyPair;
let sshd: Sshd;
let http: HttpTarget;
const homes = makeHomeSet();

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-host-keys-"));
  clientKey = await makeKey(scratch, "client");
  impostor = await makeKey(scratch, "impostor-host-key");
  sshd = await startSshd({ authorizedKeys: [clientKey.publicLine] });
  http = await startHttpTarget();
});

after(async () => {
  await sshd?.stop();
  await http?.stop();
  await homes.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

/** `[127.0.0.1]:PORT`, the name known_hosts holds for the test sshd. */
function hostName(): string {
  return `[127.0.0.1]:${sshd.port}`;
}

/** "ssh-ed25519 AAAA..." without the comment. */
function keyField(key: KeyPair): string {
  return key.publicLine.split(" ").slice(0, 2).join(" ");
}

/** ssh-keygen's SHA256 fingerprint, checked to have the form OpenSSH prints. */
async function sha256Fingerprint(publicPath: string): Promise<string> {
  const fingerprint = await keygenFingerprint(publicPath);
  assert.match(fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  return fingerprint;
}

/** The usual CLI arguments: -D port, the client key, the sshd's port and user, plus `extra`. */
function tunnelArgs(socksPort: number, extra: string[] = []): string[] {
  return ["-N", "-D", String(socksPort), "-i", clientKey.privatePath, "-p", String(sshd.port), ...extra, `${sshd.user}@127.0.0.1`];
}

/** The -D port accepts and a `--socks5-hostname` fetch through it reaches the HTTP target. */
async function assertTunnelWorks(cli: Running, socksPort: number): Promise<void> {
  await waitForListen(socksPort, "127.0.0.1", cli);
  await assertFetchesHello(cli, socksPort, http);
}

/** Run a tunnel (tunnelArgs plus `extra`) that must work, then stop it with SIGTERM; returns its stderr. */
async function runWorkingTunnel(extra: string[], options: { home: string; env?: Record<string, string> }): Promise<string> {
  const socksPort = await freePort();
  return assertWorkingTunnel(startCli(tunnelArgs(socksPort, extra), options), socksPort, http);
}

describe("a changed host key", () => {
  async function assertChangedKeyRefused(home: Home, extraArgs: string[]): Promise<void> {
    const knownHosts = join(home.sshDir, "known_hosts");
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort, extraArgs), { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!/);
    assert.ok(result.stderr.includes(`${knownHosts}:1`), result.stderr);
    const served = await sha256Fingerprint(sshd.hostKeys[0]!.publicPath);
    const recorded = await sha256Fingerprint(impostor.publicPath);
    assert.ok(result.stderr.includes(`The fingerprint for the ED25519 key sent by the remote host is\n${served}.\n`), result.stderr);
    assert.ok(result.stderr.includes(`The fingerprint of the ED25519 key recorded for this host is\n${recorded}.\n`), result.stderr);
    // Debian's OpenSSH 9.2 prints these three lines, byte for byte, against the same sshd and file.
    assert.ok(result.stderr.includes(`\nOffending ED25519 key in ${knownHosts}:1\n  remove with:\n  ssh-keygen -f "${knownHosts}" -R "${hostName()}"\n`), result.stderr);
    assert.ok(result.stderr.includes(`Host key for ${hostName()} has changed`), result.stderr);
    assert.doesNotMatch(result.stderr, /SOCKS and HTTP proxy listening/);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  }

  test("is refused with exit 255, OpenSSH's warning naming file:line and both SHA256 fingerprints, and the -D port never listens", async () => {
    const home = await homes.make();
    await home.writeKnownHosts(`${hostName()} ${keyField(impostor)}\n`);
    await assertChangedKeyRefused(home, []);
  });

  test("is refused even with -o StrictHostKeyChecking=no", async () => {
    const home = await homes.make();
    await home.writeKnownHosts(`${hostName()} ${keyField(impostor)}\n`);
    await assertChangedKeyRefused(home, ["-o", "StrictHostKeyChecking=no"]);
  });

  test("is refused with -o StrictHostKeyChecking=accept-new, and known_hosts is left as it was", async () => {
    const home = await homes.make();
    const original = `${hostName()} ${keyField(impostor)}\n`;
    await home.writeKnownHosts(original);
    await assertChangedKeyRefused(home, ["-o", "StrictHostKeyChecking=accept-new"]);
    assert.equal(await readFile(join(home.sshDir, "known_hosts"), "utf8"), original);
  });

  test("prints an ssh-keygen -R command that, run by a shell, removes the old key so that accept-new then records the new one", async () => {
    const home = await homes.make();
    const knownHosts = join(home.sshDir, "known_hosts");
    await home.writeKnownHosts(`other.example ${keyField(impostor)}\n${hostName()} ${keyField(impostor)}\n`);
    const refused = await runCli(tunnelArgs(await freePort()), { home: home.home });
    assert.equal(refused.code, 255, refused.stderr);
    const lines = refused.stderr.split("\n");
    const hint = lines[lines.indexOf("  remove with:") + 1] ?? "";
    assert.equal(hint, `  ssh-keygen -f "${knownHosts}" -R "${hostName()}"`);

    const removed = await runCommand("sh", ["-c", hint]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await readFile(knownHosts, "utf8"), `other.example ${keyField(impostor)}\n`);

    const stderr = await runWorkingTunnel(["-o", "StrictHostKeyChecking=accept-new"], { home: home.home });
    assert.ok(stderr.includes(`Permanently added '${hostName()}' (ED25519) to the list of known hosts.`), stderr);
  });

  test("is detected in a known_hosts file hashed with ssh-keygen -H", async () => {
    const home = await homes.make();
    const knownHosts = join(home.sshDir, "known_hosts");
    await home.writeKnownHosts(`${hostName()} ${keyField(impostor)}\n`);
    const hashed = await runCommand("ssh-keygen", ["-H", "-f", knownHosts]);
    assert.equal(hashed.code, 0, hashed.stderr);
    const text = await readFile(knownHosts, "utf8");
    assert.match(text, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 AAAA\S+\n$/);
    await assertChangedKeyRefused(home, []);
  });
});

test("a known_hosts entry listing several names (comma list) matches the [127.0.0.1]:PORT among them", async () => {
  const home = await homes.make();
  await home.writeKnownHosts(`[localhost]:${sshd.port},${hostName()},gateway.example ${keyField(sshd.hostKeys[0]!)}\n`);
  const stderr = await runWorkingTunnel(["-o", "StrictHostKeyChecking=yes"], { home: home.home });
  assert.doesNotMatch(stderr, /Permanently added|Host key verification failed/);
});

test("a host key marked @revoked is refused with exit 255", async () => {
  const home = await homes.make();
  await home.writeKnownHosts(`@revoked ${hostName()} ${keyField(sshd.hostKeys[0]!)}\n`);
  const socksPort = await freePort();
  const result = await runCli(tunnelArgs(socksPort), { home: home.home });
  assert.equal(result.code, 255, result.stderr);
  assert.match(result.stderr, /revoked/);
  assert.ok(result.stderr.includes(`${join(home.sshDir, "known_hosts")}:1`), result.stderr);
  assert.doesNotMatch(result.stderr, /SOCKS and HTTP proxy listening/);
  assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
});

describe("an unknown host key", () => {
  test("is refused with StrictHostKeyChecking=yes, saying strict checking was requested", async () => {
    const home = await homes.make();
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort, ["-o", "StrictHostKeyChecking=yes"]), { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /you have requested strict checking/);
    assert.match(result.stderr, /Host key verification failed/);
    assert.equal(existsSync(join(home.sshDir, "known_hosts")), false);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });

  test("is refused under BatchMode=yes with the default ask, without running the askpass program", async () => {
    const home = await homes.make();
    const askpass = await writeAskpass(scratch, "batch-hostkey", "yes");
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort, ["-o", "BatchMode=yes"]), {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /Host key verification failed/);
    assert.equal(existsSync(askpass.log), false, "the askpass program ran");
    assert.equal(existsSync(join(home.sshDir, "known_hosts")), false);
  });

  test("with accept-new is added as one plain [127.0.0.1]:PORT line to a plain known_hosts, and the next run is silent", async () => {
    const home = await homes.make();
    const config = join(home.sshDir, "config");
    await home.writeConfig("");
    const knownHosts = join(home.sshDir, "known_hosts");
    const existing = `other.example ${keyField(impostor)}\n`;
    await home.writeKnownHosts(existing);
    const args = ["-F", config, "-o", "StrictHostKeyChecking=accept-new"];

    const first = await runWorkingTunnel(args, { home: home.home });
    assert.ok(first.includes(`Permanently added '${hostName()}' (ED25519) to the list of known hosts.`), first);
    const afterFirst = await readFile(knownHosts, "utf8");
    assert.equal(afterFirst, `${existing}${hostName()} ${keyField(sshd.hostKeys[0]!)}\n`);

    const second = await runWorkingTunnel(args, { home: home.home });
    assert.doesNotMatch(second, /Permanently added|authenticity/);
    assert.equal(await readFile(knownHosts, "utf8"), afterFirst);
  });

  test("with accept-new is added hashed (|1|) to a hashed known_hosts, where ssh-keygen -F finds it", async () => {
    const home = await homes.make();
    const config = join(home.sshDir, "config");
    await home.writeConfig("");
    const knownHosts = join(home.sshDir, "known_hosts");
    await home.writeKnownHosts(`other.example ${keyField(impostor)}\n`);
    const hashing = await runCommand("ssh-keygen", ["-H", "-f", knownHosts]);
    assert.equal(hashing.code, 0, hashing.stderr);
    const existing = await readFile(knownHosts, "utf8");
    const args = ["-F", config, "-o", "StrictHostKeyChecking=accept-new"];

    const first = await runWorkingTunnel(args, { home: home.home });
    assert.ok(first.includes(`Permanently added '${hostName()}' (ED25519) to the list of known hosts.`), first);
    const afterFirst = await readFile(knownHosts, "utf8");
    assert.ok(afterFirst.startsWith(existing), afterFirst);
    const added = afterFirst.slice(existing.length);
    assert.match(added, /^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}= ssh-ed25519 AAAA\S+\n$/);
    assert.equal(added.split(" ").slice(1).join(" "), `${keyField(sshd.hostKeys[0]!)}\n`);
    const found = await runCommand("ssh-keygen", ["-F", hostName(), "-f", knownHosts]);
    assert.equal(found.code, 0, found.stderr);
    assert.ok(found.stdout.includes(added), found.stdout);

    const second = await runWorkingTunnel(args, { home: home.home });
    assert.doesNotMatch(second, /Permanently added|authenticity/);
    assert.equal(await readFile(knownHosts, "utf8"), afterFirst);
  });

  test("with accept-new is added on a line of its own when known_hosts does not end in a newline", async () => {
    const home = await homes.make();
    const config = join(home.sshDir, "config");
    await home.writeConfig("");
    const knownHosts = join(home.sshDir, "known_hosts");
    const existing = `other.example ${keyField(impostor)}`;
    await home.writeKnownHosts(existing);
    await runWorkingTunnel(["-F", config, "-o", "StrictHostKeyChecking=accept-new"], { home: home.home });
    assert.equal(await readFile(knownHosts, "utf8"), `${existing}\n${hostName()} ${keyField(sshd.hostKeys[0]!)}\n`);
  });

  test("with accept-new and no ~/.ssh at all, creates ~/.ssh (mode 0700) and a known_hosts that ssh-keygen -F reads", async () => {
    const home = await homes.make();
    await rm(home.sshDir, { recursive: true });
    const stderr = await runWorkingTunnel(["-o", "StrictHostKeyChecking=accept-new"], { home: home.home });
    assert.ok(stderr.includes(`Permanently added '${hostName()}' (ED25519) to the list of known hosts.`), stderr);
    assert.equal((await stat(home.sshDir)).mode & 0o777, 0o700);
    const found = await runCommand("ssh-keygen", ["-F", hostName(), "-f", join(home.sshDir, "known_hosts")]);
    assert.equal(found.code, 0, found.stderr);
    assert.ok(found.stdout.includes(keyField(sshd.hostKeys[0]!)), found.stdout);
  });

  test("with the default ask and no terminal is accepted when SSH_ASKPASS (forced) answers yes, and is added", async () => {
    const home = await homes.make();
    const knownHosts = join(home.sshDir, "known_hosts");
    const askpass = await writeAskpass(scratch, "hostkey-yes", "yes");
    const stderr = await runWorkingTunnel([], { home: home.home, env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" } });
    assert.ok(stderr.includes(`Permanently added '${hostName()}' (ED25519) to the list of known hosts.`), stderr);
    const asked = await readFile(askpass.log, "utf8");
    assert.ok(asked.startsWith(`The authenticity of host '${hostName()}' can't be established.\n`), asked);
    assert.ok(asked.includes(`ED25519 key fingerprint is ${await sha256Fingerprint(sshd.hostKeys[0]!.publicPath)}.`), asked);
    assert.ok(asked.includes("Are you sure you want to continue connecting (yes/no/[fingerprint])?"), asked);
    const found = await runCommand("ssh-keygen", ["-F", hostName(), "-f", knownHosts]);
    assert.equal(found.code, 0, found.stderr);
    assert.ok(found.stdout.includes(keyField(sshd.hostKeys[0]!).split(" ")[1]!), found.stdout);
  });

  test("with the default ask is refused with exit 255 when SSH_ASKPASS answers no, and nothing is added", async () => {
    const home = await homes.make();
    const askpass = await writeAskpass(scratch, "hostkey-no", "no");
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort), { home: home.home, env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" } });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /Host key verification failed/);
    assert.equal((await readFile(askpass.log, "utf8")).split("The authenticity of host").length, 2, "asked exactly once");
    assert.equal(existsSync(join(home.sshDir, "known_hosts")), false);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });
});

// OpenSSH 9.2, tried against this sshd: a host recorded only with a key of
// another type that now presents a new type gets the full "HAS CHANGED"
// warning, whatever StrictHostKeyChecking says, and no question is asked.
describe("a host known only by a key of another type, presenting a new type", () => {
  test("is refused as a changed host (exit 255) naming the RSA line, without asking through SSH_ASKPASS", async () => {
    const oldRsa = await makeKey(scratch, "old-rsa-host-key", { type: "rsa" });
    const home = await homes.make();
    const knownHosts = join(home.sshDir, "known_hosts");
    const otherTypeLine = `${hostName()} ${keyField(oldRsa)}\n`;
    await home.writeKnownHosts(otherTypeLine);
    const askpass = await writeAskpass(scratch, "hostkey-other-type", "yes");
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort), { home: home.home, env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" } });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!/);
    assert.ok(result.stderr.includes(`The fingerprint for the ED25519 key sent by the remote host is\n${await sha256Fingerprint(sshd.hostKeys[0]!.publicPath)}.\n`), result.stderr);
    assert.ok(result.stderr.includes(`Offending RSA key in ${knownHosts}:1\n  remove with:\n  ssh-keygen -f "${knownHosts}" -R "${hostName()}"\n`), result.stderr);
    assert.equal(existsSync(askpass.log), false, "the askpass program ran");
    assert.equal(await readFile(knownHosts, "utf8"), otherTypeLine);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });
});

describe("known_hosts files named with -o", () => {
  test("UserKnownHostsFile replaces ~/.ssh/known_hosts for checking", async () => {
    const home = await homes.make();
    const custom = join(home.home, "custom_known_hosts");
    await writeFile(custom, `${sshd.knownHostsLine()}\n`);
    // ~/.ssh/known_hosts holds a wrong key that must not be consulted.
    await home.writeKnownHosts(`${hostName()} ${keyField(impostor)}\n`);
    const stderr = await runWorkingTunnel(["-o", `UserKnownHostsFile=${custom}`, "-o", "StrictHostKeyChecking=yes"], { home: home.home });
    assert.doesNotMatch(stderr, /CHANGED|Permanently added/);
    assert.equal(await readFile(custom, "utf8"), `${sshd.knownHostsLine()}\n`);
  });

  test("GlobalKnownHostsFile is consulted: a key only there is accepted under StrictHostKeyChecking=yes", async () => {
    const home = await homes.make();
    const global = join(home.home, "global_known_hosts");
    await writeFile(global, `${sshd.knownHostsLine()}\n`);
    const stderr = await runWorkingTunnel(["-o", `GlobalKnownHostsFile=${global}`, "-o", "StrictHostKeyChecking=yes"], { home: home.home });
    assert.doesNotMatch(stderr, /Permanently added/);
    assert.equal(existsSync(join(home.sshDir, "known_hosts")), false);
  });

  test("a changed key in the GlobalKnownHostsFile is refused and named by file:line", async () => {
    const home = await homes.make();
    const global = join(home.home, "global_known_hosts");
    await writeFile(global, `# managed by the admins\n${hostName()} ${keyField(impostor)}\n`);
    const socksPort = await freePort();
    const result = await runCli(tunnelArgs(socksPort, ["-o", `GlobalKnownHostsFile=${global}`]), { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.ok(result.stderr.includes(`${global}:2`), result.stderr);
    // The file to fix is named in "Add correct host key in"; the hint removes the line from the file that holds it.
    assert.ok(result.stderr.includes(`\n  ssh-keygen -f "${global}" -R "${hostName()}"\n`), result.stderr);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });
});

describe("a server with several host keys", () => {
  let multi: Sshd;

  before(async () => {
    multi = await startSshd({ authorizedKeys: [clientKey.publicLine], hostKeyTypes: ["ed25519", "rsa", "ecdsa"] });
  });

  after(async () => {
    await multi?.stop();
  });

  // OpenSSH's order_hostkeyalgs(): ask the server for a key type known_hosts
  // already holds, so a second key type does not look unknown.
  for (const [index, label] of [[1, "RSA"], [2, "ECDSA"]] as const) {
    test(`is verified against the ${label} key known_hosts holds, under StrictHostKeyChecking=yes, although it also has an ED25519 key`, async () => {
      const home = await homes.make();
      const knownLine = `[127.0.0.1]:${multi.port} ${keyField(multi.hostKeys[index]!)}\n`;
      await home.writeKnownHosts(knownLine);
      const socksPort = await freePort();
      const args = ["-N", "-D", String(socksPort), "-i", clientKey.privatePath, "-p", String(multi.port), "-o", "StrictHostKeyChecking=yes", `${multi.user}@127.0.0.1`];
      const cli = startCli(args, { home: home.home });
      try {
        await assertTunnelWorks(cli, socksPort);
      } finally {
        await cli.stop();
      }
      assert.doesNotMatch(cli.stderr(), /Host key verification failed|Permanently added/);
      assert.equal(await readFile(join(home.sshDir, "known_hosts"), "utf8"), knownLine);
    });
  }
});
