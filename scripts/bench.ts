/**
 * `npm run bench`: safetunnel -D beside OpenSSH's ssh -D, in one run, on this
 * machine's loopback. It starts its own sshd (the test suite's private one),
 * an HTTP source and an echo server, then:
 *
 * - throughput and small requests, interleaved (each repetition goes through
 *   every contender in turn) and repeated: one stream, 8 parallel streams,
 *   50 concurrent small requests each on a new connection, with the CPU
 *   seconds per GiB of the client and of the far end (sshd or serve); here
 *   also Node with `--allow-users '*'`, to show what the owner check costs;
 * - start-up: from spawning the process to the first answer through it;
 * - memory, on a fresh process of each: idle, with N tunnels open, at the
 *   peak of N concurrent 1 MiB echo transfers, and a minute after those end.
 *
 * It prints a table with ratios to OpenSSH and writes it, with the machine
 * (CPU, cores, kernel, Node, Deno, OpenSSH), as JSON and Markdown under
 * dist/bench/. Loopback only; every process it starts it stops by PID.
 *
 * Usage: npm run bench [-- --quick] [--runs N] [--only node,node-any,deno] [--no-serve]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { Socket } from "node:net";
import { repoRoot, waitForListen, type Running } from "../test/helpers/run.ts";
import { freePort } from "../test/helpers/targets.ts";
import { startSshdWithHome } from "../test/helpers/tunnel.ts";
import { denoExecutable } from "../test/helpers/deno.ts";
import { contenders as presentContenders, startServeEnd, type Contender, type ServeEnd } from "./bench/contenders.ts";
import { download, echoTransfers, openTunnels, smallRequests, startTargets, timeToFirstRequest } from "./bench/loads.ts";
import { cpuSeconds, rssBytes, sampleRss, treeCpuSeconds } from "./bench/proc.ts";
import { markdownTable, type Measure, type Results } from "./bench/report.ts";
import { spread } from "./bench/stats.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Plan {
  quick: boolean;
  runs: number;
  streamBytes: number;
  parallelStreams: number;
  parallelBytesEach: number;
  smallCount: number;
  smallConcurrency: number;
  startupRuns: number;
  tunnels: number;
  echoCount: number;
  echoBytes: number;
  settleMs: number;
  only: string[] | undefined;
  serve: boolean;
}

function usage(message: string): never {
  console.error(`bench: ${message}`);
  console.error("usage: npm run bench [-- --quick] [--runs N] [--only node,node-any,deno,binary,ssh-gcm] [--no-serve]");
  process.exit(2);
}

function planFrom(argv: string[]): Plan {
  const quick = argv.includes("--quick");
  let runs = quick ? 3 : 5;
  let only: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--quick" || arg === "--no-serve") continue;
    if (arg === "--runs") {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1) usage("--runs takes a whole number of at least 1");
    } else if (arg === "--only") {
      only = (argv[++i] ?? "").split(",").filter((name) => name !== "");
      if (only.length === 0) usage("--only takes contender names, e.g. --only node,deno");
    } else usage(`unknown option ${arg}`);
  }
  return {
    quick,
    runs,
    streamBytes: quick ? 64 * MiB : GiB,
    parallelStreams: 8,
    parallelBytesEach: quick ? 8 * MiB : 128 * MiB,
    smallCount: quick ? 200 : 2000,
    smallConcurrency: 50,
    startupRuns: quick ? 1 : runs,
    tunnels: quick ? 100 : 1000,
    echoCount: quick ? 50 : 1000,
    echoBytes: MiB,
    settleMs: quick ? 2000 : 60_000,
    only,
    serve: !argv.includes("--no-serve"),
  };
}

function measures(plan: Plan): Measure[] {
  const mib = (bytes: number): string => (bytes >= GiB ? `${bytes / GiB} GiB` : `${bytes / MiB} MiB`);
  return [
    { key: "stream", label: `one stream, ${mib(plan.streamBytes)} (MB/s)`, higherIsBetter: true, digits: 0 },
    { key: "streams", label: `${plan.parallelStreams} streams, ${mib(plan.parallelBytesEach)} each (MB/s)`, higherIsBetter: true, digits: 0 },
    { key: "small", label: `${plan.smallConcurrency} concurrent small requests (req/s)`, higherIsBetter: true, digits: 0 },
    { key: "smallP50", label: "small requests p50 (ms)", higherIsBetter: false, digits: 1 },
    { key: "smallP99", label: "small requests p99 (ms)", higherIsBetter: false, digits: 1 },
    { key: "cpu", label: "client CPU per GiB (s)", higherIsBetter: false, digits: 2 },
    { key: "farCpu", label: "far end CPU per GiB (s)", higherIsBetter: false, digits: 2 },
    { key: "startup", label: "start to first proxied answer (ms)", higherIsBetter: false, digits: 0 },
    { key: "rssIdle", label: "RSS fresh and idle (MB)", higherIsBetter: false, digits: 1 },
    { key: "openTunnels", label: `opening ${plan.tunnels} tunnels at once (s)`, higherIsBetter: false, digits: 2 },
    { key: "perTunnel", label: `RSS per open tunnel, ${plan.tunnels} open (KB)`, higherIsBetter: false, digits: 1 },
    { key: "echo", label: `${plan.echoCount} concurrent 1 MiB echoes (s)`, higherIsBetter: false, digits: 2 },
    { key: "echoPeak", label: `RSS peak during those (MB)`, higherIsBetter: false, digits: 0 },
    { key: "rssAfter", label: `RSS ${plan.settleMs / 1000} s after they end (MB)`, higherIsBetter: false, digits: 1 },
  ];
}

function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: "utf8" });
  return `${result.stdout}${result.stderr}`.trim().split("\n")[0] ?? "not found";
}

function machine(): Record<string, string | number> {
  let deno = "not installed";
  try {
    deno = versionOf(denoExecutable(), ["--version"]);
  } catch {
    // Left as not installed.
  }
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    deno,
    openssh: versionOf("ssh", ["-V"]),
    sshd: versionOf("/usr/sbin/sshd", ["-V"]),
    curl: versionOf("curl", ["--version"]),
  };
}

/** Every value measured, by measure and contender; `results` summarises them. */
class Recorder {
  readonly values: Record<string, Record<string, number[]>> = {};
  add(key: string, contender: string, value: number): void {
    ((this.values[key] ??= {})[contender] ??= []).push(value);
  }
  get results(): Results {
    return Object.fromEntries(Object.entries(this.values).map(([key, row]) => [key, Object.fromEntries(Object.entries(row).map(([name, values]) => [name, spread(values)]))]));
  }
}

