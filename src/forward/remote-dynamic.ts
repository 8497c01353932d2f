/**
 * -R [bind_address:]port alone: remote dynamic forwarding (ssh(1) -R, OpenSSH
 * 7.6 and later). The SSH server listens on its side (tcpip-forward, RFC 4254
 * section 7.1) and hands each connection back as a forwarded-tcpip channel
 * (section 7.2); we speak SOCKS 4, 4a and 5 on that channel, as -D does on a
 * socket, and connect from this machine to what it asks for. Names are
 * resolved here (getaddrinfo through node:net), as OpenSSH's client does.
 *
 * One request reads straight through, like -D's: socks/server.ts runs the
 * handshake on the channel, socks/policy.ts decides (names yes, IP addresses
 * only inside --allow-ip: an app on the far side that sent one resolved the
 * name there, which is the leak we refuse), node:net connects, the reply goes
 * back, pipe.ts joins the two.
 */
import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { serveSocksStream, type ConnectOutcome, type SocksClient, type SocksCredentials, type SocksHandshakeOptions } from "../socks/server.ts";
import { formatReplyCode, Socks5Reply, type Socks5ReplyCode, type SocksRequest } from "../socks/codec.ts";
import { decideDestination, isInvalidName } from "../socks/policy.ts";
import type { Cidr } from "../cidr.ts";
import type { RemoteListen, TunnelSession } from "../ssh/session.ts";
import type { Logger } from "../log.ts";
import type { TrafficStats } from "./stats.ts";
import { joinStreams } from "./pipe.ts";
import { sendGateOf } from "../ssh/send-backlog.ts";
import { droppedClientLine, farSideRefusalLine, RefusalLog } from "./refusal-log.ts";
import type { RunningRemoteForward } from "./remote.ts";
import { hostPort, unbracket } from "../address.ts";
import { TunnelError, describeError, errnoCode } from "../errors.ts";

