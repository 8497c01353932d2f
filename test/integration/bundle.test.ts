/**
 * The bundle finds ssh2's native crypto binding: ssh2 requires it relative to
 * its own folder, which in dist/safetunnel.cjs is dist/, so the build copies
 * it there (scripts/copy-native-crypto.ts). Without it the bundle silently
 * runs ssh2's JavaScript ciphers, a third slower per GiB.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/run.ts";

const built = join(repoRoot(), "node_modules", "ssh2", "lib", "protocol", "crypto", "build", "Release", "sshcrypto.node");

test("ssh2's native binding resolves from the bundle's folder the way ssh2 asks for it, and loads", { skip: existsSync(built) ? false : "npm ci could not build ssh2's binding here" }, () => {
  // The path as ssh2 writes it, which esbuild leaves as it is (--external:*.node).
  assert.ok(readFileSync(join(repoRoot(), "dist", "safetunnel.cjs"), "utf8").includes('require("./crypto/build/Release/sshcrypto.node")'));
  const requireFromBundle = createRequire(join(repoRoot(), "dist", "safetunnel.cjs"));
  const binding = requireFromBundle("./crypto/build/Release/sshcrypto.node") as Record<string, unknown>;
  assert.deepEqual(Object.keys(binding).sort(), ["AESGCMCipher", "AESGCMDecipher", "ChaChaPolyCipher", "ChaChaPolyDecipher", "GenericCipher", "GenericDecipher"]);
});
