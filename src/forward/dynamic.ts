/**
 * -D: a SOCKS front end (and an HTTP proxy on the same port) whose CONNECTs
 * become direct-tcpip channels.
 *
 * One request reads straight through: socks/server.ts parses it,
 * socks/policy.ts decides whether it may go out (names yes, IP literals only
 * with --allow-ip), the session opens a channel (the name is resolved by the
 * SSH server), the reply goes back, pipe.ts joins the two.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { serveSocksSocket, type ConnectOutcome, type SocksClient, type SocksCredentials, type SocksHandshakeOptions } from "../socks/server.ts";
import { formatReplyCode, Socks5Reply, type Destination, type Socks5ReplyCode } from "../socks/codec.ts";
import { serveHttpProxy, type HttpProxyOptions } from "../http-proxy/server.ts";
import { proxyPages } from "../http-proxy/setup-page.ts";
import { protocolName, requestName, type ProxyRequest } from "./proxy-request.ts";
import { decideDestination, isInvalidName } from "../socks/policy.ts";
import type { Cidr } from "../cidr.ts";
import type { TunnelSession } from "../ssh/session.ts";
import { ChannelOpenError, describeOpenFailure, type ChannelFailureKind } from "../ssh/channel-failure.ts";
import { joinStreams } from "./pipe.ts";
import { sendGateOf } from "../ssh/send-backlog.ts";
import { hostPort, unbracket } from "../address.ts";
import { listenAll, type Listener } from "./listen.ts";
import type { Logger } from "../log.ts";
import type { TrafficStats } from "./stats.ts";
import { droppedClientLine, RefusalLog, refusalLine } from "./refusal-log.ts";
import type { PeerLookup } from "../platform/peer-lookup.ts";
import type { AccessGate } from "./access-gate.ts";
import type { ConnectionLimit } from "./connection-limit.ts";
import { FoldWindow, foldedSince } from "../fold-window.ts";

export interface DynamicForwardOptions {
  /** "-D 9001", for messages. */
  label: string;
  hosts: string[];
  port: number;
  session: TunnelSession;
  allowIp: readonly Cidr[];
  log: Logger;
  stats: TrafficStats;
  /** @default 30000 */
  handshakeTimeoutMs?: number;
  /** Milliseconds now; injectable so tests can step over the refusal window. @default Date.now */
  clock?: () => number;
  /** Longest wait for /proc to name the program behind a refusal, the client waiting meanwhile. @default 1000 (refusal-log.ts) */
  nameWaitMs?: number;
  /** The run's cap on local connections (shared by every -D and -L). @default none */
  limit?: ConnectionLimit;
  /**
   * Who is behind a client, asked only to name the program in a refusal or
   * dropped-client line, which are folded per program (never for requests
   * that go out: looking up every accepted connection in /proc/net/tcp
   * doubled the CPU a SOCKS connection costs). Share one among forwards.
   * @default none: those lines name no program and are folded per address
   */
  peers?: PeerLookup;
  /**
   * Answers `.invalid` names here (leak-check canaries), and hears of every
   * refused IP-address request. @default none: every `.invalid` name is host
   * unreachable (0x04)
   */
  localAnswers?: LocalAnswers;
  /** Who may use this port (another local account gets 0x02). @default everyone */
  access?: AccessGate;
  /**
   * --socks-auth: the username and password every SOCKS5 client must send
   * (RFC 1929); SOCKS4 clients are refused. @default none: no authentication
   */
  credentials?: SocksCredentials;
}

/**
 * What the front end asks about requests it never sends through SSH. The
 * leak check's canary service implements it (leakcheck/canary-service.ts);
 * nothing here knows what it does.
 */
export interface LocalAnswers {
  /** The outcome for a CONNECT to a `.invalid` name. */
  answer(destination: Destination, client: SocksClient): Promise<ConnectOutcome>;
  /**
   * An IP-address request was refused (the program, when /proc named it).
   * Awaited before the reply goes out, while /proc still shows the client.
   */
  refused(request: ProxyRequest, client: SocksClient, program: string | undefined): Promise<void>;
}

/** SOCKS reply for each way a channel open can fail. */
export const REPLY_FOR_FAILURE: Record<ChannelFailureKind, Socks5ReplyCode> = {
  refused: Socks5Reply.CONNECTION_REFUSED,
  unreachable: Socks5Reply.HOST_UNREACHABLE,
  "network-unreachable": Socks5Reply.NETWORK_UNREACHABLE,
  prohibited: Socks5Reply.NOT_ALLOWED,
  "connection-down": Socks5Reply.NETWORK_UNREACHABLE,
  other: Socks5Reply.GENERAL_FAILURE,
};

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * @example
 * const forward = await startDynamicForward({ label: "-D 9001", hosts: ["127.0.0.1"], port: 9001, session, allowIp: [], log, stats, peers: procPeerLookup() });
 */
