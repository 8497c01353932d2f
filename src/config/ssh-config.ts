/**
 * ssh_config(5) for one destination, matching OpenSSH's readconf.c: files are
 * read in order (user config, then /etc/ssh/ssh_config), the first value
 * obtained for a keyword wins, and a handful of keywords accumulate.
 *
 * This module is the public face; each step lives in its own module:
 * - config/keywords.ts: the keyword table (names, aliases, what we do with each)
 * - config/parse-ssh-config.ts: text to blocks of directives (`parseSshConfig`, pure)
 * - config/load-ssh-config.ts: the files of a run and their `Include`s (`loadConfigFiles`, `loadSshConfig`)
 * - config/evaluate-match.ts: whether a `Match` block applies
 * - config/resolve-host-config.ts: the blocks for one host, first value wins (`resolveHostConfig`)
 * - config/expand-tokens.ts: `%` tokens and `~` (`expandTokens`, `expandTilde`)
 * - config/patterns.ts: Host pattern lists (`hostPatternListMatches`)
 *
 * Values stay raw strings: interpreting ports, yes/no flags or forward specs
 * is the caller's job, so unknown keywords survive for the caller to judge.
 */
export { MULTI_VALUED_KEYWORDS } from "./keywords.ts";
export {
  parseSshConfig,
  type ConfigBlock,
  type ConfigDirective,
  type ConfigEntry,
  type MatchCriterion,
  type ParsedConfig,
} from "./parse-ssh-config.ts";
export { loadConfigFiles, loadSshConfig, MAX_INCLUDE_DEPTH, type ConfigSources, type LoadOptions, type SystemConfigLocation } from "./load-ssh-config.ts";
export {
  firstValue,
  resolveHostConfig,
  type ResolveContext,
  type ResolvedConfig,
  type ResolveResult,
} from "./resolve-host-config.ts";
export { expandTilde, expandTokens, type TokenValues } from "./expand-tokens.ts";
export { hostPatternListMatches } from "./patterns.ts";
