/**
 * A byte-level SOCKS client for tests that must see exact replies (the
 * `socks` package and curl hide them), and the few request and reply bytes
 * those tests build.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { connect, isIPv4, isIPv6, type Socket } from "node:net";
import { within } from "./child.ts";
import { bounded } from "./wait.ts";

export interface RawClientOptions {
  /** Default "127.0.0.1". */
  host?: string;
  /** Keep our write side open after the server's FIN (default false, as net.connect). */
  allowHalfOpen?: boolean;
  /** Turn Nagle's algorithm off, so each write leaves at once (default false). */
  noDelay?: boolean;
  /** The bound on connecting and on every wait (default 10 s). */
  timeoutMs?: number;
}

/**
 * A loopback client socket that keeps what it receives. Reads are bounded and
 * fail naming what they waited for and the bytes received so far. Socket
 * errors (resets) never crash the test: they show as the stream ending.
 *
 * Two ways to read, which can be mixed: `read(n)` and `readToEnd()` consume
 * from a cursor (the next call starts where the last ended); `received` and
 * `bytes(n)` always see everything from the first byte on.
 *
 * @example
 * const client = await RawClient.connect(proxyPort);
 * client.write(Buffer.from([0x05, 0x01, 0x00]));
 * assert.equal((await client.read(2)).toString("hex"), "0500");
 * client.destroy();
 */
export class RawClient {
  readonly socket: Socket;
  /** The server sent FIN. */
  ended = false;
  /** The socket has closed (after FIN both ways, a reset, or destroy()). */
  closed = false;
  private all: Buffer = Buffer.alloc(0);
  private offset = 0;
  private readonly watchers = new Set<() => void>();
  private readonly timeoutMs: number;

  private constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    socket.on("data", (chunk: Buffer) => {
      this.all = Buffer.concat([this.all, chunk]);
      this.notify();
    });
    socket.on("end", () => {
      this.ended = true;
      this.notify();
    });
    socket.on("close", () => {
      this.closed = true;
      this.notify();
    });
    // Resets are part of what is tested; 'close' follows them.
    socket.on("error", () => {});
  }

  /**
   * Connect to host:port; rejects with the socket's own error (ECONNREFUSED...)
   * or after `timeoutMs`, leaving no socket behind.
   */
  static async connect(port: number, options: RawClientOptions = {}): Promise<RawClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const host = options.host ?? "127.0.0.1";
    const socket = connect({ port, host, allowHalfOpen: options.allowHalfOpen ?? false });
    const client = new RawClient(socket, timeoutMs);
    try {
      await bounded(once(socket, "connect"), `a connection to ${host}:${port}`, timeoutMs);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    if (options.noDelay === true) socket.setNoDelay(true);
    return client;
  }

  /** Every byte received so far, from the first. */
  get received(): Buffer {
    return this.all;
  }

  /** Our side's port, as the server sees it as the client's port. */
  get localPort(): number {
    return this.socket.localPort!;
  }

  /**
   * Send bytes; resolves once they are handed to the kernel, rejects on a
   * write error. Not awaiting it is fine: the rejection is then ignored.
   */
  write(bytes: Uint8Array | string): Promise<void> {
    const written = new Promise<void>((resolve, reject) => this.socket.write(bytes, (err) => (err ? reject(err) : resolve())));
    written.catch(() => {});
    return written;
  }

  /** Wait (bounded) until `predicate` holds; it is checked after every event. */
  async until(predicate: () => boolean, what: string): Promise<void> {
    let check = (): void => {};
    const met = new Promise<true>((resolve) => {
      check = () => {
        if (!predicate()) return;
        this.watchers.delete(check);
        resolve(true);
      };
      this.watchers.add(check);
      check();
    });
    if ((await within(met, this.timeoutMs)) === undefined) {
      this.watchers.delete(check);
      assert.fail(`timed out after ${this.timeoutMs} ms waiting for ${what}; received so far: ${this.all.toString("hex")}`);
    }
  }

  /** The next `n` unread bytes; fails if the stream ends first. */
  async read(n: number, what = `${n} bytes`): Promise<Buffer> {
    await this.until(() => this.unread().length >= n || this.ended || this.closed, what);
    const unread = this.unread();
    if (unread.length < n) assert.fail(`${what}: the stream ended after ${unread.length} of ${n} bytes: ${unread.toString("hex")}`);
    this.offset += n;
    return unread.subarray(0, n);
  }

  /** Every unread byte up to the server's FIN (or the close). */
  async readToEnd(what = "the end of the stream"): Promise<Buffer> {
    await this.serverClosed(what);
    const unread = this.unread();
    this.offset = this.all.length;
    return unread;
  }

  /** The unread bytes, without waiting. */
  peek(): Buffer {
    return this.unread();
  }

  /** Wait until at least `n` bytes have arrived in total; returns the first `n`. */
  async bytes(n: number, what: string): Promise<Buffer> {
    await this.until(() => this.all.length >= n, `${n} bytes: ${what}`);
    return this.all.subarray(0, n);
  }

  /** Wait until the server has closed its side (FIN) or the socket is gone. */
  serverClosed(what: string): Promise<void> {
    return this.until(() => this.ended || this.closed, `the server to close the socket: ${what}`);
  }

  /** Send FIN (shut down our write side). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private unread(): Buffer {
    return this.all.subarray(this.offset);
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

/** The SOCKS5 greeting offering only "no authentication" (RFC 1928 section 3). */
export const SOCKS5_GREETING: Buffer = Buffer.from([0x05, 0x01, 0x00]);

