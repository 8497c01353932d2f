/**
 * -D: a SOCKS front end whose CONNECTs become direct-tcpip channels.
 *
 * One request reads straight through: socks/server.ts parses it,
 * socks/policy.ts decides whether it may go out (names yes, IP literals only
 * with --allow-ip), the session opens a channel (the name is resolved by the
 * SSH server), the reply goes back, pipe.ts joins the two.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { serveSocksSocket, type ConnectOutcome, type SocksClient } from "../socks/server.ts";
import { Socks5Reply, type Socks5ReplyCode, type SocksRequest } from "../socks/codec.ts";
import { classifyHost, decideDestination } from "../socks/policy.ts";
import type { Cidr } from "../cidr.ts";
import type { TunnelSession } from "../ssh/session.ts";
import { ChannelOpenError, describeOpenFailure, type ChannelFailureKind } from "../ssh/channel-failure.ts";
import { joinStreams } from "./pipe.ts";
import { formatAddress, hostPort, unbracket } from "../address.ts";
import { listenAll, type Listener } from "./listen.ts";
import type { Logger } from "../log.ts";
import type { TrafficStats } from "./stats.ts";

export interface DynamicForwardOptions {
  /** "-D 9001", for messages. */
  label: string;
  hosts: string[];
  port: number;
  session: TunnelSession;
  allowIp: readonly Cidr[];
  log: Logger;
  stats: TrafficStats;
  handshakeTimeoutMs?: number;
  /** Milliseconds now; injectable so tests can step over the refusal window. */
  clock?: () => number;
  /** Names the local program behind a client socket (Linux /proc), for refusal lines. */
  describePeer?: (client: SocksClient) => Promise<string | undefined>;
}


/** SOCKS reply for each way a channel open can fail (the mapping the issue fixes). */
export const REPLY_FOR_FAILURE: Record<ChannelFailureKind, Socks5ReplyCode> = {
  refused: Socks5Reply.CONNECTION_REFUSED,
  unreachable: Socks5Reply.HOST_UNREACHABLE,
  "network-unreachable": Socks5Reply.NETWORK_UNREACHABLE,
  prohibited: Socks5Reply.NOT_ALLOWED,
  "connection-down": Socks5Reply.NETWORK_UNREACHABLE,
  other: Socks5Reply.GENERAL_FAILURE,
};

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** At most one full refusal line per client address in this window. */
const REFUSAL_WINDOW_MS = 10_000;
/** How long the refusal may wait for /proc to name the program. */
const PEER_LOOKUP_MS = 200;

/** The promise's value, or undefined if it fails or takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

/**
 * @example
 * const forward = await startDynamicForward({ label: "-D 9001", hosts: ["127.0.0.1"], port: 9001, session, allowIp: [], log, stats });
 */
