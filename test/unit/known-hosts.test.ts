import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  appendKnownHost,
  checkHostKey,
  entryMatchesHost,
  fingerprintSha256,
  formatKnownHostsLine,
  hostKeyFromBlob,
  keyTypesKnownFor,
  knownHostsName,
  loadKnownHosts,
  orderHostKeyAlgorithms,
  parseKnownHosts,
  prefersHashing,
  type HostKey,
  type KnownHostsEntry,
} from "../../src/config/known-hosts.ts";
import { isTunnelError } from "../../src/errors.ts";

const run = promisify(execFile);

interface GeneratedKey {
  key: HostKey;
  base64: string;
  pubPath: string;
}

let dir = "";
let edA: GeneratedKey;
let edB: GeneratedKey;
let ecdsa: GeneratedKey;

async function generateKey(name: string, type: string): Promise<GeneratedKey> {
  const path = join(dir, name);
  await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `${name}@test`, "-f", path]);
  const [keyType, base64] = (await readFile(`${path}.pub`, "utf8")).trim().split(" ");
  assert.ok(keyType !== undefined && base64 !== undefined);
  const key = hostKeyFromBlob(Buffer.from(base64, "base64"));
  assert.equal(key.type, keyType);
  return { key, base64, pubPath: `${path}.pub` };
}

/** The single entry a one-line known_hosts text parses to. */
function one(text: string): KnownHostsEntry {
  const entries = parseKnownHosts(text, "kh");
  assert.equal(entries.length, 1, `expected one entry from ${JSON.stringify(text)}`);
  return entries[0]!;
}

