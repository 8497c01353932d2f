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
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
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
  if (err instanceof Error) return err.message.replace(/\s*\n\s*/g, " ");
  return String(err);
}

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
