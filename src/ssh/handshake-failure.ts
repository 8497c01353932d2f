/**
 * Why an SSH connection closed before it was ready, told once. ssh2 reports
 * every hiccup on the way as an `error` event, and a failing handshake often
 * brings several (ECONNRESET as the server hangs up after "no matching host
 * key"): the first is the cause, the rest its echo. The end of authentication
 * is the exception, since "All configured authentication methods failed" sums
 * up the attempts before it. A reason of our own (a refused host key, the
 * ConnectTimeout) beats anything ssh2 says, because ssh2 only knows that it
 * was told to hang up ("Host denied (verification failed)").
 *
 * The wording follows OpenSSH's ssh: "user@host: Permission denied (methods)."
 * (sshconnect2.c), "Unable to negotiate with host port P: no matching ..."
 * (packet.c sshpkt_vfatal()), and "Connection closed by host port P"
 * (packet.c again) becomes "Connection to host port P closed: why".
 */
import { TunnelError, echoValue } from "../errors.ts";
import { singleLine } from "../log.ts";
import type { HopSettings } from "../config/settings.ts";

/** The part of an AuthFlow (auth.ts) that explains an authentication failure. */
export interface AuthOutcome {
  /** Set when the user interrupted a prompt. */
  cancelled(): TunnelError | undefined;
  /** The methods the server allowed last. */
  serverMethods(): string[];
}

/** The fields of a hop that the messages name. */
export type HopName = Pick<HopSettings, "user" | "hostname" | "port">;

/** ssh2 marks the end of authentication with this error (lib/client.js). */
const AUTHENTICATION_END = /authentication methods failed/i;

/**
 * Collects what went wrong while one connection was being set up.
 *
 * @example
 * const failure = new HandshakeFailure();
 * client.on("error", (err) => failure.record(err));
 * client.once("close", () => reject(failure.explain(hop, auth)));
 */
export class HandshakeFailure {
  #reason: TunnelError | undefined;
  #error: Error | undefined;

  /** A reason of our own to refuse the connection; the first one given stays. */
  refuse(reason: TunnelError): void {
    this.#reason ??= reason;
  }

  /** An error ssh2 emitted before the connection was ready. */
  record(err: Error & { level?: string }): void {
    if (err.level === "client-authentication" && AUTHENTICATION_END.test(err.message)) this.#error = err;
    else this.#error ??= err;
  }

  /** The TunnelError to report once the connection has closed without becoming ready. */
  explain(hop: HopName, auth: AuthOutcome): TunnelError {
    return this.#reason ?? auth.cancelled() ?? describe(hop, this.#error, auth.serverMethods());
  }
}

function describe(hop: HopName, err: Error | undefined, methods: string[]): TunnelError {
  // The server may have chosen this text (a disconnect reason): keep it on one line.
  const message = singleLine(err?.message ?? "connection closed during the SSH handshake");
  const host = echoValue(hop.hostname);
  if (AUTHENTICATION_END.test(message)) {
    return new TunnelError(
      "AUTH_FAILED",
      `${echoValue(hop.user)}@${host}: Permission denied (${methods.join(",") || "publickey"}); load a key into ssh-agent or pass one with -i, and check the user name (-l).`,
    );
  }
  if (/handshake failed|no matching/i.test(message)) {
    return new TunnelError("SSH_DISCONNECTED", `Unable to negotiate with ${host} port ${hop.port}: ${echoValue(message, "", 1000)}`);
  }
  return new TunnelError("SSH_DISCONNECTED", `Connection to ${host} port ${hop.port} closed: ${echoValue(message, "", 1000)}`);
}
