/**
 * Live capture of resolver traffic during a check: tcpdump(8) on every
 * interface, loopback included (a lookup of a `.invalid` canary stops at a
 * local stub resolver such as systemd-resolved's 127.0.0.53 and never reaches
 * the network, yet it is the proof), writing pcap to its stdout, which
 * capture-file.ts decodes as it comes. Needs capture rights (root or
 * CAP_NET_RAW) and tcpdump; without them the check falls back to /proc.
 */
import process from "node:process";
import { spawn, type ChildProcess } from "node:child_process";
import { MAX_KEPT, ObservationStore, readCaptureStream } from "./capture-file.ts";

export { MAX_KEPT };
import type { DnsObservation } from "./dns-frames.ts";

/** How long tcpdump may take to start capturing before the check goes on without waiting. */
const READY_WAIT_MS = 3000;
/** How long tcpdump may take to flush and exit after SIGTERM before it is killed. */
const STOP_WAIT_MS = 2000;

/** PIDs of the tcpdumps this process started and that still run. */
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** DNS, mDNS, LLMNR and DNS over TLS, both transports (pcap-filter(7)). */
const FILTER = "port 53 or port 5353 or port 5355 or port 853";

export interface LiveCapture {
  /** What was decoded so far: the first MAX_KEPT, and every one `mustKeep` picked. */
  readonly observations: DnsObservation[];
  /** Observations decoded but not kept (past MAX_KEPT). */
  readonly dropped: number;
  /** Ends tcpdump (by its PID) and waits for the rest of its output; resolves with a problem if it never captured. */
  stop(): Promise<string | undefined>;
}

/**
 * @example
 * const capture = await startLiveCapture({ onObservation: (seen) => console.log(seen.names) });
 * // ... the check runs ...
 * const problem = await capture.stop();
 */
export async function startLiveCapture(
  options: { onObservation?: (observation: DnsObservation) => void; mustKeep?: (observation: DnsObservation) => boolean; command?: string } = {},
): Promise<LiveCapture> {
  const store = new ObservationStore(options.mustKeep);
  let child: ChildProcess;
  let stderr = "";
  try {
    // -U: write each packet as it comes; -w -: pcap on stdout; -n: no lookups of its own.
    child = spawn(options.command ?? "tcpdump", ["-i", "any", "-U", "-n", "-w", "-", FILTER], { stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    return failed(`cannot run tcpdump (${(err as Error).message})`);
  }
  // tcpdump runs with our rights (often root): it must never outlive us, whatever ends this process.
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  child.once("exit", () => {
    if (pid !== undefined) running.delete(pid);
  });
  // tcpdump says "listening on any, ..." once it captures: the check starts after that.
  let onListening: () => void = () => {};
  const listening = new Promise<void>((resolve) => (onListening = resolve));
  child.stderr!.on("data", (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString("utf8");
    if (stderr.includes("listening on")) onListening();
  });
  const spawnError = new Promise<string>((resolve) => child.once("error", (err) => resolve(`cannot run tcpdump (${err.message})`)));
  const reading = readCaptureStream(child.stdout!, {
    keep: false,
    onObservation: (observation) => {
      store.add(observation);
      options.onObservation?.(observation);
    },
  }).then(
    () => undefined,
    (err: Error) => err.message,
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([listening, spawnError, exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, READY_WAIT_MS)))]);
  clearTimeout(timer);
  return {
    observations: store.observations,
    get dropped() {
      return store.dropped;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, STOP_WAIT_MS);
      });
      await Promise.race([exited, spawnError, killed]);
      clearTimeout(timer);
      const code = await Promise.race([exited, spawnError]);
      if (typeof code === "string") return code;
      const problem = await reading;
      // tcpdump exits 1 with a message when it lacks rights or an interface.
      if (store.observations.length === 0 && store.dropped === 0 && (code !== null && code !== 0)) return `tcpdump could not capture (${stderr.trim().split("\n").at(-1) ?? `exit ${code}`})`;
      return problem;
    },
  };
}

function failed(problem: string): LiveCapture {
  return { observations: [], dropped: 0, stop: async () => problem };
}
