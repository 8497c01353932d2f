/**
 * The HTTP side of a -D port: one connection's request head read, bounded
 * and answered, as the SOCKS handshake (socks/server.ts) does for SOCKS, to
 * which it hands over when the first byte is an upper-case letter.
 *
 * - `CONNECT host:port` asks `onConnect` exactly as a SOCKS CONNECT does and
 *   answers `200 Connection established`, or 403 (refused here), 502 (the far
 *   end could not connect), 503 (no SSH connection) or 504, with a body that
 *   says why.
 * - `GET http://host/path` (absolute form) does the same, then sends the
 *   request on with its head rewritten (codec.ts `forwardedHead`); the
 *   response comes back untouched and the connection ends with it.
 * - `GET /` and `GET /proxy.pac` are the proxy's own pages (`pages`).
 *
 * Like the SOCKS side, this knows nothing of SSH, and a bad client costs
 * one connection: bounded head, a deadline, garbage answered with 400.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { requestBodyOnly } from "./request-body.ts";
import { Buffer } from "node:buffer";
import {
  CONNECT_ESTABLISHED,
  encodeResponse,
  fieldValue,
  forwardedHead,
  framingProblem,
  requestBodyLength,
  parseBasicCredentials,
  parseRequestHead,
  requestTarget,
  MAX_HEAD_BYTES,
  type HttpProxyRequest,
  type ProxyStatus,
  type RequestHead,
} from "./codec.ts";
import { credentialsMatch, type ConnectOutcome, type SocksClient, type SocksCredentials } from "../socks/server.ts";
import { describeSocks5Reply, Socks5Reply } from "../socks/codec.ts";
import { closeAfter, ignoreError } from "../close-after.ts";
import { parseIPv4, parseIPv6, unbracket } from "../address.ts";

/** A page the proxy serves about itself. */
export interface ProxyPage {
  type: string;
  body: string;
}

export interface HttpProxyOptions<S extends Duplex = Socket> {
  /** Close connections that have not sent a whole request head by then. */
  handshakeTimeoutMs: number;
  /**
   * The port's --socks-auth credentials, asked of HTTP clients as Basic
   * Proxy-Authorization (RFC 9110 section 11.7.1, RFC 7617); 407 without
   * them. The pages need none. @default none
   */
  credentials?: SocksCredentials;
  /** As the SOCKS side's: the reply waits for it. */
  onConnect(request: HttpProxyRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome>;
  /** `initial` goes to the stream first: the client's early bytes, or a forwarded request head and its body so far. */
  /**
   * Joins the client to the channel: `client`, when given, is the side to
   * join instead of the socket itself (a plain-http request's body and
   * nothing after it, request-body.ts).
   */
  onEstablished(socket: S, stream: Duplex, request: HttpProxyRequest, initial: Buffer, client?: Duplex): void;
  onProtocolError(client: SocksClient, reason: string): void;
  /**
   * The proxy's own pages, by path (without the query), for the address the
   * client reached; undefined for 404.
   */
  pages(path: string, client: SocksClient): ProxyPage | undefined;
}

/**
 * Continue a connection the SOCKS handshake handed over, with the bytes it had read.
 *
 * @example
 * serveSocksSocket(socket, { ...socksOptions, onHttp: (s, client, bytes) => serveHttpProxy(s, client, bytes, httpOptions) });
 */
export function serveHttpProxy<S extends Duplex>(socket: S, client: SocksClient, buffered: Buffer, options: HttpProxyOptions<S>): void {
  new HttpProxyHandshake(socket, client, buffered, options);
}

type Phase = "head" | "connecting" | "done";

const TEXT = "text/plain; charset=utf-8";

class HttpProxyHandshake<S extends Duplex> {
  readonly #socket: S;
  readonly #client: SocksClient;
  readonly #options: HttpProxyOptions<S>;
  readonly #abort = new AbortController();
  readonly #deadline: ReturnType<typeof setTimeout>;
  #phase: Phase = "head";
  #gone = false;
  /** A forwarded request's body bytes still to come from the client. */
  #bodyLeft = 0;
  #buffered: Buffer;

