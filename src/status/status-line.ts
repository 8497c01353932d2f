/**
 * The one line a running tunnel shows at the bottom of a terminal, and the
 * summary it prints on SIGUSR1 or Enter (as dd(1) does on SIGUSR1). Pure:
 * counters and times in, text out; live-status.ts draws it.
 */
import { formatBytes, summaryLine, type TrafficStats } from "../forward/stats.ts";

/** The SSH connection as the status line tells it. */
export interface ConnectionState {
  up: boolean;
  /** When it last came up, or went down (ms, the same clock as `Sample.at`). */
  since: number;
}

/** Bytes carried so far, at a moment. */
export interface Sample {
  at: number;
  bytesUp: number;
  bytesDown: number;
}

/** How far back the rates look: long enough not to flicker at two redraws a second. */
export const RATE_WINDOW_MS = 3000;

/**
 * The connection's state, then what a glance needs first (open connections,
 * refusals and failures), then traffic, so a narrow terminal cuts the least
 * useful end.
 *
 * @example
 * statusLine({ up: true, since: 0 }, stats, [{ at: 62_000, bytesUp: 0, bytesDown: 0 }], 65_000, 200)
 * // "[up 1m05s] 2 open | 1 refused (firefox) | 0 failed | up 1.2 MB, 40.0 kB/s | down 15.0 MB, 1.1 MB/s"
 */
export function statusLine(connection: ConnectionState, stats: TrafficStats, samples: readonly Sample[], now: number, columns: number): string {
  const state = `[${connection.up ? "up" : "reconnecting"} ${formatDuration(now - connection.since)}]`;
  const rates = rateOver(samples, now, stats);
  const refused = stats.refusals === 0 || stats.lastRefused === undefined ? `${stats.refusals} refused` : `${stats.refusals} refused (${stats.lastRefused})`;
  const line = [
    `${state} ${stats.active} open`,
    refused,
    `${stats.failures} failed`,
    `up ${formatBytes(stats.bytesUp)}, ${formatBytes(rates.up)}/s`,
    `down ${formatBytes(stats.bytesDown)}, ${formatBytes(rates.down)}/s`,
  ].join(" | ");
  // One column short of the width: a line that fills it would wrap on some terminals and break the redraw.
  const room = Math.max(columns - 1, 20);
  return line.length <= room ? line : `${line.slice(0, room - 3)}...`;
}

/**
 * The full line SIGUSR1 or Enter prints, like the exit summary with the
 * connection's state first.
 *
 * @example
 * statusSummary({ up: true, since: 0 }, stats, 65_000, { outages: 0, downMs: 0 })
 * // "Status: up for 1m05s; 2 open; 16 connections, 1.2 MB up, 15.0 MB down, 1 refused (IP address), 0 failed."
 */
export function statusSummary(connection: ConnectionState, stats: TrafficStats, now: number, outages?: { outages: number; downMs: number }): string {
  const state = connection.up ? `up for ${formatDuration(now - connection.since)}` : `reconnecting for ${formatDuration(now - connection.since)}`;
  const history = outages === undefined || outages.outages === 0 ? "" : `, ${outages.outages} outage${outages.outages === 1 ? "" : "s"} (${Math.round(outages.downMs / 1000)} s down)`;
  return `Status: ${state}; ${stats.active} open; ${summaryLine(stats)}${history}.`;
}

/**
 * "12s", "5m07s", "3h02m", "2d04h".
 *
 * @example
 * formatDuration(307_000) // "5m07s"
 */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, "0")}h`;
}

/** Bytes a second over the oldest sample still inside RATE_WINDOW_MS (0 with nothing to compare). */
function rateOver(samples: readonly Sample[], now: number, stats: TrafficStats): { up: number; down: number } {
  const oldest = samples.find((sample) => now - sample.at <= RATE_WINDOW_MS);
  if (oldest === undefined || now <= oldest.at) return { up: 0, down: 0 };
  const seconds = (now - oldest.at) / 1000;
  return { up: Math.round(Math.max(stats.bytesUp - oldest.bytesUp, 0) / seconds), down: Math.round(Math.max(stats.bytesDown - oldest.bytesDown, 0) / seconds) };
}
