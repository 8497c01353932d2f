/**
 * The esbuild bundle of the CLI, one CommonJS file: `npm run build` writes
 * dist/safetunnel.cjs (then scripts/copy-native-crypto.ts puts ssh2's native
 * binding beside it), and build-binaries.ts bundles the same way for the
 * single executables.
 *
 * Usage: node --import tsx scripts/bundle.ts
 */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { build, type BuildOptions, type Plugin } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * ssh2's WebAssembly Poly1305 only where ssh2's native binding is missing.
 *
 * ssh2 (lib/protocol/crypto.js) instantiates its Emscripten Poly1305 as it
 * loads, for its JavaScript chacha20-poly1305 classes, and picks those only
 * when its native binding did not load. Next to the bundle the binding loads
 * (copy-native-crypto.ts), so the module was never used, yet it cost
 * 3.7 MB of RSS: a listening -D, 59.5 MB with it and 55.8 MB without, in
 * three runs each. The single executables and Deno cannot load the binding
 * and still get it.
 * The test is ssh2's own: the same require of the binding, from the same
 * place (esbuild leaves "*.node" requires as written).
 */
const poly1305OnlyWithoutBinding: Plugin = {
  name: "poly1305-only-without-binding",
  setup(build) {
    build.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto[\\/]poly1305\.js$/ }, async (args) => {
      const original = await readFile(args.path, "utf8");
      const contents = [
        `let nativeChaCha = false;`,
        `try {`,
        `  nativeChaCha = typeof require("./crypto/build/Release/sshcrypto.node").ChaChaPolyCipher === "function";`,
        `} catch {}`,
        `if (nativeChaCha) {`,
        `  const unused = () => { throw new Error("ssh2's WebAssembly Poly1305 is not loaded: its native binding does chacha20-poly1305"); };`,
        `  module.exports = () => Promise.resolve({ _malloc: () => 0, cwrap: () => unused });`,
        `} else {`,
        `  const wasm = { exports: {} };`,
        `  (function (module, exports) {`,
        original,
        `  })(wasm, wasm.exports);`,
        `  module.exports = wasm.exports;`,
        `}`,
      ].join("\n");
      return { contents, loader: "js", resolveDir: dirname(args.path) };
    });
  },
};

/** What both bundles share; the caller adds the target, the output and any minifying. */
export function bundleOptions(): BuildOptions {
  return {
    entryPoints: [join(root, "src", "main.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    // ssh2's optional native parts: loaded in try/catch; where they are absent ssh2 uses its JavaScript.
    external: ["cpu-features", "*.node"],
    plugins: [poly1305OnlyWithoutBinding],
    logLevel: "warning",
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await build({ ...bundleOptions(), target: "node20", banner: { js: "#!/usr/bin/env node" }, outfile: join(root, "dist", "safetunnel.cjs") });
}
