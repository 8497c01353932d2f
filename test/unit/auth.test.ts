import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { openSshPublicBlob } from "../../src/ssh/auth.ts";
import { runCommand } from "../helpers/child.ts";

test("reads the public key out of an encrypted OpenSSH private key without its passphrase", async () => {
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-auth-unit-"));
  try {
    for (const type of ["ed25519", "ecdsa", "rsa"]) {
      const path = join(dir, `id_${type}`);
      const made = await runCommand("ssh-keygen", ["-q", "-t", type, "-N", "a passphrase", "-C", "", "-f", path]);
      assert.equal(made.code, 0, made.stderr);
      const publicLine = (await readFile(`${path}.pub`, "utf8")).trim().split(" ");
      const blob = openSshPublicBlob(await readFile(path));
      assert.ok(blob !== null, `no public key found in the ${type} key`);
      assert.equal(blob.toString("base64"), publicLine[1], `the ${type} public key`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("gives null for PEM keys, garbage and a truncated header", () => {
  assert.equal(openSshPublicBlob(Buffer.from("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n")), null);
  assert.equal(openSshPublicBlob(Buffer.from("not a key")), null);
  const truncated = Buffer.concat([Buffer.from("openssh-key-v1\0"), Buffer.from([0, 0, 0, 4, 0x61])]).toString("base64");
  assert.equal(openSshPublicBlob(Buffer.from(`-----BEGIN OPENSSH PRIVATE KEY-----\n${truncated}\n-----END OPENSSH PRIVATE KEY-----\n`)), null);
});
