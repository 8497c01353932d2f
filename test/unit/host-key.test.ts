/**
 * verifyHostKey against real known_hosts files in a temp dir, keys made by
 * ssh-keygen and fingerprints as `ssh-keygen -l -E sha256` prints them. The
 * behaviour pinned is OpenSSH's sshconnect.c check_host_key(): a recorded key
 * passes silently; a changed or revoked key is refused under every
 * StrictHostKeyChecking value (OpenSSH's "no" lets a changed key through with
 * forwarding disabled, which leaves a tunnel nothing to do); a new key is
 * refused, recorded or asked about; and confirm() accepts "yes" or the exact
 * fingerprint. The changed-key warning ends with the `ssh-keygen -R` hint of
 * Debian's OpenSSH, which these tests run through a shell.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { TunnelError } from "../../src/errors.ts";
import { rejection } from "../helpers/rejection.ts";
import { createLogger } from "../../src/log.ts";
import { pinFirstHostKey, verifyHostKey, type HostKeyPolicy } from "../../src/ssh/host-key.ts";
import type { StrictHostKeyChecking } from "../../src/config/settings.ts";
import type { PromptRequest } from "../../src/ssh/prompt.ts";

const run = promisify(execFile);

const HOST = "127.0.0.1";
const PORT = 2222;
/** How OpenSSH names 127.0.0.1 port 2222 in known_hosts and in its messages. */
const NAME = "[127.0.0.1]:2222";
const STRICT_VALUES: StrictHostKeyChecking[] = ["yes", "accept-new", "no", "ask"];
const RETRY_PROMPT = "Please type 'yes', 'no' or the fingerprint: ";

interface Key {
  /** "ssh-ed25519", "ecdsa-sha2-nistp256" */
  type: string;
  base64: string;
  blob: Buffer;
  /** From `ssh-keygen -l -E sha256 -f key.pub`: "SHA256:..." */
  fingerprint: string;
}

let dir = "";
let edA: Key;
let edB: Key;
let ecdsa: Key;

