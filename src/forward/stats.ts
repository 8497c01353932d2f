/** Counters shared by every forward of one run, for the exit summary. */
export interface TrafficStats {
  /** Connections that reached the far end. */
  connections: number;
  active: number;
  bytesUp: number;
  bytesDown: number;
  /** SOCKS requests refused because they carried an IP address. */
  refusals: number;
  /** Channels the server could not open (refused, unreachable...). */
  failures: number;
  /** Sockets dropped for bad SOCKS input or timeouts. */
  protocolErrors: number;
  /** Who was refused last: the program, where the system tells it, else the client's address. */
  lastRefused?: string;
}

export function createStats(): TrafficStats {
  return { connections: 0, active: 0, bytesUp: 0, bytesDown: 0, refusals: 0, failures: 0, protocolErrors: 0 };
}

/**
 * One line for the end of a run.
 *
 * @example
 * summaryLine(stats) // "12 connections, 1.2 MB up, 340.5 MB down, 2 refused (IP address), 0 failed"
 */
export function summaryLine(stats: TrafficStats): string {
  return `${stats.connections} connection${stats.connections === 1 ? "" : "s"}, ${formatBytes(stats.bytesUp)} up, ${formatBytes(stats.bytesDown)} down, ${stats.refusals} refused (IP address), ${stats.failures} failed`;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
