/**
 * What a user at a terminal sees: the passphrase prompt without echo, the
 * unknown-host-key question with the SHA256 fingerprint, and Ctrl-C. The CLI
 * runs on a real pseudo-terminal against a real sshd.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { runCommand, within } from "../helpers/child.ts";
import { curlThroughSocks } from "../helpers/curl.ts";
import { makeHome, waitForListen, type Home } from "../helpers/run.ts";
import { makeKey, startSshd, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { startInTerminal } from "../helpers/terminal.ts";

const PASSPHRASE = "tr0ub4dor&3-passphrase";

let home: Home;
let lockedKey: KeyPair;
let plainKey: KeyPair;
let sshd: Sshd;
let http: HttpTarget;
let fingerprint: string;

before(async () => {
  home = await makeHome();
  lockedKey = await makeKey(home.sshDir, "locked", { passphrase: PASSPHRASE });
  plainKey = await makeKey(home.sshDir, "plain");
  sshd = await startSshd({ authorizedKeys: [lockedKey.publicLine, plainKey.publicLine] });
  http = await startHttpTarget();
  const hostKey = sshd.hostKeys[0]!;
  const listed = await runCommand("ssh-keygen", ["-l", "-E", "sha256", "-f", hostKey.publicPath]);
  fingerprint = /SHA256:\S+/.exec(listed.stdout)![0];
});

after(async () => {
  await sshd?.stop();
  await http?.stop();
  await home?.cleanup();
});

async function fetchThrough(port: number): Promise<string> {
  const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.toString();
}

test("asks for a key's passphrase on the terminal without echoing it, then tunnels; Ctrl-C exits 0 with a summary", async () => {
  await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
  const port = await freePort();
  const run = startInTerminal(["-D", String(port), "-i", lockedKey.privatePath, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], {
    home: home.home,
    answers: [[`Enter passphrase for key '${lockedKey.privatePath}': `, `${PASSPHRASE}\r`]],
  });
  try {
    await waitForListen(port, "127.0.0.1", run);
    assert.equal(await fetchThrough(port), "hello from target\n");
  } finally {
    const status = await run.stop("SIGTERM");
    assert.equal(status.code, 0, run.stdout());
  }
  const screen = run.stdout();
  assert.ok(screen.includes(`Enter passphrase for key '${lockedKey.privatePath}': `), screen);
  assert.ok(!screen.includes(PASSPHRASE), `the passphrase was echoed:\n${screen}`);
  assert.match(screen, /Stopped by SIGINT: 1 connection, \d+ B up, \d+ B down, 0 refused \(IP address\), 0 failed\./);
});

test("shows an unknown host key's SHA256 fingerprint, and 'yes' adds it to known_hosts", async () => {
  await home.writeKnownHosts("");
  const port = await freePort();
  const run = startInTerminal(["-D", String(port), "-i", plainKey.privatePath, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], {
    home: home.home,
    answers: [["(yes/no/[fingerprint])? ", "yes\r"]],
  });
  try {
    await waitForListen(port, "127.0.0.1", run);
    assert.equal(await fetchThrough(port), "hello from target\n");
  } finally {
    await run.stop("SIGTERM");
  }
  const screen = run.stdout();
  assert.ok(screen.includes(`The authenticity of host '[127.0.0.1]:${sshd.port}' can't be established.`), screen);
  assert.ok(screen.includes(`ED25519 key fingerprint is ${fingerprint}.`), screen);
  assert.ok(screen.includes(`Permanently added '[127.0.0.1]:${sshd.port}' (ED25519) to the list of known hosts.`), screen);
  // One new line, hashed or not as the system's HashKnownHosts says (Debian: yes); OpenSSH must find it.
  const knownHosts = await readFile(`${home.sshDir}/known_hosts`, "utf8");
  assert.equal(knownHosts.trim().split("\n").length, 1, knownHosts);
  assert.ok(knownHosts.trim().endsWith(sshd.knownHostsLine().split(" ").slice(1).join(" ")), knownHosts);
  const found = await runCommand("ssh-keygen", ["-F", `[127.0.0.1]:${sshd.port}`, "-f", `${home.sshDir}/known_hosts`]);
  assert.equal(found.code, 0, found.stderr);
});

test("answering 'no' to an unknown host key exits 255 and opens no port", async () => {
  await home.writeKnownHosts("");
  const port = await freePort();
  const run = startInTerminal(["-D", String(port), "-i", plainKey.privatePath, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], {
    home: home.home,
    answers: [["(yes/no/[fingerprint])? ", "no\r"]],
  });
  const status = await run.exited;
  assert.equal(status.code, 255, run.stdout());
  assert.match(run.stdout(), /Host key verification failed/);
  assert.equal(await readFile(`${home.sshDir}/known_hosts`, "utf8"), "");
  await assert.rejects(waitForListen(port, "127.0.0.1", undefined, 300));
});

test("Ctrl-C at the passphrase prompt exits 255 saying it was interrupted, tries no other key, and never listens", async () => {
  await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
  const port = await freePort();
  const prompt = `Enter passphrase for key '${lockedKey.privatePath}': `;
  // A usable second key: Ctrl-C must stop everything, not fall through to it.
  const run = startInTerminal(["-D", String(port), "-i", lockedKey.privatePath, "-i", plainKey.privatePath, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], {
    home: home.home,
    answers: [[prompt, "\x03"]],
  });
  const status = await within(run.exited, 20_000);
  if (status === undefined) await run.stop("SIGKILL");
  const screen = run.stdout();
  assert.ok(status !== undefined, `still running after Ctrl-C:\n${screen}`);
  assert.equal(status.code, 255, screen);
  await assert.rejects(waitForListen(port, "127.0.0.1", undefined, 300));
  // The prompt's line is ended, then one line says why, and nothing follows it.
  const after = screen.slice(screen.indexOf(prompt) + prompt.length);
  // (ONLCR stays on in Node's raw mode, so the "\r\n" written there arrives as "\r\r\n".)
  assert.match(after, /^\r+\n/, JSON.stringify(after));
  const lines = after.split(/\r+\n/).filter((line) => line !== "");
  assert.equal(lines.length, 1, JSON.stringify(after));
  assert.match(lines[0]!, /interrupted/i);
  assert.match(lines[0]!, /Ctrl-C/);
  assert.ok(screen.endsWith("\r\n"), JSON.stringify(screen));
  assert.doesNotMatch(screen, /Permission denied|Stopped by|internal error/);
});

test("Ctrl-D at the passphrase prompt skips that key, and a second usable key still connects", async () => {
  await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
  const port = await freePort();
  const prompt = `Enter passphrase for key '${lockedKey.privatePath}': `;
  const run = startInTerminal(["-D", String(port), "-i", lockedKey.privatePath, "-i", plainKey.privatePath, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`], {
    home: home.home,
    answers: [[prompt, "\x04"]],
  });
  try {
    await waitForListen(port, "127.0.0.1", run);
    assert.equal(await fetchThrough(port), "hello from target\n");
  } finally {
    const status = await run.stop("SIGTERM");
    assert.equal(status.code, 0, run.stdout());
  }
  const screen = run.stdout();
  // Asked once: Ctrl-D declines this key rather than counting as a wrong passphrase.
  assert.equal(screen.split(prompt).length - 1, 1, screen);
  assert.doesNotMatch(screen, /Bad passphrase|interrupted/);
});
