/**
 * Asking the user for a secret (key passphrase, password, keyboard-interactive
 * answer) or a confirmation, on the terminal or through an askpass program.
 * Which of the two is chosen follows OpenSSH's read_passphrase() in readpass.c
 * (OpenSSH 9.8+, which also accepts WAYLAND_DISPLAY); the terminal is always
 * /dev/tty, never stdin/stdout, so piped input and output are left alone.
 */
import process from "node:process";
import { TunnelError } from "../errors.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { Buffer } from "node:buffer";
import { closeSync, openSync, writeSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { isatty, ReadStream } from "node:tty";

/** A terminal as promptUser needs it; `openTty` returns one, tests pass a fake. */
export interface TtyLike {
  /** Writes to the terminal itself (never stdout). */
  write(text: string): void;
  /** true: keys arrive one by one, unechoed, Ctrl-C is a key; false: restore the previous mode. */
  setRawMode(raw: boolean): void;
  /** The next keystrokes typed, or null when the terminal has gone away. */
  read(): Promise<string | null>;
  /** Releases the terminal (fds, listeners); called exactly once by promptUser. */
  close(): void;
}

export interface PromptEnvironment {
  /**
   * The process environment (usually `process.env`): SSH_ASKPASS,
   * SSH_ASKPASS_REQUIRE, DISPLAY and WAYLAND_DISPLAY decide the channel, and
   * the askpass program runs with exactly this environment (plus the hint).
   */
  env: Record<string, string | undefined>;
  /** BatchMode=yes: never prompt, return null at once. */
  batchMode: boolean;
  /** Default: /dev/tty (on Windows, stdin/stderr when both are terminals); null = no terminal. */
  openTty?: () => TtyLike | null;
  /** Default: run `program prompt`, answer = first line of its stdout; non-zero exit or failure to start => null. */
  runAskpass?: (program: string, prompt: string, env: Record<string, string | undefined>) => Promise<string | null>;
}

export interface PromptRequest {
  /** Shown as is: on the terminal after a "\r", or as argv[1] of the askpass program. */
  message: string;
  /** Whether typed characters are shown (keyboard-interactive prompts may ask for it). */
  echo: boolean;
  /**
   * "confirm" makes an askpass program see SSH_ASKPASS_PROMPT=confirm, which
   * OpenSSH sets only in ask_permission(): askpass dialogs then show OK/Cancel
   * without a text field and print nothing on OK. OpenSSH's own host-key
   * question (sshconnect.c confirm()) does not set it, because it needs a typed
   * "yes" or fingerprint.
   */
  kind: "secret" | "confirm";
}

export type PromptChannel = "tty" | "askpass" | "none";

/**
 * Debian's and Ubuntu's OpenSSH are built with this path (upstream's default
 * is /usr/X11R6/bin/ssh-askpass); it is where the ssh-askpass packages install.
 */
export const DEFAULT_ASKPASS_PROGRAM = "/usr/bin/ssh-askpass";

/**
 * Decides how a prompt is answered, as OpenSSH's read_passphrase() does for a
 * passphrase, password or keyboard-interactive prompt: a graphical session
 * (DISPLAY or WAYLAND_DISPLAY non-empty) allows askpass; SSH_ASKPASS_REQUIRE
 * (compared case-insensitively) "force" uses it even without a display or with
 * a terminal, "prefer" uses it whenever allowed, "never" forbids it, any other
 * value is ignored. Otherwise the terminal wins, and without one askpass is used
 * only if allowed. BatchMode never prompts (OpenSSH checks it in the callers).
 *
 * @example
 * chooseChannel({ DISPLAY: ":0" }, false, false) // "askpass"
 * chooseChannel({ DISPLAY: ":0" }, true, false) // "tty"
 * chooseChannel({ SSH_ASKPASS_REQUIRE: "force" }, true, false) // "askpass"
 */
export function chooseChannel(
  env: Record<string, string | undefined>,
  hasTty: boolean,
  batchMode: boolean,
): PromptChannel {
  if (batchMode) return "none";
  let allowAskpass = Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY);
  let useAskpass = false;
  const require = env.SSH_ASKPASS_REQUIRE?.toLowerCase();
  if (require === "force") {
    useAskpass = true;
    allowAskpass = true;
  } else if (require === "prefer") {
    useAskpass = allowAskpass;
  } else if (require === "never") {
    allowAskpass = false;
  }
  if (!useAskpass && !hasTty) useAskpass = true;
  if (useAskpass && allowAskpass) return "askpass";
  return hasTty ? "tty" : "none";
}

/**
 * The askpass program OpenSSH would run: SSH_ASKPASS when set (even to "",
 * which then cannot run), else the built-in default.
 *
 * @example
 * resolveAskpassProgram({ SSH_ASKPASS: "/usr/lib/ssh/x11-ssh-askpass" }) // "/usr/lib/ssh/x11-ssh-askpass"
 * resolveAskpassProgram({}) // DEFAULT_ASKPASS_PROGRAM
 */