/**
 * A SOCKS5 reply with BND.ADDR 0.0.0.0:0, as safetunnel sends every reply
 * (RFC 1928 section 6).
 *
 * @example
 * socks5Reply(0x02).toString("hex"); // "05020001000000000000"
 */
export function socks5Reply(rep: number): Buffer {
  return Buffer.from([0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/**
 * A SOCKS5 request (VER CMD RSV ATYP DST.ADDR DST.PORT): an IPv4 literal goes
 * as ATYP 1, an IPv6 literal as ATYP 4, anything else as a name (ATYP 3).
 *
 * @example
 * socks5Request("localhost", 80).toString("hex"); // "05010003096c6f63616c686f73740050"
 */
export function socks5Request(host: string, port: number, command = 0x01): Buffer {
  let address: Buffer;
  if (isIPv4(host)) {
    address = Buffer.from([0x01, ...host.split(".").map(Number)]);
  } else if (isIPv6(host)) {
    address = Buffer.concat([Buffer.from([0x04]), ipv6Bytes(host)]);
  } else {
    address = Buffer.concat([Buffer.from([0x03, host.length]), Buffer.from(host, "latin1")]);
  }
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  return Buffer.concat([Buffer.from([0x05, command, 0x00]), address, portBytes]);
}

/** The 16 bytes of an IPv6 literal in its usual text forms ("::1", "2001:db8::1"). */
function ipv6Bytes(text: string): Buffer {
  const [head = "", tail = ""] = text.split("::");
  const groups = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = groups(tail);
  const all = text.includes("::") ? [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right] : left;
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

/**
 * Connect to a SOCKS5 proxy, greet it with "no authentication", assert it
 * chose that method (05 00), then send `request`: the client is ready for
 * the request's reply.
 *
 * @example
 * const client = await socks5Open(proxyPort, socks5Request("localhost", echo.port));
 * assert.deepEqual(await client.read(10), socks5Reply(0x00));
 */
export async function socks5Open(proxyPort: number, request: Uint8Array, options: RawClientOptions = {}): Promise<RawClient> {
  const client = await RawClient.connect(proxyPort, options);
  try {
    client.write(SOCKS5_GREETING);
    assert.equal((await client.read(2, "the SOCKS5 method choice")).toString("hex"), "0500");
    client.write(request);
  } catch (err) {
    client.destroy();
    throw err;
  }
  return client;
}
