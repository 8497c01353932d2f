/**
 * A TunnelSession without SSH, for unit tests of the code that holds one
 * (the forwards, the run in tunnel.ts): it records the channels and -R
 * registrations asked of it, does for each what the test says, and goes down
 * when the test says so.
 */
import { PassThrough, type Duplex } from "node:stream";
import type { IncomingConnection, Origin, RemoteListen, TunnelSession } from "../../src/ssh/session.ts";
import { ChannelOpenError, type ChannelFailureKind } from "../../src/ssh/channel-failure.ts";

/** What `openDirect` does with one request: the channel, or the open's failure. */
export type OpenBehaviour = TunnelSession["openDirect"];
/** What `listenRemote` does with one request: the registration, or the server's refusal. */
export type ListenBehaviour = TunnelSession["listenRemote"];

/** One `openDirect` call, as the code under test made it. */
export interface OpenCall {
  host: string;
  port: number;
  origin: Origin;
}

export interface FakeSessionOptions {
  /**
   * What each `openDirect` does; it may also be replaced later through
   * `session.open`, for tests that get the session from a helper.
   *
   * @default a new PassThrough each time
   */
  open?: OpenBehaviour;
  /**
   * What each `listenRemote` does (see `grantListen`, `refuseListen`).
   *
   * @default a rejection: only -R forwards ask, so elsewhere a call is a bug
   */
  listen?: ListenBehaviour;
}

/**
 * Only `drop()` takes the session down, and it only flips `up` and tells the
 * `onDown` listeners: opens and listens still do what `open` and `listen`
 * say, so a test decides what a request on a dead connection gets.
 *
 * @example
 * const session = new FakeSession({ open: () => echoChannel() });
 * // ... a SOCKS client asks the forward for example.org:443 ...
 * assert.deepEqual(session.calls.map((c) => [c.host, c.port]), [["example.org", 443]]);
 *
 * @example
 * const session = new FakeSession({ listen: grantListen() });
 * const done = serveForwards(session, settings, [], run);
 * session.drop("Connection reset by peer"); // every onDown listener hears it
 * assert.equal(await done, 255);
 * assert.equal(session.closed, 1);
 */
export class FakeSession implements TunnelSession {
  up = true;
  open: OpenBehaviour;
  listen: ListenBehaviour;
  /** Every `openDirect` call, in order, whatever came of it. */
  readonly calls: OpenCall[] = [];
  /** The channels `openDirect` resolved with, in order. */
  readonly channels: Duplex[] = [];
  /** The -R registrations `listen` granted, as asked for (the requested port, 0 included). */
  readonly remote: { address: string; port: number }[] = [];
  /** How many times `close()` was called. */
  closed = 0;
  private readonly downListeners: ((reason: string) => void)[] = [];
  private downReason: string | undefined;

  constructor(options: FakeSessionOptions = {}) {
    this.open = options.open ?? (async () => new PassThrough());
    this.listen = options.listen ?? (() => Promise.reject(new Error("listenRemote was not expected here: give FakeSession a `listen` behaviour")));
  }

  async openDirect(host: string, port: number, origin: Origin): Promise<Duplex> {
    this.calls.push({ host, port, origin });
    const channel = await this.open(host, port, origin);
    this.channels.push(channel);
    return channel;
  }

  async listenRemote(address: string, port: number, onIncoming: (connection: IncomingConnection) => void): Promise<RemoteListen> {
    const registration = await this.listen(address, port, onIncoming);
    this.remote.push({ address, port });
    return registration;
  }

  /** As TunnelSession promises: a listener added after a drop hears of it at once. */
  onDown(listener: (reason: string) => void): void {
    this.downListeners.push(listener);
    if (this.downReason !== undefined) listener(this.downReason);
  }

  /** The connection goes down for `reason`: `up` turns false and every `onDown` listener is told. */
  drop(reason: string): void {
    this.up = false;
    this.downReason = reason;
    for (const listener of this.downListeners) listener(reason);
  }

  async close(): Promise<void> {
    this.closed++;
  }
}

/**
 * Channel opens that fail as the real session's do, with a ChannelOpenError
 * of `kind`.
 *
 * @example
 * session.open = failOpen("refused", "Connection refused"); // SOCKS5 reply 0x05
 */
export function failOpen(kind: ChannelFailureKind, description: string): OpenBehaviour {
  return () => Promise.reject(new ChannelOpenError(kind, description));
}

/**
 * -R registrations the server grants; asked for port 0, it binds `boundPort`
 * (RFC 4254 section 7.1), else the port asked for. Closing one does nothing.
 *
 * @example
 * new FakeSession({ listen: grantListen() }); // "-R 0:..." is allocated 40000
 */
export function grantListen(boundPort = 40000): ListenBehaviour {
  return async (_address, port) => ({ port: port === 0 ? boundPort : port, close: async () => {} });
}

/**
 * -R registrations the server refuses, failing with a plain Error of
 * `message` (ssh2's own is "Unable to bind to <address>:<port>").
 *
 * @example
 * new FakeSession({ listen: refuseListen("request failed") });
 */
export function refuseListen(message: string): ListenBehaviour {
  return () => Promise.reject(new Error(message));
}