export function resolveAskpassProgram(env: Record<string, string | undefined>): string {
  return env.SSH_ASKPASS ?? DEFAULT_ASKPASS_PROGRAM;
}

/**
 * Asks the user and returns the answer, or null when nobody can be asked
 * (BatchMode, no terminal and no askpass) or the user cancelled (Ctrl-C or
 * Ctrl-D on the terminal, askpass Cancel or failure). The terminal is always
 * restored and released, also when reading from it throws.
 *
 * @example
 * const passphrase = await promptUser(
 *   { message: "Enter passphrase for key '/home/me/.ssh/id_ed25519': ", echo: false, kind: "secret" },
 *   { env: process.env, batchMode: false },
 * );
 */
export async function promptUser(request: PromptRequest, environment: PromptEnvironment): Promise<string | null> {
  const { env, batchMode } = environment;
  if (batchMode) return null;
  // Like read_passphrase(), do not touch the terminal when SSH_ASKPASS_REQUIRE
  // already settled on askpass.
  const settled = chooseChannel(env, false, false) === "askpass" && chooseChannel(env, true, false) === "askpass";
  const tty = settled ? null : (environment.openTty ?? openTerminal)();
  const channel = chooseChannel(env, tty !== null, false);
  if (channel === "tty" && tty !== null) return readFromTerminal(tty, request);
  tty?.close();
  if (channel === "none") return null;

  const program = resolveAskpassProgram(env);
  if (program === "") return null;
  const childEnv = request.kind === "confirm" ? { ...env, SSH_ASKPASS_PROMPT: "confirm" } : { ...env };
  return (environment.runAskpass ?? runAskpassProgram)(program, request.message, childEnv);
}

type KeyOutcome = "more" | "enter" | "cancel" | "interrupt";

/** The line typed so far, and where we are inside an escape sequence (which may span reads). */
interface LineEditor {
  typed: string[];
  escape: "none" | "esc" | "csi" | "ss3";
}

const ERASE_ONE = "\b \b";

/**
 * Applies keystrokes to the line (raw mode means we do the editing ourselves)
 * and returns what to echo.
 */
function applyKeys(line: LineEditor, keys: string, echo: boolean): { echoed: string; outcome: KeyOutcome } {
  let echoed = "";
  for (const ch of keys) {
    // Arrow and function keys send ESC [ params final-byte, or ESC O x; Alt+x
    // sends ESC x. None of it may end up inside a password.
    if (line.escape === "esc") {
      line.escape = ch === "[" ? "csi" : ch === "O" ? "ss3" : "none";
      continue;
    }
    if (line.escape === "ss3") {
      line.escape = "none";
      continue;
    }
    if (line.escape === "csi") {
      if (ch >= "@" && ch <= "~") line.escape = "none";
      continue;
    }
    if (ch === "\r" || ch === "\n") return { echoed, outcome: "enter" };
    // Ctrl-C stops the program, as in OpenSSH (raw mode turned it into a key);
    // Ctrl-D only declines this prompt.
    if (ch === "\x03") return { echoed, outcome: "interrupt" };
    if (ch === "\x04") return { echoed, outcome: "cancel" };
    if (ch === "\x7f" || ch === "\b") {
      if (line.typed.pop() !== undefined && echo) echoed += ERASE_ONE;
    } else if (ch === "\x15") {
      // Ctrl-U, the terminal's kill-line character
      if (echo) echoed += ERASE_ONE.repeat(line.typed.length);
      line.typed.length = 0;
    } else if (ch === "\x1b") {
      line.escape = "esc";
    } else if (ch >= " ") {
      line.typed.push(ch);
      if (echo) echoed += ch;
    }
  }
  return { echoed, outcome: "more" };
}

async function readFromTerminal(tty: TtyLike, request: PromptRequest): Promise<string | null> {
  let raw = false;
  // If something ends the process mid-prompt (SIGTERM, a fatal error), the
  // terminal must not be left in raw mode: 'exit' listeners run synchronously.
  const restore = (): void => {
    if (raw) tty.setRawMode(false);
  };
  process.once("exit", restore);
  try {
    tty.setRawMode(true);
    raw = true;
    // OpenSSH writes "\r" first so the prompt starts the line and hides
    // anything typed before echo was turned off.
    tty.write("\r" + request.message);
    const line: LineEditor = { typed: [], escape: "none" };
    for (;;) {
      const keys = await tty.read();
      if (keys === null) return null;
      const step = applyKeys(line, keys, request.echo);
      if (step.echoed !== "") tty.write(step.echoed);
      if (step.outcome !== "more") {
        // Enter is not echoed in raw mode; end the prompt's line ourselves.
        tty.write("\r\n");
        if (step.outcome === "interrupt") throw new TunnelError("CANCELLED", "interrupted at the prompt (Ctrl-C); nothing was started");
        return step.outcome === "enter" ? line.typed.join("") : null;
      }
    }
  } finally {
    process.removeListener("exit", restore);
    try {
      if (raw) tty.setRawMode(false);
    } finally {
      tty.close();
    }
  }
}

