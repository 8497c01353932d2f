/**
 * The one SSH connection everything shares, seen from the forwarders: open a
 * `direct-tcpip` channel, know whether the connection is up, hear when it
 * goes down. Channel-open failures arrive classified (channel-failure.ts), so
 * callers map a small, closed set of kinds to their own protocol (SOCKS
 * replies, log lines) without parsing ssh2 error strings themselves.
 */
import type { Duplex } from "node:stream";
import type { Client } from "ssh2";
import { singleLine } from "../log.ts";
import { ChannelOpenError, classifyOpenFailure, openFailureText } from "./channel-failure.ts";
import { connectChain, type ConnectDeps } from "./connection.ts";
import { guardChannelOpens, type WarningLog } from "./unrequested-opens.ts";
import type { HopSettings } from "../config/settings.ts";

export interface Origin {
  address: string;
  port: number;
}

/** A connection the server accepted on a -R port, waiting for us to take it. */
export interface IncomingConnection {
  from: Origin;
  accept(): Duplex;
  reject(): void;
}

export interface RemoteListen {
  /** The port the server bound (it picks one when asked for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * What forwarders hold instead of an SSH connection. Listeners and -R
 * registrations belong to the run, not to one connection: today a session is
 * one connection and stays down once lost, but a reconnecting session keeps
 * this same shape (`up` false while it reconnects, opens failing with
 * "connection-down" meanwhile, `listenRemote` registrations requested again
 * on each new connection), so forwarders need not change for it.
 */
export interface TunnelSession {
  /** Whether channels can be opened now. */
  readonly up: boolean;
  /** Open a direct-tcpip channel; a name is resolved by the SSH server. */
  openDirect(host: string, port: number, origin: Origin): Promise<Duplex>;
  /**
   * Ask the server to listen (RFC 4254 section 7.1 tcpip-forward); each
   * connection arrives through `onIncoming` until the registration is closed.
   */
  listenRemote(address: string, port: number, onIncoming: (connection: IncomingConnection) => void): Promise<RemoteListen>;
  /**
   * Called each time the SSH connection goes down, with the reason (for this
   * session, which does not reconnect, that is once). A listener added after
   * that is called at once.
   */
  onDown(listener: (reason: string) => void): void;
  /** Disconnect politely; resolves once the connection is closed (or a bound passed). */
  close(): Promise<void>;
}

/**
 * Connect through `hops` (jump hosts first, destination last) and return the
 * session the forwards use.
 *
 * @example
 * const session = await connectSession([...jumps, destination], { prompt, log });
 */
export async function connectSession(hops: HopSettings[], deps: ConnectDeps): Promise<TunnelSession> {
  const chain = await connectChain(hops, deps);
  return sessionFromClient(chain.client, chain.close, deps.log);
}

/**
 * A TunnelSession over an authenticated ssh2 Client.
 *
 * Channels the server opens unasked (X11, agent, a forwarded-tcpip for a port
 * no -R asked for) are refused and reported to `log` in OpenSSH's words,
 * folded to one line per kind per 10 s (unrequested-opens.ts). connectChain
 * guards each connection with the run's log already; `log` replaces it.
 * @default log: the connection's (connectChain's), else nothing is written
 *
 * @example
 * const session = sessionFromClient(chain.client, chain.close, log);
 * const channel = await session.openDirect("example.org", 443, { address: "127.0.0.1", port: 50000 });
 */
export function sessionFromClient(client: Client, disconnect: () => Promise<void> = () => endClient(client), log?: WarningLog): TunnelSession {
  let up = true;
  let downReason = "SSH connection closed";
  const listeners: ((reason: string) => void)[] = [];
  const markDown = (): void => {
    if (!up) return;
    up = false;
    for (const listener of listeners) listener(downReason);
  };
  client.on("error", (err: Error) => {
    // Possibly the server's own words (a disconnect reason): one line, no control characters.
    downReason = singleLine(err.message);
  });
  // Down on "close" only: ssh2 fails pending channel opens right after it, and
  // those must still be answered (SOCKS 0x03) before anything is torn down.
  client.on("close", markDown);

  // forwarded-tcpip channels name the address and port the server bound.
  const remoteHandlers = new Map<number, (connection: IncomingConnection) => void>();
  const guard = guardChannelOpens(client, log === undefined ? {} : { log });
  guard.listening = (port) => remoteHandlers.has(port);
  client.on("tcp connection", (details, accept, rejectConnection) => {
    const handler = remoteHandlers.get(details.destPort);
    if (handler === undefined) {
      // A port ssh2 still forwards but we closed (or one it mapped from 0).
      rejectConnection();
      guard.refused({ kind: "forwarded-tcpip", listenAddress: details.destIP, listenPort: details.destPort, originator: details.srcIP, originatorPort: details.srcPort });
      return;
    }
    handler({ from: { address: details.srcIP, port: details.srcPort }, accept: () => accept(), reject: () => rejectConnection() });
  });

  return {
    get up() {
      return up;
    },
    openDirect(host, port, origin) {
      return new Promise((resolve, reject) => {
        if (!up) {
          reject(new ChannelOpenError("connection-down", `SSH connection is down (${downReason})`));
          return;
        }
        try {
          client.forwardOut(origin.address, origin.port, host, port, (err, channel) => {
            if (err) {
              const reason = (err as Error & { reason?: number }).reason;
              const description = openFailureText(err);
              const kind = up ? classifyOpenFailure(typeof reason === "number" ? reason : undefined, description) : "connection-down";
              reject(new ChannelOpenError(kind, description));
              return;
            }
            resolve(channel);
          });
        } catch (err) {
          // ssh2 throws synchronously when the socket is no longer writable.
          reject(new ChannelOpenError("connection-down", `SSH connection is down (${(err as Error).message})`));
        }
      });
    },
    listenRemote(address, port, onIncoming) {
      return new Promise((resolve, reject) => {
        if (!up) {
          reject(new ChannelOpenError("connection-down", `SSH connection is down (${downReason})`));
          return;
        }
        client.forwardIn(address, port, (err, boundPort) => {
          if (err) {
            reject(err);
            return;
          }
          const actual = port === 0 ? boundPort : port;
          remoteHandlers.set(actual, onIncoming);
          resolve({
            port: actual,
            // Forget the port; no cancel-tcpip-forward: this runs only when we
            // are leaving, the disconnect cancels it, and a server that stopped
            // answering must not keep us waiting for its reply.
            close: async () => {
              remoteHandlers.delete(actual);
            },
          });
        });
      });
    },
    onDown(listener) {
      if (up) listeners.push(listener);
      else queueMicrotask(() => listener(downReason));
    },
    close: disconnect,
  };
}

function endClient(client: Client): Promise<void> {
  return new Promise((resolve) => {
    client.once("close", () => resolve());
    client.end();
  });
}