  constructor(socket: S, client: SocksClient, buffered: Buffer, options: HttpProxyOptions<S>) {
    this.#socket = socket;
    this.#client = client;
    this.#options = options;
    this.#buffered = buffered;
    const seconds = Math.max(1, Math.round(options.handshakeTimeoutMs / 1000));
    this.#deadline = setTimeout(() => this.#refuse(408, `no complete HTTP request within ${seconds} s`, true), options.handshakeTimeoutMs);
    this.#deadline.unref?.();
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onClose);
    socket.on("error", ignoreError);
    this.#readHead();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#buffered = Buffer.concat([this.#buffered, chunk]);
    this.#readHead();
  };

  #readHead(): void {
    if (this.#phase !== "head") return;
    const parsed = parseRequestHead(this.#buffered);
    if (parsed.status === "incomplete") return;
    if (parsed.status === "invalid") {
      this.#refuse(parsed.code, parsed.reason, true);
      return;
    }
    this.#buffered = this.#buffered.subarray(parsed.consumed);
    this.#request(parsed.value);
  }

  #request(head: RequestHead): void {
    const parsed = requestTarget(head);
    if (!parsed.ok) {
      this.#refuse(parsed.code, parsed.reason, true);
      return;
    }
    const { target } = parsed;
    if (target.form === "origin") {
      this.#page(head, target.path);
      return;
    }
    let body = 0;
    if (target.form === "absolute") {
      const problem = framingProblem(head.fields, head.version);
      if (problem !== undefined) {
        this.#refuse(400, `request body framing refused: ${problem}`, true);
        return;
      }
      const length = requestBodyLength(head.fields);
      if (!length.ok) {
        this.#refuse(length.code, length.reason, false);
        return;
      }
      body = length.length;
    }
    if (!this.#authorized(head)) return;
    const request: HttpProxyRequest = { version: "http", command: "connect", form: target.form, method: head.method, destination: target.destination };
    let initial = this.#buffered;
    if (target.form === "absolute") {
      // The head rewritten, then as much of the body as came with it; anything after the body is the next request.
      const sent = this.#buffered.subarray(0, body);
      this.#bodyLeft = body - sent.length;
      initial = Buffer.concat([Buffer.from(forwardedHead(head, target.path, target.authority), "latin1"), sent]);
    }
    this.#buffered = Buffer.alloc(0);
    this.#connect(request, initial);
  }

  /**
   * With credentials set, a request must carry them. A browser's first try
   * carries none and repeats with them after the 407: that is not a client
   * error, a wrong password is.
   */
  #authorized(head: RequestHead): boolean {
    const expected = this.#options.credentials;
    if (expected === undefined) return true;
    const value = fieldValue(head.fields, "proxy-authorization");
    const offered = value === undefined ? undefined : parseBasicCredentials(value);
    if (offered !== undefined && credentialsMatch(offered, expected)) return true;
    const challenge: [string, string][] = [["Proxy-Authenticate", 'Basic realm="safetunnel", charset="UTF-8"']];
    const reason =
      value === undefined
        ? "this proxy needs a user name and password (--socks-auth): give the client the ones set there"
        : "wrong proxy user name or password (HTTP Basic): give the client the ones set with --socks-auth";
    this.#respond(encodeResponse(407, TEXT, `${reason}\n`, challenge));
    if (value !== undefined) this.#options.onProtocolError(this.#client, reason);
    return false;
  }