export async function startDynamicForward(options: DynamicForwardOptions): Promise<Listener> {
  const { session, log, stats } = options;

  // A misconfigured browser is refused dozens of times a page: one full line
  // per program (or client address, when /proc cannot tell) and SOCKS version
  // per window; the rest are counted into the next full line and shown with -v.
  const lastFull = new Map<string, { at: number; suppressed: number }>();
  // One /proc walk at a time: a burst of refusals must not start a walk each.
  // While one runs, a refusal is keyed by its address (at most one more line).
  let lookingUp = false;
  const lookUpProgram = async (client: SocksClient): Promise<string | undefined> => {
    if (options.describePeer === undefined || lookingUp) return undefined;
    lookingUp = true;
    const walk = options.describePeer(client).finally(() => {
      lookingUp = false;
    });
    return within(walk, PEER_LOOKUP_MS);
  };
  const reportRefusal = async (request: SocksRequest, client: SocksClient): Promise<void> => {
    const program = await lookUpProgram(client);
    const now = (options.clock ?? Date.now)();
    // Per program and SOCKS version: each app needs its own fix, and it differs between SOCKS4 and 5.
    const key = `${program ?? client.address}/${request.version}`;
    const seen = lastFull.get(key);
    const target = hostPort(request.destination.host, request.destination.port);
    if (seen !== undefined && now - seen.at < REFUSAL_WINDOW_MS) {
      seen.suppressed++;
      log.debug(1, `Refused SOCKS${request.version} CONNECT to ${target} from ${client.address}:${client.port}${program ? ` (${program})` : ""} (IP address).`);
      return;
    }
    // Bounded: with -g, many addresses may come and go (at worst we forget and log more).
    if (lastFull.size >= 1024) {
      for (const [k, v] of lastFull) if (now - v.at >= REFUSAL_WINDOW_MS) lastFull.delete(k);
      if (lastFull.size >= 1024) lastFull.clear();
    }
    lastFull.set(key, { at: now, suppressed: 0 });
    const more = seen !== undefined && seen.suppressed > 0 ? ` (${seen.suppressed} more refused since the last such line)` : "";
    log.info(refusalLine(request, client, program) + more, {
      event: "refused",
      code: "SOCKS_IP_REFUSED",
      destination: target,
      client: `${client.address}:${client.port}`,
      program: program ?? null,
    });
  };

  const onConnect = async (request: SocksRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome> => {
    const { destination } = request;
    const target = hostPort(destination.host, destination.port);
    const decision = decideDestination(destination, options.allowIp);
    if (!decision.allow) {
      stats.refusals++;
      await reportRefusal(request, client);
      return { ok: false, reply: Socks5Reply.NOT_ALLOWED };
    }
    if (decision.viaAllowList) {
      log.info(`Allowing IP destination ${target} for ${client.address}:${client.port}: it is inside --allow-ip ${decision.matched?.text}.`, {
        event: "allowed-ip",
        destination: target,
      });
    }
    const host = unbracket(destination.host);
    try {
      const channel = await session.openDirect(host, destination.port, { address: client.address, port: client.port });
      if (signal.aborted) {
        channel.destroy();
        return { ok: false, reply: Socks5Reply.GENERAL_FAILURE };
      }
      log.debug(1, `${options.label}: SOCKS${request.version} CONNECT ${target} from ${client.address}:${client.port}`);
      return { ok: true, stream: channel };
    } catch (err) {
      stats.failures++;
      const kind = err instanceof ChannelOpenError ? err.kind : "other";
      const reply = REPLY_FOR_FAILURE[kind];
      const sent = request.version === 5 ? `0x0${reply}` : "0x5b";
      log.info(`${options.label}: connect to ${target} failed: ${describeOpenFailure(err)} (SOCKS${request.version} reply ${sent}).`, {
        event: "open-failed",
        destination: target,
        kind,
      });
      return { ok: false, reply };
    }
  };

  const onEstablished = (socket: Socket, stream: Duplex, request: SocksRequest, leftover: Uint8Array): void => {
    joinStreams(
      socket,
      stream,
      (result) => {
        if (log.debugEnabled(1)) {
          log.debug(1, `${options.label}: closed ${hostPort(request.destination.host, request.destination.port)}: ${result.bytesUp} bytes up, ${result.bytesDown} down${result.error ? ` (${result.error.message})` : ""}`);
        }
      },
      leftover,
      stats,
    );
  };

  const listener = await listenAll(
    options.hosts,
    options.port,
    options.label,
    (socket) =>
      serveSocksSocket(socket, {
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
        onConnect,
        onEstablished,
        onProtocolError: (client, reason) => {
          stats.protocolErrors++;
          log.info(`${options.label}: dropped SOCKS client ${client.address}:${client.port}: ${reason}.`, { event: "protocol-error" });
        },
      }),
    log,
  );

  // Closing the listener destroys its sockets; pipe.ts then closes their channels.
  return listener;
}


/**
 * The one line a refused client gets: who, what, why it matters, and the fix
 * for the program that asked (or for the common ones when we cannot tell).
 * Firefox's SOCKS5 pref is socks5_remote_dns (FACTS.md); socks_remote_dns
 * now covers SOCKS4 only.
 */
export function refusalLine(request: SocksRequest, client: SocksClient, program: string | undefined): string {
  const target = hostPort(request.destination.host, request.destination.port);
  const who = `${client.address}:${client.port}${program ? ` (${program})` : ""}`;
  // The address the client itself used to reach us, so the fix can be pasted as is.
  const proxy = hostPort(client.localAddress.replace(/^::ffff:/, ""), client.localPort);
  const proxyPort = client.localPort;
  const why =
    request.version === 4 && !request.socks4a
      ? "it used plain SOCKS4, which carries only IP addresses, so the name was resolved locally and your network saw the DNS lookup"
      : "it carries an IP address, so the name was resolved locally and your network saw the DNS lookup";
  const name = (program ?? "").toLowerCase();
  let fix: string;
  if (name.includes("firefox") || name.includes("librewolf") || name.includes("icecat")) {
    fix = `in Firefox set network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5") with SOCKS v5 host 127.0.0.1 port ${proxyPort}`;
  } else if (name.includes("chrom") || name.includes("brave") || name.includes("edge")) {
    fix = `start Chromium with --proxy-server=socks5://${proxy} (socks5, not socks4)`;
  } else if (name === "curl") {
    fix = `use curl --socks5-hostname ${proxy} (or -x socks5h://${proxy})`;
  } else {
    fix =
      `make the app send names: Firefox: network.proxy.socks5_remote_dns = true; ` +
      `Chromium: --proxy-server=socks5://${proxy}; curl: --socks5-hostname ${proxy} or socks5h://`;
  }
  // The canonical spelling, so the suggested flag parses (127.1, 0x7f.1 and fe80::1%eth0 would not).
  const address = classifyHost(request.destination.host).address;
  const allow = address === undefined ? request.destination.host : formatAddress(address);
  return `Refused SOCKS${request.version} CONNECT to ${target} from ${who}: ${why}. Fix: ${fix}. To allow this address on purpose: --allow-ip ${allow}`;
}
