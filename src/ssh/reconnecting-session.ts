/**
 * A TunnelSession that outlives one SSH connection: when the connection
 * drops, the forwards' listeners stay, new opens fail at once with
 * "connection-down" (SOCKS reply 0x03, -L clients closed; never a direct
 * connection, never a wait), and a new connection is made in the background
 * through the same hops with every host-key check as at the start
 * (connection.ts connectChain is stateless, so calling it again is a
 * reconnect). Once back, -R registrations are requested again and opens work.
 *
 * Backoff: 1 s doubling to at most 10 s, each wait scaled by a random factor
 * between 0.5 and 1 so that many clients of one server do not come back in
 * step. A failure that another try cannot fix (a changed or revoked host key)
 * ends the session through `onFatal`.
 *
 * This is the seam chisel's share/tunnel has: listeners bound to a session,
 * not to a connection.
 */
import type { Duplex } from "node:stream";
import { type TunnelError, describeError, isTunnelError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { ChannelOpenError } from "./channel-failure.ts";
import type { Chain } from "./connection.ts";
import { sessionFromClient, type IncomingConnection, type Origin, type RemoteListen, type TunnelSession } from "./session.ts";

export interface ReconnectOptions {
  /** Makes a new connection through the same hops (connectChain with the run's settings). */
  connect(): Promise<Chain>;
  log: Logger;
  /** The destination as the user named it, for messages. */
  alias: string;
  /** A failure that retrying cannot fix; the session is closed and the run should end. */
  onFatal(err: TunnelError): void;
  /** @default 1000 */
  firstDelayMs?: number;
  /** @default 10000 */
  maxDelayMs?: number;
  /** A number in [0, 1). @default Math.random */
  random?: () => number;
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
}

export interface ReconnectingSession extends TunnelSession {
  /** Times the connection was lost. */
  readonly outages: number;
  /** Milliseconds spent down, outages that ended included. */
  readonly downMs: number;
  /** Drop the connection now and make a new one at once (SIGHUP, as autossh users expect). */
  reconnectNow(): void;
}

/** Host-key failures: a new connection would meet the same key, and trusting it is exactly what must not happen. */
const FATAL_CODES = new Set(["HOST_KEY_CHANGED", "HOST_KEY_REVOKED", "HOST_KEY_UNKNOWN"]);

interface Registration {
  address: string;
  /** The port as asked for, then as bound (a server-chosen port is asked for again by its number). */
  port: number;
  onIncoming(connection: IncomingConnection): void;
  /** The current connection's registration, if it holds one. */
  current: RemoteListen | undefined;
  closed: boolean;
}

/**
 * @example
 * const session = reconnectingSession(await connectChain(hops, deps), { connect: () => connectChain(hops, deps), log, alias, onFatal });
 */
export function reconnectingSession(first: Chain, options: ReconnectOptions): ReconnectingSession {
  const { log, alias } = options;
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  const firstDelay = options.firstDelayMs ?? 1000;
  const maxDelay = options.maxDelayMs ?? 10_000;

  let current: TunnelSession | undefined;
  let chain: Chain | undefined;
  let closed = false;
  let outages = 0;
  let downSince: number | undefined;
  let downMs = 0;
  let lastReason = "";
  let wake: (() => void) | undefined;
  let forced = false;
  const downListeners: ((reason: string) => void)[] = [];
  const registrations = new Set<Registration>();

  const adopt = (next: Chain): void => {
    chain = next;
    // A SIGHUP that came while this connection was being made is answered by it.
    forced = false;
    const session = sessionFromClient(next.client, next.close);
    current = session;
    session.onDown((reason) => {
      if (current !== session) return;
      current = undefined;
      for (const registration of registrations) registration.current = undefined;
      if (closed) return;
      outages++;
      downSince = clock();
      lastReason = reason;
      for (const listener of downListeners) listener(reason);
      void reconnect();
    });
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });

  const reconnect = async (): Promise<void> => {
    let attempt = 0;
    let toldAuth = false;
    while (!closed) {
      const base = Math.min(firstDelay * 2 ** attempt, maxDelay);
      const wait = forced ? 0 : Math.round(base * (0.5 + random() / 2));
      forced = false;
      attempt++;
      if (wait > 0) await sleep(wait);
      if (closed) return;
      try {
        const next = await options.connect();
        if (closed) {
          await next.close();
          return;
        }
        adopt(next);
        const down = downSince === undefined ? 0 : clock() - downSince;
        downMs += down;
        downSince = undefined;
        log.info(`Reconnected to ${alias} after ${formatSeconds(down)} down; new connections go through again.`, { event: "reconnected", downMs: down });
        await requestRemoteAgain();
        return;
      } catch (err) {
        if (isTunnelError(err) && FATAL_CODES.has(err.code)) {
          closed = true;
          options.onFatal(err);
          return;
        }
        if (isTunnelError(err, "AUTH_FAILED") && !toldAuth) {
          toldAuth = true;
          log.warn(`Reconnecting to ${alias}: ${err.message} Still trying with the agent and keys that need no prompt.`);
        } else {
          log.debug(1, `Reconnecting to ${alias} failed (attempt ${attempt}): ${describeError(err)}`);
        }
      }
    }
  };

  const requestRemoteAgain = async (): Promise<void> => {
    const session = current;
    if (session === undefined) return;
    for (const registration of registrations) {
      if (registration.closed) continue;
      try {
        const listen = await session.listenRemote(registration.address, registration.port, registration.onIncoming);
        // Closed while we waited: let go of it at once.
        if (registration.closed) await listen.close();
        else registration.current = listen;
      } catch (err) {
        log.warn(`After reconnecting, the server refused to listen on ${registration.address || "*"} port ${registration.port} again (${describeError(err)}); that -R forward is down until the next reconnect.`);
      }
    }
  };

  adopt(first);

  return {
    get up() {
      return current?.up ?? false;
    },
    get outages() {
      return outages;
    },
    get downMs() {
      return downMs + (downSince === undefined ? 0 : clock() - downSince);
    },
    openDirect(host: string, port: number, origin: Origin): Promise<Duplex> {
      if (current === undefined || !current.up) {
        const why = closed ? "the tunnel is stopping" : `reconnecting to ${alias} (${lastReason})`;
        return Promise.reject(new ChannelOpenError("connection-down", `SSH connection is down: ${why}`));
      }
      return current.openDirect(host, port, origin);
    },
    async listenRemote(address, port, onIncoming) {
      if (current === undefined) throw new ChannelOpenError("connection-down", `SSH connection is down (reconnecting to ${alias})`);
      const listen = await current.listenRemote(address, port, onIncoming);
      const registration: Registration = { address, port: listen.port, onIncoming, current: listen, closed: false };
      registrations.add(registration);
      return {
        port: listen.port,
        close: async () => {
          registration.closed = true;
          registrations.delete(registration);
          await registration.current?.close();
        },
      };
    },
    onDown(listener) {
      downListeners.push(listener);
    },
    reconnectNow() {
      if (closed) return;
      forced = true;
      if (current !== undefined) {
        log.info(`Reconnecting to ${alias} now, as asked (SIGHUP).`, { event: "reconnect-requested" });
        void chain?.close();
      } else {
        wake?.();
      }
    },
    async close() {
      closed = true;
      wake?.();
      const session = current;
      current = undefined;
      await session?.close();
    },
  };
}

function formatSeconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}