  /**
   * The proxy's own pages, for GET and HEAD, to a Host that is an address or
   * localhost: a page elsewhere reaching this port through a name of its own
   * (DNS rebinding) gets nothing to read.
   */
  #page(head: RequestHead, target: string): void {
    const method = head.method;
    if (method !== "GET" && method !== "HEAD") {
      this.#respond(encodeResponse(405, TEXT, `this is a proxy: its own pages answer GET only\n`, [["Allow", "GET, HEAD"]]));
      return;
    }
    const host = hostOfHostField(fieldValue(head.fields, "host"));
    if (host !== undefined && !isAddressOrLocalhost(host)) {
      this.#respond(encodeResponse(403, TEXT, `this is a proxy, reached as "${host}": ask for its pages by address (http://127.0.0.1:PORT/)\n`, [], method === "HEAD"));
      return;
    }
    const path = target.replace(/[?#].*$/, "");
    const page = this.#options.pages(path, this.#client);
    this.#respond(page === undefined ? encodeResponse(404, TEXT, `no such page on this proxy: try / or /proxy.pac\n`, [], method === "HEAD") : encodeResponse(200, page.type, page.body, [], method === "HEAD"));
  }

  #connect(request: HttpProxyRequest, initial: Buffer): void {
    this.#phase = "connecting";
    clearTimeout(this.#deadline);
    this.#socket.removeListener("data", this.#onData);
    this.#socket.pause();
    this.#options.onConnect(request, this.#client, this.#abort.signal).then(
      (outcome) => this.#finish(request, initial, outcome),
      () => this.#finish(request, initial, { ok: false, reply: Socks5Reply.GENERAL_FAILURE }),
    );
  }

  #finish(request: HttpProxyRequest, initial: Buffer, outcome: ConnectOutcome): void {
    if (this.#phase !== "connecting" || this.#gone || this.#socket.destroyed) {
      if (outcome.ok) outcome.stream.destroy();
      return;
    }
    if (!outcome.ok) {
      const status = statusFor(outcome);
      this.#respond(encodeResponse(status, TEXT, `${outcome.explanation ?? describeSocks5Reply(outcome.reply)}\n`, [], request.method === "HEAD"));
      return;
    }
    this.#done();
    if (request.form === "connect") this.#socket.write(CONNECT_ESTABLISHED);
    const client = request.form === "absolute" ? requestBodyOnly(this.#socket, this.#bodyLeft) : undefined;
    this.#options.onEstablished(this.#socket, outcome.stream, request, initial, client);
    this.#socket.resume();
  }

  /** Answer with an error status and close; `protocolError` reports it as a client that spoke badly. */
  #refuse(status: ProxyStatus, reason: string, protocolError: boolean): void {
    if (this.#phase === "done") return;
    if (protocolError) this.#options.onProtocolError(this.#client, `HTTP ${status}: ${reason}`);
    this.#respond(encodeResponse(status, TEXT, `${reason}\n`));
  }

  #respond(response: Buffer): void {
    if (this.#phase === "done") return;
    this.#done();
    closeAfter(this.#socket, response);
  }

  #done(): void {
    this.#phase = "done";
    clearTimeout(this.#deadline);
    this.#socket.removeListener("data", this.#onData);
    this.#socket.removeListener("end", this.#onEnd);
    this.#socket.removeListener("close", this.#onClose);
  }

  /** A client that half-closes before its head is whole will never finish it. */
  readonly #onEnd = (): void => {
    if (this.#phase !== "head") return;
    if (this.#buffered.length > MAX_HEAD_BYTES) return;
    this.#refuse(400, "client closed the connection before sending a complete HTTP request", true);
  };

  readonly #onClose = (): void => {
    this.#gone = true;
    clearTimeout(this.#deadline);
    this.#abort.abort();
    if (this.#phase !== "connecting") this.#phase = "done";
  };
}

/**
 * The status for a failed CONNECT: refused here is 403 (RFC 9110 section
 * 15.5.4), no SSH connection 503, the far end's TTL 504, any other failure
 * to reach the destination 502 (RFC 9110 section 15.6.3).
 */
function statusFor(outcome: { reply: number; unavailable?: boolean }): ProxyStatus {
  if (outcome.reply === Socks5Reply.NOT_ALLOWED) return 403;
  if (outcome.unavailable === true) return 503;
  if (outcome.reply === Socks5Reply.TTL_EXPIRED) return 504;
  return 502;
}

/** The host of a Host field ("127.0.0.1:9001", "[::1]:9001", "localhost"). */
function hostOfHostField(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1) || value;
  const colon = value.lastIndexOf(":");
  return colon < 0 ? value : value.slice(0, colon);
}

function isAddressOrLocalhost(host: string): boolean {
  const inner = unbracket(host);
  return inner.toLowerCase() === "localhost" || parseIPv4(inner) !== null || parseIPv6(inner) !== null;
}
