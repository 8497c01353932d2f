/**
 * The background process's end of `-f` (foreground.ts starts it): until the
 * tunnel is up, its log lines and prompts travel to the foreground process,
 * which still has the user's terminal; "ready" lets the foreground exit 0.
 * After that nothing is sent: the foreground is gone, and a later prompt (a
 * reconnect) gets no terminal, as under OpenSSH's `ssh -f`.
 */
import type { Readable, Writable } from "node:stream";
import { decodeDownMessage, encodeMessage, LineSplitter, type UpMessage } from "./handoff-protocol.ts";
import type { TtyLike } from "../ssh/prompt.ts";

/**
 * The environment variable that marks a process as `-f`'s background one: it
 * holds the foreground's PID, which must be the parent's, so a variable left
 * in someone's environment turns nothing into a background process.
 */
export const BACKGROUND_OF = "SAFETUNNEL_BACKGROUND_OF";

/** Set (to "1") by the foreground when it has a terminal to lend for prompts. */
export const BACKGROUND_TTY = "SAFETUNNEL_BACKGROUND_TTY";

export interface Handoff {
  /** Sends a finished log line to the foreground's stderr (dropped once ready). */
  log(line: string): void;
  /** The foreground's terminal for a prompt, or null (none lent, or past ready). */
  openTty(): TtyLike | null;
  /** Tells the foreground the tunnel is up; nothing is sent after it. */
  ready(pid: number): void;
}

/**
 * Whether this process is `-f`'s background one, from its environment and
 * its parent's PID.
 *
 * @example
 * isBackgroundProcess({ SAFETUNNEL_BACKGROUND_OF: "4242" }, 4242) // true
 */
export function isBackgroundProcess(env: Readonly<Record<string, string | undefined>>, parentPid: number): boolean {
  return env[BACKGROUND_OF] !== undefined && env[BACKGROUND_OF] === String(parentPid);
}

/**
 * @example
 * const handoff = handoffToForeground(process.stdin, process.stdout, { terminal: process.env[BACKGROUND_TTY] === "1" });
 * handoff.log("SOCKS and HTTP proxy listening on 127.0.0.1:9001 ...");
 * handoff.ready(process.pid);
 */
export function handoffToForeground(
  input: Readable,
  output: Writable,
  options: {
    terminal: boolean;
    /** The foreground went away before "ready" (killed, or its stderr closed): nobody will hear of this run, so it must not go on. */
    onAbandoned?: () => void;
  },
): Handoff {
  let done = false;
  let ended = false;
  const waiting: ((keys: string | null) => void)[] = [];
  const typed: (string | null)[] = [];
  const deliver = (keys: string | null): void => {
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(keys);
    else typed.push(keys);
  };
  // The foreground gone (it exits on "ready", or was killed) must not end this process.
  output.on("error", () => {});
  input.on("error", () => {});
  const lines = new LineSplitter(
    (line) => {
      const message = decodeDownMessage(line);
      if (message !== undefined) deliver(message.keys);
    },
    () => deliver(null),
  );
  input.setEncoding("utf8");
  input.on("data", (chunk: string) => lines.push(chunk));
  input.on("end", () => {
    ended = true;
    for (const waiter of waiting.splice(0)) waiter(null);
    if (!done) options.onAbandoned?.();
  });
  const send = (message: UpMessage): void => {
    if (!done) output.write(encodeMessage(message));
  };
  return {
    log: (line) => send({ type: "log", line }),
    openTty() {
      if (done || !options.terminal) return null;
      let closed = false;
      return {
        write: (text) => send({ type: "tty-write", text }),
        setRawMode: (raw) => send({ type: "tty-raw", raw }),
        read: () => {
          const next = typed.shift();
          if (next !== undefined) return Promise.resolve(next);
          if (closed || done || ended) return Promise.resolve(null);
          send({ type: "tty-read" });
          return new Promise<string | null>((resolve) => waiting.push(resolve));
        },
        close: () => {
          if (closed) return;
          closed = true;
          send({ type: "tty-close" });
        },
      };
    },
    ready(pid) {
      send({ type: "ready", pid });
      done = true;
      // Nothing more comes: the foreground exits now.
      input.removeAllListeners("data");
      input.destroy();
      for (const waiter of waiting.splice(0)) waiter(null);
    },
  };
}
