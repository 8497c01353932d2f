/**
 * One run of `safetunnel [options] host`: resolve settings, connect (through
 * jump hosts), start the forwards, then wait for a signal or the end of the
 * SSH connection. Returns the exit status.
 */
import { setImmediate } from "node:timers";
import type { TunnelPlan } from "./cli.ts";
import { TunnelError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { commandLineConfig, loadConfigFiles, lookupHost, unsupportedSettings, type HostLookup } from "./config/resolve.ts";
import { resolveDestination, resolveHop, type HopSettings, type LocalEnvironment } from "./config/settings.ts";
import { forwardLabel, listenAddresses, parseForwardConfigArgs, parseForwardSpec, isPathSpec, type ForwardSpec } from "./config/forward-spec.ts";
import { parseCidrList, type Cidr } from "./cidr.ts";
import { connectChain } from "./ssh/connection.ts";
import { sessionFromClient, type TunnelSession } from "./ssh/session.ts";
import { promptUser, type PromptRequest } from "./ssh/prompt.ts";
import { startDynamicForward } from "./forward/dynamic.ts";
import { startLocalForward } from "./forward/local.ts";
import { startRemoteForward } from "./forward/remote.ts";
import { createStats, summaryLine, type TrafficStats } from "./forward/stats.ts";
import { peerProcessName } from "./platform/peer-process.ts";
import { describeError } from "./errors.ts";
import { isLoopbackAddress } from "./address.ts";

export interface RunEnvironment extends LocalEnvironment {
  env: Record<string, string | undefined>;
  log: Logger;
  runtime: "node" | "deno";
  /** Registers what to do when the user asks us to stop (SIGINT, SIGTERM). */
  onStopSignal(handler: (signal: string) => void): void;
}

interface RunningForward {
  shutdown(): Promise<void>;
}

/**
 * @example
 * const status = await runTunnel(plan, environment); process.exitCode = status;
 */
export async function runTunnel(plan: TunnelPlan, run: RunEnvironment): Promise<number> {
  const { log } = run;
  for (const warning of plan.warnings) log.warn(warning);

  const sources = await loadConfigFiles(plan.configFile, run.homeDir);
  const commandLine = commandLineConfig(plan.configLines);
  const lookup = lookupHost(plan.host, [commandLine, ...sources.files], {
    localUser: run.localUser,
    ...(plan.user !== undefined ? { user: plan.user } : {}),
  });
  for (const warning of lookup.warnings) log.warn(warning);
  checkSupported(plan.host, lookup, log);
  const settings = resolveDestination(plan.host, lookup, run);

  // Parse every forward before connecting: a typo should not cost a password prompt.
  // Flags carry one argument (-L 9001:host:80); ssh_config lines two (LocalForward 9001 host:80).
  const parse = (kind: "dynamic" | "local" | "remote", args: string[]): ForwardSpec =>
    args.length === 1 ? parseForwardSpec(kind, args[0]!) : parseForwardConfigArgs(kind, args);
  const specs: ForwardSpec[] = [
    ...settings.dynamicForwards.map((args) => parse("dynamic", args)),
    ...settings.localForwards.map((args) => parse("local", args)),
    ...settings.remoteForwards.map((args) => parse("remote", args)),
  ];
  if (specs.length === 0) {
    throw new TunnelError("USAGE", "nothing to forward: give -D [bind_address:]port (e.g. safetunnel -D 9001 user@home), or -L/-R, or DynamicForward in ssh_config");
  }
  const allowIp: Cidr[] = plan.allowIp.flatMap((text) => parseCidrList(text));

  // Jump hosts: each resolved through the config files like its own ssh would,
  // keeping only the address family from our command line.
  const familyLines = plan.configLines.filter((l) => l.keyword === "addressfamily");
  const jumps: HopSettings[] = settings.jumps.map((jump) => {
    const jumpLines = [...familyLines];
    if (jump.user !== undefined) jumpLines.push({ keyword: "user", args: [jump.user], source: "-J" });
    if (jump.port !== undefined) jumpLines.push({ keyword: "port", args: [String(jump.port)], source: "-J" });
    const jumpLookup = lookupHost(jump.host, [commandLineConfig(jumpLines), ...sources.files], {
      localUser: run.localUser,
      ...(jump.user !== undefined ? { user: jump.user } : {}),
    });
    checkSupported(jump.host, jumpLookup, log);
    return resolveHop(jump.host, jumpLookup, run);
  });

  const prompt = (request: PromptRequest) => promptUser(request, { env: run.env, batchMode: settings.auth.batchMode });
  const chain = await connectChain([...jumps, settings], { prompt, log, preferChaCha20: run.runtime === "deno" });
  const session = sessionFromClient(chain.client, chain.close);
  const stats = createStats();

  // Watch the connection from the first moment: it can drop while forwards start.
  let lost: string | undefined;
  let onLost: ((reason: string) => void) | undefined;
  session.onDown((reason) => {
    lost = reason;
    onLost?.(reason);
  });

  const forwards: RunningForward[] = [];
  const failures: TunnelError[] = [];
  for (const spec of specs) {
    try {
      forwards.push(await startForward(spec, { session, allowIp, stats, log, gatewayPorts: settings.gatewayPorts }));
    } catch (err) {
      const error = err instanceof TunnelError ? err : new TunnelError("FORWARD_FAILED", `${forwardLabel(spec)}: ${describeError(err)}`);
      log.error(error.message);
      failures.push(error);
    }
  }
  const giveUp =
    lost !== undefined
      ? new TunnelError("SSH_DISCONNECTED", `Connection to ${settings.alias} closed while starting the forwards: ${lost}.`)
      : forwards.length === 0
        ? new TunnelError("FORWARD_FAILED", "no forwarding could be started; see the errors above")
        : failures.length > 0 && settings.exitOnForwardFailure
          ? new TunnelError("FORWARD_FAILED", "a forwarding failed and ExitOnForwardFailure is set; exiting")
          : undefined;
  if (giveUp !== undefined) {
    await Promise.all(forwards.map((f) => f.shutdown()));
    await session.close();
    throw giveUp;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (status: number, why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      await Promise.all(forwards.map((f) => f.shutdown()));
      await session.close();
      log.info(`${why}: ${summaryLine(stats)}.`, { event: "summary", ...stats });
      resolve(status);
    };
    run.onStopSignal((signal) => void stop(0, `Stopped by ${signal}`));
    onLost = (reason) => {
      if (stopping) return; // our own disconnect
      log.error(`Connection to ${settings.alias} closed: ${reason}.`);
      // ssh2 fails the pending channel opens right after this event: let
      // their SOCKS clients get reply 0x03 before the listeners close.
      setImmediate(() => void stop(255, "Tunnel closed"));
    };
  });
}

