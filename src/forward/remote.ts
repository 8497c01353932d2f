/**
 * -R [bind_address:]port:host:hostport: the SSH server listens on its side
 * (tcpip-forward, RFC 4254 section 7.1) and hands each connection back as a
 * forwarded-tcpip channel, which we join to a local connection to
 * host:hostport (resolved here, on the client side, as in OpenSSH).
 */
import { connect as netConnect } from "node:net";
import type { RemoteListen, TunnelSession } from "../ssh/session.ts";
import type { Logger } from "../log.ts";
import type { TrafficStats } from "./stats.ts";
import { joinStreams } from "./pipe.ts";
import { sendGateOf } from "../ssh/send-backlog.ts";
import { TunnelError, describeError } from "../errors.ts";

export interface RemoteForwardOptions {
  label: string;
  /** What the server should bind; null = OpenSSH's default "localhost". */
  bindAddress: string | null;
  port: number;
  target: { host: string; port: number };
  session: TunnelSession;
  log: Logger;
  stats: TrafficStats;
}

/** A -R forward the server has agreed to. */
export interface RunningRemoteForward {
  /** What the server was asked to bind ("localhost" by default, "*" for all interfaces), for messages. */
  address: string;
  /** The port the server bound (the one asked for, or the one it allocated for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * @example
 * await startRemoteForward({ label: "-R 9001:internalsite.org:80", bindAddress: null, port: 9001, target, session, log, stats });
 */
export async function startRemoteForward(options: RemoteForwardOptions): Promise<RunningRemoteForward> {
  const { session, log, stats, target, label } = options;
  // OpenSSH sends "localhost" for no address and "" for "*" (all interfaces; the server's GatewayPorts decides).
  const address = options.bindAddress === null ? "localhost" : options.bindAddress === "*" ? "" : options.bindAddress;
  let listen: RemoteListen;
  try {
    listen = await session.listenRemote(address, options.port, (incoming) => {
      // allowHalfOpen: the target's FIN must not stop data still flowing to it.
      const local = netConnect({ host: target.host, port: target.port, allowHalfOpen: true });
      local.once("connect", () => {
        local.setNoDelay(true);
        const channel = incoming.accept();
        log.debug(1, `${label}: connection from ${incoming.from.address}:${incoming.from.port} to ${target.host}:${target.port}`);
        joinStreams(local, channel, () => {}, { tally: stats, gate: sendGateOf(channel) });
      });
      local.once("error", (err) => {
        if (local.connecting) {
          stats.failures++;
          log.info(`${label}: connect to ${target.host} port ${target.port} failed: ${describeError(err)}.`, { event: "open-failed" });
          incoming.reject();
        }
      });
    });
  } catch (err) {
    throw new TunnelError(
      "FORWARD_FAILED",
      `${label}: the server refused to listen on ${address || "*"} port ${options.port} (${describeError(err)}); the port may be in use there, or sshd has AllowTcpForwarding/PermitListen set.`,
    );
  }
  return { address: address || "*", port: listen.port, close: () => listen.close() };
}
