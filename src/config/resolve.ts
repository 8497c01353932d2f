/**
 * Which settings apply to a host: the command line (as config lines), then
 * ~/.ssh/config (or -F), then /etc/ssh/ssh_config, first value wins — the
 * order OpenSSH reads them in. Jump hosts get their own lookup, as each
 * ProxyJump hop is its own `ssh` in OpenSSH.
 */
import { loadSshConfig, resolveHostConfig, type ParsedConfig, MULTI_VALUED_KEYWORDS } from "./ssh-config.ts";
import type { OptionLookup } from "./settings.ts";

/** One setting from the command line as an ssh_config line (`-p 2222` is `Port 2222`). */
export interface ConfigLine {
  /** Lower case, as ssh_config keywords are compared. */
  keyword: string;
  args: string[];
  /** Where it came from, for error messages: "-p", "-o", ... */
  source: string;
}

export interface ConfigSources {
  files: ParsedConfig[];
}

/**
 * @example
 * const sources = await loadConfigFiles(undefined, "/home/me");
 */
export async function loadConfigFiles(configFile: string | undefined, homeDir: string): Promise<ConfigSources> {
  if (configFile !== undefined) {
    // ssh -F: that file only, no system-wide file; "-F none" reads nothing.
    if (configFile.toLowerCase() === "none") return { files: [] };
    return { files: [await loadSshConfig(configFile, { homeDir, required: true })] };
  }
  const user = await loadSshConfig(`${homeDir}/.ssh/config`, { homeDir });
  const system = await loadSshConfig("/etc/ssh/ssh_config", { homeDir, system: true });
  return { files: [user, system] };
}

/** Command-line lines as a config file of their own, read before all others. */
export function commandLineConfig(lines: ConfigLine[]): ParsedConfig {
  return {
    file: "command line",
    blocks: [
      {
        kind: "global",
        entries: lines.map((line, index) => ({
          kind: "option" as const,
          directive: { keyword: line.keyword, args: line.args, file: `command line (${line.source})`, line: index + 1 },
        })),
      },
    ],
  };
}

export interface HostLookup extends OptionLookup {
  warnings: string[];
  /** "file line N" of the directive that set `keyword`, for messages. */
  where(keyword: string): string | undefined;
}

/**
 * @example
 * const lookup = lookupHost("home", [commandLineConfig(lines), ...sources.files], { localUser: "me" });
 * lookup.first("port") // ["2222"]
 */
export function lookupHost(alias: string, configs: ParsedConfig[], ctx: { localUser: string; user?: string }): HostLookup {
  const result = resolveHostConfig(configs, { host: alias, localUser: ctx.localUser, ...(ctx.user !== undefined ? { user: ctx.user } : {}) });
  return {
    warnings: result.warnings,
    where: (keyword) => {
      const directive = result.sources.get(keyword);
      if (directive === undefined) return undefined;
      // Command-line lines are named by their flag: "command line (-o)".
      return directive.file.startsWith("command line") ? directive.file : `${directive.file} line ${directive.line}`;
    },
    first: (keyword) => result.options.get(keyword),
    all: (keyword) => {
      if (MULTI_VALUED_KEYWORDS.has(keyword)) return result.multi.get(keyword) ?? [];
      const value = result.options.get(keyword);
      return value === undefined ? [] : [value];
    },
  };
}

/**
 * ssh_config settings safetunnel cannot honour and must not silently skip:
 * ignoring ProxyCommand would connect directly (and resolve HostName through
 * the local DNS) when the user asked to go through a proxy or Tor; ignoring
 * KnownHostsCommand or RevokedHostKeys would accept keys the user rejects.
 * Returns the problems as messages; algorithm lists only get a warning.
 */
export function unsupportedSettings(alias: string, lookup: HostLookup): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const set = (keyword: string): boolean => {
    const value = lookup.first(keyword)?.[0];
    return value !== undefined && value.toLowerCase() !== "none";
  };
  if (set("proxycommand")) {
    errors.push(
      `ProxyCommand is set for ${alias} (${lookup.where("proxycommand")}), and safetunnel cannot run it; connecting directly would bypass that proxy. Use ProxyJump instead, or remove ProxyCommand for this host`,
    );
  }
  const canonicalize = lookup.first("canonicalizehostname")?.[0]?.toLowerCase();
  if (canonicalize !== undefined && canonicalize !== "no" && canonicalize !== "false") {
    // ssh would re-read the config for the canonical name, where a Host block may
    // route through a proxy; resolving without it could connect directly.
    errors.push(
      `CanonicalizeHostname is set for ${alias} (${lookup.where("canonicalizehostname")}), and safetunnel does not canonicalize; give the full host name and remove CanonicalizeHostname for this host`,
    );
  }
  if (set("knownhostscommand")) {
    errors.push(
      `KnownHostsCommand is set for ${alias} (${lookup.where("knownhostscommand")}), and safetunnel cannot run it; put the host's key in known_hosts instead (ssh-keyscan), or remove the setting for this host`,
    );
  }
  if (set("revokedhostkeys")) {
    errors.push(
      `RevokedHostKeys is set for ${alias} (${lookup.where("revokedhostkeys")}), and safetunnel cannot read it; mark revoked keys with @revoked lines in known_hosts instead, or remove the setting for this host`,
    );
  }
  for (const [keyword, name] of [["ciphers", "Ciphers"], ["kexalgorithms", "KexAlgorithms"], ["macs", "MACs"], ["hostkeyalgorithms", "HostKeyAlgorithms"]] as const) {
    if (set(keyword)) warnings.push(`${name} (${lookup.where(keyword)}) is not supported; safetunnel uses its own modern defaults for ${alias}.`);
  }
  return { errors, warnings };
}