function checkSupported(alias: string, lookup: HostLookup, log: Logger): void {
  const { errors, warnings } = unsupportedSettings(alias, lookup);
  for (const warning of warnings) log.warn(warning);
  if (errors.length > 0) throw new TunnelError("BAD_CONFIG", errors[0]!);
}

interface ForwardContext {
  session: TunnelSession;
  allowIp: Cidr[];
  stats: TrafficStats;
  log: Logger;
  gatewayPorts: boolean;
}

async function startForward(spec: ForwardSpec, context: ForwardContext): Promise<RunningForward> {
  const label = forwardLabel(spec);
  const { session, log, stats } = context;
  if (spec.kind === "remote") {
    if (isPathSpec(spec.listen) || spec.target === null || isPathSpec(spec.target)) {
      throw new TunnelError("FORWARD_FAILED", `${label}: remote dynamic forwarding and Unix sockets are not supported yet; give -R [bind_address:]port:host:hostport`);
    }
    const forward = await startRemoteForward({ label, bindAddress: spec.listen.address, port: spec.listen.port, target: spec.target, session, log, stats });
    log.debug(1, `${label}: the server listens on port ${forward.port}`);
    return { shutdown: () => forward.close() };
  }
  if (isPathSpec(spec.listen)) {
    throw new TunnelError("FORWARD_FAILED", `${label}: listening on a Unix socket is not supported; give [bind_address:]port`);
  }
  const { hosts, warning } = listenAddresses(spec.listen, context.gatewayPorts, label);
  if (warning !== null) log.warn(warning);
  if (spec.kind === "local") {
    if (isPathSpec(spec.target)) throw new TunnelError("FORWARD_FAILED", `${label}: forwarding to a Unix socket is not supported; give host:hostport`);
    const forward = await startLocalForward({ label, hosts, port: spec.listen.port, target: spec.target, session, log, stats });
    log.info(`Forwarding ${forward.addresses.join(" and ")} to ${spec.target.host}:${spec.target.port} as seen from the SSH server (${label}).`, {
      event: "listening",
      addresses: forward.addresses.join(","),
    });
    return { shutdown: () => forward.close() };
  }
  const forward = await startDynamicForward({
    label,
    hosts,
    port: spec.listen.port,
    session,
    allowIp: context.allowIp,
    log,
    stats,
    // /proc can only name programs on this machine: loopback clients.
    describePeer: async (client) =>
      isLoopbackAddress(client.address)
        ? peerProcessName({ clientAddress: client.address, clientPort: client.port, serverAddress: client.localAddress, serverPort: client.localPort })
        : undefined,
  });
  log.info(`SOCKS proxy listening on ${forward.addresses.join(" and ")} (${label}); names are resolved by the SSH server, IP-address requests are refused.`, {
    event: "listening",
    addresses: forward.addresses.join(","),
  });
  return { shutdown: () => forward.close() };
}
