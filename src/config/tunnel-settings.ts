/**
 * Everything one tunnel run needs, settled before the first packet: the
 * destination's settings, each jump host's own settings, and the forwards.
 * Anything safetunnel cannot honour (a refused ssh_config setting, a Unix
 * socket forward, a bad spec) fails here, so a mistake never costs a
 * connection attempt or a passphrase prompt. Pure: the parsed config files
 * and the local environment are passed in.
 */
import { TunnelError } from "../errors.ts";
import { commandLineConfig, lookupHost, unsupportedSettings, type ConfigLine, type HostLookup } from "./host-lookup.ts";
import type { ParsedConfig } from "./parse-ssh-config.ts";
import { resolveDestination, resolveHop, type DestinationSettings, type HopSettings, type LocalEnvironment } from "./settings.ts";
import { parseForwardConfigArgs, parseForwardSpec, requireTcpForward, type ForwardKind, type TcpForwardSpec } from "./forward-spec.ts";

/** What the command line says about the destination (cli.ts fills it). */
export interface TunnelRequest {
  /** The host part of the destination: what Host lines are matched against. */
  host: string;
  /** The user part, if given (for Match user). */
  user: string | undefined;
  /** Command-line settings as ssh_config lines, highest precedence first. */
  configLines: ConfigLine[];
}

export interface TunnelSettings {
  destination: DestinationSettings;
  /** ProxyJump hops, outermost first, each resolved as its own host. */
  jumps: HopSettings[];
  /** Every forward, in the order -D, -L, -R (each in the order given). */
  forwards: TcpForwardSpec[];
}

/**
 * @example
 * const settings = resolveTunnelSettings({ host: "home", user: undefined, configLines }, files, local, log.warn);
 * settings.forwards[0]; // { kind: "dynamic", listen: { address: null, port: 9001 }, raw: "9001" }
 *
 * `warn` receives what deserves a line but does not stop the run (a skipped
 * Match block, an ignored algorithm list), as soon as it is known.
 */
export function resolveTunnelSettings(request: TunnelRequest, files: ParsedConfig[], local: LocalEnvironment, warn: (message: string) => void): TunnelSettings {
  const lookup = lookupFor(request.host, request.user, [commandLineConfig(request.configLines), ...files], local, warn);
  const destination = resolveDestination(request.host, lookup, local);

  const forwards = [
    ...parseForwards("dynamic", destination.dynamicForwards),
    ...parseForwards("local", destination.localForwards),
    ...parseForwards("remote", destination.remoteForwards),
  ].map(requireTcpForward);
  if (forwards.length === 0) {
    throw new TunnelError("USAGE", "nothing to forward: give -D [bind_address:]port (e.g. safetunnel -D 9001 user@home), or -L/-R, or DynamicForward in ssh_config");
  }

  // Each ProxyJump hop is its own `ssh` in OpenSSH (ssh_config(5) ProxyJump):
  // it reads the config files for its own name and keeps only the address
  // family from our command line.
  const familyLines = request.configLines.filter((line) => line.keyword === "addressfamily");
  const jumps = destination.jumps.map((jump) => {
    const lines = [...familyLines];
    if (jump.user !== undefined) lines.push({ keyword: "user", args: [jump.user], source: "-J" });
    if (jump.port !== undefined) lines.push({ keyword: "port", args: [String(jump.port)], source: "-J" });
    const jumpLookup = lookupFor(jump.host, jump.user, [commandLineConfig(lines), ...files], local, warn);
    return resolveHop(jump.host, jumpLookup, local);
  });
  return { destination, jumps, forwards };
}

function lookupFor(host: string, user: string | undefined, configs: ParsedConfig[], local: LocalEnvironment, warn: (message: string) => void): HostLookup {
  const lookup = lookupHost(host, configs, { localUser: local.localUser, ...(user !== undefined ? { user } : {}) });
  for (const warning of lookup.warnings) warn(warning);
  const problems = unsupportedSettings(host, lookup);
  for (const warning of problems.warnings) warn(warning);
  if (problems.errors.length > 0) throw new TunnelError("BAD_CONFIG", problems.errors[0]!);
  return lookup;
}

/** Flags carry one argument (`-L 9001:host:80`); ssh_config lines two (`LocalForward 9001 host:80`). */
function parseForwards(kind: ForwardKind, entries: string[][]) {
  return entries.map((args) => (args.length === 1 ? parseForwardSpec(kind, args[0]!) : parseForwardConfigArgs(kind, args)));
}
