/**
 * Starting a run's forwards: each spec becomes a running forward on the
 * session. Starting and announcing are separate steps, so the caller can
 * start them all, decide (ExitOnForwardFailure, nothing started), and only
 * then say "listening" for forwards that stay up.
 */
import { TunnelError, describeError } from "../errors.ts";
import { hostPort } from "../address.ts";
import type { Cidr } from "../cidr.ts";
import type { Logger, LogFields } from "../log.ts";
import { forwardLabel, listenAddresses, type TcpForwardSpec } from "../config/forward-spec.ts";
import type { TunnelSession } from "../ssh/session.ts";
import { startDynamicForward, type LocalAnswers } from "./dynamic.ts";
import { startLocalForward } from "./local.ts";
import { startRemoteForward } from "./remote.ts";
import { startRemoteDynamicForward } from "./remote-dynamic.ts";
import type { TrafficStats } from "./stats.ts";
import type { PeerLookup } from "../platform/peer-lookup.ts";
import type { AccessGate } from "./access-gate.ts";
import type { ConnectionLimit } from "./connection-limit.ts";
import type { SocksCredentials } from "../socks/server.ts";


export interface ForwardContext {
  session: TunnelSession;
  /** --allow-ip networks (the SOCKS forwards: -D, and -R with a port alone). */
  allowIp: readonly Cidr[];
  /** GatewayPorts / -g: whether -D and -L may listen beyond loopback. */
  gatewayPorts: boolean;
  stats: TrafficStats;
  log: Logger;
  /**
   * Who is behind a local client, asked only to name the program in a -D
   * refusal line; one for the run, shared by every -D.
   * @default none: refusal lines name no program
   */
  peers?: PeerLookup;
  /**
   * What every -D of the run answers itself (`.invalid` names: leak-check canaries).
   * @default none: `.invalid` names are host unreachable
   */
  localAnswers?: LocalAnswers;
  /** Who may use -D and -L ports (another local account is refused). @default everyone */
  access?: AccessGate;
  /** The run's cap on local connections, shared by every -D and -L. @default none */
  limit?: ConnectionLimit;
  /**
   * --socks-auth: the username and password every SOCKS port of the run
   * requires, -D and -R with a port alone (RFC 1929). @default none: they ask
   * for no authentication
   */
  socksCredentials?: SocksCredentials;
}

/** A forward that is up. */
export interface RunningForward {
  /** `-D 9001`, as the user wrote it. */
  readonly label: string;
  /** The line that says it is up and how to use it. */
  readonly announcement: { message: string; fields: LogFields };
  close(): Promise<void>;
}

export interface StartResult {
  started: RunningForward[];
  /** One error per forward that could not start, already logged. */
  failures: TunnelError[];
}

/**
 * Starts every forward, in order; a failure is logged and the next one is
 * tried (OpenSSH does the same unless ExitOnForwardFailure is set, which the
 * caller decides on from `failures`). Nothing is announced here.
 *
 * @example
 * const { started, failures } = await startForwards(settings.forwards, context);
 * for (const forward of started) log.info(forward.announcement.message, forward.announcement.fields);
 */
export async function startForwards(specs: readonly TcpForwardSpec[], context: ForwardContext): Promise<StartResult> {
  const started: RunningForward[] = [];
  const failures: TunnelError[] = [];
  if (context.socksCredentials !== undefined) {
    const warning = socksAuthScopeWarning(specs);
    if (warning !== undefined) context.log.warn(warning, { event: "socks-auth-unused" });
  }
  for (const spec of specs) {
    try {
      started.push(await startForward(spec, context));
    } catch (err) {
      const error = err instanceof TunnelError ? err : new TunnelError("FORWARD_FAILED", `${forwardLabel(spec)}: ${describeError(err)}`);
      context.log.error(error.message, { code: error.code });
      failures.push(error);
    }
  }
  return { started, failures };
}

/**
 * --socks-auth with no SOCKS port to guard (neither -D nor -R with a port
 * alone), said before anything listens: the user may think a port is
 * protected that is not a SOCKS proxy at all.
 *
 * @example
 * socksAuthScopeWarning([{ kind: "local", listen: { address: null, port: 8080 }, target: { host: "web", port: 80 }, raw: "8080:web:80" }])
 * // "--socks-auth has no effect: this run has no SOCKS port (-D, or -R with a port alone)."
 */
export function socksAuthScopeWarning(specs: readonly TcpForwardSpec[]): string | undefined {
  const socks = specs.some((spec) => spec.kind === "dynamic" || (spec.kind === "remote" && spec.target === null));
  return socks ? undefined : "--socks-auth has no effect: this run has no SOCKS port (-D, or -R with a port alone).";
}

