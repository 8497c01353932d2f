/**
 * Which settings apply to a host: the command line (as config lines), then
 * the files loadConfigFiles read (~/.ssh/config or -F, then
 * /etc/ssh/ssh_config), first value wins, the order OpenSSH reads them in;
 * and the settings safetunnel must refuse rather than skip. Jump hosts get
 * their own lookup, as each ProxyJump hop is its own `ssh` in OpenSSH.
 */
import { echoValue } from "../errors.ts";
import { KEYWORDS, MULTI_VALUED_KEYWORDS } from "./keywords.ts";
import type { ParsedConfig } from "./parse-ssh-config.ts";
import { resolveHostConfig } from "./resolve-host-config.ts";
import type { OptionLookup } from "./settings.ts";

/** One setting from the command line as an ssh_config line (`-p 2222` is `Port 2222`). */
export interface ConfigLine {
  /** Lower case, as ssh_config keywords are compared. */
  keyword: string;
  args: string[];
  /** Where it came from, for error messages: "-p", "-o", ... */
  source: string;
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
 * ssh_config settings safetunnel cannot honour and must not silently skip
 * (treatment `refused` in config/keywords.ts, which says why for each), and
 * those it only warns about (`warned`: the algorithm lists). Only the first
 * value counts, as everywhere in ssh_config. Messages name the keyword, the
 * host and where the setting came from.
 *
 * @example
 * unsupportedSettings("web", lookup).errors[0];
 * // "ProxyCommand is set for web (~/.ssh/config line 3), and safetunnel cannot run it; ..."
 */
export function unsupportedSettings(alias: string, lookup: HostLookup): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const { keyword, name, treatment } of KEYWORDS) {
    if (treatment.kind !== "refused" && treatment.kind !== "warned") continue;
    const value = lookup.first(keyword)?.[0];
    if (value === undefined || treatment.offValues.includes(value.toLowerCase())) continue;
    if (treatment.kind === "refused") {
      errors.push(`${name} is set for ${echoValue(alias)} (${lookup.where(keyword)}), and safetunnel ${treatment.reason}; ${treatment.fix}`);
    } else {
      warnings.push(`${name} (${lookup.where(keyword)}) is not supported; ${treatment.instead} for ${echoValue(alias)}.`);
    }
  }
  return { errors, warnings };
}
