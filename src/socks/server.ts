/**
 * The per-connection SOCKS handshake: read bytes, ask the codec what they
 * mean, hand a complete CONNECT request to `onConnect`, answer with a whole
 * reply.
 *
 * This module knows nothing of SSH. What a request may reach and how it is
 * reached is `onConnect`'s business (see forward/dynamic.ts); this one only
 * guarantees the protocol: bounded buffering, a handshake deadline, exact
 * replies, the username and password when the port requires them (RFC 1929),
 * and that a bad client costs one connection and nothing else. The
 * connection is any Duplex: an accepted socket (-D), or a forwarded-tcpip
 * channel whose client sits on the SSH server's side (-R port alone).
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import {
  AuthMethod,
  encodeReply,
  encodeSocks4Reply,
  encodeSocks5MethodChoice,
  encodeSocks5UserPassStatus,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  parseSocks5UserPass,
  Socks4Reply,
  Socks5Reply,
  type ParseResult,
  type Socks5ReplyCode,
  type SocksRequest,
  type UserPass,
  SOCKS4_VERSION,
  SOCKS5_VERSION,
} from "./codec.ts";
import { closeAfter, ignoreError } from "../close-after.ts";

/**
 * Who is asking, as far as the connection tells: where the client connects
 * from, and to which listening address. Anything more (which program, which
 * account) is for the caller to find out, and only when it needs to.
 */
export interface SocksClient {
  address: string;
  port: number;
  /** The local address:port the client connected to (which listener). */
  localAddress: string;
  localPort: number;
}

/** The one username and password a port accepts (RFC 1929), as the bytes a client must send. */
export interface SocksCredentials {
  username: Uint8Array;
  password: Uint8Array;
}

export type ConnectOutcome =
  | { ok: true; stream: Duplex }
  | {
      ok: false;
      reply: Socks5ReplyCode;
      /** The tunnel itself is down, not the destination (HTTP says 503, not 502). */
      unavailable?: boolean;
      /** A sentence for clients that can show one (an HTTP response body): what happened and what to do. */
      explanation?: string;
    };

/**
 * What one handshake is told and asks. `S` is the kind of connection served,
 * handed back to `onEstablished` as it came in: a net.Socket for
 * `serveSocksSocket`, any Duplex for `serveSocksStream`.
 */
