/**
 * Slows down guessing: after a few failed logins from one source, each further
 * failure is answered later, twice as late as the one before, up to a cap.
 * Pure bookkeeping (the caller owns the timers); the clock is passed in.
 */
import { formatAddress, mappedIPv4, parseIPv4, parseIPv6 } from "../address.ts";
import { TunnelError } from "../errors.ts";

export interface AttemptLimiterOptions {
  /** Milliseconds from any fixed origin. @default performance.now */
  clock?: () => number;
  /** Failures answered without delay. @default 3 */
  freeFailures?: number;
  /** The delay after the first failure past freeFailures; it doubles with each one after. @default 1000 */
  baseDelayMs?: number;
  /** The longest delay. @default 30000 */
  maxDelayMs?: number;
  /** A source with no failure for this long starts again from zero. @default 600000 */
  forgetAfterMs?: number;
  /** Sources remembered at most; beyond this the one idle longest is forgotten. @default 10000 */
  maxTracked?: number;
}

interface Entry {
  failures: number;
  lastFailure: number;
}

/**
 * Failed authentication attempts per source. One host is one IPv4 address,
 * or one IPv6 /64 (RFC 4291 section 2.5.4 gives a host its whole /64, so
 * counting single IPv6 addresses would let it start afresh with every
 * address). An IPv4-mapped IPv6 address counts as its IPv4 address.
 *
 * @example
 * const limiter = new AttemptLimiter();
 * // on a failed attempt: wait, then answer
 * const wait = limiter.delayMs(peer);
 * limiter.failed(peer);
 * setTimeout(() => ctx.reject(), wait);
 * // on success
 * limiter.succeeded(peer);
 */
export class AttemptLimiter {
  private readonly clock: () => number;
  private readonly freeFailures: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly forgetAfterMs: number;
  private readonly maxTracked: number;
  /** In order of last failure, oldest first (a Map keeps insertion order; touched entries are re-inserted). */
  private readonly entries = new Map<string, Entry>();

  constructor(options: AttemptLimiterOptions = {}) {
    this.clock = options.clock ?? (() => performance.now());
    this.freeFailures = checked("freeFailures", options.freeFailures ?? 3, 0);
    this.baseDelayMs = checked("baseDelayMs", options.baseDelayMs ?? 1000, 0);
    this.maxDelayMs = checked("maxDelayMs", options.maxDelayMs ?? 30_000, 0);
    this.forgetAfterMs = checked("forgetAfterMs", options.forgetAfterMs ?? 600_000, 0);
    this.maxTracked = checked("maxTracked", options.maxTracked ?? 10_000, 1);
  }

  /** How long to wait before answering this address's next failed attempt; 0 while it has fewer than freeFailures failures. */
  delayMs(address: string): number {
    const failures = this.current(attemptSource(address))?.failures ?? 0;
    if (failures < this.freeFailures) return 0;
    const doublings = Math.min(failures - this.freeFailures, 64);
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** doublings);
  }

  /** Records one failed attempt from this address. */
  failed(address: string): void {
    const key = attemptSource(address);
    const now = this.clock();
    const failures = (this.current(key)?.failures ?? 0) + 1;
    this.entries.delete(key);
    this.entries.set(key, { failures, lastFailure: now });
    this.forgetStale(now);
    while (this.entries.size > this.maxTracked) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Forgets this address's failures (its /64 for IPv6). */
  succeeded(address: string): void {
    this.entries.delete(attemptSource(address));
  }

  /** How many sources are remembered now. */
  get tracked(): number {
    return this.entries.size;
  }

  private current(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (this.clock() - entry.lastFailure < this.forgetAfterMs) return entry;
    this.entries.delete(key);
    return undefined;
  }

  /** Drops forgotten entries from the old end; they are in order of last failure. */
  private forgetStale(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.lastFailure < this.forgetAfterMs) break;
      this.entries.delete(key);
    }
  }
}

/**
 * The source an address counts for: an IPv4 address, or an IPv6 /64 written
 * as a network. Text that is no IP address (a Unix socket path, say) is its
 * own source.
 *
 * @example
 * attemptSource("::ffff:192.0.2.7"); // "192.0.2.7"
 * attemptSource("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 */
export function attemptSource(address: string): string {
  let text = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const v4 = parseIPv4(text);
  if (v4 !== null) return formatAddress(v4);
  const v6 = parseIPv6(text);
  if (v6 === null) return address;
  const mapped = mappedIPv4(v6);
  if (mapped !== null) return formatAddress(mapped);
  const network = new Uint8Array(16);
  network.set(v6.subarray(0, 8));
  return `${formatAddress(network)}/64`;
}

function checked(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new TunnelError("INTERNAL", `AttemptLimiter option ${name} must be a number of at least ${min}, got ${value}`);
  }
  return value;
}
