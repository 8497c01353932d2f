/**
 * ssh_config resolution for one destination, as readconf.c does it: configs
 * are applied in order (command line, user file, system file), Host and Match
 * decide which blocks are active, the first value obtained for a keyword
 * wins, and the multi-valued keywords accumulate. Pure.
 */
import { MULTI_VALUED_KEYWORDS } from "./keywords.ts";
import { hostPatternListMatches } from "./patterns.ts";
import { matchBlockApplies, type ResolveContext } from "./evaluate-match.ts";
import type { ConfigDirective, ParsedConfig } from "./parse-ssh-config.ts";

export type { ResolveContext };

/** Lowercased keyword -> the args of the first active directive that set it. */
export type ResolvedConfig = Map<string, string[]>;

export interface ResolveResult {
  options: ResolvedConfig;
  /** For MULTI_VALUED_KEYWORDS: the args of every active line, in order. */
  multi: Map<string, string[][]>;
  /** The directive behind each entry of `options`, for error messages naming file and line. */
  sources: Map<string, ConfigDirective>;
  /** One line each, e.g. `~/.ssh/config line 7: Match exec is not supported; ignoring that block`. */
  warnings: string[];
}

/**
 * Applies the configs, in order, to one destination: Host and Match decide
 * which blocks are active, the first value for a keyword wins, and
 * MULTI_VALUED_KEYWORDS accumulate in `multi`.
 *
 * @example
 * const cfg = parseSshConfig("Host web\n  HostName 192.0.2.7\nHost *\n  HostName ignored\n", "cfg");
 * const { options } = resolveHostConfig([cfg], { host: "web", localUser: "me" });
 * firstValue(options, "hostname"); // "192.0.2.7"
 */
export function resolveHostConfig(configs: ParsedConfig[], ctx: ResolveContext): ResolveResult {
  const state: ResolveState = {
    ctx,
    result: { options: new Map(), multi: new Map(), sources: new Map(), warnings: [] },
  };
  // Each top-level file starts active, as read_config_file() does.
  for (const config of configs) walkConfig(config, state, true, false);
  return state.result;
}

/**
 * The first argument of a resolved keyword.
 *
 * @example
 * firstValue(options, "Port"); // "2222", or undefined when no block set it
 */
export function firstValue(resolved: ResolvedConfig, keyword: string): string | undefined {
  return resolved.get(keyword.toLowerCase())?.[0];
}

interface ResolveState {
  ctx: ResolveContext;
  result: ResolveResult;
}

/**
 * `active` is the state the file starts in (its caller's block state);
 * `neverMatch` mirrors readconf.c's SSHCONF_NEVERMATCH: a file included from
 * an inactive block is parsed only, none of its Host or Match blocks apply.
 */
function walkConfig(config: ParsedConfig, state: ResolveState, active: boolean, neverMatch: boolean): void {
  for (const block of config.blocks) {
    let blockActive: boolean;
    if (block.kind === "global") blockActive = active;
    else if (neverMatch) blockActive = false;
    else if (block.kind === "host") blockActive = hostPatternListMatches(block.patterns, state.ctx.host, { ignoreCase: false });
    else {
      const match = matchBlockApplies(block, state.ctx, state.result.options);
      state.result.warnings.push(...match.warnings);
      blockActive = match.applies;
    }
    for (const entry of block.entries) {
      if (entry.kind === "include") {
        for (const child of entry.configs) walkConfig(child, state, blockActive, neverMatch || !blockActive);
      } else if (blockActive) {
        apply(entry.directive, state.result);
      }
    }
  }
}

function apply(directive: ConfigDirective, result: ResolveResult): void {
  const { keyword, args } = directive;
  if (!result.options.has(keyword)) {
    result.options.set(keyword, args);
    result.sources.set(keyword, directive);
  }
  if (MULTI_VALUED_KEYWORDS.has(keyword)) {
    const list = result.multi.get(keyword) ?? [];
    list.push(args);
    result.multi.set(keyword, list);
  }
}