async function generateKey(name: string, type: string): Promise<Key> {
  const path = join(dir, name);
  await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `${name}@test`, "-f", path]);
  const [keyType, base64] = (await readFile(`${path}.pub`, "utf8")).trim().split(" ");
  assert.ok(keyType !== undefined && base64 !== undefined);
  const { stdout } = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${path}.pub`]);
  const fingerprint = stdout.split(" ")[1] ?? "";
  assert.match(fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/, `ssh-keygen -l output: ${stdout}`);
  return { type: keyType, base64, blob: Buffer.from(base64, "base64"), fingerprint };
}

/** A known_hosts line for `key`, under `hostField` (default the test host's own name). */
function line(key: Key, hostField = NAME): string {
  return `${hostField} ${key.type} ${key.base64}`;
}

/** A prompt that records every request and answers from a script; past the script it answers null (nobody to ask). */
class ScriptedPrompt {
  readonly requests: PromptRequest[] = [];
  private readonly answers: (string | null)[];

  constructor(answers: (string | null)[] = []) {
    this.answers = [...answers];
  }

  readonly prompt = async (request: PromptRequest): Promise<string | null> => {
    this.requests.push(request);
    return this.answers.length > 0 ? this.answers.shift()! : null;
  };
}

interface Case {
  userFile: string;
  globalFile: string;
  /** Every line the logger wrote (a multi-line message is one entry). */
  logged: string[];
  asker: ScriptedPrompt;
  policy: HostKeyPolicy;
}

let caseCount = 0;

/** A fresh directory with the user file (written when `userText` is given), the global file (likewise) and a policy over both. */
async function makeCase(
  options: { userText?: string; globalText?: string; answers?: (string | null)[]; policy?: Partial<HostKeyPolicy> } = {},
): Promise<Case> {
  const caseDir = await mkdtemp(join(dir, `case-${++caseCount}-`));
  const userFile = join(caseDir, "known_hosts");
  const globalFile = join(caseDir, "ssh_known_hosts");
  if (options.userText !== undefined) await writeFile(userFile, options.userText);
  if (options.globalText !== undefined) await writeFile(globalFile, options.globalText);
  const logged: string[] = [];
  const asker = new ScriptedPrompt(options.answers);
  const policy: HostKeyPolicy = {
    host: HOST,
    port: PORT,
    userKnownHostsFiles: [userFile],
    globalKnownHostsFiles: [globalFile],
    strict: "ask",
    hashKnownHosts: undefined,
    batchMode: false,
    prompt: asker.prompt,
    log: createLogger({ verbosity: 0, write: (text) => logged.push(text) }),
    ...options.policy,
  };
  return { userFile, globalFile, logged, asker, policy };
}

/** Hashes every host name in `file` with OpenSSH's own `ssh-keygen -H`, removing the backup it leaves. */
async function hashWithSshKeygen(file: string): Promise<void> {
  await run("ssh-keygen", ["-q", "-H", "-f", file]);
  await rm(`${file}.old`, { force: true });
}

/** The file's lines, without the empty string after the final newline. */
async function fileLines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  assert.ok(text.endsWith("\n"), `${file} ends with a newline: ${JSON.stringify(text)}`);
  return text.slice(0, -1).split("\n");
}

/** The line number `ssh-keygen -F [127.0.0.1]:2222` finds in `file` (OpenSSH's own lookup, hashed or not). */
async function sshKeygenFinds(file: string): Promise<number> {
  const { stdout } = await run("ssh-keygen", ["-F", NAME, "-f", file]);
  const match = /^# Host \[127\.0\.0\.1\]:2222 found: line (\d+)/m.exec(stdout);
  assert.ok(match !== null, `ssh-keygen -F output: ${stdout}`);
  return Number(match[1]);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "safetunnel-host-key-"));
  [edA, edB, ecdsa] = await Promise.all([generateKey("ed-a", "ed25519"), generateKey("ed-b", "ed25519"), generateKey("ecdsa", "ecdsa")]);
  assert.equal(ecdsa.type, "ecdsa-sha2-nistp256");
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const PERMANENTLY_ADDED = `Warning: Permanently added '${NAME}' (ED25519) to the list of known hosts.`;

describe("verifyHostKey: a recorded key", () => {
  for (const strict of STRICT_VALUES) {
    test(`a key recorded for [host]:port resolves under StrictHostKeyChecking=${strict}, without prompting, logging or writing`, async () => {
      const text = `# my hosts\nexample.org ${edB.type} ${edB.base64}\n${line(edA)}\n`;
      const c = await makeCase({ userText: text, policy: { strict } });
      await verifyHostKey(edA.blob, c.policy);
      assert.equal(await readFile(c.userFile, "utf8"), text, "nothing appended");
      assert.deepEqual(c.asker.requests, []);
      assert.deepEqual(c.logged, []);
    });
  }

  test("a key recorded under a name hashed by ssh-keygen -H is known", async () => {
    const c = await makeCase({ userText: `example.org ${edB.type} ${edB.base64}\n${line(edA)}\n` });
    await hashWithSshKeygen(c.userFile);
    const hashed = await readFile(c.userFile, "utf8");
    assert.ok(!hashed.includes("127.0.0.1"), hashed);
    await verifyHostKey(edA.blob, c.policy);
    assert.equal(await readFile(c.userFile, "utf8"), hashed);
    assert.deepEqual(c.asker.requests, []);
    assert.deepEqual(c.logged, []);
  });

  test("a key recorded only in the global file is known and nothing is copied to the user file", async () => {
    const c = await makeCase({ globalText: `${line(edA)}\n`, policy: { strict: "accept-new" } });
    await verifyHostKey(edA.blob, c.policy);
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
    assert.deepEqual(c.logged, []);
  });

  test("a host recorded with two key types accepts the one it presents", async () => {
    const c = await makeCase({ userText: `${line(ecdsa)}\n${line(edA)}\n`, policy: { strict: "yes" } });
    await verifyHostKey(edA.blob, c.policy);
    await verifyHostKey(ecdsa.blob, c.policy);
    assert.deepEqual(c.logged, []);
  });
});

