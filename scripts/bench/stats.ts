/**
 * Summaries of repeated measurements: median with min and max (what the
 * bench table prints), and percentiles of latency samples. Pure.
 */

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many measurements. */
  n: number;
}

/**
 * @example
 * spread([3, 1, 2]) // { median: 2, min: 1, max: 3, n: 3 }
 */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError("spread of no values");
  return { median: percentile(values, 50), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

/**
 * The p-th percentile by linear interpolation between closest ranks (the
 * median of an even count is the mean of the middle two).
 *
 * @example
 * percentile([1, 2, 3, 4], 50) // 2.5
 * percentile([10, 20, 30, 40, 50], 99) // 49.6
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("percentile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}
