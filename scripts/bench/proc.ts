/**
 * What a process costs, read from Linux's /proc (proc(5)): resident memory
 * (VmRSS, and its peak VmHWM) from /proc/PID/status, and CPU time (utime +
 * stime, in clock ticks) from /proc/PID/stat.
 */
import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

let ticksPerSecond: number | undefined;

/** sysconf(_SC_CLK_TCK): 100 on every Linux this runs on, read once from getconf. */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  return statusField(pid, "VmRSS");
}

/** Peak resident set size since the process started (VmHWM), in bytes. */
export function peakRssBytes(pid: number): number | undefined {
  return statusField(pid, "VmHWM");
}

function statusField(pid: number, name: string): number | undefined {
  try {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** /proc/PID/stat's fields after the ")" that ends the command name: [0] is state (field 3), [1] ppid, [11] utime, [12] stime. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User plus system CPU seconds the process has used so far (its own threads, not its children). */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/**
 * CPU seconds of `pid` and every process under it still running (sshd's
 * per-connection processes under its listener).
 */
export function treeCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(Number(entry))[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  let total = 0;
  const visit = (at: number): void => {
    try {
      total += cpuSeconds(at);
    } catch {
      // Gone meanwhile.
    }
    for (const child of children.get(at) ?? []) visit(child);
  };
  visit(pid);
  return total;
}

/**
 * Samples VmRSS every `everyMs` until stopped; the highest value seen. For a
 * peak within one phase of a long-lived process (VmHWM covers its whole life).
 *
 * @example
 * const sampler = sampleRss(pid); await work(); const peak = sampler.stop();
 */
export function sampleRss(pid: number, everyMs = 50): { stop(): number } {
  let peak = rssBytes(pid) ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid) ?? 0);
  }, everyMs);
  // A load that fails before stop() must not keep the bench running.
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssBytes(pid) ?? 0);
      return peak;
    },
  };
}
