/**
 * The bench's table: one row per measure, one column per contender (median,
 * and min-max where it was repeated), then each safetunnel contender's ratio
 * to OpenSSH's default and to its aes128-gcm. Pure: the caller prints it.
 */
import type { Spread } from "./stats.ts";

export interface Measure {
  key: string;
  /** Row label, with its unit. */
  label: string;
  /** Whether more is better (throughput) or less is (time, memory, CPU). */
  higherIsBetter: boolean;
  /** Digits after the point. */
  digits: number;
}

export type Results = Record<string, Record<string, Spread | undefined>>;

function cell(value: Spread | undefined, digits: number): string {
  if (value === undefined) return "-";
  const median = value.median.toFixed(digits);
  return value.n > 1 && value.max !== value.min ? `${median} (${value.min.toFixed(digits)}-${value.max.toFixed(digits)})` : median;
}

function ratio(ours: Spread | undefined, theirs: Spread | undefined): string {
  if (ours === undefined || theirs === undefined || theirs.median === 0) return "-";
  return `${(ours.median / theirs.median).toFixed(2)}`;
}

/**
 * A Markdown table (readable as plain text too).
 *
 * @example
 * markdownTable(measures, ["ssh", "node"], results, ["ssh"], ["node"])
 */
export function markdownTable(measures: readonly Measure[], columns: readonly string[], results: Results, references: readonly string[], ours: readonly string[]): string[] {
  const ratioColumns = ours.flatMap((name) => references.filter((reference) => columns.includes(reference)).map((reference) => ({ name, reference })));
  const header = ["measure", ...columns, ...ratioColumns.map(({ name, reference }) => `${name}/${reference}`)];
  const rows = measures
    .filter((measure) => columns.some((column) => results[measure.key]?.[column] !== undefined))
    .map((measure) => {
      const row = results[measure.key] ?? {};
      const arrow = measure.higherIsBetter ? "↑" : "↓";
      return [`${measure.label} ${arrow}`, ...columns.map((column) => cell(row[column], measure.digits)), ...ratioColumns.map(({ name, reference }) => ratio(row[name], row[reference]))];
    });
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((text, i) => text.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((width, i) => (i === 0 ? "-".repeat(width + 2) : `${"-".repeat(width + 1)}:`)).join("|")}|`, ...rows.map(line)];
}
