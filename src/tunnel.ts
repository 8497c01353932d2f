/**
 * One run of `safetunnel [options] host`, as a straight line: settle every
 * setting (config/tunnel-settings.ts), connect (ssh/session.ts), start the
 * forwards (forward/start.ts), announce them, then live until a signal or the
 * loss of the SSH connection, and shut down with one summary line. Returns
 * the exit status.
 */
import { setImmediate } from "node:timers";
import { readFileSync } from "node:fs";
import { TunnelError, describeError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Cidr } from "./cidr.ts";
import { loadConfigFiles } from "./config/ssh-config.ts";
import { resolveTunnelSettings, type TunnelRequest, type TunnelSettings } from "./config/tunnel-settings.ts";
import type { LocalEnvironment } from "./config/settings.ts";
import { sessionFromClient, type TunnelSession } from "./ssh/session.ts";
import { connectChain } from "./ssh/connection.ts";
import { reconnectingSession, type ReconnectingSession } from "./ssh/reconnecting-session.ts";
import { parseAllowUsers, type AccessPolicy } from "./forward/access.ts";
import { accessGate } from "./forward/access-gate.ts";
import { ConnectionLimit, defaultMaxConnections, RESERVED_DESCRIPTORS } from "./forward/connection-limit.ts";
import { DescriptorWatch, maxConnectionsWarning } from "./forward/descriptor-watch.ts";
import { promptUser, type PromptRequest, type TtyLike } from "./ssh/prompt.ts";
import { startForwards, type RunningForward } from "./forward/start.ts";
import type { SocksCredentials } from "./socks/server.ts";
import { socksCredentials } from "./cli/tunnel-args.ts";
import { createStats, summaryLine } from "./forward/stats.ts";
import { procPeerLookup, procUnreadable } from "./platform/peer-lookup.ts";
import { listenAddresses } from "./config/forward-spec.ts";
import { isLoopbackAddress } from "./address.ts";
import { CanaryRegistry } from "./leakcheck/canary-registry.ts";
import { canaryAnswers } from "./leakcheck/canary-service.ts";
import type { RunningTunnel } from "./status/live-status.ts";
import type { ConnectionState } from "./status/status-line.ts";

/** The tunnel command as cli.ts hands it over. */
export interface TunnelOptions extends TunnelRequest {
  /** -F: replaces ~/.ssh/config and the system file ("none": no file). */
  configFile: string | undefined;
  /** --allow-ip networks. */
  allowIp: Cidr[];
  /** Lines to print before starting (ignored flags and the like). */
  warnings: string[];
  /** Keep the listeners and reconnect when the connection drops (false: --no-reconnect, exit 255 as ssh). */
  reconnect: boolean;
  /** --allow-users values as typed (names or uids, comma-separated; `*` for everyone). */
  allowUsers: string[];
  /** --max-connections: the cap on local connections at once. @default below the open-file limit (connection-limit.ts) */
  maxConnections?: number;
  /** --socks-auth: the username and password every -D requires. @default none */
  socksAuth?: SocksAuthOption;
}

/**
 * --socks-auth as given: the password itself, or the file whose first line
 * it is (read when the run starts, so the password need not be in argv).
 */
export type SocksAuthOption = { user: string; password: string } | { user: string; passwordFile: string };

export interface RunEnvironment extends LocalEnvironment {
  env: Record<string, string | undefined>;
  log: Logger;
  runtime: "node" | "deno";
  /** Registers what to do when the user asks us to stop (SIGINT, SIGTERM). */
  onStopSignal(handler: (signal: string) => void): void;
  /** Registers what to do when the user asks for a new connection now (SIGHUP); absent where there is no such signal. */
  onReconnectSignal?(handler: () => void): void;
  /** Local accounts by name (/etc/passwd), read only when --allow-users names one. */
  userIds?(): Map<string, number>;
  /** The soft open-file limit (ulimit -n), where the system tells it. */
  openFileLimit?(): number | undefined;
  /** How many descriptors this process has open, where the system tells it. */
  openDescriptors?(): Promise<number | undefined>;
  /** The terminal for prompts. @default prompt.ts: /dev/tty, or the console on Windows */
  openTty?(): TtyLike | null;
  /** Called once every forward that stays is listening and announced (-f goes to the background then; the status line starts). */
  onListening?(status: RunningTunnel): void | Promise<void>;
}