export async function startDynamicForward(options: DynamicForwardOptions): Promise<Listener> {
  const { session, log, stats, peers } = options;
  const refusals = new RefusalLog({
    log,
    clock: options.clock,
    ...(options.nameWaitMs !== undefined ? { nameWaitMs: options.nameWaitMs } : {}),
    nameProgram: peers === undefined ? undefined : (client) => peers.programOf(client),
    droppedLine: (client, reason, program) => droppedClientLine(options.label, client, reason, program),
  });

  const failureFolds = new FoldWindow(options.clock === undefined ? {} : { clock: options.clock });
  const onConnect = async (request: ProxyRequest, client: SocksClient, signal: AbortSignal): Promise<ConnectOutcome> => {
    // First: another account's program gets nothing of ours, not even a canary answer.
    if (options.access !== undefined && !(await options.access.admit(client, options.label))) {
      return { ok: false, reply: Socks5Reply.NOT_ALLOWED, explanation: "this proxy serves only the programs of the account that started it (--allow-users adds others)" };
    }
    const { destination } = request;
    const target = hostPort(destination.host, destination.port);
    // RFC 6761 .invalid names (leak-check canaries among them): answered here, never sent to the SSH server.
    if (destination.kind === "name" && isInvalidName(destination.host)) {
      const outcome: ConnectOutcome = options.localAnswers === undefined ? { ok: false, reply: Socks5Reply.HOST_UNREACHABLE } : await options.localAnswers.answer(destination, client);
      if (outcome.ok) answeredHere.add(outcome.stream);
      log.debug(1, `${options.label}: ${requestName(request)} ${target} from ${client.address}:${client.port} answered here (leak check)`);
      return outcome;
    }
    const decision = decideDestination(destination, options.allowIp);
    if (!decision.allow) {
      stats.refusals++;
      // Before the reply: the client keeps its socket open until it has one,
      // so `peers` can still tell which program holds it (bounded by RefusalLog).
      const program = await refusals.report(request, client, (named) => (stats.lastRefused = named ?? client.address));
      await options.localAnswers?.refused(request, client, program);
      return { ok: false, reply: Socks5Reply.NOT_ALLOWED, explanation: refusalLine(request, client, program) };
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
      log.debug(1, `${options.label}: ${requestName(request)} ${target} from ${client.address}:${client.port}`);
      return { ok: true, stream: channel };
    } catch (err) {
      stats.failures++;
      const kind = err instanceof ChannelOpenError ? err.kind : "other";
      const reply = REPLY_FOR_FAILURE[kind];
      const answer = request.version === "http" ? `HTTP ${kind === "connection-down" ? 503 : 502}` : `SOCKS${request.version} reply ${formatReplyCode(request.version, reply)}`;
      const line = `${options.label}: connect to ${target} failed: ${describeOpenFailure(err)} (${answer}).`;
      // Folded per kind of failure and protocol: a client trying thousands of closed
      // ports (measured in the fuzz test: 725 kB of these lines) costs one
      // line per kind every 10 s; each one is still written at -v.
      const folded = failureFolds.admit(`${kind}/${protocolName(request)}`);
      if (folded === undefined) log.debug(1, line);
      else log.info(line + foldedSince(folded, "failed"), { event: "open-failed", destination: target, kind });
      return { ok: false, reply, unavailable: kind === "connection-down", explanation: `connect to ${target} failed: ${describeOpenFailure(err)}` };
    }
  };

  // Streams answered here are not tunnel connections: the summary does not count them.
  const answeredHere = new WeakSet<Duplex>();
  const onEstablished = (socket: Socket, stream: Duplex, request: ProxyRequest, leftover: Uint8Array, client?: Duplex): void => {
    options.limit?.established(socket);
    joinStreams(
      client ?? socket,
      stream,
      (result) => {
        if (log.debugEnabled(1)) {
          log.debug(1, `${options.label}: closed ${hostPort(request.destination.host, request.destination.port)}: ${result.bytesUp} bytes up, ${result.bytesDown} down${result.error ? ` (${result.error.message})` : ""}`);
        }
      },
      { initial: leftover, gate: sendGateOf(stream), ...(answeredHere.has(stream) ? {} : { tally: stats }) },
    );
  };

  const onProtocolError = (client: SocksClient, reason: string): void => {
    stats.protocolErrors++;
    // Folded per program (or address) and 10 s: a fuzzer must not fill the log.
    void refusals.dropped(client, reason);
  };
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const credentials = options.credentials !== undefined ? { credentials: options.credentials } : {};
  // The same port answers HTTP proxy clients: the same policy, channels, counters and lines.
  const http: HttpProxyOptions = {
    handshakeTimeoutMs,
    ...credentials,
    onConnect,
    onEstablished,
    onProtocolError,
    // The address the client reached, so what the pages say can be pasted as is.
    pages: (path, client) => proxyPages(path, { host: client.localAddress.replace(/^::ffff:/, ""), port: client.localPort }),
  };
  const handshake: SocksHandshakeOptions = {
    handshakeTimeoutMs,
    ...credentials,
    onConnect,
    onEstablished,
    onProtocolError,
    onHttp: (socket, client, buffered) => serveHttpProxy(socket, client, buffered, http),
  };
  const { limit } = options;
  const onSocket = (socket: Socket): void => {
    if (limit !== undefined) {
      if (!limit.admit(socket)) return;
      socket.once("close", () => limit.release(socket));
    }
    serveSocksSocket(socket, handshake);
  };
  const listener = await listenAll(options.hosts, options.port, options.label, onSocket, log);

  // Closing the listener destroys its sockets; pipe.ts then closes their channels.
  return listener;
}