export interface SocksHandshakeOptions<S extends Duplex = Socket> {
  /** Close sockets that have not sent a whole request by then (the username and password included). */
  handshakeTimeoutMs: number;
  /**
   * Require these (RFC 1929): SOCKS5 clients must choose username/password
   * (X'02') and send them before their request; SOCKS4 and 4a, which have
   * no password, are refused. Never reported or logged.
   * @default none: "no authentication" (X'00') only
   */
  credentials?: SocksCredentials;
  /**
   * Called once per CONNECT. The reply is sent only after it settles, so
   * success means the far end really is connected (and a client waiting for
   * it keeps its socket open meanwhile). `signal` aborts when the client goes
   * away first; the outcome's stream is then destroyed.
   */
  onConnect(request: SocksRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome>;
  /** The stream is joined to the client's connection; the caller owns piping and accounting. */
  onEstablished(socket: S, stream: Duplex, request: SocksRequest, leftover: Buffer): void;
  /** A connection was dropped for a protocol problem (garbage, timeout, unsupported command...). */
  onProtocolError(client: SocksClient, reason: string): void;
  /**
   * Takes over a connection whose first byte is an upper-case ASCII letter:
   * an HTTP request line (http-proxy/server.ts), with the bytes read so far.
   * The handshake has let go of the connection by then.
   * @default none: such a client is dropped with a line saying it spoke HTTP
   */
  onHttp?: (socket: S, client: SocksClient, buffered: Buffer) => void;
}

/**
 * The most unanswered handshake bytes we buffer. Each message is taken off
 * as soon as it is whole (in the same read as the bytes before it), so what
 * waits is at most one unfinished message: a SOCKS5 greeting (257 bytes), an
 * RFC 1929 username/password request (513), a SOCKS5 request (262) or a
 * SOCKS4a request with two 255-byte fields (520). A client that pipelines
 * all its SOCKS5 messages at once (1032 bytes) is thus still within bounds.
 * Anything longer is not a SOCKS client.
 */
export const MAX_HANDSHAKE_BYTES = 1024;

/**
 * Drive one accepted socket through the SOCKS handshake.
 *
 * @example
 * net.createServer({ allowHalfOpen: true }, (s) => serveSocksSocket(s, options));
 */
export function serveSocksSocket(socket: Socket, options: SocksHandshakeOptions<Socket>): void {
  serveSocksStream(
    socket,
    {
      address: socket.remoteAddress ?? "unknown",
      port: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? "",
      localPort: socket.localPort ?? 0,
    },
    options,
  );
}

/**
 * Drive one connection that is not a socket through the SOCKS handshake, with
 * the same limits and replies; `client` says who is at the other end, which
 * only the caller knows (for a forwarded-tcpip channel, the originator the SSH
 * server names, RFC 4254 section 7.2). The stream should keep its write half
 * open after the client's EOF (allowHalfOpen), as a socket from
 * `createServer({ allowHalfOpen: true })` does.
 *
 * @example
 * serveSocksStream(channel, { address: "127.0.0.1", port: 51234, localAddress: "localhost", localPort: 1080 }, options);
 */
export function serveSocksStream<S extends Duplex>(stream: S, client: SocksClient, options: SocksHandshakeOptions<S>): void {
  new SocksHandshake(stream, client, options);
}

/**
 * Where a handshake stands:
 * - `first`: waiting for the first message, a SOCKS5 greeting or a whole SOCKS4 request;
 * - `socks5-auth`: username/password (X'02') was chosen, waiting for the RFC 1929 request;
 * - `socks5-request`: the method reply (and any auth status) is sent, waiting for the SOCKS5 request;
 * - `connecting`: `onConnect` has the request; input waits in the stream;
 * - `done`: answered, dropped or gone; nothing more happens here.
 */
type Phase = "first" | "socks5-auth" | "socks5-request" | "connecting" | "done";

/** One connection's handshake: each SOCKS step is a method, the bytes' meaning comes from the codec. */
class SocksHandshake<S extends Duplex> {
  readonly #socket: S;
  readonly #options: SocksHandshakeOptions<S>;
  readonly #client: SocksClient;
  readonly #abort = new AbortController();
  readonly #deadline: ReturnType<typeof setTimeout>;
  #phase: Phase = "first";
  /**
   * The client's connection has closed. Not `destroyed`: an ssh2 channel that
   * the server closed emits "close" without ever being destroyed.
   */
  #gone = false;
  /** Bytes received and not yet consumed; bounded by MAX_HANDSHAKE_BYTES until a request is whole. */
  #buffered: Buffer = Buffer.alloc(0);

