/**
 * The bundle finds ssh2's native crypto binding: ssh2 requires it relative to
 * its own folder, which in dist/safetunnel.cjs is dist/, so the build copies
 * it there (scripts/copy-native-crypto.ts). Without it the bundle silently
 * runs ssh2's JavaScript ciphers, a third slower per GiB. Where the binding
 * loads, the bundle does not instantiate ssh2's WebAssembly Poly1305
 * (scripts/bundle.ts); where it does not, chacha20-poly1305 still works.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { repoRoot, startCli, waitForListen, type Home } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { deterministicBytes, freePort, sha256, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { loginArgs, startSshdWithHome } from "../helpers/tunnel.ts";

const built = join(repoRoot(), "node_modules", "ssh2", "lib", "protocol", "crypto", "build", "Release", "sshcrypto.node");

test("ssh2's native binding resolves from the bundle's folder the way ssh2 asks for it, and loads", { skip: existsSync(built) ? false : "npm ci could not build ssh2's binding here" }, () => {
  // The path as ssh2 writes it, which esbuild leaves as it is (--external:*.node).
  assert.ok(readFileSync(join(repoRoot(), "dist", "safetunnel.cjs"), "utf8").includes('require("./crypto/build/Release/sshcrypto.node")'));
  const requireFromBundle = createRequire(join(repoRoot(), "dist", "safetunnel.cjs"));
  const binding = requireFromBundle("./crypto/build/Release/sshcrypto.node") as Record<string, unknown>;
  assert.deepEqual(Object.keys(binding).sort(), ["AESGCMCipher", "AESGCMDecipher", "ChaChaPolyCipher", "ChaChaPolyDecipher", "GenericCipher", "GenericDecipher"]);
});

describe("chacha20-poly1305, the one cipher sshd offers, from the bundle with and without the native binding", () => {
  let sshd: Sshd;
  let home: Home;
  let http: HttpTarget;
  const dirs: string[] = [];
  before(async () => {
    ({ sshd, home } = await startSshdWithHome({ extraConfig: ["Ciphers chacha20-poly1305@openssh.com"] }));
    http = await startHttpTarget();
  });
  after(async () => {
    await http?.stop();
    await sshd?.stop();
    await home?.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** 1 MiB through -D from `script`, compared byte for byte. */
  async function carries(script: string): Promise<void> {
    const port = await freePort();
    const cli = startCli(["-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home, script });
    try {
      await waitForListen(port, "127.0.0.1", cli);
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/bytes/1048576`);
      assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; safetunnel: ${cli.stderr()}`);
      assert.equal(sha256(fetched.stdout), sha256(deterministicBytes(1048576)));
    } finally {
      await cli.stop();
    }
  }

  test("beside its binding (ssh2's native chacha20, no WebAssembly loaded)", { skip: existsSync(built) ? false : "npm ci could not build ssh2's binding here" }, async () => {
    await carries(join(repoRoot(), "dist", "safetunnel.cjs"));
  });

  test("copied alone, where the binding cannot be found (ssh2's JavaScript chacha20 and WebAssembly Poly1305)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "safetunnel-alone-"));
    dirs.push(dir);
    const alone = join(dir, "safetunnel.cjs");
    copyFileSync(join(repoRoot(), "dist", "safetunnel.cjs"), alone);
    await carries(alone);
  });
});
