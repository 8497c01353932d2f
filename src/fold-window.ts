/**
 * Repeated log lines, folded: at most one full line per key in a window; the
 * events in between are counted, and the next full line for that key says how
 * many there were. A misconfigured browser, a fuzzer or a hostile server then
 * costs one line per key every 10 seconds instead of one per event (a fuzz run
 * against -D once wrote 87,702 protocol-error lines, 10 MB of them). Callers
 * write each folded event at -v, so nothing is lost to someone who asks.
 *
 * Keys are the caller's: RefusalLog keys on the client program (or address)
 * and SOCKS version, the SSH session on the kind of channel a server opened.
 */

/** At most one full line per key in this window, by default. */
export const FOLD_WINDOW_MS = 10_000;

export interface FoldWindowOptions {
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
  /** @default FOLD_WINDOW_MS */
  windowMs?: number;
  /**
   * Keys remembered at most: with -g, or a server naming a new originator
   * each time, keys may come and go. When full, expired keys are forgotten,
   * then all (at worst a line is repeated early). @default 1024
   */
  maxKeys?: number;
}

/**
 * @example
 * const window = new FoldWindow({ clock });
 * window.admit("curl/5"); // 0: write the full line
 * window.admit("curl/5"); // undefined: folded (write it at -v)
 * // ... 10 s later
 * window.admit("curl/5"); // 1: write the full line, saying 1 more was folded into it
 */
export class FoldWindow {
  readonly #clock: () => number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  /** When each key last had a full line, and how many were folded since. */
  readonly #lastFull = new Map<string, { at: number; folded: number }>();

  constructor(options: FoldWindowOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    this.#windowMs = options.windowMs ?? FOLD_WINDOW_MS;
    this.#maxKeys = options.maxKeys ?? 1024;
  }

  /**
   * Counts one event under `key`. Undefined: it is folded, write no full
   * line. A number: write the full line; it is how many events of this key
   * were folded since its last full line (0 for none, or for a key not seen
   * in a while).
   */
  admit(key: string): number | undefined {
    const now = this.#clock();
    const seen = this.#lastFull.get(key);
    if (seen !== undefined && now - seen.at < this.#windowMs) {
      seen.folded++;
      return undefined;
    }
    this.#makeRoom(now);
    this.#lastFull.set(key, { at: now, folded: 0 });
    return seen?.folded ?? 0;
  }

  #makeRoom(now: number): void {
    if (this.#lastFull.size < this.#maxKeys) return;
    for (const [key, seen] of this.#lastFull) if (now - seen.at >= this.#windowMs) this.#lastFull.delete(key);
    if (this.#lastFull.size >= this.#maxKeys) this.#lastFull.clear();
  }
}

/**
 * The tail a full line gets for the events folded into it: nothing for none.
 *
 * @example
 * foldedSince(2, "refused") // " (2 more refused since the last such line)"
 * foldedSince(0, "refused") // ""
 */
export function foldedSince(count: number, verb: string): string {
  return count > 0 ? ` (${count} more ${verb} since the last such line)` : "";
}