/** What the announcement of a SOCKS port adds under --socks-auth. */
function socksLogin(context: ForwardContext): string {
  return context.socksCredentials === undefined ? "" : "; clients must log in with the --socks-auth username and password (SOCKS5 only)";
}

/**
 * @example
 * const forward = await startForward({ kind: "dynamic", listen: { address: null, port: 9001 }, raw: "9001" }, context);
 * forward.announcement.message; // "SOCKS and HTTP proxy listening on 127.0.0.1:9001 and [::1]:9001 (-D 9001); ..."
 */
export async function startForward(spec: TcpForwardSpec, context: ForwardContext): Promise<RunningForward> {
  const label = forwardLabel(spec);
  const { session, log, stats } = context;
  const ipPolicy =
    context.allowIp.length === 0
      ? "IP-address requests are refused"
      : `IP-address requests are refused except inside --allow-ip ${context.allowIp.map((cidr) => cidr.text).join(",")}`;
  if (spec.kind === "remote") {
    const { target } = spec;
    if (target === null) {
      const forward = await startRemoteDynamicForward({
        label,
        bindAddress: spec.listen.address,
        port: spec.listen.port,
        session,
        allowIp: context.allowIp,
        log,
        stats,
        ...(context.socksCredentials !== undefined ? { credentials: context.socksCredentials } : {}),
      });
      const where = hostPort(forward.address, forward.port);
      // For a port the server picked, OpenSSH's own words first (readconf.c
      // parse_forward names the connect host of a remote dynamic forward
      // "socks", port 0), so scripts that read "Allocated port N" work.
      const message =
        spec.listen.port === 0
          ? `Allocated port ${forward.port} for remote forward to socks:0 (a SOCKS proxy on the server's ${where}, ${label}; names are resolved here, ${ipPolicy}${socksLogin(context)}).`
          : `SOCKS proxy on the server's ${where} (${label}); names are resolved here, ${ipPolicy}${socksLogin(context)}.`;
      return {
        label,
        announcement: { message, fields: { event: "listening", addresses: where, side: "server" } },
        close: () => forward.close(),
      };
    }
    const forward = await startRemoteForward({ label, bindAddress: spec.listen.address, port: spec.listen.port, target, session, log, stats });
    // OpenSSH's own line for a port the server picked (scripts read it); our
    // line, in the style of -L's, for a port the user chose.
    const message =
      spec.listen.port === 0
        ? `Allocated port ${forward.port} for remote forward to ${target.host}:${target.port}`
        : `Forwarding ${hostPort(forward.address, forward.port)} on the SSH server to ${hostPort(target.host, target.port)} as seen from here (${label}).`;
    return {
      label,
      announcement: { message, fields: { event: "listening", addresses: hostPort(forward.address, forward.port), side: "server" } },
      close: () => forward.close(),
    };
  }

  const { hosts, warning } = listenAddresses(spec.listen, context.gatewayPorts, label);
  if (warning !== null) log.warn(warning);
  if (spec.kind === "local") {
    const { target } = spec;
    const forward = await startLocalForward({ label, hosts, port: spec.listen.port, target, session, log, stats, ...(context.access !== undefined ? { access: context.access } : {}), ...(context.limit !== undefined ? { limit: context.limit } : {}) });
    return {
      label,
      announcement: {
        message: `Forwarding ${forward.addresses.join(" and ")} to ${hostPort(target.host, target.port)} as seen from the SSH server (${label}).`,
        fields: { event: "listening", addresses: forward.addresses.join(","), side: "client" },
      },
      close: () => forward.close(),
    };
  }

  const forward = await startDynamicForward({
    label,
    hosts,
    port: spec.listen.port,
    session,
    allowIp: context.allowIp,
    log,
    stats,
    ...(context.peers !== undefined ? { peers: context.peers } : {}),
    ...(context.localAnswers !== undefined ? { localAnswers: context.localAnswers } : {}),
    ...(context.access !== undefined ? { access: context.access } : {}),
    ...(context.socksCredentials !== undefined ? { credentials: context.socksCredentials } : {}),
    ...(context.limit !== undefined ? { limit: context.limit } : {}),
  });
  return {
    label,
    announcement: {
      message: `SOCKS and HTTP proxy listening on ${forward.addresses.join(" and ")} (${label}); names are resolved by the SSH server, ${ipPolicy}${socksLogin(context)}.`,
      fields: { event: "listening", addresses: forward.addresses.join(","), side: "client" },
    },
    close: () => forward.close(),
  };
}
