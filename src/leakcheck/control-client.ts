/**
 * leakcheck's side of the control connection (canary-service.ts has the
 * other): a SOCKS5 CONNECT to `control.safetunnel.invalid` port 1 through the
 * proxy under test, then one JSON object per line. Whatever answers
 * differently is not a safetunnel front end, and the message says what it was:
 * nothing listening, not SOCKS5, a SOCKS server that tried to resolve the
 * name (reply 0x04), or one that says success and sends nothing (OpenSSH's
 * `ssh -D` answers before it has connected).
 */
import { connect, type Socket } from "node:net";
import { Buffer } from "node:buffer";
import { TunnelError, errnoCode } from "../errors.ts";
import { hostPort } from "../address.ts";
import {
  AuthMethod,
  describeSocks5Reply,
  encodeSocks5ConnectName,
  encodeSocks5Greeting,
  parseSocks5MethodChoice,
  parseSocks5Reply,
  Socks5Reply,
} from "../socks/codec.ts";
import { CONTROL_NAME, CONTROL_PORT, type CanaryEvent } from "./canary-registry.ts";
import { asControlAnswer, encodeControlRequest, parseHello, type ControlAnswer, type ControlRequest, type Hello } from "./control-protocol.ts";

export interface ProxyAddress {
  host: string;
  port: number;
}

export interface ControlConnection {
  hello: Hello;
  /** Called for every event, in order, until close(). */
  onEvent(listener: (event: CanaryEvent) => void): void;
  /**
   * Sends a request and waits (at most `ms`) for the front end's answer;
   * undefined when none came (a front end from before the request existed
   * says nothing to it). Answers are not events: onEvent never sees them.
   */
  request(request: ControlRequest, ms: number): Promise<ControlAnswer | undefined>;
  /** Called once if the front end goes away (the tunnel stopped) before close(). */
  onLost(listener: () => void): void;
  close(): void;
}

/** How long each step may take before the proxy counts as not ours. */
const STEP_MS = 5000;

/**
 * @example
 * const control = await openControl({ host: "127.0.0.1", port: 9001 });
 * console.log(control.hello.url);
 */
export async function openControl(proxy: ProxyAddress, stepMs = STEP_MS): Promise<ControlConnection> {
  const where = hostPort(proxy.host, proxy.port);
  const socket = await connectTo(proxy, where, stepMs);
  const reader = new LineReader(socket);
  try {
    socket.write(Buffer.concat([encodeSocks5Greeting([AuthMethod.NO_AUTH]), encodeSocks5ConnectName(CONTROL_NAME, CONTROL_PORT)]));
    const choice = parseSocks5MethodChoice(await reader.bytes(2, stepMs, `${where} sent nothing after the SOCKS5 greeting`));
    if (choice.status !== "ok") throw notOurs(where, `it does not speak SOCKS5 (${choice.status === "invalid" ? choice.reason : "no answer"})`);
    if (choice.value.method === AuthMethod.NO_ACCEPTABLE) {
      // A tunnel started with --socks-auth answers 05 FF to a client that offers no login. Browsers cannot send one
      // for SOCKS (Firefox's settings have no field for it), so such a port is not one a browser can be checked on.
      throw new NotAFrontEnd(
        "foreign",
        `${where} requires a SOCKS5 username and password (a tunnel started with --socks-auth, or another proxy): browsers cannot log in to it, so there is nothing for leakcheck to check there`,
        "check a -D port without --socks-auth, the one your browser uses",
      );
    }
    if (choice.value.method !== AuthMethod.NO_AUTH) throw notOurs(where, `it asks for SOCKS5 authentication (method 0x${choice.value.method.toString(16).padStart(2, "0")})`);
    const reply = await reader.socks5Reply(stepMs, where);
    if (reply !== Socks5Reply.SUCCEEDED) {
      throw notOurs(where, `it tried to reach ${CONTROL_NAME} and answered ${describeSocks5Reply(reply)} (0x${reply.toString(16).padStart(2, "0")}): a SOCKS proxy, but not safetunnel's`);
    }
    const first = await reader.line(stepMs, `${where} accepted the control request but then sent nothing (ssh -D answers success before connecting): a SOCKS proxy, but not safetunnel's`);
    const hello = parseHello(first);
    if (hello === undefined) throw notOurs(where, "it answered the control request with something other than safetunnel's hello");
    return reader.control(hello);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * What answered at --proxy instead of a safetunnel front end. `found` is one
 * clause for the report; the message adds the fix. Exit status 2: could not test.
 */
export class NotAFrontEnd extends TunnelError {
  readonly kind: "absent" | "foreign";
  readonly found: string;
  constructor(kind: "absent" | "foreign", found: string, fix: string) {
    super("NO_FRONT_END", `${found}; ${fix}`, { exitCode: 2 });
    this.kind = kind;
    this.found = found;
  }
}

const USE_OUR_PORT = "give the port of a running 'safetunnel -D PORT user@host' with --proxy 127.0.0.1:PORT";

function notOurs(where: string, why: string): NotAFrontEnd {
  return new NotAFrontEnd("foreign", `${where} is not a safetunnel SOCKS port: ${why}`, USE_OUR_PORT);
}

function connectTo(proxy: ProxyAddress, where: string, stepMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: proxy.host, port: proxy.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NotAFrontEnd("absent", `no answer from ${where} within ${stepMs / 1000} s (a firewall dropping it?)`, USE_OUR_PORT));
    }, stepMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      const code = errnoCode(err);
      reject(
        code === "ECONNREFUSED"
          ? new NotAFrontEnd("absent", `nothing is listening on ${where}`, `start the tunnel first (safetunnel -D ${proxy.port} user@host) or give its port with --proxy`)
          : new NotAFrontEnd("absent", `cannot connect to ${where} (${err.message})`, "check --proxy"),
      );
    });
  });
}

