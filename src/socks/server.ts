/**
 * The per-socket SOCKS handshake: read bytes, ask the codec what they mean,
 * hand a complete CONNECT request to `onConnect`, answer with a whole reply.
 *
 * This module knows nothing of SSH. What a request may reach and how it is
 * reached is `onConnect`'s business (see forward/dynamic.ts); this one only
 * guarantees the protocol: bounded buffering, a handshake deadline, exact
 * replies, and that a bad client costs one socket and nothing else.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import {
  AuthMethod,
  encodeReply,
  encodeSocks5MethodChoice,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  Socks5Reply,
  type ParseResult,
  type Socks5ReplyCode,
  type SocksRequest,
  SOCKS4_VERSION,
  SOCKS5_VERSION,
} from "./codec.ts";

/** Who is asking, as far as the socket tells. */
export interface SocksClient {
  address: string;
  port: number;
  /** The local address:port the client connected to (which listener). */
  localAddress: string;
  localPort: number;
}

export type ConnectOutcome =
  | { ok: true; stream: Duplex }
  | { ok: false; reply: Socks5ReplyCode };

export interface SocksSessionOptions {
  /** Close sockets that have not sent a whole request by then. */
  handshakeTimeoutMs: number;
  /**
   * Called once per CONNECT. The reply is sent only after it settles, so
   * success means the far end really is connected. `signal` aborts when the
   * client goes away first; the outcome's stream is then destroyed.
   */
  onConnect(request: SocksRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome>;
  /** The stream is joined to the socket; the caller owns piping and accounting. */
  onEstablished(socket: Socket, stream: Duplex, request: SocksRequest, leftover: Buffer): void;
  /** A socket was dropped for a protocol problem (garbage, timeout, unsupported command...). */
  onProtocolError(client: SocksClient, reason: string): void;
}

/**
 * The longest handshake we buffer: a SOCKS5 greeting (257) plus a request
 * (262), or a SOCKS4a request with two 255-byte fields. Anything longer is not
 * a SOCKS client.
 */
export const MAX_HANDSHAKE_BYTES = 1024;

type Phase = "start" | "socks5-request" | "connecting" | "done";

/**
 * Drive one accepted socket through the SOCKS handshake.
 *
 * @example
 * net.createServer({ allowHalfOpen: true }, (s) => serveSocksSocket(s, options));
 */
export function serveSocksSocket(socket: Socket, options: SocksSessionOptions): void {
  const client: SocksClient = {
    address: socket.remoteAddress ?? "unknown",
    port: socket.remotePort ?? 0,
    localAddress: socket.localAddress ?? "",
    localPort: socket.localPort ?? 0,
  };
  let phase: Phase = "start";
  let buffered: Buffer = Buffer.alloc(0);
  const abort = new AbortController();

  const timer = setTimeout(() => {
    const ms = options.handshakeTimeoutMs;
    dropWith(undefined, `no complete SOCKS request within ${ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`}`);
  }, options.handshakeTimeoutMs);
  timer.unref?.();

  function dropWith(reply: Buffer | undefined, reason: string): void {
    if (phase === "done") return;
    phase = "done";
    clearTimeout(timer);
    socket.removeListener("data", onData);
    options.onProtocolError(client, reason);
    closeAfter(socket, reply);
  }

  function onData(chunk: Buffer): void {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    advance();
    // Only an unfinished handshake counts: bytes after a whole request are
    // the client's payload (a TLS ClientHello alone can be 1.8 kB).
    if ((phase === "start" || phase === "socks5-request") && buffered.length > MAX_HANDSHAKE_BYTES) {
      dropWith(undefined, `handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`);
    }
  }

  function advance(): void {
    if (phase === "start") {
      const version = buffered[0];
      if (version === SOCKS5_VERSION) {
        const greeting = parseSocks5Greeting(buffered);
        if (!consume(greeting)) return;
        if (!greeting.value.methods.includes(AuthMethod.NO_AUTH)) {
          dropWith(encodeSocks5MethodChoice(AuthMethod.NO_ACCEPTABLE), "client offers no method we accept (only \"no authentication\" is supported)");
          return;
        }
        socket.write(encodeSocks5MethodChoice(AuthMethod.NO_AUTH));
        phase = "socks5-request";
      } else if (version === SOCKS4_VERSION) {
        const request = parseSocks4Request(buffered);
        if (consume(request)) startRequest(request.value);
        return;
      } else if (version !== undefined) {
        dropWith(undefined, describeForeignProtocol(buffered));
        return;
      } else {
        return;
      }
    }
    if (phase === "socks5-request" && buffered.length > 0) {
      const request = parseSocks5Request(buffered);
      if (consume(request)) startRequest(request.value);
    }
  }

  /** Take a parse result: drop the socket if invalid, keep the rest of the bytes if ok. */
  function consume<T>(result: ParseResult<T>): result is { status: "ok"; value: T; consumed: number } {
    if (result.status === "incomplete") return false;
    if (result.status === "invalid") {
      dropWith(result.reply, result.reason);
      return false;
    }
    buffered = buffered.subarray(result.consumed);
    return true;
  }

  function startRequest(request: SocksRequest): void {
    if (request.command !== "connect") {
      // RFC 1928: 0x07 for BIND, UDP ASSOCIATE and anything unknown; SOCKS4 has only 0x5B.
      dropWith(
        encodeReply(request.version, Socks5Reply.COMMAND_NOT_SUPPORTED),
        `SOCKS${request.version} command ${request.command === "unknown" ? `0x${request.commandCode.toString(16)}` : request.command.toUpperCase()} is not supported (only CONNECT)`,
      );
      return;
    }
    phase = "connecting";
    clearTimeout(timer);
    // Hold further bytes in the socket (and the kernel) until the tunnel is up.
    socket.removeListener("data", onData);
    socket.pause();
    options.onConnect(request, client, abort.signal).then(
      (outcome) => finishRequest(request, outcome),
      () => finishRequest(request, { ok: false, reply: Socks5Reply.GENERAL_FAILURE }),
    );
  }

  function finishRequest(request: SocksRequest, outcome: ConnectOutcome): void {
    if (phase !== "connecting" || socket.destroyed) {
      if (outcome.ok) outcome.stream.destroy();
      return;
    }
    phase = "done";
    socket.removeListener("close", onCloseEarly);
    if (!outcome.ok) {
      closeAfter(socket, encodeReply(request.version, outcome.reply));
      return;
    }
    socket.write(encodeReply(request.version, Socks5Reply.SUCCEEDED));
    const leftover = buffered;
    buffered = Buffer.alloc(0);
    options.onEstablished(socket, outcome.stream, request, leftover);
    socket.resume();
  }

  function onCloseEarly(): void {
    clearTimeout(timer);
    abort.abort();
    if (phase !== "connecting") phase = "done";
  }

  socket.on("data", onData);
  socket.on("close", onCloseEarly);
  // allowHalfOpen (needed once piped) means a FIN alone does not close the
  // socket: a client that gives up mid-handshake must not wait for the timer.
  // Once connecting, a FIN after a pipelined request is legal and is kept.
  socket.on("end", () => {
    if (phase === "start" && buffered.length === 0) {
      // Connect-and-close (a port probe, a health check) is not a SOCKS error.
      phase = "done";
      clearTimeout(timer);
      closeAfter(socket, undefined);
    } else if (phase === "start" || phase === "socks5-request") {
      dropWith(undefined, "client closed the connection before sending a complete SOCKS request");
    }
  });
  // Errors (resets) end in "close"; without a listener they would crash the process.
  socket.on("error", () => {});
}

/** How long a refused client may take to read its reply and close. */
const LINGER_MS = 5000;

/**
 * Send the last bytes and close without losing them: destroying a socket with
 * unread input makes the kernel send RST, and a client may then never see the
 * reply. So discard further input, half-close, and destroy only once the peer
 * has closed too or LINGER_MS has passed.
 */
function closeAfter(socket: Socket, last: Buffer | undefined): void {
  socket.removeAllListeners("data");
  socket.on("data", () => {});
  socket.resume();
  if (last !== undefined) socket.end(last);
  else socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref?.();
  socket.once("close", () => clearTimeout(timer));
}

/** A readable reason for bytes that are not SOCKS at all; HTTP is the usual mistake. */
function describeForeignProtocol(bytes: Buffer): string {
  const head = bytes.subarray(0, 8).toString("latin1");
  if (/^(CONNECT|GET|POST|HEAD|PUT|OPTIONS|DELETE) /.test(head) || /^[A-Z]{3,7}$/.test(head.trim())) {
    return "the client spoke HTTP, not SOCKS: configure it as a SOCKS v5 proxy (not an HTTP/HTTPS proxy)";
  }
  if (bytes[0] === 0x16) return "the client spoke TLS, not SOCKS: configure it as a SOCKS v5 proxy";
  return `not a SOCKS request (first byte 0x${bytes[0]!.toString(16).padStart(2, "0")})`;
}
