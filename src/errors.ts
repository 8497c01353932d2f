/**
 * One error type for everything the user may see. `code` is stable (tests and
 * `--json` logs match on it); `message` is one line that names the problem and
 * the fix; `exitCode` follows OpenSSH (255 for connection and set-up errors).
 */
export type ErrorCode =
  | "USAGE"
  | "BAD_FORWARD_SPEC"
  | "BAD_CONFIG"
  | "BAD_KEY"
  | "CANCELLED"
  | "AUTH_FAILED"
  | "HOST_KEY_CHANGED"
  | "HOST_KEY_REVOKED"
  | "HOST_KEY_UNKNOWN"
  | "HOST_UNREACHABLE"
  | "CONNECT_TIMEOUT"
  | "SSH_DISCONNECTED"
  | "PORT_IN_USE"
  | "BIND_FAILED"
  | "FORWARD_FAILED"
  | "SOCKS_IP_REFUSED"
  | "NO_FRONT_END"
  | "PROXY_UNREACHABLE"
  | "PROXY_REFUSED"
  | "BAD_DESTINATION"
  | "COMMAND_NOT_FOUND"
  | "BROWSER_NOT_FOUND"
  | "BROWSER_PROFILE_IN_USE"
  | "LOG_FILE"
  | "NO_SYSLOG"
  | "PID_FILE"
  | "BAD_CAPTURE"
  | "HOST_KEY_MISSING"
  | "HOST_KEY_UNREADABLE"
  | "HOST_KEY_INVALID"
  | "HOST_KEY_UNWRITABLE"
  | "INTERNAL";

export class TunnelError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    // Values should be cut where they are put in (echoValue); this catches
    // the ones that were not, so no message can grow to megabytes.
    super(cutLongWords(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TunnelError";
    this.code = code;
    this.exitCode = options.exitCode ?? 255;
  }
}

/** True for a TunnelError with the given code (or any code when omitted). */
export function isTunnelError(err: unknown, code?: ErrorCode): err is TunnelError {
  return err instanceof TunnelError && (code === undefined || err.code === code);
}

/** A short, single-line description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  // Others' messages repeat what they were given ("getaddrinfo EINVAL <the HostName>"): cut that too.
  if (err instanceof Error) return cutLongWords(err.message.replace(/\s*\n\s*/g, " "));
  return cutLongWords(String(err));
}

/** The most characters of one value that a message repeats. */
export const MAX_ECHO_CHARS = 200;

/**
 * A value the user (or a server) gave, as a message repeats it: whole when
 * it has at most `max` characters, else its start and an ellipsis, `max`
 * characters in all, then its length. `quote` goes round what is shown. A
 * 1 MB HostName thus makes an error of a few hundred bytes rather than two
 * megabytes, and still says what it began with and how long it was.
 * Lengths are UTF-16 code units, as String#length counts them; a cut never
 * splits a surrogate pair.
 *
 * @example
 * echoValue("home.example.org", "'") // "'home.example.org'"
 * echoValue("a".repeat(1048576), '"') // '"aaaa…" (1048576 characters)', with 199 a's before the ellipsis
 */
export function echoValue(value: string, quote = "", max = MAX_ECHO_CHARS): string {
  if (value.length <= max) return `${quote}${value}${quote}`;
  let end = Math.max(0, max - 1);
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${quote}${value.slice(0, end)}…${quote} (${value.length} characters)`;
}

/**
 * Words (runs without white space) too long to be anything but a repeated
 * value, cut as echoValue cuts them. The bound is twice MAX_ECHO_CHARS, so a
 * value cut already, with its quotes and punctuation, is left as it is.
 *
 * @example
 * cutLongWords(`getaddrinfo EINVAL ${"a".repeat(5000)}`) // "getaddrinfo EINVAL aaaa… (5000 characters)", with 199 a's
 */
export function cutLongWords(text: string): string {
  return text.length <= 2 * MAX_ECHO_CHARS ? text : text.replace(LONG_WORD, (word) => echoValue(word));
}

const LONG_WORD = new RegExp(`\\S{${2 * MAX_ECHO_CHARS + 1},}`, "g");

/**
 * The errno-style code of a Node or Deno system error ("ENOENT", "EADDRINUSE"), if any.
 *
 * @example
 * errnoCode(Object.assign(new Error("x"), { code: "ENOENT" })) // "ENOENT"
 */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
