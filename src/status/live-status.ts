/**
 * The status line on a terminal: redrawn in place (carriage return, then
 * "erase to end of line", ECMA-48 EL) twice a second, with every log line
 * written above it, so the two never mix. Only for a terminal: with stderr on
 * a pipe or a file nothing here runs, and the output is the plain log.
 */
import { RATE_WINDOW_MS, statusLine, type ConnectionState, type Sample } from "./status-line.ts";
import type { TrafficStats } from "../forward/stats.ts";

/** Carriage return and ECMA-48 EL (erase to the end of the line). */
const CLEAR_LINE = "\r\x1b[K";

/** How often the line is redrawn: at most twice a second. */
export const REDRAW_MS = 500;

export interface StatusTerminal {
  /** Writes to the terminal as is. */
  write(text: string): void;
  /** Its width in columns. */
  columns(): number;
}

/** What the status line and SIGUSR1's summary show of a running tunnel. */
export interface RunningTunnel {
  stats: TrafficStats;
  connection(): ConnectionState;
  /** Outages so far, where the tunnel reconnects. */
  outages(): { outages: number; downMs: number } | undefined;
}

export interface LiveStatusOptions {
  /** @default Date.now */
  clock?: () => number;
  /** @default setInterval, unref'd so the line never keeps the process alive */
  every?: (ms: number, tick: () => void) => { stop(): void };
  /**
   * Whether the line may be drawn now: not while the process is a background
   * job, whose drawing would land on the shell's prompt. @default always
   */
  visible?: () => boolean;
}

/**
 * @example
 * const status = new LiveStatus({ write: (t) => process.stderr.write(t), columns: () => process.stderr.columns }, tunnel);
 * status.start();
 * status.above("Reconnected to home after 3 s down; new connections go through again.");
 * status.stop();
 */
export class LiveStatus {
  readonly #terminal: StatusTerminal;
  readonly #tunnel: RunningTunnel;
  readonly #clock: () => number;
  readonly #every: NonNullable<LiveStatusOptions["every"]>;
  readonly #samples: Sample[] = [];
  readonly #visible: () => boolean;
  #timer: { stop(): void } | undefined;

  constructor(terminal: StatusTerminal, tunnel: RunningTunnel, options: LiveStatusOptions = {}) {
    this.#terminal = terminal;
    this.#tunnel = tunnel;
    this.#clock = options.clock ?? Date.now;
    this.#visible = options.visible ?? (() => true);
    this.#every =
      options.every ??
      ((ms, tick) => {
        const timer = setInterval(tick, ms);
        timer.unref?.();
        return { stop: () => clearInterval(timer) };
      });
  }

  /** Draws the line now and then every REDRAW_MS. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#draw();
    this.#timer = this.#every(REDRAW_MS, () => this.#draw());
  }

  /** Writes a log line above the status line, which is drawn again under it. */
  above(line: string): void {
    if (this.#timer === undefined || !this.#visible()) {
      this.#terminal.write(`${line}\n`);
      return;
    }
    // Drawn afresh: the line may be the news the status line must show (a reconnection).
    this.#terminal.write(`${CLEAR_LINE}${line}\n${this.#render()}`);
  }

  /**
   * The user pressed Enter, which the terminal echoed: back up to the status
   * line (ECMA-48 CUU) and clear it, so it is not left behind as a copy.
   */
  afterEnter(): void {
    if (this.#timer !== undefined) this.#terminal.write(`\x1b[A${CLEAR_LINE}`);
  }

  /** Removes the line and stops redrawing; what follows is plain output again. */
  stop(): void {
    if (this.#timer === undefined) return;
    this.#timer.stop();
    this.#timer = undefined;
    this.#terminal.write(CLEAR_LINE);
  }

  #draw(): void {
    if (this.#visible()) this.#terminal.write(`${CLEAR_LINE}${this.#render()}`);
  }

  #render(): string {
    const now = this.#clock();
    const { stats } = this.#tunnel;
    this.#samples.push({ at: now, bytesUp: stats.bytesUp, bytesDown: stats.bytesDown });
    while (this.#samples.length > 0 && now - this.#samples[0]!.at > RATE_WINDOW_MS) this.#samples.shift();
    return statusLine(this.#tunnel.connection(), stats, this.#samples, now, this.#terminal.columns());
  }
}