/** Bytes, then lines, from the proxy, each wait bounded. */
class LineReader {
  #buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;
  #listeners: ((event: CanaryEvent) => void)[] = [];
  /** Events that came before anyone listened: kept, so none is lost while the probes start. */
  #pending: CanaryEvent[] = [];
  #lost: (() => void)[] = [];
  /**
   * One slot per request sent and not yet answered, oldest first: the front
   * end answers every request, in order, so a late answer to a request that
   * timed out is taken by its own slot, never by a later request's.
   */
  #awaiting: { settle: (answer: ControlAnswer | undefined) => void }[] = [];
  #streaming = false;
  #closed = false;
  readonly #socket: Socket;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      for (const slot of this.#awaiting.splice(0)) slot.settle(undefined);
      this.#notify();
      if (this.#streaming && !this.#closed) for (const listener of this.#lost) listener();
    });
    socket.on("error", () => {});
  }

  #notify(): void {
    this.#wake?.();
    if (this.#streaming) this.#drainEvents();
  }

  async #until(ready: () => boolean, ms: number, failure: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready()) {
      if (this.#ended || deadline - Date.now() <= 0) throw new NotAFrontEnd("foreign", failure, USE_OUR_PORT);
      const left = deadline - Date.now();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async bytes(n: number, ms: number, failure: string): Promise<Buffer> {
    await this.#until(() => this.#buffer.length >= n, ms, failure);
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  async socks5Reply(ms: number, where: string): Promise<number> {
    let reply: number | undefined;
    await this.#until(
      () => {
        const parsed = parseSocks5Reply(this.#buffer);
        if (parsed.status === "invalid") throw notOurs(where, `its reply is not SOCKS5 (${parsed.reason})`);
        if (parsed.status === "incomplete") return false;
        reply = parsed.value.reply;
        this.#buffer = this.#buffer.subarray(parsed.consumed);
        return true;
      },
      ms,
      `${where} closed or went quiet before answering the SOCKS5 request (ssh -D closes so when the far end refuses): a SOCKS proxy, but not safetunnel's`,
    );
    return reply!;
  }

  async line(ms: number, failure: string): Promise<string> {
    await this.#until(() => this.#buffer.includes(0x0a), ms, failure);
    const end = this.#buffer.indexOf(0x0a);
    const line = this.#buffer.subarray(0, end).toString("utf8");
    this.#buffer = this.#buffer.subarray(end + 1);
    return line;
  }

  #drainEvents(): void {
    for (let end = this.#buffer.indexOf(0x0a); end >= 0; end = this.#buffer.indexOf(0x0a)) {
      const line = this.#buffer.subarray(0, end).toString("utf8");
      this.#buffer = this.#buffer.subarray(end + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      const answer = asControlAnswer(value);
      if (answer !== undefined) {
        this.#awaiting.shift()?.settle(answer);
        continue;
      }
      const event = value as CanaryEvent;
      if (this.#listeners.length === 0) this.#pending.push(event);
      for (const listener of this.#listeners) listener(event);
    }
  }

  control(hello: Hello): ControlConnection {
    this.#streaming = true;
    queueMicrotask(() => this.#drainEvents());
    return {
      hello,
      onEvent: (listener) => {
        this.#listeners.push(listener);
        for (const event of this.#pending.splice(0)) listener(event);
      },
      request: (request, ms) =>
        new Promise((resolve) => {
          if (this.#ended || this.#closed) return resolve(undefined);
          // A timed-out request keeps its slot (settling again does nothing): its late answer lands there.
          const timer = setTimeout(() => resolve(undefined), ms);
          this.#awaiting.push({
            settle: (answer) => {
              clearTimeout(timer);
              resolve(answer);
            },
          });
          this.#socket.write(encodeControlRequest(request));
        }),
      onLost: (listener) => {
        // The front end may have gone before anyone listened (while the probes started).
        if (this.#ended && !this.#closed) queueMicrotask(listener);
        else this.#lost.push(listener);
      },
      close: () => {
        this.#closed = true;
        this.#socket.end();
        this.#socket.destroy();
      },
    };
  }
}