/** An SSH wire string: uint32 length then bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function lines(entries: KnownHostsEntry[]): number[] {
  return entries.map((entry) => entry.line);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "safetunnel-known-hosts-"));
  [edA, edB, ecdsa] = await Promise.all([
    generateKey("ed-a", "ed25519"),
    generateKey("ed-b", "ed25519"),
    generateKey("ecdsa", "ecdsa"),
  ]);
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

describe("parseKnownHosts", () => {
  test("reads every field of a plain line with a comment", () => {
    const entries = parseKnownHosts(`example.com,10.0.0.1 ssh-ed25519 ${edA.base64} my  host key \n`, "/x/known_hosts");
    assert.deepEqual(entries, [
      {
        file: "/x/known_hosts",
        line: 1,
        marker: null,
        hostField: "example.com,10.0.0.1",
        hashed: false,
        keyType: "ssh-ed25519",
        keyBase64: edA.base64,
        comment: "my  host key",
      },
    ]);
  });

  test("reads @revoked and @cert-authority markers separated by tabs", () => {
    const entries = parseKnownHosts(
      `@revoked\t*\tssh-ed25519 ${edA.base64}\n  @cert-authority *.example.com ecdsa-sha2-nistp256 ${ecdsa.base64}\n`,
      "kh",
    );
    assert.deepEqual(
      entries.map((entry) => [entry.line, entry.marker, entry.hostField, entry.keyType, entry.comment]),
      [
        [1, "revoked", "*", "ssh-ed25519", ""],
        [2, "cert-authority", "*.example.com", "ecdsa-sha2-nistp256", ""],
      ],
    );
  });

  test("skips blanks, comments and malformed lines but keeps counting lines", () => {
    const otherBlob = Buffer.from(edB.base64, "base64");
    const text = [
      "", // 1
      "   # a comment", // 2
      `good1 ssh-ed25519 ${edA.base64}`, // 3
      `@bogus good ssh-ed25519 ${edA.base64}`, // 4 unknown marker
      `@revoked @revoked good ssh-ed25519 ${edA.base64}`, // 5 two markers
      "truncated.example.com", // 6 no key type
      "truncated.example.com ssh-ed25519", // 7 no key
      "host ssh-ed25519 not*base64", // 8
      `host ssh-rsa ${edA.base64}`, // 9 declared type differs from the blob
      "host 1024 35 1234567890", // 10 SSH-1 RSA
      `|1|abc|def ssh-ed25519 ${edA.base64}`, // 11 salt is not 20 bytes
      `|2|${Buffer.alloc(20).toString("base64")}|x ssh-ed25519 ${edA.base64}`, // 12 unknown hash magic
      `host ssh-ed25519 ${otherBlob.subarray(0, otherBlob.length - 1).toString("base64")}`, // 13 truncated blob
      "\t", // 14
      `good2 ssh-ed25519 ${edB.base64}\r`, // 15 CRLF
      `host # ssh-ed25519 ${edA.base64}`, // 16 comment where the key type should be
    ].join("\n");
    const entries = parseKnownHosts(text, "kh");
    assert.deepEqual(
      entries.map((entry) => [entry.line, entry.hostField, entry.keyBase64, entry.comment]),
      [
        [3, "good1", edA.base64, ""],
        [15, "good2", edB.base64, ""],
      ],
    );
  });

  test("returns nothing for an empty file", () => {
    assert.deepEqual(parseKnownHosts("", "kh"), []);
  });
});

describe("knownHostsName", () => {
  test("uses the bare host for port 22 and [host]:port otherwise, like put_host_port", () => {
    assert.equal(knownHostsName("example.com", 22), "example.com");
    assert.equal(knownHostsName("example.com", 0), "example.com");
    assert.equal(knownHostsName("example.com", 2222), "[example.com]:2222");
    assert.equal(knownHostsName("::1", 22), "::1");
    assert.equal(knownHostsName("::1", 2200), "[::1]:2200");
  });
});

describe("entryMatchesHost", () => {
  const line = (hosts: string) => one(`${hosts} ssh-ed25519 ${edA.base64}`);

  test("matches a plain name case-insensitively on port 22 only", () => {
    const entry = line("Example.COM");
    assert.equal(entryMatchesHost(entry, "example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "EXAMPLE.com", 22), true);
    assert.equal(entryMatchesHost(entry, "example.com", 2222), false);
    assert.equal(entryMatchesHost(entry, "example.org", 22), false);
    assert.equal(entryMatchesHost(entry, "www.example.com", 22), false);
  });

  test("matches any name of a comma list", () => {
    const entry = line("a.example.com,b.example.com,192.0.2.7");
    assert.equal(entryMatchesHost(entry, "a.example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "b.example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "192.0.2.7", 22), true);
    assert.equal(entryMatchesHost(entry, "c.example.com", 22), false);
  });

  test("expands * and ? wildcards over the whole name", () => {
    const entry = line("*.example.com,host?.test");
    assert.equal(entryMatchesHost(entry, "www.example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "a.b.example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "example.com", 22), false);
    assert.equal(entryMatchesHost(entry, "www.example.com.evil", 22), false);
    assert.equal(entryMatchesHost(entry, "host1.test", 22), true);
    assert.equal(entryMatchesHost(entry, "host12.test", 22), false);
    assert.equal(entryMatchesHost(entry, "www.example.com", 2222), false);
  });

  test("lets a matching negated pattern veto the line even when a positive one matches", () => {
    const entry = line("*.example.com,!secret.example.com");
    assert.equal(entryMatchesHost(entry, "www.example.com", 22), true);
    assert.equal(entryMatchesHost(entry, "secret.example.com", 22), false);
    assert.equal(entryMatchesHost(entry, "SECRET.example.com", 22), false);
    assert.equal(entryMatchesHost(line("!secret.example.com"), "other.example.com", 22), false);
  });

  test("matches [host]:port names only for that port, with wildcards inside the brackets", () => {
    const entry = line("[example.com]:2222,[*.test]:*");
    assert.equal(entryMatchesHost(entry, "example.com", 2222), true);
    assert.equal(entryMatchesHost(entry, "Example.Com", 2222), true);
    assert.equal(entryMatchesHost(entry, "example.com", 2223), false);
    assert.equal(entryMatchesHost(entry, "example.com", 22), false);
    assert.equal(entryMatchesHost(entry, "a.test", 8022), true);
    assert.equal(entryMatchesHost(entry, "a.test", 22), false);
  });

  test("does not treat [host]:22 as the port-22 name, which OpenSSH looks up bare", () => {
    assert.equal(entryMatchesHost(line("[example.com]:22"), "example.com", 22), false);
  });
});

describe("hashed names made by ssh-keygen -H", () => {
  let hashed: KnownHostsEntry[] = [];

  before(async () => {
    const file = join(dir, "hash_me");
    const plain = [
      `example.com,alias.example.org ssh-ed25519 ${edA.base64}`,
      `[example.com]:2222 ssh-ed25519 ${edB.base64}`,
      `Mixed.Case.Example ecdsa-sha2-nistp256 ${ecdsa.base64}`,
      `*.wild.example ssh-ed25519 ${edA.base64}`,
    ].join("\n");
    await writeFile(file, plain + "\n");
    await run("ssh-keygen", ["-H", "-f", file]);
    hashed = parseKnownHosts(await readFile(file, "utf8"), file);
  });

  test("parses each hashed name to its own hashed entry and keeps the wildcard line plain", () => {
    assert.deepEqual(
      hashed.map((entry) => [entry.line, entry.hashed, entry.keyType]),
      [
        [1, true, "ssh-ed25519"],
        [2, true, "ssh-ed25519"],
        [3, true, "ssh-ed25519"],
        [4, true, "ecdsa-sha2-nistp256"],
        [5, false, "ssh-ed25519"],
      ],
    );
    for (const entry of hashed.slice(0, 4)) assert.match(entry.hostField, /^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}=$/);
    assert.equal(hashed[4]?.hostField, "*.wild.example");
  });

  test("matches a hashed port-22 name only for that host on port 22", () => {
    const matching = (host: string, port: number) => lines(hashed.filter((entry) => entryMatchesHost(entry, host, port)));
    assert.deepEqual(matching("example.com", 22), [1]);
    assert.deepEqual(matching("EXAMPLE.COM", 22), [1]);
    assert.deepEqual(matching("alias.example.org", 22), [2]);
    assert.deepEqual(matching("mixed.case.example", 22), [4]);
    assert.deepEqual(matching("example.org", 22), []);
    assert.deepEqual(matching("alias.example.org", 2222), []);
    assert.deepEqual(matching("a.wild.example", 22), [5]);
  });

  test("matches a hashed [host]:port name only for that port", () => {
    const matching = (host: string, port: number) => lines(hashed.filter((entry) => entryMatchesHost(entry, host, port)));
    assert.deepEqual(matching("example.com", 2222), [3]);
    assert.deepEqual(matching("example.com", 2223), []);
    assert.deepEqual(matching("example.org", 2222), []);
  });

  test("checks a presented key against hashed entries", () => {
    assert.deepEqual(checkHostKey(hashed, "example.com", 2222, edB.key), { status: "known", entry: hashed[2] });
    assert.deepEqual(checkHostKey(hashed, "example.com", 2222, edA.key), { status: "changed", entry: hashed[2] });
  });
});

describe("formatKnownHostsLine", () => {
  test("writes a lowercased, port-decorated plain line without a newline", () => {
    assert.equal(formatKnownHostsLine("Example.COM", 22, edA.key, { hash: false }), `example.com ssh-ed25519 ${edA.base64}`);
    assert.equal(
      formatKnownHostsLine("Example.COM", 2222, ecdsa.key, { hash: false }),
      `[example.com]:2222 ecdsa-sha2-nistp256 ${ecdsa.base64}`,
    );
  });

  test("writes a hashed line with the given salt that parses back and matches only its host and port", () => {
    const salt = Buffer.from("000102030405060708090a0b0c0d0e0f10111213", "hex");
    const text = formatKnownHostsLine("Example.com", 2222, edA.key, { hash: true, salt });
    assert.match(text, new RegExp(`^\\|1\\|AAECAwQFBgcICQoLDA0ODxAREhM=\\|[A-Za-z0-9+/]{27}= ssh-ed25519 ${edA.base64.replace(/\+/g, "\\+")}$`));
    const entry = one(text);
    assert.equal(entry.hashed, true);
    assert.equal(entryMatchesHost(entry, "example.com", 2222), true);
    assert.equal(entryMatchesHost(entry, "example.com", 22), false);
    assert.equal(entryMatchesHost(entry, "example.org", 2222), false);
  });

  test("writes hashed lines that ssh-keygen -F finds under the same name", async () => {
    const file = join(dir, "formatted_hashed");
    await writeFile(
      file,
      formatKnownHostsLine("plain22.example", 22, edA.key, { hash: true }) +
        "\n" +
        formatKnownHostsLine("Other.Example", 2222, edB.key, { hash: true }) +
        "\n",
    );
    const port22 = await run("ssh-keygen", ["-F", "plain22.example", "-f", file]);
    assert.match(port22.stdout, /^# Host plain22\.example found: line 1 /);
    const port2222 = await run("ssh-keygen", ["-F", "[other.example]:2222", "-f", file]);
    assert.match(port2222.stdout, /^# Host \[other\.example\]:2222 found: line 2 /);
    await assert.rejects(run("ssh-keygen", ["-F", "other.example", "-f", file]), (err: { code?: number }) => err.code === 1);
  });

  test("uses a fresh random salt for every hashed line", () => {
    const first = formatKnownHostsLine("example.com", 22, edA.key, { hash: true });
    const second = formatKnownHostsLine("example.com", 22, edA.key, { hash: true });
    assert.notEqual(first, second);
    assert.equal(entryMatchesHost(one(first), "example.com", 22), true);
    assert.equal(entryMatchesHost(one(second), "example.com", 22), true);
  });

  test("refuses a salt that is not 20 bytes, which OpenSSH could not read back", () => {
    assert.throws(
      () => formatKnownHostsLine("example.com", 22, edA.key, { hash: true, salt: Buffer.alloc(16) }),
      (err: unknown) => isTunnelError(err, "INTERNAL"),
    );
  });
});

describe("fingerprintSha256 and hostKeyFromBlob", () => {
  test("prints the same SHA256 fingerprint as ssh-keygen -lf -E sha256", async () => {
    const { stdout } = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", edA.pubPath]);
    const expected = /^256 (SHA256:[A-Za-z0-9+/]{43}) ed-a@test \(ED25519\)\n$/.exec(stdout)?.[1];
    assert.ok(expected !== undefined, `unexpected ssh-keygen output ${stdout}`);
    assert.equal(fingerprintSha256(edA.key.blob), expected);
    const ecdsaOut = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", ecdsa.pubPath]);
    assert.equal(ecdsaOut.stdout.split(" ")[1], fingerprintSha256(ecdsa.key.blob));
  });

  test("reads the key type from real ed25519 and ecdsa blobs", () => {
    assert.equal(edA.key.type, "ssh-ed25519");
    assert.equal(ecdsa.key.type, "ecdsa-sha2-nistp256");
    assert.equal(hostKeyFromBlob(edA.key.blob).blob, edA.key.blob);
  });

  test("accepts a well-formed RSA blob and an unknown type with any body", () => {
    const rsa = Buffer.concat([sshString("ssh-rsa"), sshString(Buffer.from([1, 0, 1])), sshString(Buffer.alloc(256, 0x55))]);
    assert.equal(hostKeyFromBlob(rsa).type, "ssh-rsa");
    assert.equal(hostKeyFromBlob(Buffer.concat([sshString("ssh-future@example.com"), Buffer.from([9, 9])])).type, "ssh-future@example.com");
  });

  test("throws BAD_KEY on malformed blobs", () => {
    const ed = edA.key.blob;
    const bad: Array<[string, Buffer]> = [
      ["empty", Buffer.alloc(0)],
      ["short length", Buffer.from([0, 0])],
      ["type runs past the end", Buffer.from([0, 0, 0, 50, 0x73, 0x73, 0x68])],
      ["empty type", sshString("")],
      ["non-printable type", sshString("ssh ed25519")],
      ["truncated ed25519", ed.subarray(0, ed.length - 1)],
      ["trailing bytes", Buffer.concat([ed, Buffer.from([0])])],
      ["ed25519 key of 31 bytes", Buffer.concat([sshString("ssh-ed25519"), sshString(Buffer.alloc(31))])],
      ["ecdsa curve mismatch", Buffer.concat([sshString("ecdsa-sha2-nistp256"), sshString("nistp384"), sshString(Buffer.alloc(97, 4))])],
      ["rsa without modulus", Buffer.concat([sshString("ssh-rsa"), sshString(Buffer.from([1, 0, 1]))])],
    ];
    for (const [name, blob] of bad) {
      assert.throws(() => hostKeyFromBlob(blob), (err: unknown) => isTunnelError(err, "BAD_KEY"), name);
    }
  });
});

describe("checkHostKey", () => {
  test("reports a matching line as known", () => {
    const entries = parseKnownHosts(`other.example ssh-ed25519 ${edB.base64}\nexample.com ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "Example.com", 22, edA.key), { status: "known", entry: entries[1] });
  });

  test("reports known when any line matches even if another line of the same type differs", () => {
    const entries = parseKnownHosts(`example.com ssh-ed25519 ${edB.base64}\n*.com ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "known", entry: entries[1] });
  });

  test("reports revoked for a key on a matching @revoked line, over a known line", () => {
    const entries = parseKnownHosts(`example.com ssh-ed25519 ${edA.base64}\n@revoked * ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "revoked", entry: entries[1] });
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edB.key), { status: "changed", entry: entries[0] });
  });

  test("ignores @revoked lines for other hosts", () => {
    const entries = parseKnownHosts(`example.com ssh-ed25519 ${edA.base64}\n@revoked other.example ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "known", entry: entries[0] });
  });

  test("never accepts or rejects a plain key because of a @cert-authority line", () => {
    const entries = parseKnownHosts(`@cert-authority example.com ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "unknown", otherTypes: [] });
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edB.key), { status: "unknown", otherTypes: [] });
  });

  test("reports changed with the first line of the same type holding another key", () => {
    const entries = parseKnownHosts(
      [
        `example.com ecdsa-sha2-nistp256 ${ecdsa.base64}`,
        `example.com ssh-ed25519 ${edB.base64}`,
        `*.com ssh-ed25519 ${edB.base64}`,
      ].join("\n"),
      "kh",
    );
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "changed", entry: entries[1] });
  });

  test("reports unknown with the host's lines of other key types", () => {
    const entries = parseKnownHosts(
      [
        `example.com ecdsa-sha2-nistp256 ${ecdsa.base64}`,
        `other.example ssh-ed25519 ${edB.base64}`,
        `[example.com]:2222 ssh-ed25519 ${edB.base64}`,
        `@revoked example.com ssh-ed25519 ${edB.base64}`,
      ].join("\n"),
      "kh",
    );
    assert.deepEqual(checkHostKey(entries, "example.com", 22, edA.key), { status: "unknown", otherTypes: [entries[0]] });
    assert.deepEqual(checkHostKey(entries, "new.example", 22, edA.key), { status: "unknown", otherTypes: [] });
  });

  test("does not apply a plain host line to another port", () => {
    const entries = parseKnownHosts(`example.com ssh-ed25519 ${edA.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "example.com", 2222, edA.key), { status: "unknown", otherTypes: [] });
  });

  test("does not apply a line whose negated pattern matches the host", () => {
    const entries = parseKnownHosts(`*.example.com,!evil.example.com ssh-ed25519 ${edB.base64}\n`, "kh");
    assert.deepEqual(checkHostKey(entries, "evil.example.com", 22, edA.key), { status: "unknown", otherTypes: [] });
    assert.deepEqual(checkHostKey(entries, "good.example.com", 22, edA.key), { status: "changed", entry: entries[0] });
  });
});

describe("keyTypesKnownFor and orderHostKeyAlgorithms", () => {
  test("lists distinct key types of plain lines for the host in file order", () => {
    const entries = parseKnownHosts(
      [
        `@revoked example.com ssh-ed25519 ${edA.base64}`,
        `@cert-authority example.com ssh-ed25519 ${edA.base64}`,
        `other.example ssh-ed25519 ${edA.base64}`,
        `example.com ecdsa-sha2-nistp256 ${ecdsa.base64}`,
        `*.com ssh-ed25519 ${edA.base64}`,
        `example.com ecdsa-sha2-nistp256 ${ecdsa.base64}`,
      ].join("\n"),
      "kh",
    );
    assert.deepEqual(keyTypesKnownFor(entries, "example.com", 22), ["ecdsa-sha2-nistp256", "ssh-ed25519"]);
    assert.deepEqual(keyTypesKnownFor(entries, "other.example", 22), ["ssh-ed25519"]);
    assert.deepEqual(keyTypesKnownFor(entries, "example.com", 2222), []);
  });

  test("moves algorithms of known key types to the front, counting rsa-sha2-* as ssh-rsa", () => {
    const defaults = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
    assert.deepEqual(orderHostKeyAlgorithms(defaults, ["ssh-rsa"]), [
      "rsa-sha2-512",
      "rsa-sha2-256",
      "ssh-rsa",
      "ssh-ed25519",
      "ecdsa-sha2-nistp256",
    ]);
    assert.deepEqual(orderHostKeyAlgorithms(defaults, ["ecdsa-sha2-nistp256", "ssh-ed25519"]), defaults);
    assert.deepEqual(orderHostKeyAlgorithms(defaults, []), defaults);
  });
});

describe("prefersHashing", () => {
  const hashedLine = () => formatKnownHostsLine("h.example", 22, edA.key, { hash: true });

  test("follows the last unmarked entry of the file", () => {
    assert.equal(prefersHashing(parseKnownHosts(`plain.example ssh-ed25519 ${edA.base64}\n${hashedLine()}\n`, "kh")), true);
    assert.equal(prefersHashing(parseKnownHosts(`${hashedLine()}\nplain.example ssh-ed25519 ${edA.base64}\n`, "kh")), false);
  });

  test("ignores marker lines and defaults to plain for an empty file", () => {
    assert.equal(prefersHashing([]), false);
    assert.equal(prefersHashing(parseKnownHosts(`${hashedLine()}\n@revoked * ssh-ed25519 ${edB.base64}\n`, "kh")), true);
  });
});

describe("loadKnownHosts and appendKnownHost", () => {
  test("loads files in order, naming each entry's file, and treats missing files as empty", async () => {
    const first = join(dir, "load_user");
    const second = join(dir, "load_global");
    await writeFile(first, `# user\na.example ssh-ed25519 ${edA.base64}\n`);
    await writeFile(second, `b.example ssh-ed25519 ${edB.base64}\n`);
    const entries = await loadKnownHosts([join(dir, "missing"), first, join(dir, "no-such-dir", "known_hosts"), second]);
    assert.deepEqual(
      entries.map((entry) => [entry.file, entry.line, entry.hostField]),
      [
        [first, 2, "a.example"],
        [second, 1, "b.example"],
      ],
    );
  });

  test("throws BAD_CONFIG naming a file that exists but cannot be read", async () => {
    const notAFile = join(dir, "a-directory");
    await mkdir(notAFile);
    await assert.rejects(
      loadKnownHosts([notAFile]),
      (err: unknown) => isTunnelError(err, "BAD_CONFIG") && err.message.includes(notAFile) && !err.message.includes("\n"),
    );
  });

  test("creates the directory with mode 0700 and the file with mode 0600", async () => {
    const sshDir = join(dir, "home", ".ssh");
    const file = join(sshDir, "known_hosts");
    await appendKnownHost(file, `a.example ssh-ed25519 ${edA.base64}`);
    assert.equal(await readFile(file, "utf8"), `a.example ssh-ed25519 ${edA.base64}\n`);
    assert.equal((await stat(sshDir)).mode & 0o777, 0o700);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  test("ends an unterminated last line before appending and adds nothing extra otherwise", async () => {
    const file = join(dir, "append_me");
    await writeFile(file, "old.example ssh-ed25519 X");
    await appendKnownHost(file, "first");
    await appendKnownHost(file, "second");
    assert.equal(await readFile(file, "utf8"), "old.example ssh-ed25519 X\nfirst\nsecond\n");
  });

  test("appends to an existing empty file without a leading blank line", async () => {
    const file = join(dir, "append_empty");
    await writeFile(file, "");
    await appendKnownHost(file, "only");
    assert.equal(await readFile(file, "utf8"), "only\n");
  });

  test("refuses a line containing a line break", async () => {
    await assert.rejects(appendKnownHost(join(dir, "never"), "a\nb"), (err: unknown) => isTunnelError(err, "INTERNAL"));
    await assert.rejects(stat(join(dir, "never")), { code: "ENOENT" });
  });

  test("appended lines load back and match their host", async () => {
    const file = join(dir, "roundtrip", "known_hosts");
    await appendKnownHost(file, formatKnownHostsLine("round.example", 2222, edA.key, { hash: true }));
    await appendKnownHost(file, formatKnownHostsLine("round.example", 22, ecdsa.key, { hash: false }));
    const entries = await loadKnownHosts([file]);
    assert.deepEqual(checkHostKey(entries, "round.example", 2222, edA.key), { status: "known", entry: entries[0] });
    assert.deepEqual(checkHostKey(entries, "round.example", 22, ecdsa.key), { status: "known", entry: entries[1] });
    assert.equal(prefersHashing(entries), false);
  });
});