/**
 * @example
 * const status = await runTunnel(options, environment); process.exitCode = status;
 */
export async function runTunnel(options: TunnelOptions, run: RunEnvironment): Promise<number> {
  const { log } = run;
  for (const warning of options.warnings) log.warn(warning);
  // Before connecting: an unreadable password file is a usage error, not a late surprise.
  const socks = options.socksAuth === undefined ? {} : { socksCredentials: socksCredentials(options.socksAuth, { readFile: (path) => readFileSync(path), homeDir: run.homeDir }) };
  const { files } = await loadConfigFiles(options.configFile, run.homeDir);
  const settings = resolveTunnelSettings(options, files, run, (message) => log.warn(message));
  const { destination } = settings;
  const prompt = (request: PromptRequest) =>
    promptUser(request, { env: run.env, batchMode: destination.auth.batchMode, ...(run.openTty !== undefined ? { openTty: run.openTty } : {}) });
  const hops = [...settings.jumps, destination];
  // Keys unlocked for the first connection stay in memory (never written), so a reconnect does not ask again.
  const deps = { prompt, log, preferChaCha20: run.runtime === "deno", unlockedKeys: new Map() };
  const first = await connectChain(hops, deps);
  const access: AccessPolicy = { ownUid: run.uid, allowed: parseAllowUsers(options.allowUsers, (name) => run.userIds?.().get(name)) };
  const limits = connectionLimits(options.maxConnections, run);
  if (!options.reconnect) return serveForwards(sessionFromClient(first.client, first.close), settings, options.allowIp, { ...run, access, ...socks, ...limits });
  // A fatal reconnect failure may come before serveForwards listens for it: keep it.
  let onFatal: ((err: TunnelError) => void) | undefined;
  let fatal: TunnelError | undefined;
  const session = reconnectingSession(first, {
    // Nobody may be at the terminal by now: a reconnect asks for nothing (no
    // password, no new host key); it uses the agent, plain keys and the keys
    // unlocked at the start, and says so once if that is not enough.
    connect: () => connectChain(hops, { ...deps, prompt: async () => null }),
    log,
    alias: destination.alias,
    onFatal: (err) => (onFatal !== undefined ? onFatal(err) : (fatal = err)),
  });
  return serveForwards(session, settings, options.allowIp, { ...run, access, ...socks, ...limits }, {
    session,
    onFatal(handler) {
      onFatal = handler;
      if (fatal !== undefined) handler(fatal);
    },
  });
}

/**
 * The cap on local connections and the watch on descriptors, from
 * --max-connections and the open-file limit; a cap the limit cannot serve is
 * said now, before any client meets it.
 */
function connectionLimits(asked: number | undefined, run: RunEnvironment): { maxConnections: number; descriptorWatch?: DescriptorWatch } {
  const openFileLimit = run.openFileLimit?.();
  if (asked !== undefined) {
    const warning = maxConnectionsWarning(asked, openFileLimit, RESERVED_DESCRIPTORS);
    if (warning !== undefined) run.log.warn(warning, { event: "descriptors-low" });
  }
  const maxConnections = asked ?? defaultMaxConnections(openFileLimit);
  if (openFileLimit === undefined || run.openDescriptors === undefined) return { maxConnections };
  return { maxConnections, descriptorWatch: new DescriptorWatch({ limit: openFileLimit, count: run.openDescriptors, log: run.log }) };
}

