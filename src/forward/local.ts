/**
 * -L [bind_address:]port:host:hostport: every connection to the local port
 * becomes a direct-tcpip channel to host:hostport, named as given so the SSH
 * server resolves it: ssh(1) -L, "localhost" in the target is the server itself.
 * The channel is opened when a client connects, not at set-up (as OpenSSH).
 */
import type { Socket } from "node:net";
import type { TunnelSession } from "../ssh/session.ts";
import { describeOpenFailure } from "../ssh/channel-failure.ts";
import type { Logger } from "../log.ts";
import type { TrafficStats } from "./stats.ts";
import { joinStreams } from "./pipe.ts";
import { sendGateOf } from "../ssh/send-backlog.ts";
import { listenAll, type Listener } from "./listen.ts";
import type { AccessGate } from "./access-gate.ts";
import type { ConnectionLimit } from "./connection-limit.ts";

export interface LocalForwardOptions {
  label: string;
  hosts: string[];
  port: number;
  target: { host: string; port: number };
  session: TunnelSession;
  log: Logger;
  stats: TrafficStats;
  /** Who may connect (another local account is refused). @default everyone */
  access?: AccessGate;
  /** The run's cap on local connections (shared by every -D and -L). @default none */
  limit?: ConnectionLimit;
}

/**
 * @example
 * await startLocalForward({ label: "-L 9001:wikileaks.org:80", hosts: ["127.0.0.1"], port: 9001, target: { host: "wikileaks.org", port: 80 }, session, log, stats });
 */
export function startLocalForward(options: LocalForwardOptions): Promise<Listener> {
  const { session, log, stats, target, label } = options;
  const { limit } = options;
  const onConnection = (socket: Socket): void => {
    if (limit !== undefined) {
      if (!limit.admit(socket)) return;
      socket.once("close", () => limit.release(socket));
    }
    // Hold the client's first bytes in the socket until the channel exists.
    socket.pause();
    socket.on("error", () => {});
    const origin = { address: socket.remoteAddress ?? "127.0.0.1", port: socket.remotePort ?? 0 };
    const client = { ...origin, localAddress: socket.localAddress ?? "", localPort: socket.localPort ?? 0 };
    const admitted = options.access === undefined ? Promise.resolve(true) : options.access.admit(client, label, true);
    void admitted.then((ok) => {
      if (!ok) {
        socket.destroy();
        return;
      }
      connect(socket, origin);
    });
  };
  const connect = (socket: Socket, origin: { address: string; port: number }): void => {
    session.openDirect(target.host, target.port, origin).then(
      (channel) => {
        if (socket.destroyed) {
          channel.destroy();
          return;
        }
        limit?.established(socket);
        log.debug(1, `${label}: connection from ${origin.address}:${origin.port} to ${target.host}:${target.port}`);
        joinStreams(socket, channel, () => {}, { tally: stats, gate: sendGateOf(channel) });
      },
      (err: unknown) => {
        stats.failures++;
        // OpenSSH: "channel 2: open failed: connect failed: Connection refused".
        log.info(`${label}: connect to ${target.host} port ${target.port} failed: ${describeOpenFailure(err)}.`, { event: "open-failed" });
        socket.destroy();
      },
    );
  };
  return listenAll(options.hosts, options.port, label, onConnection, log);
}