describe("verifyHostKey: a changed key is refused whatever StrictHostKeyChecking says", () => {
  for (const strict of STRICT_VALUES) {
    test(`StrictHostKeyChecking=${strict}: HOST_KEY_CHANGED, exit 255, and the warning names file:line and both fingerprints`, async () => {
      const text = `# my hosts\nexample.org ${edB.type} ${edB.base64}\n${line(edA)}\n`;
      const c = await makeCase({ userText: text, answers: ["yes", "yes", "yes"], policy: { strict } });
      const err = await rejection(verifyHostKey(edB.blob, c.policy), TunnelError);
      assert.equal(err.code, "HOST_KEY_CHANGED");
      assert.equal(err.exitCode, 255);
      assert.ok(err.message.includes(`(${c.userFile}:3)`), err.message);
      assert.ok(err.message.includes("Host key verification failed."), err.message);

      assert.equal(c.logged.length, 1, JSON.stringify(c.logged));
      const warning = c.logged[0]!.split("\n");
      assert.ok(warning.includes("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @"), c.logged[0]);
      // The presented key, then the recorded one: each label on its own line, the fingerprint alone on the next.
      const sent = warning.indexOf("The fingerprint for the ED25519 key sent by the remote host is");
      assert.ok(sent >= 0, c.logged[0]);
      assert.equal(warning[sent + 1], `${edB.fingerprint}.`);
      const recorded = warning.indexOf("The fingerprint of the ED25519 key recorded for this host is");
      assert.ok(recorded >= 0, c.logged[0]);
      assert.equal(warning[recorded + 1], `${edA.fingerprint}.`);
      assert.ok(warning.includes(`Add correct host key in ${c.userFile} to get rid of this message.`), c.logged[0]);
      assert.deepEqual(warning.slice(-3), [`Offending ED25519 key in ${c.userFile}:3`, "  remove with:", `  ssh-keygen -f "${c.userFile}" -R "${NAME}"`]);

      assert.equal(await readFile(c.userFile, "utf8"), text, "nothing appended");
      assert.deepEqual(c.asker.requests, [], "a changed key is never asked about");
    });
  }

  test("a changed key recorded in the global file names that file:line, and the user file as the place to fix it", async () => {
    const globalText = `example.org ${edB.type} ${edB.base64}\n${line(edA)}\n`;
    const c = await makeCase({ userText: `example.net ${edA.type} ${edA.base64}\n`, globalText, policy: { strict: "accept-new" } });
    const err = await rejection(verifyHostKey(edB.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_CHANGED");
    assert.ok(err.message.includes(`(${c.globalFile}:2)`), err.message);
    const warning = c.logged.join("\n").split("\n");
    assert.ok(warning.includes(`Add correct host key in ${c.userFile} to get rid of this message.`), c.logged.join("\n"));
    assert.deepEqual(warning.slice(-3), [`Offending ED25519 key in ${c.globalFile}:2`, "  remove with:", `  ssh-keygen -f "${c.globalFile}" -R "${NAME}"`]);
    assert.equal(await readFile(c.userFile, "utf8"), `example.net ${edA.type} ${edA.base64}\n`);
  });

  for (const strict of STRICT_VALUES) {
    test(`StrictHostKeyChecking=${strict}: a host known only by an ECDSA key that presents ED25519 is a changed host naming the ECDSA line`, async () => {
      const text = `example.org ${edA.type} ${edA.base64}\n${line(ecdsa)}\n`;
      const c = await makeCase({ userText: text, answers: ["yes", "yes", "yes"], policy: { strict } });
      const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
      assert.equal(err.code, "HOST_KEY_CHANGED");
      assert.equal(err.exitCode, 255);
      assert.ok(err.message.includes(`(${c.userFile}:2)`), err.message);
      assert.equal(c.logged.length, 1, JSON.stringify(c.logged));
      const warning = c.logged[0]!.split("\n");
      const sent = warning.indexOf("The fingerprint for the ED25519 key sent by the remote host is");
      assert.ok(sent >= 0, c.logged[0]);
      assert.equal(warning[sent + 1], `${edA.fingerprint}.`);
      const recorded = warning.indexOf("The fingerprint of the ECDSA key recorded for this host is");
      assert.ok(recorded >= 0, c.logged[0]);
      assert.equal(warning[recorded + 1], `${ecdsa.fingerprint}.`);
      assert.deepEqual(warning.slice(-3), [`Offending ECDSA key in ${c.userFile}:2`, "  remove with:", `  ssh-keygen -f "${c.userFile}" -R "${NAME}"`]);
      assert.equal(await readFile(c.userFile, "utf8"), text, "nothing appended");
      assert.deepEqual(c.asker.requests, []);
    });
  }

  test("the warning is OpenSSH's line for line, with the recorded key's fingerprint added, ending in the 'remove with: ssh-keygen -f FILE -R HOST' hint", async () => {
    const text = `# my hosts\n${line(edA)}\n`;
    const c = await makeCase({ userText: text });
    await rejection(verifyHostKey(edB.blob, c.policy), TunnelError);
    // Debian's OpenSSH 9.2 prints these lines (its own output against a private
    // sshd); the two lines about the recorded key are ours.
    const expected = [
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
      "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
      "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
      "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
      "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
      "It is also possible that a host key has just been changed.",
      "The fingerprint for the ED25519 key sent by the remote host is",
      `${edB.fingerprint}.`,
      "The fingerprint of the ED25519 key recorded for this host is",
      `${edA.fingerprint}.`,
      "Please contact your system administrator.",
      `Add correct host key in ${c.userFile} to get rid of this message.`,
      `Offending ED25519 key in ${c.userFile}:2`,
      "  remove with:",
      `  ssh-keygen -f "${c.userFile}" -R "[127.0.0.1]:2222"`,
    ].join("\n");
    assert.deepEqual(c.logged, [expected]);
  });

  test("the hint names the host without brackets on port 22, and by its HostKeyAlias when one is set", async () => {
    for (const [host, port, name] of [["example.org", 22, "example.org"], ["my-alias", 22, "my-alias"]] as const) {
      const c = await makeCase({ userText: line(edA, name) + "\n", policy: { host, port } });
      await rejection(verifyHostKey(edB.blob, c.policy), TunnelError);
      assert.equal(c.logged[0]!.split("\n").at(-1), `  ssh-keygen -f "${c.userFile}" -R "${name}"`);
    }
  });

  test("the hint, run by a shell, removes the offending line with ssh-keygen, after which the host is unknown", async () => {
    const c = await makeCase({ userText: `example.org ${edB.type} ${edB.base64}\n${line(edA)}\n` });
    await rejection(verifyHostKey(edB.blob, c.policy), TunnelError);
    const command = c.logged[0]!.split("\n").at(-1)!;
    await run("sh", ["-c", command]);
    assert.deepEqual(await fileLines(c.userFile), [`example.org ${edB.type} ${edB.base64}`]);
    await rm(`${c.userFile}.old`, { force: true });
    c.logged.length = 0;
    const err = await rejection(verifyHostKey(edB.blob, { ...c.policy, strict: "yes" }), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
  });

  test("a known_hosts path with characters a shell expands inside double quotes is single-quoted in the hint, and the hint still works", async () => {
    const c = await makeCase();
    const file = join(c.userFile, "..", "it's $HOME `x` \\ \"q\" !");
    await writeFile(file, `${line(edA)}\n`);
    await rejection(verifyHostKey(edB.blob, { ...c.policy, userKnownHostsFiles: [file] }), TunnelError);
    const command = c.logged[0]!.split("\n").at(-1)!;
    assert.equal(command, `  ssh-keygen -f '${file.replaceAll("'", "'\\''")}' -R "${NAME}"`);
    await run("sh", ["-c", command]);
    assert.equal(await readFile(file, "utf8"), "");
  });
});

describe("pinFirstHostKey: ssh2's hostVerifier across re-keys", () => {
  /** Calls the verifier as ssh2 does and returns what it answered. */
  function answer(verifier: ReturnType<typeof pinFirstHostKey>, key: Buffer): Promise<boolean> {
    return new Promise((resolve) => verifier(key, resolve));
  }

  test("the first key goes to check; a re-key with the same key is accepted without checking again", async () => {
    const checked: Buffer[] = [];
    const verifier = pinFirstHostKey({ check: async (key) => void checked.push(key), refused: () => assert.fail("refused"), changed: () => assert.fail("changed") });
    assert.equal(await answer(verifier, edA.blob), true);
    assert.equal(await answer(verifier, Buffer.from(edA.blob)), true);
    assert.deepEqual(checked, [edA.blob]);
  });

  test("a re-key presenting another key is refused and reported, even a key check would accept", async () => {
    const changed: Buffer[] = [];
    const verifier = pinFirstHostKey({ check: async () => {}, refused: () => assert.fail("refused"), changed: (key) => void changed.push(key) });
    assert.equal(await answer(verifier, edA.blob), true);
    assert.equal(await answer(verifier, edB.blob), false);
    assert.deepEqual(changed, [edB.blob]);
    assert.equal(await answer(verifier, edA.blob), true, "the pinned key stays the first one");
  });

  test("a first key that check rejects is refused, with check's reason handed to refused, and nothing is pinned", async () => {
    const reasons: unknown[] = [];
    const reason = new TunnelError("HOST_KEY_UNKNOWN", "not known");
    let calls = 0;
    const verifier = pinFirstHostKey({
      check: async () => {
        calls++;
        throw reason;
      },
      refused: (r) => void reasons.push(r),
      changed: () => assert.fail("changed"),
    });
    assert.equal(await answer(verifier, edA.blob), false);
    assert.deepEqual(reasons, [reason]);
    assert.equal(await answer(verifier, edA.blob), false);
    assert.equal(calls, 2, "a refused key is not pinned: the next one is checked again");
  });
});

describe("verifyHostKey: a revoked key", () => {
  for (const strict of STRICT_VALUES) {
    test(`StrictHostKeyChecking=${strict}: an @revoked key is refused with HOST_KEY_REVOKED even when a plain line also lists it`, async () => {
      const text = `${line(edA)}\n@revoked ${line(edA)}\n`;
      const c = await makeCase({ userText: text, answers: ["yes"], policy: { strict } });
      const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
      assert.equal(err.code, "HOST_KEY_REVOKED");
      assert.equal(err.exitCode, 255);
      assert.ok(err.message.includes(edA.fingerprint), err.message);
      assert.ok(err.message.includes(`${c.userFile}:2`), err.message);
      assert.equal(c.logged.length, 1, JSON.stringify(c.logged));
      const warning = c.logged[0]!.split("\n");
      assert.ok(warning.includes("@       WARNING: REVOKED HOST KEY DETECTED!               @"), c.logged[0]);
      assert.ok(warning.includes(`The ED25519 host key for ${NAME} is marked as revoked (${c.userFile}:2).`), c.logged[0]);
      assert.equal(await readFile(c.userFile, "utf8"), text);
      assert.deepEqual(c.asker.requests, []);
    });
  }

  test("an @revoked line for every host (*) in the global file refuses a host not otherwise known", async () => {
    const c = await makeCase({ globalText: `@revoked * ${edA.type} ${edA.base64}\n`, policy: { strict: "no" } });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_REVOKED");
    assert.ok(err.message.includes(`${c.globalFile}:1`), err.message);
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" }, "a revoked key is never recorded");
  });
});

describe("verifyHostKey: an unknown key", () => {
  test("StrictHostKeyChecking=yes refuses with HOST_KEY_UNKNOWN naming the file, the fingerprint and accept-new, writing nothing", async () => {
    const text = `example.org ${edB.type} ${edB.base64}\n`;
    const c = await makeCase({ userText: text, answers: ["yes"], policy: { strict: "yes" } });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.equal(err.exitCode, 255);
    assert.ok(err.message.includes(c.userFile), err.message);
    assert.ok(err.message.includes(edA.fingerprint), err.message);
    assert.ok(err.message.includes("StrictHostKeyChecking=accept-new"), err.message);
    assert.ok(err.message.includes("Host key verification failed"), err.message);
    assert.equal(await readFile(c.userFile, "utf8"), text);
    assert.deepEqual(c.asker.requests, []);
    assert.deepEqual(c.logged, []);
  });

  for (const strict of ["accept-new", "no"] as const) {
    test(`StrictHostKeyChecking=${strict} appends the key without asking and says 'Permanently added'; the next check finds it`, async () => {
      const text = `example.org ${edB.type} ${edB.base64}\n`;
      const c = await makeCase({ userText: text, policy: { strict } });
      await verifyHostKey(edA.blob, c.policy);
      assert.deepEqual(await fileLines(c.userFile), [`example.org ${edB.type} ${edB.base64}`, line(edA)]);
      assert.deepEqual(c.logged, [PERMANENTLY_ADDED]);
      assert.deepEqual(c.asker.requests, []);
      assert.equal(await sshKeygenFinds(c.userFile), 2);

      await verifyHostKey(edA.blob, { ...c.policy, strict: "yes" });
      assert.equal((await fileLines(c.userFile)).length, 2, "known now: not appended twice");
      assert.deepEqual(c.logged, [PERMANENTLY_ADDED]);
    });
  }

  test("StrictHostKeyChecking=accept-new creates a missing known_hosts file (and its directory)", async () => {
    const c = await makeCase({ policy: { strict: "accept-new" } });
    const file = join(c.userFile, "..", "new-dir", "known_hosts");
    await verifyHostKey(edA.blob, { ...c.policy, userKnownHostsFiles: [file] });
    assert.deepEqual(await fileLines(file), [line(edA)]);
    assert.deepEqual(c.logged, [PERMANENTLY_ADDED]);
  });

  test("a key that cannot be recorded is still accepted, with a warning naming the file (OpenSSH goes on too)", async () => {
    const c = await makeCase({ userText: "", policy: { strict: "accept-new" } });
    // A path below a regular file: neither readable nor creatable.
    const file = join(c.userFile, "known_hosts");
    await verifyHostKey(edA.blob, { ...c.policy, userKnownHostsFiles: [file] });
    assert.equal(c.logged.length, 1, JSON.stringify(c.logged));
    assert.ok(c.logged[0]!.startsWith(`Warning: Failed to add the host to the list of known hosts (${file}): `), c.logged[0]);
  });

  test("BatchMode=yes with accept-new still records the key without asking", async () => {
    const c = await makeCase({ policy: { strict: "accept-new", batchMode: true } });
    await verifyHostKey(edA.blob, c.policy);
    assert.deepEqual(await fileLines(c.userFile), [line(edA)]);
    assert.deepEqual(c.asker.requests, []);
  });
});

describe("verifyHostKey: StrictHostKeyChecking=ask", () => {
  test("the question names the host, the key type and fingerprint, and offers yes/no/[fingerprint], echoing the answer", async () => {
    const c = await makeCase({ answers: ["no"] });
    await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(c.asker.requests.length, 1);
    const request = c.asker.requests[0]!;
    assert.ok(request.message.includes("The authenticity of host '[127.0.0.1]:2222' can't be established."), request.message);
    assert.ok(request.message.includes(`ED25519 key fingerprint is ${edA.fingerprint}.`), request.message);
    assert.ok(request.message.endsWith("(yes/no/[fingerprint])? "), request.message);
    assert.equal(request.echo, true);
    // Not "confirm": an askpass dialog must show a text field for the typed answer, as OpenSSH's confirm() does.
    assert.equal(request.kind, "secret");
  });

  for (const answer of ["yes", "YES", " yes \n"]) {
    test(`answering ${JSON.stringify(answer)} accepts and records the key`, async () => {
      const c = await makeCase({ userText: `example.org ${edB.type} ${edB.base64}\n`, answers: [answer] });
      await verifyHostKey(edA.blob, c.policy);
      assert.equal(c.asker.requests.length, 1);
      assert.deepEqual(await fileLines(c.userFile), [`example.org ${edB.type} ${edB.base64}`, line(edA)]);
      assert.deepEqual(c.logged, [PERMANENTLY_ADDED]);
    });
  }

  test("answering the exact SHA256 fingerprint accepts and records the key at the first prompt", async () => {
    const c = await makeCase({ answers: [edA.fingerprint] });
    await verifyHostKey(edA.blob, c.policy);
    assert.equal(c.asker.requests.length, 1, "accepted at once, not asked again");
    assert.deepEqual(await fileLines(c.userFile), [line(edA)]);
    assert.deepEqual(c.logged, [PERMANENTLY_ADDED]);
  });

  test("answering 'no' refuses with HOST_KEY_UNKNOWN after one prompt and records nothing", async () => {
    const c = await makeCase({ answers: ["no", "yes"] });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.equal(err.exitCode, 255);
    assert.ok(err.message.includes(NAME) && err.message.includes(edA.fingerprint), err.message);
    assert.equal(c.asker.requests.length, 1);
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
    assert.deepEqual(c.logged, []);
  });

  test("an empty answer is a 'no', as in OpenSSH's confirm(): refused after one prompt", async () => {
    const c = await makeCase({ answers: ["", "yes"] });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.equal(c.asker.requests.length, 1, "not asked again after an empty answer");
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
  });

  test("three answers that are neither yes, no nor the fingerprint are refused, asking again with the short question", async () => {
    // Another key's fingerprint, this one's in the wrong case, and a word: none of them is a yes.
    const c = await makeCase({ answers: [edB.fingerprint, edA.fingerprint.toLowerCase(), "maybe", "yes"] });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.deepEqual(
      c.asker.requests.map((r) => r.message === RETRY_PROMPT),
      [false, true, true],
    );
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
  });

  test("with no way to ask (the first answer is null), HOST_KEY_UNKNOWN says there is no terminal or SSH_ASKPASS and suggests accept-new", async () => {
    const c = await makeCase({ answers: [null] });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.equal(err.exitCode, 255);
    assert.ok(err.message.includes("no terminal or SSH_ASKPASS"), err.message);
    assert.ok(err.message.includes("StrictHostKeyChecking=accept-new"), err.message);
    assert.ok(err.message.includes(c.userFile), err.message);
    assert.ok(err.message.includes(edA.fingerprint), err.message);
    assert.equal(c.asker.requests.length, 1);
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
  });

  test("BatchMode=yes never prompts and refuses the unknown key", async () => {
    const c = await makeCase({ answers: ["yes"], policy: { batchMode: true } });
    const err = await rejection(verifyHostKey(edA.blob, c.policy), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.equal(err.exitCode, 255);
    assert.deepEqual(c.asker.requests, []);
    await assert.rejects(readFile(c.userFile, "utf8"), { code: "ENOENT" });
  });
});

describe("verifyHostKey: the style of the appended line", () => {
  async function appendedLine(userText: string | undefined, hashKnownHosts: boolean | undefined, hashFirst: boolean): Promise<{ last: string; file: string; count: number }> {
    const c = await makeCase({ ...(userText === undefined ? {} : { userText }), policy: { strict: "accept-new", hashKnownHosts } });
    if (hashFirst) await hashWithSshKeygen(c.userFile);
    await verifyHostKey(edA.blob, c.policy);
    const lines = await fileLines(c.userFile);
    // OpenSSH's own lookup finds the new line, whichever style it has.
    assert.equal(await sshKeygenFinds(c.userFile), lines.length);
    // And so does ours: the key is known now.
    await verifyHostKey(edA.blob, { ...c.policy, strict: "yes" });
    return { last: lines.at(-1)!, file: c.userFile, count: lines.length };
  }

  const plainText = (): string => `example.org ${edB.type} ${edB.base64}\n`;
  const hashedPattern = (): RegExp => new RegExp(`^\\|1\\|[A-Za-z0-9+/]{27}=\\|[A-Za-z0-9+/]{27}= ssh-ed25519 ${edA.base64.replace(/[+/]/g, "\\$&")}$`);

  test("HashKnownHosts=yes hashes the new line even in a file of plain lines", async () => {
    const { last, count } = await appendedLine(plainText(), true, false);
    assert.equal(count, 2);
    assert.match(last, hashedPattern());
  });

  test("HashKnownHosts=no writes a plain line even in a file hashed by ssh-keygen -H", async () => {
    const { last, count } = await appendedLine(plainText(), false, true);
    assert.equal(count, 2);
    assert.equal(last, line(edA));
  });

  test("HashKnownHosts unset follows a plain file: a plain line", async () => {
    const { last } = await appendedLine(plainText(), undefined, false);
    assert.equal(last, line(edA));
  });

  test("HashKnownHosts unset follows a hashed file: a hashed line", async () => {
    const { last } = await appendedLine(plainText(), undefined, true);
    assert.match(last, hashedPattern());
  });

  test("HashKnownHosts unset and no file yet: a plain line, OpenSSH's default", async () => {
    const { last, count } = await appendedLine(undefined, undefined, false);
    assert.equal(count, 1);
    assert.equal(last, line(edA));
  });
});
