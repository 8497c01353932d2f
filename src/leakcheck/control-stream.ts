/**
 * The -D front end's end of a leak-check control connection (the messages are
 * control-protocol.ts's): the hello, then this session's CanaryEvents as JSON
 * lines, and an answer to each request leakcheck sends. The session's
 * canaries are forgotten when the connection closes.
 *
 * Bounded both ways: a client that stops reading is dropped once a buffer's
 * worth of lines waits for it, and a request line longer than
 * MAX_REQUEST_BYTES ends the connection, so neither can grow this process's
 * memory.
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { VERSION } from "../version.ts";
import { hostPort } from "../address.ts";
import type { CanaryRegistry, CanarySession } from "./canary-registry.ts";
import { MAX_REQUEST_BYTES, parseControlRequest, type ControlAnswer, type Hello } from "./control-protocol.ts";
import { canonicalAddress, isOneOf } from "../platform/interface-addresses.ts";

export interface ControlStreamOptions {
  /** The local account that opened it, when known: its session hears that account's refusals only. */
  uid?: number;
  /** This machine's addresses outside loopback (interface-addresses.ts networkAddresses), read when a request needs them. */
  networkAddresses: () => readonly string[];
}

/**
 * A new control session as a stream for the SOCKS server to splice to the
 * client; undefined when the registry has no room for another.
 *
 * @example
 * const stream = controlStream(registry, { uid: 1000, networkAddresses });
 */
export function controlStream(registry: CanaryRegistry, options: ControlStreamOptions): Duplex | undefined {
  let session: CanarySession | undefined;
  let pending = Buffer.alloc(0);
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      pending = Buffer.concat([pending, chunk]);
      const tooLong = (): void => callback(new Error(`control request longer than ${MAX_REQUEST_BYTES} bytes`));
      for (let end = pending.indexOf(0x0a); end >= 0; end = pending.indexOf(0x0a)) {
        // However the bytes were split: a long line ends the connection whether its newline came with it or not.
        if (end > MAX_REQUEST_BYTES) return tooLong();
        const line = pending.subarray(0, end).toString("utf8");
        pending = pending.subarray(end + 1);
        if (session !== undefined && line.trim() !== "") send(answer(line, session, options));
      }
      if (pending.length > MAX_REQUEST_BYTES) return tooLong();
      callback();
    },
    final(callback) {
      session?.close();
      stream.push(null);
      callback();
    },
    destroy(err, callback) {
      session?.close();
      callback(err);
    },
  });
  const send = (value: unknown): void => {
    if (!stream.destroyed && !stream.push(`${JSON.stringify(value)}\n`)) stream.destroy();
  };
  session = registry.open(send, options.uid);
  if (session === undefined) return undefined;
  const hello: Hello = { event: "hello", version: VERSION, canary: session.canary, stun: session.stun, url: `http://${session.canary}/` };
  send(hello);
  return stream;
}

/** The answer to one request line. */
function answer(line: string, session: CanarySession, options: ControlStreamOptions): ControlAnswer {
  const request = parseControlRequest(line);
  if ("error" in request) return { event: "request-refused", request: request.request ?? "", reason: request.error };
  if (request.request === "verdict") {
    session.verdict = { verdict: request.verdict, summary: request.summary };
    return { event: "verdict" };
  }
  const address = canonicalAddress(request.address);
  const addresses = options.networkAddresses();
  if (address === undefined || !isOneOf(address, addresses)) {
    const known = addresses.length === 0 ? "it has none besides loopback" : `it has ${addresses.join(", ")}`;
    return { event: "request-refused", request: request.request, reason: `${hostPort(request.address, request.port)} is not an address of this machine's network interfaces (${known}): the canary page sends nothing to another machine` };
  }
  session.udpStun = { address, port: request.port };
  return { event: "stun-udp", address, port: request.port };
}
