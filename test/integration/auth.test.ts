/**
 * User authentication end to end: the built CLI against a real sshd that
 * knows several client keys, with a real ssh-agent, encrypted keys answered
 * through SSH_ASKPASS, the default identity names and broken identity files.
 * Which key got in is read from sshd's own "Accepted publickey" log line.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { writeAskpass } from "../helpers/askpass.ts";
import { makeHomeSet, runCli, startCli } from "../helpers/run.ts";
import { makeKey, sha256Fingerprint, startAgent, startSshd, type Agent, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { assertWorkingTunnel } from "../helpers/tunnel.ts";
import { waitFor } from "../helpers/wait.ts";

const PASSPHRASE = "correct horse battery staple";

let scratch: string;
let sshd: Sshd;
let http: HttpTarget;
let agent: Agent;
/** Authorized keys, one per test so the log line names who got in. */
const keys: Record<string, KeyPair> = {};
/** Not in authorized_keys. */
let strangerKey: KeyPair;
const homes = makeHomeSet();

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-auth-"));
  for (const name of ["agent", "agentOnly", "plain", "defaultName", "afterMissing", "afterGarbage", "afterDirectory", "afterUnreadable"]) {
    keys[name] = await makeKey(scratch, name);
  }
  keys.locked = await makeKey(scratch, "locked", { passphrase: PASSPHRASE });
  keys.agentLocked = await makeKey(scratch, "agentLocked", { passphrase: PASSPHRASE });
  // Only its public half is used: as the stale .pub next to another key.
  keys.staleTarget = await makeKey(scratch, "staleTarget");
  strangerKey = await makeKey(scratch, "stranger");
  sshd = await startSshd({ authorizedKeys: Object.values(keys).map((key) => key.publicLine) });
  http = await startHttpTarget();
  agent = await startAgent();
});