async function startListening(contender: Contender): Promise<{ process: Running; port: number }> {
  const port = await freePort();
  const started = contender.start(port);
  try {
    await waitForListen(port, "127.0.0.1", started, 60_000);
  } catch (err) {
    await started.stop("SIGKILL");
    throw new Error(`${contender.name} did not start: ${(err as Error).message}`);
  }
  return { process: started, port };
}

async function main(): Promise<void> {
  const plan = planFrom(process.argv.slice(2));
  const bundle = join(repoRoot(), "dist", "safetunnel.cjs");
  if (!existsSync(bundle)) usage("dist/safetunnel.cjs is missing: run npm run build first");
  const began = Date.now();
  const { home, key, sshd } = await startSshdWithHome();
  const targets = await startTargets();
  const cleanups: Array<() => Promise<unknown>> = [async () => targets.close(), async () => sshd.stop(), async () => home.cleanup()];
  let serveEnd: ServeEnd | undefined;
  try {
    const rig = { sshd, home, key };
    const list = presentContenders(rig, plan.only);
    if (plan.serve && (plan.only === undefined || plan.only.includes("ssh>serve") || plan.only.includes("serve"))) {
      serveEnd = await startServeEnd(rig);
      const serveProcess = serveEnd;
      cleanups.unshift(() => serveProcess.stop());
      list.push(serveEnd.contender);
    }
    const farEnd = (name: string): number => (name === "ssh>serve" ? cpuSeconds(serveEnd!.process.pid) : treeCpuSeconds(sshd.pid));
    const recorder = new Recorder();
    const failures: string[] = [];
    const say = (line: string): void => console.error(`bench: ${line} (${((Date.now() - began) / 1000).toFixed(0)} s)`);

    // Throughput and small requests: one long-lived process each, interleaved.
    const live = new Map<string, { process: Running; port: number }>();
    for (const contender of list) {
      const started = await startListening(contender);
      cleanups.unshift(() => started.process.stop("SIGTERM"));
      live.set(contender.name, started);
      await smallRequests(targets, started.port, 10, 5); // warm-up: the first channel, JIT
    }
    for (let run = 1; run <= plan.runs; run++) {
      say(`throughput, run ${run} of ${plan.runs}`);
      for (const name of ["direct", ...live.keys()]) {
        try {
          const proxy = live.get(name);
          const cpuBefore = proxy === undefined ? 0 : cpuSeconds(proxy.process.pid);
          const farBefore = proxy === undefined ? 0 : farEnd(name);
          recorder.add("stream", name, (await download(targets, proxy?.port, plan.streamBytes)) / 1e6);
          if (proxy !== undefined) {
            recorder.add("cpu", name, (cpuSeconds(proxy.process.pid) - cpuBefore) / (plan.streamBytes / GiB));
            recorder.add("farCpu", name, (farEnd(name) - farBefore) / (plan.streamBytes / GiB));
          }
          recorder.add("streams", name, (await download(targets, proxy?.port, plan.parallelBytesEach, plan.parallelStreams)) / 1e6);
          const small = await smallRequests(targets, proxy?.port, plan.smallCount, plan.smallConcurrency);
          recorder.add("small", name, small.perSecond);
          recorder.add("smallP50", name, small.p50Ms);
          recorder.add("smallP99", name, small.p99Ms);
        } catch (err) {
          failures.push(`${name}, throughput run ${run}: ${(err as Error).message}`);
          say(`throughput, ${name} failed: ${(err as Error).message}`);
        }
      }
    }
    for (const started of live.values()) await started.process.stop("SIGTERM");

    // Start-up: a fresh process each time.
    for (let run = 1; run <= plan.startupRuns; run++) {
      say(`start-up, run ${run} of ${plan.startupRuns}`);
      for (const contender of list.filter((each) => each.throughputOnly !== true)) {
        const port = await freePort();
        let started: Running | undefined;
        try {
          recorder.add("startup", contender.name, await timeToFirstRequest(targets, port, () => void (started = contender.start(port))));
        } finally {
          await (started as Running | undefined)?.stop("SIGTERM");
        }
      }
    }

    // Memory: a fresh process each, left running until the settle time is over.
    const settling: Array<{ name: string; pid: number; endedAt: number }> = [];
    // Through serve, the client is OpenSSH's: its memory is the ssh column's.
    for (const contender of list.filter((each) => each.name !== "ssh>serve" && each.throughputOnly !== true)) {
      say(`memory, ${contender.name}`);
      try {
        const started = await startListening(contender);
        cleanups.unshift(() => started.process.stop("SIGTERM"));
        await smallRequests(targets, started.port, 1, 1);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const idle = rssBytes(started.process.pid) ?? 0;
        recorder.add("rssIdle", contender.name, idle / 1e6);
        let held: Socket[] = [];
        try {
          const opened = await openTunnels(targets, started.port, plan.tunnels);
          held = opened.sockets;
          recorder.add("openTunnels", contender.name, opened.ms / 1000);
          await new Promise((resolve) => setTimeout(resolve, 500));
          recorder.add("perTunnel", contender.name, ((rssBytes(started.process.pid) ?? 0) - idle) / plan.tunnels / 1000);
        } finally {
          for (const socket of held) socket.destroy();
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
        const sampler = sampleRss(started.process.pid);
        recorder.add("echo", contender.name, (await echoTransfers(targets, started.port, plan.echoCount, plan.echoBytes)) / 1000);
        recorder.add("echoPeak", contender.name, sampler.stop() / 1e6);
        settling.push({ name: contender.name, pid: started.process.pid, endedAt: Date.now() });
      } catch (err) {
        // One contender failing a load is a finding, not the end of the run: its cells stay empty.
        failures.push(`${contender.name}, memory: ${(err as Error).message}`);
        say(`memory, ${contender.name} failed: ${(err as Error).message}`);
      }
    }
    say(`waiting for ${plan.settleMs / 1000} s after the last echoes`);
    for (const { name, pid, endedAt } of settling) {
      const wait = endedAt + plan.settleMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      recorder.add("rssAfter", name, (rssBytes(pid) ?? 0) / 1e6);
    }

    const columns = ["direct", ...list.map((contender) => contender.name)];
    const ours = list.filter((contender) => !contender.openssh).map((contender) => contender.name);
    const references = list.filter((contender) => contender.openssh).map((contender) => contender.name);
    const table = markdownTable(measures(plan), columns, recorder.results, references, ours);
    const about = machine();
    const legend = [
      `${plan.quick ? "Quick run" : "Run"} of ${new Date().toISOString()}: median of ${plan.runs} interleaved runs (min-max in brackets) for throughput and small requests, ${plan.startupRuns} for start-up; memory once, on a fresh process each.`,
      `Machine: ${about["cpu"]}, ${about["cores"]} cores, Linux ${about["kernel"]}; Node ${about["node"]}, ${about["deno"]}, ${about["openssh"]} (sshd ${about["sshd"]}).`,
      "direct: curl to the source without a proxy (this machine's limit).",
      ...list.map((contender) => `${contender.name}: ${contender.description}.`),
      "Ratios are ours / OpenSSH's: above 1 is better for ↑ rows, below 1 for ↓ rows.",
      ...failures.map((failure) => `FAILED: ${failure}`),
    ];
    console.log([...legend, "", ...table].join("\n"));
    const outDir = join(repoRoot(), "dist", "bench");
    mkdirSync(outDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const json = JSON.stringify({ date: new Date().toISOString(), plan, machine: about, contenders: list.map(({ name, description, openssh }) => ({ name, description, openssh })), results: recorder.results, values: recorder.values, failures }, null, 2);
    writeFileSync(join(outDir, `bench-${stamp}.json`), json);
    writeFileSync(join(outDir, "latest.json"), json);
    writeFileSync(join(outDir, "latest.md"), [...legend, "", ...table, ""].join("\n"));
    say(`written to dist/bench/bench-${stamp}.json, latest.json and latest.md`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
}

await main();