/** What serveForwards needs of a session that reconnects. */
export interface Reconnection {
  session: ReconnectingSession;
  /** Registers what to do when reconnecting meets a failure retrying cannot fix (a changed host key). */
  onFatal(handler: (err: TunnelError) => void): void;
}

/**
 * The run once connected: start every forward, decide whether to go on,
 * announce the forwards that stay, then wait. Exported for tests, which hand
 * in a session of their own.
 *
 * @example
 * const status = await serveForwards(session, settings, [], { log, onStopSignal: (stop) => process.once("SIGINT", () => stop("SIGINT")) });
 */
export async function serveForwards(
  session: TunnelSession,
  settings: TunnelSettings,
  allowIp: Cidr[],
  run: Pick<RunEnvironment, "log" | "onStopSignal" | "onReconnectSignal" | "onListening"> & {
    platform?: string;
    /** Who may use the -D and -L ports; undefined: everyone (tests that hand in a session of their own). */
    access?: AccessPolicy;
    /** --socks-auth, read: what every -D requires. @default none */
    socksCredentials?: SocksCredentials;
    /** The cap on local connections at once. @default none */
    maxConnections?: number;
    /** Told of every local connection, to say when descriptors run short. @default none */
    descriptorWatch?: { accepted(): void };
  },
  reconnection?: Reconnection,
): Promise<number> {
  const { log } = run;
  const alias = settings.destination.alias;
  const stats = createStats();

  // Watch the connection from the first moment: it can drop while forwards start.
  let lost: string | undefined;
  let onLost: ((reason: string) => void) | undefined;
  let connection: ConnectionState = { up: true, since: Date.now() };
  session.onDown((reason) => {
    lost = reason;
    connection = { up: false, since: Date.now() };
    onLost?.(reason);
  });

  // Only Linux has /proc; one lookup for the run, so /proc is read one pass at a time.
  const peersUnknown = run.platform === "linux" ? procUnreadable() : "this system does not say who owns a connection (only Linux does)";
  const peers = peersUnknown === undefined ? procPeerLookup() : undefined;
  const { started, failures } = await startForwards(settings.forwards, {
    session,
    allowIp,
    gatewayPorts: settings.destination.gatewayPorts,
    stats,
    log,
    ...(peers !== undefined ? { peers } : {}),
    // `safetunnel leakcheck` talks to the -D port: its canaries are answered there.
    localAnswers: canaryAnswers(new CanaryRegistry(), peers),
    ...(run.access !== undefined && peers !== undefined ? { access: accessGate({ policy: run.access, peers, log }) } : {}),
    ...(run.maxConnections !== undefined ? { limit: new ConnectionLimit({ max: run.maxConnections, log, ...(run.descriptorWatch !== undefined ? { watch: run.descriptorWatch } : {}) }) } : {}),
    ...(run.socksCredentials !== undefined ? { socksCredentials: run.socksCredentials } : {}),
  });
  const giveUp = startProblem(lost, alias, started, failures.length, settings.destination.exitOnForwardFailure);
  if (giveUp !== undefined) {
    await shutdown(started, session);
    throw giveUp;
  }
  // Only now, with the run's fate decided: a "listening" line is a promise.
  for (const forward of started) log.info(forward.announcement.message, forward.announcement.fields);
  const localPorts = settings.forwards.some((forward) => forward.kind !== "remote");
  if (localPorts && run.access !== undefined && run.access.allowed !== "all") {
    if (peersUnknown !== undefined && run.platform !== undefined) {
      log.info(`Any program of any account on this machine can use these ports: ${peersUnknown}, so safetunnel cannot tell who connects. To require a password on -D, use --socks-auth USER:@FILE.`, { event: "access-unchecked" });
    } else if (run.socksCredentials === undefined && reachableFromNetwork(settings)) {
      log.info("Other hosts on the network can use these ports too (-g), and the account check sees only this machine's programs. To require a password on -D, use --socks-auth USER:@FILE.", { event: "access-unchecked" });
    }
  }

  const outages = (): { outages: number; downMs: number } | undefined =>
    reconnection === undefined ? undefined : { outages: reconnection.session.outages, downMs: reconnection.session.downMs };
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (status: number, why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      await shutdown(started, session);
      const lost = outages();
      log.info(`${why}: ${summaryLine(stats)}${lost === undefined ? "" : outageText(lost)}.`, { event: "summary", ...stats, ...lost });
      resolve(status);
    };
    run.onStopSignal((signal) => void stop(0, `Stopped by ${signal}`));
    if (reconnection !== undefined) {
      run.onReconnectSignal?.(() => reconnection.session.reconnectNow());
      reconnection.onFatal((err) => {
        log.error(`safetunnel: ${err.message}`, { code: err.code });
        void stop(255, "Tunnel closed");
      });
    }
    onLost = (reason) => {
      if (stopping) return; // our own disconnect
      if (reconnection !== undefined) {
        log.warn(`Connection to ${alias} lost: ${reason}; reconnecting. Until it is back, new SOCKS requests get reply 0x03 and -L connections are closed; nothing goes around the tunnel.`, {
          event: "connection-lost",
        });
        return;
      }
      log.error(`Connection to ${alias} closed: ${reason}.`);
      // ssh2 fails the pending channel opens right after this event: let
      // their SOCKS clients get reply 0x03 before the listeners close.
      setImmediate(() => void stop(255, "Tunnel closed"));
    };
    if (run.onListening !== undefined) {
      const status: RunningTunnel = {
        stats,
        connection: () => {
          // Coming back up has no event of its own: seen when asked (twice a second by the status line).
          if (!connection.up && session.up) connection = { up: true, since: Date.now() };
          return connection;
        },
        outages,
      };
      Promise.resolve()
        .then(() => run.onListening?.(status))
        .catch((err: unknown) => {
          log.error(`safetunnel: ${err instanceof TunnelError ? err.message : describeError(err)}`, err instanceof TunnelError ? { code: err.code } : {});
          void stop(255, "Tunnel closed");
        });
    }
  });
}

