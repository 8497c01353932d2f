/**
 * Puts ssh2's native crypto binding where the bundle looks for it. ssh2 loads
 * it with require("./crypto/build/Release/sshcrypto.node") from its own
 * lib/protocol/; in dist/safetunnel.cjs that path is relative to dist/, where
 * nothing was, so the bundle always ran ssh2's JavaScript ciphers. Measured
 * with the binding beside the bundle (Node 20, 5 interleaved runs through a
 * loopback sshd): one stream +14%, 8 streams +33%, CPU per GiB 1.7 s against
 * 2.4 s. The binding is built by npm ci for the Node that built it; on another
 * Node, ssh2's require fails and it falls back to JavaScript, as before.
 * Nothing to copy (ssh2 could not build it) is said and is not an error.
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { repoRoot } from "../test/helpers/run.ts";

const from = join(repoRoot(), "node_modules", "ssh2", "lib", "protocol", "crypto", "build", "Release", "sshcrypto.node");
const to = join(repoRoot(), "dist", "crypto", "build", "Release", "sshcrypto.node");
if (existsSync(from)) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
} else {
  console.error("copy-native-crypto: ssh2's native crypto binding was not built (npm ci needs a compiler); the bundle uses ssh2's JavaScript ciphers");
}
