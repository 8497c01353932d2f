/**
 * Why a channel could not be opened, in a small closed set of kinds (from
 * RFC 4254 section 5.1 reason codes and the descriptions OpenSSH's sshd
 * sends), so forwarders map them to their own protocol without reading
 * ssh2's error strings.
 */
import { singleLine } from "../log.ts";

export type ChannelFailureKind =
  /** The far end's connect() got ECONNREFUSED. */
  | "refused"
  /** The name did not resolve at the far end, or the host did not answer. */
  | "unreachable"
  /** The far end has no route to that network. */
  | "network-unreachable"
  /** The server forbids this forwarding (AllowTcpForwarding, PermitOpen). */
  | "prohibited"
  /** There is no SSH connection to open a channel on. */
  | "connection-down"
  | "other";

export class ChannelOpenError extends Error {
  readonly kind: ChannelFailureKind;
  constructor(kind: ChannelFailureKind, message: string) {
    super(message);
    this.name = "ChannelOpenError";
    this.kind = kind;
  }
}

/** RFC 4254 section 5.1 SSH_MSG_CHANNEL_OPEN_FAILURE reason codes. */
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;
const OPEN_RESOURCE_SHORTAGE = 4;

/**
 * Classify a channel-open failure. OpenSSH's sshd reports connect() and
 * getaddrinfo() failures as CONNECT_FAILED with strerror()/gai_strerror()
 * text, so the description is the only place the cause is found.
 *
 * @example
 * classifyOpenFailure(2, "Connection refused") // "refused"
 */
export function classifyOpenFailure(reason: number | undefined, description: string): ChannelFailureKind {
  if (reason === OPEN_ADMINISTRATIVELY_PROHIBITED) return "prohibited";
  if (reason === OPEN_RESOURCE_SHORTAGE) return "other";
  const text = description.toLowerCase();
  if (text.includes("refused")) return "refused";
  if (text.includes("network is unreachable")) return "network-unreachable";
  if (
    /no route to host|host is unreachable|timed out|name or service not known|nodename nor servname|temporary failure in name resolution|no address associated|unknown host|name resolution|non-recoverable failure|not known/.test(
      text,
    )
  ) {
    return "unreachable";
  }
  return "other";
}

/**
 * A failed open for a log line. OpenSSH's sshd says only "open failed" when
 * its configuration forbids forwarding, so the reason code has to speak.
 *
 * @example
 * describeOpenFailure(new ChannelOpenError("prohibited", "open failed"))
 * // "administratively prohibited by the server (AllowTcpForwarding or PermitOpen): open failed"
 */
export function describeOpenFailure(err: unknown): string {
  if (err instanceof ChannelOpenError && err.kind === "prohibited") {
    return `administratively prohibited by the server (AllowTcpForwarding or PermitOpen): ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * The server's description of a failed open, without ssh2's prefix, on one
 * line (it is the server's text: no control characters).
 *
 * @example
 * openFailureText(new Error("(SSH) Channel open failure: Connection refused")) // "Connection refused"
 */
export function openFailureText(err: Error): string {
  return singleLine(err.message.replace(/^\(SSH\) Channel open failure: /, "")) || "the server gave no reason";
}