/** Whether a -D or -L port listens beyond loopback (-g, GatewayPorts), where other hosts can reach it. */
function reachableFromNetwork(settings: TunnelSettings): boolean {
  return settings.forwards.some(
    (forward) => forward.kind !== "remote" && listenAddresses(forward.listen, settings.destination.gatewayPorts).hosts.some((host) => !isLoopbackAddress(host) && host.toLowerCase() !== "localhost"),
  );
}

/** Why the run cannot go on after starting its forwards, or undefined. */
function startProblem(lost: string | undefined, alias: string, started: RunningForward[], failed: number, exitOnForwardFailure: boolean): TunnelError | undefined {
  if (lost !== undefined) return new TunnelError("SSH_DISCONNECTED", `Connection to ${alias} closed while starting the forwards: ${lost}.`);
  if (started.length === 0) return new TunnelError("FORWARD_FAILED", "no forwarding could be started; see the errors above");
  if (failed > 0 && exitOnForwardFailure) {
    const others = started.map((forward) => forward.label).join(", ");
    return new TunnelError(
      "FORWARD_FAILED",
      `a forwarding failed and ExitOnForwardFailure is set, so the ones that started (${others}) are closed again; fix the failure above or set ExitOnForwardFailure=no`,
    );
  }
  return undefined;
}

/** ", 2 outages (41 s down)" for the summary, or nothing when the connection never dropped. */
function outageText({ outages, downMs }: { outages: number; downMs: number }): string {
  if (outages === 0) return "";
  return `, ${outages} outage${outages === 1 ? "" : "s"} (${Math.round(downMs / 1000)} s down)`;
}

async function shutdown(forwards: RunningForward[], session: TunnelSession): Promise<void> {
  await Promise.all(forwards.map((forward) => forward.close()));
  await session.close();
}