after(async () => {
  await agent?.stop();
  await sshd?.stop();
  await http?.stop();
  await homes.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

function key(name: string): KeyPair {
  const found = keys[name];
  if (found === undefined) throw new Error(`no test key ${name}`);
  return found;
}

/** `-D port -p sshdPort ...extra destination`; the destination is user@127.0.0.1 unless `extra` has -l. */
function tunnelArgs(socksPort: number, extra: string[]): string[] {
  const destination = extra.includes("-l") ? "127.0.0.1" : `${sshd.user}@127.0.0.1`;
  return ["-N", "-D", String(socksPort), "-p", String(sshd.port), ...extra, destination];
}

/** sshd (LogLevel VERBOSE) names the key it accepted by its fingerprint. */
async function acceptedBySshd(keyPair: KeyPair): Promise<boolean> {
  const fingerprint = await sha256Fingerprint(keyPair.publicPath);
  const escaped = `Accepted publickey for ${sshd.user} from 127.0.0.1 port 0 ssh2: ED25519 ${fingerprint}`.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(escaped.replace(" port 0 ", " port \\d+ ")).test(sshd.logs());
}

/** Start the CLI with `extra`, prove the tunnel carries a `--socks5-hostname` fetch, stop it; returns stderr. */
async function runWorkingTunnel(extra: string[], options: { home: string; env?: Record<string, string> }): Promise<string> {
  const socksPort = await freePort();
  return assertWorkingTunnel(startCli(tunnelArgs(socksPort, extra), options), socksPort, http);
}

/** Run the CLI expecting a refused login: exit 255, OpenSSH's "Permission denied", no listener, no crash. */
async function assertPermissionDenied(extra: string[], options: { home: string; env?: Record<string, string> }, user = sshd.user): Promise<string> {
  const result = await runCli(tunnelArgs(await freePort(), extra), options);
  assert.equal(result.code, 255, result.stderr);
  assert.ok(result.stderr.includes(`${user}@127.0.0.1: Permission denied (publickey)`), result.stderr);
  assert.doesNotMatch(result.stderr, /SOCKS and HTTP proxy listening|internal error/);
  return result.stderr;
}

/** The stderr line that mentions `path`; it must be a warning. */
function warningNaming(stderr: string, path: string): string {
  const line = stderr.split("\n").find((candidate) => candidate.includes(path));
  assert.ok(line !== undefined, `no line names ${path}: ${stderr}`);
  assert.match(line, /^Warning: /);
  return line;
}

describe("ssh-agent", () => {
  test("a key held only by the agent (SSH_AUTH_SOCK) logs in with no identity file on disk", async () => {
    await agent.add(key("agentOnly"));
    const home = await homes.trusting(sshd);
    const stderr = await runWorkingTunnel([], { home: home.home, env: { SSH_AUTH_SOCK: agent.socketPath } });
    assert.equal(await acceptedBySshd(key("agentOnly")), true, sshd.logs());
    assert.doesNotMatch(stderr, /Permission denied|not accessible/);
  });

  test("with IdentitiesOnly=yes and -i naming another key, the agent's key is not offered and login fails", async () => {
    await agent.add(key("agent"));
    const home = await homes.trusting(sshd);
    await assertPermissionDenied(["-o", "IdentitiesOnly=yes", "-i", strangerKey.privatePath], {
      home: home.home,
      env: { SSH_AUTH_SOCK: agent.socketPath },
    });
    assert.equal(await acceptedBySshd(key("agent")), false, "sshd accepted the agent's key");
  });

  test("with IdentitiesOnly=yes and -i naming an encrypted key without a .pub file, the agent's copy of that key logs in and askpass never runs", async () => {
    // ssh-add needs the passphrase; the CLI must not: the file's clear header names the agent's key.
    await agent.add(key("agentLocked"));
    const home = await homes.trusting(sshd);
    const copy = join(scratch, "agent-locked-nopub");
    await writeFile(copy, await readFile(key("agentLocked").privatePath), { mode: 0o600 });
    const askpass = await writeAskpass(scratch, "passphrase-agent-holds-it", PASSPHRASE);
    await runWorkingTunnel(["-o", "IdentitiesOnly=yes", "-i", copy], {
      home: home.home,
      env: { SSH_AUTH_SOCK: agent.socketPath, SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(existsSync(askpass.log), false, "askpass ran although the agent holds the key");
    assert.equal(await acceptedBySshd(key("agentLocked")), true, sshd.logs());
  });
});

describe("an encrypted identity file", () => {
  test("is unlocked with the passphrase SSH_ASKPASS prints under SSH_ASKPASS_REQUIRE=force", async () => {
    const home = await homes.trusting(sshd);
    const askpass = await writeAskpass(scratch, "passphrase-right", PASSPHRASE);
    await runWorkingTunnel(["-i", key("locked").privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(await readFile(askpass.log, "utf8"), `Enter passphrase for key '${key("locked").privatePath}': \n`);
    assert.equal(await acceptedBySshd(key("locked")), true, sshd.logs());
  });

  test("with a wrong passphrase from SSH_ASKPASS fails with exit 255 and Permission denied", async () => {
    const home = await homes.trusting(sshd);
    const askpass = await writeAskpass(scratch, "passphrase-wrong", "not the passphrase");
    await assertPermissionDenied(["-i", key("locked").privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.ok(existsSync(askpass.log), "the askpass program was never asked");
  });

  test("under BatchMode=yes is skipped without running the askpass program, and login fails with 255", async () => {
    const home = await homes.trusting(sshd);
    const askpass = await writeAskpass(scratch, "passphrase-batch", PASSPHRASE);
    await assertPermissionDenied(["-o", "BatchMode=yes", "-i", key("locked").privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(existsSync(askpass.log), false, "the askpass program ran under BatchMode");
  });
});

describe("an encrypted identity file is offered before it is unlocked, as in OpenSSH", () => {
  test("a key the server refuses is never unlocked: no passphrase prompt, and the next key logs in", async () => {
    const home = await homes.trusting(sshd);
    const refused = await makeKey(scratch, "locked-stranger", { passphrase: PASSPHRASE });
    const askpass = await writeAskpass(scratch, "passphrase-unneeded", PASSPHRASE);
    await runWorkingTunnel(["-i", refused.privatePath, "-i", key("plain").privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(existsSync(askpass.log), false, "asked for the passphrase of a key the server refuses");
    assert.equal(await acceptedBySshd(key("plain")), true, sshd.logs());
  });

  test("without a .pub file the public half comes from the key file's clear header: still no prompt for a refused key", async () => {
    const home = await homes.trusting(sshd);
    const refused = await makeKey(scratch, "locked-stranger-nopub", { passphrase: PASSPHRASE });
    await rm(refused.publicPath);
    const askpass = await writeAskpass(scratch, "passphrase-unneeded-nopub", PASSPHRASE);
    await runWorkingTunnel(["-i", refused.privatePath, "-i", key("plain").privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    assert.equal(existsSync(askpass.log), false, "asked for the passphrase of a key the server refuses");
  });

  test("an accepted key without a .pub file is unlocked once, after the server accepted its public half", async () => {
    const home = await homes.trusting(sshd);
    const copy = join(scratch, "locked-copy-nopub");
    await writeFile(copy, await readFile(key("locked").privatePath), { mode: 0o600 });
    const askpass = await writeAskpass(scratch, "passphrase-after-ok", PASSPHRASE);
    await runWorkingTunnel(["-i", copy], { home: home.home, env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" } });
    assert.equal(await readFile(askpass.log, "utf8"), `Enter passphrase for key '${copy}': \n`);
    assert.equal(await acceptedBySshd(key("locked")), true, sshd.logs());
  });

  test("an encrypted key whose .pub is another (authorized) key's is unlocked, then skipped with a warning naming the file and 'ssh-keygen -y -f': exit 255 Permission denied", async () => {
    const home = await homes.trusting(sshd);
    const locked = await makeKey(scratch, "locked-stale-pub", { passphrase: PASSPHRASE });
    // sshd accepts the .pub's key, so the private key is unlocked to sign; it does not match.
    await writeFile(locked.publicPath, `${key("staleTarget").publicLine}\n`);
    const askpass = await writeAskpass(scratch, "passphrase-stale-pub", PASSPHRASE);
    const since = sshd.logs().length;
    const stderr = await assertPermissionDenied(["-i", locked.privatePath], {
      home: home.home,
      env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" },
    });
    const line = warningNaming(stderr, locked.privatePath);
    assert.ok(line.includes("does not match"), line);
    assert.ok(line.includes(`${locked.privatePath}.pub`), line);
    assert.ok(line.includes(`ssh-keygen -y -f ${locked.privatePath}`), line);
    assert.equal(await readFile(askpass.log, "utf8"), `Enter passphrase for key '${locked.privatePath}': \n`);
    // No signature reached sshd: neither the .pub's key nor the private key was used to sign.
    await waitFor(() => /Disconnected from .* port \d+/.test(sshd.logs().slice(since)), "sshd to log the disconnect", () => sshd.logs().slice(since));
    assert.doesNotMatch(sshd.logs().slice(since), /Accepted publickey|Failed publickey/);
  });
});

describe("identity files", () => {
  test("~/.ssh/id_ed25519 is used when no -i is given", async () => {
    const home = await homes.trusting(sshd);
    await copyFile(key("defaultName").privatePath, join(home.sshDir, "id_ed25519"));
    await chmod(join(home.sshDir, "id_ed25519"), 0o600);
    const stderr = await runWorkingTunnel([], { home: home.home });
    assert.equal(await acceptedBySshd(key("defaultName")), true, sshd.logs());
    assert.doesNotMatch(stderr, /not accessible|Load key/);
  });

  test("a missing -i file draws a 'not accessible' warning naming it, and the next -i key still logs in", async () => {
    const home = await homes.trusting(sshd);
    const missing = join(home.sshDir, "no_such_key");
    const stderr = await runWorkingTunnel(["-i", missing, "-i", key("afterMissing").privatePath], { home: home.home });
    assert.equal(warningNaming(stderr, missing), `Warning: Identity file ${missing} not accessible: No such file or directory.`);
    assert.equal(await acceptedBySshd(key("afterMissing")), true, sshd.logs());
  });

  test("a garbage -i file draws a warning naming it, and the next -i key still logs in", async () => {
    const home = await homes.trusting(sshd);
    const garbage = join(home.sshDir, "garbage_key");
    await writeFile(garbage, "-----BEGIN OPENSSH PRIVATE KEY-----\nthis is not a key\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
    const stderr = await runWorkingTunnel(["-i", garbage, "-i", key("afterGarbage").privatePath], { home: home.home });
    assert.ok(warningNaming(stderr, garbage).startsWith(`Warning: Load key "${garbage}": `), stderr);
    assert.doesNotMatch(stderr, /internal error/);
    assert.equal(await acceptedBySshd(key("afterGarbage")), true, sshd.logs());
  });

  test("a garbage -i file as the only key draws a warning naming it and fails with 255 Permission denied, not a crash", async () => {
    const home = await homes.trusting(sshd);
    const garbage = join(home.sshDir, "only_garbage");
    await writeFile(garbage, "not a key at all\n", { mode: 0o600 });
    const stderr = await assertPermissionDenied(["-i", garbage], { home: home.home });
    assert.ok(warningNaming(stderr, garbage).startsWith(`Warning: Load key "${garbage}": `), stderr);
  });

  test("an -i path that cannot be read (a directory) draws a warning naming it, and the next -i key still logs in", async () => {
    const home = await homes.trusting(sshd);
    const directory = join(home.sshDir, "a_directory");
    await mkdir(directory);
    const stderr = await runWorkingTunnel(["-i", directory, "-i", key("afterDirectory").privatePath], { home: home.home });
    warningNaming(stderr, directory);
    assert.doesNotMatch(stderr, /internal error/);
    assert.equal(await acceptedBySshd(key("afterDirectory")), true, sshd.logs());
  });

  test("an -i file without read permission draws a warning naming it, and the next -i key still logs in", async (t) => {
    if (process.getuid?.() === 0) return t.skip("root reads a mode 000 file anyway");
    const home = await homes.trusting(sshd);
    const unreadable = join(home.sshDir, "unreadable_key");
    await copyFile(strangerKey.privatePath, unreadable);
    await chmod(unreadable, 0o000);
    const stderr = await runWorkingTunnel(["-i", unreadable, "-i", key("afterUnreadable").privatePath], { home: home.home });
    assert.equal(warningNaming(stderr, unreadable), `Warning: Identity file ${unreadable} not accessible: Permission denied.`);
    assert.equal(await acceptedBySshd(key("afterUnreadable")), true, sshd.logs());
  });
});

test("a user the server does not know (-l nosuchuser) fails with exit 255 and Permission denied", async () => {
  const home = await homes.trusting(sshd);
  await assertPermissionDenied(["-l", "nosuchuser", "-i", key("plain").privatePath], { home: home.home }, "nosuchuser");
  assert.match(sshd.logs(), /Invalid user nosuchuser from 127\.0\.0\.1 port \d+/);
});
