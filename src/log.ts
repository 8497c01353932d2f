/**
 * All diagnostics go through a Logger: human lines on stderr by default (in
 * OpenSSH's style: `Warning: ...`, `debug1: ...`), or one JSON object per line
 * with `--json`. The sink is passed in so tests and other runtimes can capture it.
 *
 * Verbosity follows ssh: -1 for `-q` (errors only), 0 by default (errors,
 * warnings and notices such as refused SOCKS requests), 1..3 for `-v`..`-vvv`.
 */
export type LogLevel = "error" | "warn" | "info" | "debug1" | "debug2" | "debug3";

/** Structured details that travel with a line; in `--json` mode they become keys. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  readonly verbosity: number;
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(depth: 1 | 2 | 3, message: string, fields?: LogFields): void;
  /** Whether a debug line at this depth would be written (skip building costly messages). */
  debugEnabled(depth: 1 | 2 | 3): boolean;
}

export interface LoggerOptions {
  verbosity: number;
  json?: boolean;
  /** Receives one finished line without its trailing newline. */
  write: (line: string) => void;
  now?: () => Date;
}

const MIN_VERBOSITY: Record<LogLevel, number> = {
  error: -1,
  warn: 0,
  info: 0,
  debug1: 1,
  debug2: 2,
  debug3: 3,
};

const HUMAN_PREFIX: Record<LogLevel, string> = {
  error: "",
  warn: "Warning: ",
  info: "",
  debug1: "debug1: ",
  debug2: "debug2: ",
  debug3: "debug3: ",
};

/**
 * @example
 * const log = createLogger({ verbosity: 0, write: (l) => process.stderr.write(l + "\n") });
 * log.warn("bind address ignored");
 */
export function createLogger(options: LoggerOptions): Logger {
  const { verbosity, write } = options;
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (verbosity < MIN_VERBOSITY[level]) return;
    if (options.json) {
      write(JSON.stringify({ time: now().toISOString(), level, msg: message, ...fields }));
    } else {
      write(HUMAN_PREFIX[level] + printable(message));
    }
  };
  return {
    verbosity,
    error: (m, f) => emit("error", m, f),
    warn: (m, f) => emit("warn", m, f),
    info: (m, f) => emit("info", m, f),
    debug: (depth, m, f) => emit(`debug${depth}`, m, f),
    debugEnabled: (depth) => verbosity >= depth,
  };
}

/**
 * Text safe to put on a terminal: control characters other than newline and
 * tab become visible `\xNN` escapes. Messages can carry text chosen by the SSH
 * server (disconnect reasons, channel failures, keyboard-interactive prompts),
 * and a hostile server must not drive the user's terminal with escape
 * sequences (OpenSSH filters the same text through strnvis()).
 *
 * @example
 * printable("bad\x1b[2Jname") // "bad\\x1b[2Jname"
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * `printable`, and newlines escaped too: for text from the server that lands
 * inside one of our lines (a disconnect reason, a channel failure), where a
 * newline could forge a whole log line.
 *
 * @example
 * singleLine("refused\nsafetunnel: all good") // "refused\\nsafetunnel: all good"
 */
export function singleLine(text: string): string {
  return printable(text).replace(/\n/g, "\\n");
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger: Logger = createLogger({ verbosity: -2, write: () => {} });
