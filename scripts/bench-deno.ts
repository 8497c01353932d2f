/**
 * `npm run bench:deno`: single-stream throughput of `safetunnel -D` on Deno
 * beside Node, in one run, through the same private loopback sshd: curl
 * --socks5-hostname fetches N MiB from a loopback HTTP source through each,
 * interleaved (node, deno, node, deno, ...), and the medians are compared.
 * The goal is Deno at 0.8x Node or better. Loopback only; every process it
 * starts is stopped by its PID.
 *
 * With --profile DIR each tunnel also writes a V8 CPU profile there (Node's
 * --cpu-prof; Deno's inspector, driven by scripts/cpu-profile.ts) and the
 * report ends with where each spent its busy time. Profiling slows both, so
 * the rates of such a run are not the ones to quote.
 *
 * Usage: node --import tsx scripts/bench-deno.ts [--mib 256] [--runs 5] [--profile DIR]
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { repoRoot, startProcess, waitForListen, type Running } from "../test/helpers/run.ts";
import { freePort } from "../test/helpers/targets.ts";
import { once } from "node:events";
import { loginArgs, startSshdWithHome } from "../test/helpers/tunnel.ts";
import { denoExecutable } from "../test/helpers/deno.ts";
import { formatSummary, readProfile } from "./cpu-profile.ts";
import { download, startTargets } from "./bench/loads.ts";
import { spread } from "./bench/stats.ts";

function textOption(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = process.argv[at + 1];
  if (value === undefined || value.startsWith("--")) {
    console.error(`bench-deno: ${name} takes a folder`);
    process.exit(2);
  }
  return value;
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  const value = at < 0 ? fallback : Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench-deno: ${name} takes a whole number of at least 1`);
    process.exit(2);
  }
  return value;
}

/** The deno executable npm ci installed, or a one-line hint and exit 1. */
function denoOrExit(): string {
  try {
    return denoExecutable();
  } catch {
    console.error("bench-deno: no deno executable under node_modules: run npm ci");
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const mib = option("--mib", 256);
  const runs = option("--runs", 5);
  const bundle = join(repoRoot(), "dist", "safetunnel.cjs");
  if (!existsSync(bundle)) {
    console.error("bench-deno: dist/safetunnel.cjs is missing: run npm run build first");
    process.exit(1);
  }
  const deno = denoOrExit();
  const profileDir = textOption("--profile");
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  const inspectorPort = profileDir === undefined ? 0 : await freePort();
  const { home, sshd } = await startSshdWithHome();
  const targets = await startTargets();
  const started: Running[] = [];
  let recorder: ReturnType<typeof spawn> | undefined;
  try {
    const nodeProfiling = profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(profileDir)}`, "--cpu-prof-name=node.cpuprofile", "--cpu-prof-interval=200"];
    const denoProfiling = profileDir === undefined ? [] : [`--inspect=127.0.0.1:${inspectorPort}`];
    const runtimes: Record<string, (port: number) => Running> = {
      // The bundle on Node, as npm start and the binaries run it.
      node: (port) =>
        startProcess(process.execPath, [...nodeProfiling, bundle, "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { env: { ...process.env, HOME: home.home } }),
      // The sources on Deno, as the README's deno run does.
      deno: (port) =>
        startProcess(deno, ["run", "--allow-all", ...denoProfiling, join(repoRoot(), "src", "main.ts"), "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], {
          env: { ...process.env, HOME: home.home, NO_COLOR: "1" },
        }),
    };
    const rates: Record<string, number[]> = { node: [], deno: [] };
    const tunnels: Record<string, { port: number }> = {};
    for (const [name, start] of Object.entries(runtimes)) {
      const port = await freePort();
      const tunnel = start(port);
      started.push(tunnel);
      await waitForListen(port, "127.0.0.1", tunnel, 60_000);
      tunnels[name] = { port };
    }
    if (profileDir !== undefined) recorder = await startRecorder(deno, inspectorPort, join(resolve(profileDir), "deno.cpuprofile"));
    const bytes = mib * 1024 * 1024;
    for (let run = 0; run < runs; run++) {
      for (const name of Object.keys(runtimes)) {
        // Bodies to /dev/null through curl (keeping them in this process would be the bottleneck).
        rates[name]!.push((await download(targets, tunnels[name]!.port, bytes)) / 1e6);
      }
    }
    const denoVersion = spawnSync(deno, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
    console.log(`${mib} MiB through curl --socks5-hostname, ${runs} runs each, interleaved; Node ${process.version}, ${denoVersion}`);
    for (const name of Object.keys(rates)) {
      const values = rates[name]!;
      const { median, min, max } = spread(values);
      console.log(`${name.padEnd(5)} median ${median.toFixed(0)} MB/s (min ${min.toFixed(0)}, max ${max.toFixed(0)})`);
    }
    console.log(`deno / node: ${(spread(rates["deno"]!).median / spread(rates["node"]!).median).toFixed(2)}`);
  } finally {
    if (recorder !== undefined) {
      // End of its stdin: it stops the profiler and writes the file.
      recorder.stdin?.end();
      await once(recorder, "close");
    }
    for (const tunnel of started) await tunnel.stop("SIGTERM");
    await sshd.stop();
    await targets.close();
    await home.cleanup();
  }
  if (profileDir !== undefined) {
    for (const name of ["node", "deno"]) {
      const file = join(resolve(profileDir), `${name}.cpuprofile`);
      if (existsSync(file)) console.log(formatSummary(`${name} (${file})`, readProfile(file)).join("\n"));
      else console.log(`${name}: no profile was written to ${file}`);
    }
  }
}

/** scripts/cpu-profile.ts under Deno, attached to the Deno tunnel's inspector; resolves once it is recording. */
async function startRecorder(deno: string, port: number, out: string): Promise<ReturnType<typeof spawn>> {
  const script = join(repoRoot(), "scripts", "cpu-profile.ts");
  const child = spawn(deno, ["run", "--allow-net=127.0.0.1", `--allow-write=${out}`, script, "record", String(port), out], { stdio: ["pipe", "pipe", "inherit"] });
  let said = "";
  await new Promise<void>((resolveStarted, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes("started")) resolveStarted();
    });
    child.once("close", (code) => reject(new Error(`the Deno profiler exited with ${code} before it started`)));
  });
  return child;
}

await main();
