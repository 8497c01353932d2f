/**
 * CPU profiles for the benchmarks: where a tunnel's process spends its time,
 * read from the V8 CPU profile format (.cpuprofile, the Chrome DevTools
 * Protocol's Profiler.Profile) that Node's --cpu-prof writes and that Deno
 * hands out over its inspector.
 *
 * Deno 2 has no --cpu-prof. `record` drives its inspector instead: run
 *
 *     deno run --allow-net --allow-write=OUT scripts/cpu-profile.ts record PORT OUT
 *
 * against `deno run --inspect=127.0.0.1:PORT ...`; it starts the profiler,
 * prints "started", and on end of its standard input stops it and writes OUT.
 * It needs the WebSocket client Deno has built in (Node 20 has none).
 *
 * `summarize` is pure: the self time of each function as a share of the
 * samples in which the process was not idle, so two runtimes that waited for
 * different lengths of time compare on the work they did.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The parts of a Profiler.Profile read here (Chrome DevTools Protocol, Profiler domain). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
}

export interface SelfTime {
  /** Function name, file name and line, or V8's own name for the state: "(garbage collector)", "(program)". */
  name: string;
  /** Percent of the samples taken while the process was not idle. */
  percent: number;
}

/**
 * @example
 * summarize(JSON.parse(readFileSync("node.cpuprofile", "utf8")), 10);
 * // [{ name: "writeBuffer", percent: 46.2 }, { name: "update node:internal/crypto/cipher:172", percent: 20.8 }, ...]
 */
export function summarize(profile: CpuProfile, top: number): { busySamples: number; idleSamples: number; entries: SelfTime[] } {
  const names = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\//, "");
    names.set(node.id, file === "" ? functionName || "(anonymous)" : `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`);
  }
  const counts = new Map<string, number>();
  let idle = 0;
  for (const id of profile.samples) {
    const name = names.get(id) ?? "(unknown)";
    if (name === "(idle)") idle++;
    else counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const busy = profile.samples.length - idle;
  const entries = [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, count]) => ({ name, percent: busy === 0 ? 0 : (100 * count) / busy }));
  return { busySamples: busy, idleSamples: idle, entries };
}

/** A summary as text lines, for a benchmark's report. */
export function formatSummary(label: string, profile: CpuProfile, top = 12): string[] {
  const { busySamples, idleSamples, entries } = summarize(profile, top);
  const share = (100 * busySamples) / Math.max(1, busySamples + idleSamples);
  return [
    `${label}: busy in ${share.toFixed(0)}% of ${busySamples + idleSamples} samples; self time as % of busy samples:`,
    ...entries.map((entry) => `  ${entry.percent.toFixed(1).padStart(5)}  ${entry.name}`),
  ];
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
}

/** Deno only: profile the process whose inspector listens on 127.0.0.1:port until stdin ends. */
async function record(port: number, out: string): Promise<void> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on 127.0.0.1:${port}`);
  const socket = new WebSocket(url);
  const waiting = new Map<number, (result: unknown) => void>();
  let nextId = 0;
  socket.onmessage = (event: MessageEvent) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  // 200 µs: fine enough for a per-packet cost of tens of microseconds.
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  process.stdout.write("started\n");
  await new Promise<void>((resolve) => {
    process.stdin.on("data", () => {});
    process.stdin.on("end", resolve);
  });
  const { profile } = (await call("Profiler.stop")) as { profile: CpuProfile };
  writeFileSync(out, JSON.stringify(profile));
  socket.close();
}

const [command, ...rest] = process.argv.slice(2);
const runAsScript = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (!runAsScript) {
  // Imported by a benchmark for summarize().
} else if (command === "record") {
  const port = Number(rest[0]);
  if (!Number.isInteger(port) || rest[1] === undefined) {
    console.error("usage: deno run --allow-net --allow-write=OUT scripts/cpu-profile.ts record PORT OUT");
    process.exit(2);
  }
  await record(port, rest[1]);
} else if (command === "summarize" && rest.length > 0) {
  for (const path of rest) console.log(formatSummary(path, readProfile(path)).join("\n"));
} else {
  console.error("usage: cpu-profile.ts record PORT OUT (under Deno) | cpu-profile.ts summarize FILE.cpuprofile...");
  process.exit(2);
}
