/**
 * What `-f`'s two processes say to each other until the tunnel is up: the
 * background process (the tunnel) sends its log lines, its terminal use for
 * prompts, and finally "ready"; the foreground process (the one the user
 * started, still holding the terminal) answers the terminal reads. One JSON
 * object per line, over the background process's stdout and stdin. Pure:
 * messages in, text out, and back.
 */

/** From the background process to the foreground one. */
export type UpMessage =
  /** A finished log line, for the foreground's stderr. */
  | { type: "log"; line: string }
  /** Prompt output for the terminal (prompt.ts TtyLike.write). */
  | { type: "tty-write"; text: string }
  /** Raw mode on or off (TtyLike.setRawMode). */
  | { type: "tty-raw"; raw: boolean }
  /** The next keystrokes, please (TtyLike.read); answered by a "tty-keys". */
  | { type: "tty-read" }
  /** The prompt is done with the terminal (TtyLike.close). */
  | { type: "tty-close" }
  /** Every forward is listening: the foreground may exit 0. */
  | { type: "ready"; pid: number };

/** From the foreground process to the background one. */
export type DownMessage =
  /** Keystrokes typed, or null when the terminal is gone. */
  { type: "tty-keys"; keys: string | null };

/**
 * The longest line either side accepts. A log line is far shorter; a longer
 * one means the other side is not a safetunnel speaking this protocol.
 */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/**
 * @example
 * encodeMessage({ type: "ready", pid: 4242 }) // '{"type":"ready","pid":4242}\n'
 */
export function encodeMessage(message: UpMessage | DownMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * One line as an up message, or undefined when it is not one.
 *
 * @example
 * decodeUpMessage('{"type":"tty-raw","raw":true}') // { type: "tty-raw", raw: true }
 * decodeUpMessage("hello") // undefined
 */
export function decodeUpMessage(line: string): UpMessage | undefined {
  const value = parseObject(line);
  if (value === undefined) return undefined;
  switch (value["type"]) {
    case "log":
      return typeof value["line"] === "string" ? { type: "log", line: value["line"] } : undefined;
    case "tty-write":
      return typeof value["text"] === "string" ? { type: "tty-write", text: value["text"] } : undefined;
    case "tty-raw":
      return typeof value["raw"] === "boolean" ? { type: "tty-raw", raw: value["raw"] } : undefined;
    case "tty-read":
      return { type: "tty-read" };
    case "tty-close":
      return { type: "tty-close" };
    case "ready":
      return Number.isSafeInteger(value["pid"]) && (value["pid"] as number) > 0 ? { type: "ready", pid: value["pid"] as number } : undefined;
    default:
      return undefined;
  }
}

/**
 * One line as a down message, or undefined when it is not one.
 *
 * @example
 * decodeDownMessage('{"type":"tty-keys","keys":"pw\\r"}') // { type: "tty-keys", keys: "pw\r" }
 */
export function decodeDownMessage(line: string): DownMessage | undefined {
  const value = parseObject(line);
  if (value === undefined || value["type"] !== "tty-keys") return undefined;
  const keys = value["keys"];
  return keys === null || typeof keys === "string" ? { type: "tty-keys", keys } : undefined;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  if (line.length > MAX_MESSAGE_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Splits a byte stream into lines as they complete; a line over
 * MAX_MESSAGE_BYTES is reported through `onOversized` and the rest dropped.
 *
 * @example
 * const lines = new LineSplitter((line) => console.log(line), () => {});
 * lines.push('{"type":"tty-read"}\n{"ty'); // logs the first line, keeps the rest
 */
export class LineSplitter {
  #pending = "";
  readonly #onLine: (line: string) => void;
  readonly #onOversized: () => void;

  constructor(onLine: (line: string) => void, onOversized: () => void) {
    this.#onLine = onLine;
    this.#onOversized = onOversized;
  }

  push(text: string): void {
    this.#pending += text;
    for (;;) {
      const end = this.#pending.indexOf("\n");
      if (end < 0) break;
      const line = this.#pending.slice(0, end);
      this.#pending = this.#pending.slice(end + 1);
      this.#onLine(line);
    }
    if (this.#pending.length > MAX_MESSAGE_BYTES) {
      this.#pending = "";
      this.#onOversized();
    }
  }
}