export interface RemoteDynamicForwardOptions {
  /** "-R 1080", for messages. */
  label: string;
  /** What the server should bind; null = OpenSSH's default "localhost". */
  bindAddress: string | null;
  port: number;
  session: TunnelSession;
  /** --allow-ip networks: IP-address destinations let through. */
  allowIp: readonly Cidr[];
  log: Logger;
  stats: TrafficStats;
  /** @default 30000 */
  handshakeTimeoutMs?: number;
  /** Milliseconds now, for the refusal window. @default Date.now */
  clock?: () => number;
  /** --socks-auth: the username and password every SOCKS5 client on the far side must send (RFC 1929). @default none */
  credentials?: SocksCredentials;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

/** How long a connect from here may take before the far-side client is told the host did not answer (serve uses the same). */
const CONNECT_TIMEOUT_MS = 20_000;

/**
 * The SOCKS reply for a failed connect from here, by errno: the same split
 * the -D side makes of sshd's failure texts (forward/dynamic.ts
 * REPLY_FOR_FAILURE), so a far-side client learns the same thing.
 *
 * @example
 * replyForConnectError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" })); // 0x05
 */
export function replyForConnectError(err: unknown): Socks5ReplyCode {
  switch (errnoCode(err)) {
    case "ECONNREFUSED":
      return Socks5Reply.CONNECTION_REFUSED;
    // getaddrinfo found nothing (ENOTFOUND) or could not ask (EAI_AGAIN), or the host did not answer.
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
    case "ETIMEDOUT":
      return Socks5Reply.HOST_UNREACHABLE;
    case "ENETUNREACH":
      return Socks5Reply.NETWORK_UNREACHABLE;
    default:
      return Socks5Reply.GENERAL_FAILURE;
  }
}

/**
 * Asks the server to listen and serves SOCKS on every connection it hands
 * back. Fails with FORWARD_FAILED when the server refuses the port.
 *
 * @example
 * const forward = await startRemoteDynamicForward({ label: "-R 1080", bindAddress: null, port: 1080, session, allowIp: [], log, stats });
 * forward.port; // 1080: on the server, `curl --socks5-hostname localhost:1080 http://example.org/`
 */
export async function startRemoteDynamicForward(options: RemoteDynamicForwardOptions): Promise<RunningRemoteForward> {
  const { session, log, stats, label } = options;
  // As remote.ts and OpenSSH: "localhost" for no address, "" for "*" (the server's GatewayPorts decides).
  const address = options.bindAddress === null ? "localhost" : options.bindAddress === "*" ? "" : options.bindAddress;
  let boundPort = options.port;
  const refusals = new RefusalLog({
    log,
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    // No program names: the client is on the server's side, out of reach of our /proc.
    line: (request, client) => farSideRefusalLine(request, client, label),
    droppedLine: (client, reason) => droppedClientLine(label, client, reason, undefined, true),
  });
  // Channels and sockets of this forward, destroyed when it closes.
  const live = new Set<Duplex>();
  const track = (stream: Duplex): void => {
    live.add(stream);
    stream.once("close", () => live.delete(stream));
  };

  const failed = (request: SocksRequest, target: string, why: string, reply: Socks5ReplyCode, code: string | null): ConnectOutcome => {
    stats.failures++;
    log.info(`${label}: connect to ${target} failed: ${why} (SOCKS${request.version} reply ${formatReplyCode(request.version, reply)}).`, {
      event: "open-failed",
      destination: target,
      code,
    });
    return { ok: false, reply };
  };

  const onConnect = async (request: SocksRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome> => {
    const { destination } = request;
    const target = hostPort(destination.host, destination.port);
    // RFC 6761 section 6.4: no resolver answers a .invalid name, so none is asked.
    if (destination.kind === "name" && isInvalidName(destination.host)) {
      return failed(request, target, "names under .invalid never resolve (RFC 6761), so it was not looked up", Socks5Reply.HOST_UNREACHABLE, null);
    }
    const decision = decideDestination(destination, options.allowIp);
    if (!decision.allow) {
      stats.refusals++;
      await refusals.report(request, client);
      return { ok: false, reply: Socks5Reply.NOT_ALLOWED };
    }
    if (decision.viaAllowList) {
      log.info(`Allowing IP destination ${target} for ${client.address}:${client.port} (${label}): it is inside --allow-ip ${decision.matched?.text}.`, {
        event: "allowed-ip",
        destination: target,
      });
    }
    let socket: Socket;
    try {
      socket = await connectHere(unbracket(destination.host), destination.port, signal, track);
    } catch (err) {
      // The client went away: nobody reads a reply, and nothing failed.
      if (signal.aborted) return { ok: false, reply: Socks5Reply.GENERAL_FAILURE };
      return failed(request, target, describeConnectError(err), replyForConnectError(err), errnoCode(err) ?? null);
    }
    log.debug(1, `${label}: SOCKS${request.version} CONNECT ${target} from ${client.address}:${client.port} on the far side`);
    return { ok: true, stream: socket };
  };

  const onEstablished = (channel: Duplex, socket: Duplex, request: SocksRequest, leftover: Uint8Array): void => {
    // pipe.ts counts "up" as what enters the tunnel from this machine, as for
    // -R with a target: here that is the destination's answer. The client's
    // bytes after its request go back in front of the channel's stream, so
    // they reach the destination in order and are counted with the rest.
    if (leftover.length > 0) channel.unshift(leftover);
    joinStreams(socket, channel, (result) => {
      if (log.debugEnabled(1)) {
        log.debug(1, `${label}: closed ${hostPort(request.destination.host, request.destination.port)}: ${result.bytesDown} bytes sent to it, ${result.bytesUp} received${result.error ? ` (${result.error.message})` : ""}`);
      }
    }, { tally: stats, gate: sendGateOf(channel) });
  };

  const handshake: SocksHandshakeOptions<Duplex> = {
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    onConnect,
    onEstablished,
    onProtocolError: (client, reason) => {
      stats.protocolErrors++;
      // Folded per originator address and 10 s, as refusals: whoever is on the
      // far side must not be able to fill our log.
      void refusals.dropped(client, reason);
    },
  };

  let listen: RemoteListen;
  try {
    listen = await session.listenRemote(address, options.port, (incoming) => {
      const channel = incoming.accept();
      track(channel);
      // The originator the server names (RFC 4254 section 7.2), and the port as it was asked for.
      const client: SocksClient = { address: incoming.from.address, port: incoming.from.port, localAddress: address, localPort: boundPort };
      serveSocksStream(channel, client, handshake);
    });
  } catch (err) {
    throw new TunnelError(
      "FORWARD_FAILED",
      `${label}: the server refused to listen on ${address || "*"} port ${options.port} (${describeError(err)}); the port may be in use there, or sshd has AllowTcpForwarding/PermitListen set.`,
    );
  }
  boundPort = listen.port;
  return {
    address: address || "*",
    port: listen.port,
    close: async () => {
      await listen.close();
      // pipe.ts closes the other side of each.
      for (const stream of live) stream.destroy();
    },
  };
}

/**
 * A TCP connection from this machine; a name is resolved here (node:net uses
 * getaddrinfo, trying each address it returns). Rejects with the socket's
 * error, or when `signal` aborts (the SOCKS client left first).
 */
function connectHere(host: string, port: number, signal: AbortSignal, track: (socket: Socket) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: the destination's FIN must not stop data still flowing to it.
    const socket = netConnect({ host, port, allowHalfOpen: true });
    track(socket);
    // A SYN to a silent host is retried for about two minutes; the far-side client should hear sooner (0x04, as an unanswered host).
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connect to ${hostPort(host, port)} timed out`), { code: "ETIMEDOUT" })), CONNECT_TIMEOUT_MS);
    timer.unref?.();
    socket.once("close", () => clearTimeout(timer));
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error("the SOCKS client went away"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    // Stays on: until pipe.ts listens, an error must not be thrown as unhandled.
    socket.on("error", (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(err);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Node reports a name whose every address failed as an AggregateError with no message of its own. */
function describeConnectError(err: unknown): string {
  if (err instanceof AggregateError && err.message === "") {
    const each = [...new Set(err.errors.map((e: unknown) => describeError(e)))];
    return each.join("; ");
  }
  return describeError(err);
}
