/**
 * Running out of file descriptors, said before clients are lost to it. When
 * accept(2) fails with EMFILE or ENFILE, libuv accepts the connection on a
 * descriptor it keeps in reserve and closes it at once (uv__emfile_trick in
 * libuv's src/unix/stream.c), so the listener's "error" event never fires and
 * the client only sees its connection closed. So the descriptors in use are
 * counted and compared with the limit instead: at an accepted connection, at
 * most once a second, and said once (again only after the count has come
 * down and risen again).
 */
import type { Logger } from "../log.ts";
import { setTimeout } from "node:timers";
import { errnoCode } from "../errors.ts";

/** Descriptors left when the warning is due: the next few clients, a /proc read, the resolver. */
const HEADROOM = 16;

export interface DescriptorWatchOptions {
  /** The soft open-file limit (RLIMIT_NOFILE, `ulimit -n`). */
  limit: number;
  /** Descriptors this process has open now (Linux: the entries of /proc/self/fd); undefined where that cannot be told. */
  count(): Promise<number | undefined>;
  log: Pick<Logger, "warn">;
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
  /** Runs `run` in `ms` milliseconds without keeping the process up. @default an unref'd setTimeout */
  schedule?: (run: () => void, ms: number) => void;
}

/**
 * @example
 * const watch = new DescriptorWatch({ limit: 1024, count: countOpenDescriptors, log });
 * server.on("connection", () => watch.accepted());
 */
export class DescriptorWatch {
  readonly #limit: number;
  readonly #count: () => Promise<number | undefined>;
  readonly #log: Pick<Logger, "warn">;
  readonly #clock: () => number;
  readonly #schedule: (run: () => void, ms: number) => void;
  #lastCount = -Infinity;
  #counting = false;
  #warned = false;
  /** A count is scheduled for the end of the current second. */
  #later = false;
  /** Set once counting failed: the platform cannot tell, so stop asking. */
  #blind = false;

  constructor(options: DescriptorWatchOptions) {
    this.#limit = options.limit;
    this.#count = options.count;
    this.#log = options.log;
    this.#clock = options.clock ?? Date.now;
    this.#schedule = options.schedule ?? ((run, ms) => void setTimeout(run, ms).unref());
  }

  /**
   * A connection was accepted: count now if the last count is a second old,
   * else once that second is over. The later count matters most: once the
   * descriptors are gone, no more connections reach us to trigger one.
   * Never waits, never throws.
   */
  accepted(): void {
    if (this.#blind) return;
    const wait = this.#lastCount + 1000 - this.#clock();
    if (this.#counting || wait > 0) {
      if (!this.#later) {
        this.#later = true;
        this.#schedule(() => {
          this.#later = false;
          this.accepted();
        }, Math.max(wait, 1));
      }
      return;
    }
    this.#counting = true;
    this.#lastCount = this.#clock();
    void this.check().finally(() => (this.#counting = false));
  }

  /** Counts now and warns if the limit is near; resolves to the count (undefined if unknown). */
  async check(): Promise<number | undefined> {
    let open: number | undefined;
    try {
      open = await this.#count();
    } catch (err) {
      // Counting needs a descriptor too: failing for want of one is the answer.
      const code = errnoCode(err);
      open = code === "EMFILE" || code === "ENFILE" ? this.#limit : undefined;
    }
    if (open === undefined) {
      this.#blind = true;
      return undefined;
    }
    if (open >= this.#limit - HEADROOM) {
      if (!this.#warned) {
        this.#warned = true;
        this.#log.warn(
          `${open} of the ${this.#limit} open files allowed (ulimit -n) are in use: at the limit the system drops new clients before safetunnel sees them. ` +
            "Raise the limit (ulimit -n in the shell that starts safetunnel, up to its hard limit, ulimit -Hn) or lower --max-connections.",
          { event: "descriptors-low", open, limit: this.#limit },
        );
      }
    } else if (open < (this.#limit * 3) / 4) {
      this.#warned = false;
    }
    return open;
  }
}

/**
 * The --max-connections that the open-file limit can serve: each client holds
 * one descriptor, and `reserved` stay for everything else. A larger cap is said
 * at start-up, since past it clients are dropped without a word.
 *
 * @example
 * maxConnectionsWarning(4000, 1024, 64) // "--max-connections 4000 is more than the open-file limit ..."
 * maxConnectionsWarning(500, 1024, 64) // undefined
 */
export function maxConnectionsWarning(max: number, openFileLimit: number | undefined, reserved: number): string | undefined {
  if (openFileLimit === undefined || max <= openFileLimit - reserved) return undefined;
  const fits = Math.max(0, openFileLimit - reserved);
  return (
    `--max-connections ${max} is more than the open-file limit leaves for clients (ulimit -n is ${openFileLimit}, less ${reserved} for safetunnel itself): ` +
    `past ${fits} connections the system drops new clients without a word. Raise ulimit -n, or give --max-connections ${fits} or less.`
  );
}
