/**
 * Which settings apply to a host: the command line (as config lines), then
 * ~/.ssh/config (or -F), then /etc/ssh/ssh_config, first value wins — the
 * order OpenSSH reads them in. Jump hosts get their own lookup, as each
 * ProxyJump hop is its own `ssh` in OpenSSH.
 */
import type { ConfigLine } from "../cli.ts";
import { loadSshConfig, resolveHostConfig, type ParsedConfig, MULTI_VALUED_KEYWORDS } from "./ssh-config.ts";
import type { OptionLookup } from "./settings.ts";

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
    first: (keyword) => result.options.get(keyword),
    all: (keyword) => {
      if (MULTI_VALUED_KEYWORDS.has(keyword)) return result.multi.get(keyword) ?? [];
      const value = result.options.get(keyword);
      return value === undefined ? [] : [value];
    },
  };
}