/**
 * The controlling terminal, or null when there is none (daemon, CI, setsid).
 * OpenSSH requires /dev/tty for these prompts; on Windows, which has no
 * /dev/tty, the console behind stdin and stderr stands in.
 */
export function openTerminal(): TtyLike | null {
  return process.platform === "win32" ? openConsole() : openDevTty();
}

function openDevTty(): TtyLike | null {
  let inFd: number;
  let outFd: number;
  try {
    inFd = openSync("/dev/tty", "r");
  } catch {
    return null;
  }
  try {
    // A separate fd for output: libuv makes the reading fd non-blocking, and a
    // writeSync on it could then fail with EAGAIN.
    outFd = openSync("/dev/tty", "w");
  } catch {
    closeQuietly(inFd);
    return null;
  }
  let input: ReadStream;
  try {
    input = new ReadStream(inFd);
  } catch {
    closeQuietly(inFd);
    closeQuietly(outFd);
    return null;
  }
  // libuv reopens the terminal for its handle and leaves our fd open, so we
  // close ours unless the handle turned out to be using it.
  const handleFd = (input as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return streamTty(
    input,
    (text) => writeAllSync(outFd, text),
    () => {
      input.destroy();
      if (handleFd !== inFd) closeQuietly(inFd);
      closeQuietly(outFd);
    },
  );
}

function openConsole(): TtyLike | null {
  if (!isatty(0) || !isatty(2)) return null;
  const stdin = process.stdin as ReadStream;
  const wasRaw = stdin.isRaw;
  const wasFlowing = stdin.readableFlowing === true;
  // stdin belongs to the process: remove only our listeners and leave it as
  // it was (paused unless someone else was already reading it).
  return streamTty(
    stdin,
    (text) => {
      process.stderr.write(text);
    },
    () => {
      if (!wasFlowing) stdin.pause();
    },
    wasRaw,
  );
}

function streamTty(input: ReadStream, write: (text: string) => void, release: () => void, rawBefore = false): TtyLike {
  const decoder = new StringDecoder("utf8");
  const pending: string[] = [];
  let ended = false;
  let waiter: ((keys: string | null) => void) | null = null;
  let listening = false;
  let closed = false;
  const deliver = (keys: string | null): void => {
    if (waiter !== null) {
      const wake = waiter;
      waiter = null;
      wake(keys);
    } else if (keys !== null) {
      pending.push(keys);
    }
  };
  const onData = (chunk: Buffer | string): void => {
    const keys = typeof chunk === "string" ? chunk : decoder.write(chunk);
    if (keys !== "") deliver(keys);
  };
  const onEnd = (): void => {
    ended = true;
    deliver(null);
  };
  return {
    write,
    setRawMode: (raw) => {
      input.setRawMode(raw || rawBefore);
    },
    read: () => {
      if (!listening) {
        listening = true;
        input.on("data", onData);
        input.on("end", onEnd);
        input.on("close", onEnd);
        input.on("error", onEnd);
        input.resume();
      }
      const next = pending.shift();
      if (next !== undefined) return Promise.resolve(next);
      if (ended || closed) return Promise.resolve(null);
      return new Promise((resolve) => {
        waiter = resolve;
      });
    },
    close: () => {
      if (closed) return;
      closed = true;
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("close", onEnd);
      input.off("error", onEnd);
      release();
    },
  };
}

function writeAllSync(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing left to release
  }
}

/**
 * Runs the askpass program as OpenSSH's ssh_askpass() does: the prompt is
 * argv[1], stdin and stderr are inherited, the answer is stdout up to the
 * first CR or LF, and anything but a clean exit 0 means no answer.
 */
/** Askpass programs still asking; a dialog must not outlive us (SIGTERM, Ctrl-C). */
const askpassChildren = new Set<ChildProcess>();
let killOnExit = false;

function runAskpassProgram(
  program: string,
  prompt: string,
  env: Record<string, string | undefined>,
): Promise<string | null> {
  if (!killOnExit) {
    killOnExit = true;
    process.on("exit", () => {
      for (const child of askpassChildren) child.kill();
    });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    try {
      const child = spawn(program, [prompt], { env, stdio: ["inherit", "pipe", "inherit"] });
      askpassChildren.add(child);
      child.once("exit", () => askpassChildren.delete(child));
      child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
      // ENOENT, EACCES: the program cannot run, which OpenSSH also treats as no answer.
      child.on("error", () => resolve(null));
      child.on("close", (code) => {
        if (code !== 0) {
          resolve(null);
          return;
        }
        resolve(Buffer.concat(chunks).toString("utf8").split(/[\r\n\0]/, 1)[0]!);
      });
    } catch {
      resolve(null);
    }
  });
}
