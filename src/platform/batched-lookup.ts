/**
 * Lookups that share one pass over a costly source (every process's open
 * files, peer-process.ts): one pass runs at a time, and keys asked for
 * while it runs wait for the next pass, which answers all of them together.
 * A pass may have started before a waiting key's socket existed, so a key
 * never joins a pass under way.
 */
import { setImmediate } from "node:timers";

/**
 * One pass: look for every key in `wanted` and call `found` for each one as
 * soon as it turns up (that removes it from `wanted`, so a pass can stop when
 * `wanted` is empty). Keys still wanted at the end are answered undefined, as
 * are all of them if the pass throws.
 */
export type LookupPass<K, V> = (wanted: ReadonlySet<K>, found: (key: K, value: V) => void) => Promise<void>;

/**
 * @example
 * const owners = new BatchedLookup<string, number>(async (wanted, found) => { for (const key of wanted) found(key, key.length); });
 * await owners.find("abc") // 3
 */
export class BatchedLookup<K, V> {
  readonly #pass: LookupPass<K, V>;
  /** Keys for the next pass, with everyone waiting for each. */
  #waiting = new Map<K, Array<(value: V | undefined) => void>>();
  #running = false;

  constructor(pass: LookupPass<K, V>) {
    this.#pass = pass;
  }

  /** The value the next pass finds for `key`, or undefined. */
  find(key: K): Promise<V | undefined> {
    return new Promise((resolve) => {
      const waiting = this.#waiting.get(key);
      if (waiting === undefined) this.#waiting.set(key, [resolve]);
      else waiting.push(resolve);
      if (this.#running) return;
      this.#running = true;
      // Started after this turn of the event loop, so that every key asked for
      // by the connections and requests that arrived in it shares the pass. A
      // microtask was too soon: Node drains microtasks after each callback, so
      // with a pass that reads synchronously each connection got a pass of its
      // own (measured: 43 requests/s through -D at 50 at once).
      setImmediate(() => void this.#passWhileWaiting());
    });
  }

  async #passWhileWaiting(): Promise<void> {
    try {
      while (this.#waiting.size > 0) {
        const batch = this.#waiting;
        this.#waiting = new Map();
        const wanted = new Set(batch.keys());
        const found = (key: K, value: V): void => {
          if (!wanted.delete(key)) return;
          for (const resolve of batch.get(key)!) resolve(value);
        };
        try {
          await this.#pass(wanted, found);
        } catch {
          // Unknown, never pending: callers wait for these answers.
        }
        for (const key of wanted) for (const resolve of batch.get(key)!) resolve(undefined);
      }
    } finally {
      this.#running = false;
    }
  }
}