  constructor(socket: S, client: SocksClient, options: SocksHandshakeOptions<S>) {
    this.#socket = socket;
    this.#options = options;
    this.#client = client;
    this.#deadline = setTimeout(() => this.#drop(undefined, `no complete SOCKS request within ${formatMs(options.handshakeTimeoutMs)}`), options.handshakeTimeoutMs);
    this.#deadline.unref?.();
    socket.on("data", this.#onData);
    socket.on("close", this.#onClose);
    socket.on("end", this.#onEnd);
    // Errors (resets) end in "close"; without a listener they would crash the process.
    // A function of its own: a closure made here would hold this handshake for the tunnel's life.
    socket.on("error", ignoreError);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    if (this.#phase === "first") this.#readFirstMessage();
    if (this.#phase === "socks5-auth") this.#readUserPass();
    if (this.#phase === "socks5-request") this.#readSocks5Request();
    // Only an unfinished handshake counts: bytes after a whole request are
    // the client's payload (a TLS ClientHello alone can be 1.8 kB).
    if (this.#handshaking() && this.#buffered.length > MAX_HANDSHAKE_BYTES) {
      this.#drop(undefined, `handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`);
    }
  };

  /** The version byte says which protocol: a SOCKS5 greeting, a SOCKS4 request, or not SOCKS. */
  #readFirstMessage(): void {
    const version = this.#buffered[0];
    if (version === undefined) return;
    if (version === SOCKS5_VERSION) this.#readGreeting();
    else if (version === SOCKS4_VERSION) this.#readSocks4Request();
    else if (version >= 0x41 && version <= 0x5a && this.#options.onHttp !== undefined) this.#handOver(this.#options.onHttp);
    else this.#drop(undefined, describeForeignProtocol(this.#buffered, this.#options.onHttp !== undefined));
  }

  /** Not SOCKS but an HTTP request line (methods are upper-case tokens): its own handshake takes the connection. */
  #handOver(onHttp: (socket: S, client: SocksClient, buffered: Buffer) => void): void {
    const buffered = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    this.#done();
    onHttp(this.#socket, this.#client, buffered);
  }

  /** Not yet at `onConnect`: the deadline and MAX_HANDSHAKE_BYTES apply. */
  #handshaking(): boolean {
    return this.#phase === "first" || this.#phase === "socks5-auth" || this.#phase === "socks5-request";
  }

  /**
   * RFC 1928 section 3: we offer one method, "no authentication" (X'00'), or
   * username/password (X'02') when the port requires credentials, never both
   * (a client must not be able to skip the password). A client that does not
   * offer it gets X'FF' and the connection is closed.
   */
  #readGreeting(): void {
    const greeting = parseSocks5Greeting(this.#buffered);
    if (!this.#take(greeting)) return;
    const { methods } = greeting.value;
    if (this.#options.credentials !== undefined) {
      if (!methods.includes(AuthMethod.USERNAME_PASSWORD)) {
        this.#drop(
          encodeSocks5MethodChoice(AuthMethod.NO_ACCEPTABLE),
          "client offers no username/password authentication (SOCKS5 method 0x02), which this port requires (--socks-auth): give the client the proxy username and password",
        );
        return;
      }
      this.#socket.write(encodeSocks5MethodChoice(AuthMethod.USERNAME_PASSWORD));
      this.#phase = "socks5-auth";
      return;
    }
    if (!methods.includes(AuthMethod.NO_AUTH)) {
      this.#drop(encodeSocks5MethodChoice(AuthMethod.NO_ACCEPTABLE), "client offers no method we accept (only \"no authentication\" is supported)");
      return;
    }
    this.#socket.write(encodeSocks5MethodChoice(AuthMethod.NO_AUTH));
    this.#phase = "socks5-request";
  }

  /** RFC 1929 section 2: status X'00' and on to the request, or X'01' and close. */
  #readUserPass(): void {
    if (this.#buffered.length === 0) return;
    const offered = parseSocks5UserPass(this.#buffered);
    if (!this.#take(offered)) return;
    // Fails closed; the reason never repeats what was sent (a password typed as the username).
    const expected = this.#options.credentials;
    if (expected === undefined || !credentialsMatch(offered.value, expected)) {
      this.#drop(encodeSocks5UserPassStatus(false), "wrong SOCKS5 username or password: give the client the ones set with --socks-auth");
      return;
    }
    this.#socket.write(encodeSocks5UserPassStatus(true));
    this.#phase = "socks5-request";
  }

  #readSocks5Request(): void {
    if (this.#buffered.length === 0) return;
    const request = parseSocks5Request(this.#buffered);
    if (this.#take(request)) this.#request(request.value);
  }

  #readSocks4Request(): void {
    const request = parseSocks4Request(this.#buffered);
    if (!this.#take(request)) return;
    if (this.#options.credentials !== undefined) {
      // SOCKS4's USERID is an identd name, not a secret: it cannot carry a password.
      this.#drop(
        encodeSocks4Reply(Socks4Reply.REJECTED),
        `SOCKS${request.value.socks4a ? "4a" : "4"} has no password and this port requires one (--socks-auth): configure the client for SOCKS5 with username/password`,
      );
      return;
    }
    this.#request(request.value);
  }

  /** Take a parse result: drop the socket if invalid, keep the rest of the bytes if ok. */
  #take<T>(result: ParseResult<T>): result is { status: "ok"; value: T; consumed: number } {
    if (result.status === "incomplete") return false;
    if (result.status === "invalid") {
      this.#drop(result.reply, result.reason);
      return false;
    }
    this.#buffered = this.#buffered.subarray(result.consumed);
    return true;
  }

  /** A whole request: CONNECT goes on; BIND, UDP ASSOCIATE and unknown commands are refused. */
  #request(request: SocksRequest): void {
    if (request.command !== "connect") {
      // RFC 1928 section 6: X'07' "Command not supported"; SOCKS4 answers every failure with 91.
      const command = request.command === "unknown" ? `0x${request.commandCode.toString(16)}` : request.command.toUpperCase();
      this.#drop(encodeReply(request.version, Socks5Reply.COMMAND_NOT_SUPPORTED), `SOCKS${request.version} command ${command} is not supported (only CONNECT)`);
      return;
    }
    this.#connect(request);
  }

  /** Hand the request to onConnect; further bytes wait in the socket (and the kernel) until it is answered. */
  #connect(request: SocksRequest): void {
    this.#phase = "connecting";
    clearTimeout(this.#deadline);
    this.#socket.removeListener("data", this.#onData);
    this.#socket.pause();
    this.#options.onConnect(request, this.#client, this.#abort.signal).then(
      (outcome) => this.#finish(request, outcome),
      () => this.#finish(request, { ok: false, reply: Socks5Reply.GENERAL_FAILURE }),
    );
  }

  /** Answer the request: the failure reply and close, or success and the stream joined. */
  #finish(request: SocksRequest, outcome: ConnectOutcome): void {
    if (this.#phase !== "connecting" || this.#gone || this.#socket.destroyed) {
      if (outcome.ok) outcome.stream.destroy();
      return;
    }
    this.#done();
    if (!outcome.ok) {
      closeAfter(this.#socket, encodeReply(request.version, outcome.reply));
      return;
    }
    this.#socket.write(encodeReply(request.version, Socks5Reply.SUCCEEDED));
    const leftover = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    this.#options.onEstablished(this.#socket, outcome.stream, request, leftover);
    this.#socket.resume();
  }

  /** End the handshake for a protocol problem: report it, send `reply` if any, close. */
  #drop(reply: Buffer | undefined, reason: string): void {
    if (this.#phase === "done") return;
    this.#done();
    this.#options.onProtocolError(this.#client, reason);
    closeAfter(this.#socket, reply);
  }

  /**
   * Nothing more happens here: the socket lets go of this handshake, which
   * would otherwise stay reachable from its listeners (with its timer, abort
   * controller and buffer) for as long as the tunnel is open.
   */
  #done(): void {
    this.#phase = "done";
    clearTimeout(this.#deadline);
    this.#socket.removeListener("data", this.#onData);
    this.#socket.removeListener("end", this.#onEnd);
    this.#socket.removeListener("close", this.#onClose);
  }

  /**
   * allowHalfOpen (needed once piped) means a FIN alone does not close the
   * socket: a client that gives up mid-handshake must not wait for the
   * deadline. Once connecting, a FIN after a pipelined request is legal and
   * the request is kept.
   */
  readonly #onEnd = (): void => {
    if (this.#phase === "first" && this.#buffered.length === 0) {
      // Connect-and-close (a port probe, a health check) is not a SOCKS error.
      this.#done();
      closeAfter(this.#socket, undefined);
    } else if (this.#handshaking()) {
      this.#drop(undefined, "client closed the connection before sending a complete SOCKS request");
    }
  };

  /** The client is gone: stop the deadline and abort onConnect; `#finish` destroys a late stream. */
  readonly #onClose = (): void => {
    this.#gone = true;
    clearTimeout(this.#deadline);
    this.#abort.abort();
    if (this.#phase !== "connecting") this.#phase = "done";
  };
}

/**
 * Whether `offered` is `expected`, in time that does not depend on where they
 * differ: timingSafeEqual needs equal lengths, and comparing lengths first
 * would tell a prober the password's length, so both sides are hashed
 * (SHA-256) and the digests compared. Username and password are both always
 * checked, so the time does not tell which one was wrong.
 *
 * @example
 * credentialsMatch({ username: Buffer.from("alice"), password: Buffer.from("pw") }, credentials) // true or false
 */
export function credentialsMatch(offered: UserPass, expected: SocksCredentials): boolean {
  const userOk = timingSafeEqual(sha256(offered.username), sha256(expected.username));
  const passwordOk = timingSafeEqual(sha256(offered.password), sha256(expected.password));
  return userOk && passwordOk;
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

/** A readable reason for bytes that are not SOCKS at all (nor HTTP, where `httpToo` says the port speaks it). */
function describeForeignProtocol(bytes: Buffer, httpToo: boolean): string {
  const head = bytes.subarray(0, 8).toString("latin1");
  if (/^(CONNECT|GET|POST|HEAD|PUT|OPTIONS|DELETE) /.test(head) || /^[A-Z]{3,7}$/.test(head.trim())) {
    return "the client spoke HTTP, not SOCKS: configure it as a SOCKS v5 proxy (not an HTTP/HTTPS proxy)";
  }
  if (bytes[0] === 0x16) return `the client spoke TLS, not SOCKS: configure it as a SOCKS v5 proxy${httpToo ? " (or an http:// proxy, not https://)" : ""}`;
  return `not a SOCKS request (first byte 0x${bytes[0]!.toString(16).padStart(2, "0")})`;
}
