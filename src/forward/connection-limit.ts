/**
 * A cap on the local connections a run holds at once (--max-connections), so
 * that idle half-handshakes can never shut out a new client: measured before
 * this, 5,000 stalled SOCKS handshakes at `ulimit -n 1024` locked every client
 * out for 30 s, silently (libuv drops connections it cannot accept for lack of
 * descriptors, and says nothing).
 *
 * At the cap, the oldest connection still in its handshake is closed to make
 * room; only when every connection is established (real traffic) is the new
 * one turned away. Either is said in one line per 10 s.
 */
import type { Logger } from "../log.ts";
import { FoldWindow, foldedSince } from "../fold-window.ts";

export interface Closable {
  destroy(): void;
}

export interface ConnectionLimitOptions {
  max: number;
  log: Pick<Logger, "warn" | "debug">;
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
  /** Told of every connection that arrives (descriptor-watch.ts counts descriptors then). */
  watch?: { accepted(): void };
}

/** Default cap: a busy browser opens a few hundred connections; the rest of the descriptors stay for everything else. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * @example
 * const limit = new ConnectionLimit({ max: 1024, log });
 * if (!limit.admit(socket)) return;      // turned away (already destroyed)
 * socket.once("close", () => limit.release(socket));
 * // ... once the SOCKS reply is sent:
 * limit.established(socket);
 */
export class ConnectionLimit {
  readonly #max: number;
  readonly #log: Pick<Logger, "warn" | "debug">;
  readonly #folds: FoldWindow;
  readonly #watch: { accepted(): void } | undefined;
  /** In arrival order: Map keeps insertion order, so the first handshake found is the oldest. */
  readonly #handshakes = new Map<Closable, true>();
  readonly #established = new Set<Closable>();

  constructor(options: ConnectionLimitOptions) {
    if (!Number.isInteger(options.max) || options.max < 1) throw new RangeError(`max must be a positive whole number, not ${options.max}`);
    this.#max = options.max;
    this.#log = options.log;
    this.#watch = options.watch;
    this.#folds = new FoldWindow(options.clock === undefined ? {} : { clock: options.clock });
  }

  get size(): number {
    return this.#handshakes.size + this.#established.size;
  }

  /** Takes a new connection in its handshake; false (and the connection destroyed) when there is no room. */
  admit(connection: Closable): boolean {
    this.#watch?.accepted();
    if (this.size >= this.#max) {
      const oldest = this.#handshakes.keys().next();
      if (oldest.done) {
        this.#say("refuse", "turned away", `${this.#max} connections are open (--max-connections), all of them in use; a new one was turned away. Raise --max-connections (and ulimit -n) if that many are real.`);
        connection.destroy();
        return false;
      }
      this.#handshakes.delete(oldest.value);
      this.#say("evict", "closed", `${this.#max} connections are open (--max-connections); the oldest one still in its handshake was closed to let a new one in.`);
      oldest.value.destroy();
    }
    this.#handshakes.set(connection, true);
    return true;
  }

  /** The connection finished its handshake: it is no longer the first to go. */
  established(connection: Closable): void {
    if (this.#handshakes.delete(connection)) this.#established.add(connection);
  }

  /** The connection closed. */
  release(connection: Closable): void {
    this.#handshakes.delete(connection);
    this.#established.delete(connection);
  }

  #say(key: string, verb: string, line: string): void {
    const folded = this.#folds.admit(key);
    if (folded === undefined) this.#log.debug(1, line);
    else this.#log.warn(line + foldedSince(folded, verb), { event: "connection-limit" });
  }
}

/** Descriptors kept for everything that is not a client connection: the SSH socket, listeners, /proc reads, the resolver. */
export const RESERVED_DESCRIPTORS = 64;

/**
 * The cap when --max-connections is not given: DEFAULT_MAX_CONNECTIONS, but
 * below the open-file limit, so the cap is met before the descriptors run out.
 * Node and Deno already raise the soft limit to the hard one as they start
 * (measured: `ulimit -Sn 256` with a hard limit of 20000 gives both 20000),
 * so the limit seen here is the hard one; only the shell (`ulimit -n`) or the
 * administrator can raise that.
 *
 * @example
 * defaultMaxConnections(1024) // 960
 * defaultMaxConnections(undefined) // 1024
 */
export function defaultMaxConnections(openFileLimit: number | undefined): number {
  if (openFileLimit === undefined) return DEFAULT_MAX_CONNECTIONS;
  return Math.max(16, Math.min(DEFAULT_MAX_CONNECTIONS, openFileLimit - RESERVED_DESCRIPTORS));
}

/**
 * The soft and hard "Max open files" of a Linux /proc/<pid>/limits text (proc(5)).
 *
 * @example
 * openFileLimits("Max open files            1024                 524288               files\n") // { soft: 1024, hard: 524288 }
 */
export function openFileLimits(text: string): { soft: number | undefined; hard: number | undefined } {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const value = (field: string | undefined): number | undefined => (field === undefined || !/^\d+$/.test(field) ? undefined : Number(field));
  return { soft: value(match?.[1]), hard: value(match?.[2]) };
}
