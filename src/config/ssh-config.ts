/**
 * ssh_config(5) resolution for one destination, matching OpenSSH's readconf.c:
 * files are read in order (user config, then /etc/ssh/ssh_config), the first
 * value obtained for a keyword wins, and a handful of keywords accumulate.
 *
 * Parsing is pure (`parseSshConfig`); `loadSshConfig` adds the file system for
 * `Include`; `resolveHostConfig` walks the parsed files for one host. Values
 * stay raw strings: interpreting ports, yes/no flags or forward specs is the
 * caller's job, so unknown keywords survive for the caller to judge.
 */
import { readFile as fsReadFile, readdir } from "node:fs/promises";
import { Buffer } from "node:buffer";
import { TunnelError, errnoCode } from "../errors.ts";
import { hostPatternListMatches, matchPattern } from "./patterns.ts";

export { hostPatternListMatches };

/** One `Keyword args...` line. `keyword` is lowercased and de-aliased. */
export interface ConfigDirective {
  keyword: string;
  args: string[];
  file: string;
  line: number;
}

/**
 * An entry inside a block. An `include` keeps its position so that, as in
 * OpenSSH, an Include inside a Host block only applies when that block does.
 * `configs` is empty after `parseSshConfig` and filled by `loadSshConfig`.
 */
export type ConfigEntry =
  | { kind: "option"; directive: ConfigDirective }
  | { kind: "include"; directive: ConfigDirective; configs: ParsedConfig[] };

/** One `Match` condition such as `!host *.example.com` or `all`. */
export interface MatchCriterion {
  /** Lowercased attribute name: all, canonical, final, host, originalhost, user, localuser, exec... */
  attribute: string;
  negated: boolean;
  /** The pattern list or command; absent for all, canonical and final. */
  arg?: string;
}

/**
 * `global` holds the lines before the first Host or Match (they apply to every
 * host); each Host or Match line starts a new block that runs to the next one.
 */
export type ConfigBlock =
  | { kind: "global"; entries: ConfigEntry[] }
  | { kind: "host"; patterns: string[]; file: string; line: number; entries: ConfigEntry[] }
  | { kind: "match"; criteria: MatchCriterion[]; file: string; line: number; entries: ConfigEntry[] };

/** A parsed file; `blocks[0]` is always the `global` block. */
export interface ParsedConfig {
  file: string;
  blocks: ConfigBlock[];
}

export interface LoadOptions {
  /** Used for `~` and for relative Include paths in the user config (`~/.ssh/`). */
  homeDir: string;
  readFile?: (path: string) => Promise<string>;
  /** Names (not paths) of the entries in a directory, for Include globs. */
  listDir?: (path: string) => Promise<string[]>;
  /** Base of relative Include paths in the system config; `/etc/ssh` by default. */
  systemDir?: string;
}

export interface ResolveContext {
  /** The destination as typed by the user, after `user@` is stripped. */
  host: string;
  localUser: string;
  /** From `-l` or `user@host`, when given; consulted by `Match user`. */
  user?: string;
}

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

/** Values for `expandTokens`; a token whose value is absent is an error when used. */
export interface TokenValues {
  h: string;
  p: string;
  r: string;
  u: string;
  d: string;
  n?: string;
  l?: string;
  L?: string;
  i?: string;
  C?: string;
}

/**
 * Keywords whose lines accumulate across every matching block instead of
 * first-wins. UserKnownHostsFile and GlobalKnownHostsFile are deliberately
 * absent: OpenSSH takes several files on one line and the first line wins.
 * SetEnv is listed so callers see every line, but OpenSSH 9 keeps only the
 * first active SetEnv line, which is what `options.get("setenv")` holds.
 */
export const MULTI_VALUED_KEYWORDS: ReadonlySet<string> = new Set([
  "identityfile",
  "certificatefile",
  "localforward",
  "remoteforward",
  "dynamicforward",
  "sendenv",
  "setenv",
]);

/** readconf.c READCONF_MAX_DEPTH: the top file is depth 0, so 16 nested Includes are allowed. */
export const MAX_INCLUDE_DEPTH = 16;

/**
 * These take the rest of the line verbatim (quotes, `#` and spacing intact)
 * because it goes to a shell, as in readconf.c's parse_command.
 */
const COMMAND_KEYWORDS: ReadonlySet<string> = new Set([
  "proxycommand",
  "localcommand",
  "remotecommand",
  "knownhostscommand",
]);

/** Old spellings OpenSSH still accepts for the same option (checked with `ssh -G`). */
const KEYWORD_ALIASES: ReadonlyMap<string, string> = new Map([
  ["pubkeyacceptedkeytypes", "pubkeyacceptedalgorithms"],
  ["hostbasedkeytypes", "hostbasedacceptedalgorithms"],
  ["challengeresponseauthentication", "kbdinteractiveauthentication"],
  ["skeyauthentication", "kbdinteractiveauthentication"],
  ["tisauthentication", "kbdinteractiveauthentication"],
  ["dsaauthentication", "pubkeyauthentication"],
  ["keepalive", "tcpkeepalive"],
]);

const SPACE = new Set([" ", "\t", "\r", "\n"]);

/**
 * Parses one ssh_config file. Keywords are case-insensitive and may be
 * separated from their arguments by spaces and/or one `=`; arguments follow
 * OpenSSH's argv_split (single and double quotes, backslash escapes, `#` at
 * the start of a word ends the line).
 *
 * @example
 * const cfg = parseSshConfig("Host web\n  Port=2222\n", "~/.ssh/config");
 * // cfg.blocks[1] -> { kind: "host", patterns: ["web"], entries: [{ kind: "option",
 * //   directive: { keyword: "port", args: ["2222"], file: "~/.ssh/config", line: 2 } }], ... }
 */
export function parseSshConfig(text: string, file: string): ParsedConfig {
  const global: ConfigBlock = { kind: "global", entries: [] };
  const blocks: ConfigBlock[] = [global];
  let current: ConfigBlock = global;
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    const fail = (message: string): TunnelError =>
      new TunnelError("BAD_CONFIG", `${file} line ${line}: ${message}`);
    const split = splitKeyword(lines[index] ?? "");
    if (split === undefined) continue;
    const typed = split.keyword;
    const lower = typed.toLowerCase();
    const keyword = KEYWORD_ALIASES.get(lower) ?? lower;
    if (split.rest === "") throw fail(`no argument after keyword "${typed}"; add a value or remove the line`);
    const words = splitArgs(split.rest);
    if (words === undefined) {
      throw fail(`unbalanced quotes after "${typed}"; close the quote or escape it with a backslash`);
    }
    if (keyword === "host") {
      if (words.length === 0) throw fail(`Host needs at least one pattern; add one or remove the line`);
      if (words.includes("")) throw fail(`empty pattern in Host; remove the "" argument`);
      current = { kind: "host", patterns: words, file, line, entries: [] };
      blocks.push(current);
      continue;
    }
    if (keyword === "match") {
      current = { kind: "match", criteria: parseMatchCriteria(words, fail), file, line, entries: [] };
      blocks.push(current);
      continue;
    }
    let args = words;
    if (COMMAND_KEYWORDS.has(keyword)) {
      args = [split.rest.replace(/^[ \t\r\n=]+/, "")];
    } else if (args.length === 0) {
      throw fail(`missing argument for "${typed}"; add a value or remove the line`);
    }
    const directive: ConfigDirective = { keyword, args, file, line };
    if (keyword === "include") {
      if (args.includes("")) throw fail(`empty path in Include; remove the "" argument`);
      current.entries.push({ kind: "include", directive, configs: [] });
    } else {
      current.entries.push({ kind: "option", directive });
    }
  }
  return { file, blocks };
}

/**
 * Reads a config file and everything it Includes. A missing file gives an
 * empty config (as ssh does for ~/.ssh/config), unless `required` (for `-F`).
 * Include paths may be globs (`*`, `?`), are expanded in sorted order, are
 * relative to `~/.ssh` (user) or `/etc/ssh` (`system: true`), and may nest at
 * most 16 deep.
 *
 * @example
 * const user = await loadSshConfig(`${home}/.ssh/config`, { homeDir: home });
 * const system = await loadSshConfig("/etc/ssh/ssh_config", { homeDir: home, system: true });
 * const { options } = resolveHostConfig([user, system], { host: "web", localUser: "me" });
 */
export async function loadSshConfig(
  path: string,
  options: LoadOptions & { system?: boolean; required?: boolean },
): Promise<ParsedConfig> {
  const env: LoadEnv = {
    homeDir: options.homeDir,
    readFile: options.readFile ?? ((p) => fsReadFile(p, "utf8")),
    listDir: options.listDir ?? ((p) => readdir(p)),
    includeBase: options.system ? (options.systemDir ?? "/etc/ssh") : `${trimSlash(options.homeDir)}/.ssh`,
    system: options.system ?? false,
  };
  const loaded = await loadFile(path, 0, env, undefined);
  if (loaded !== undefined) return loaded;
  if (options.required) {
    throw new TunnelError("BAD_CONFIG", `cannot read config file ${path}: it does not exist; check the -F path`);
  }
  return { file: path, blocks: [{ kind: "global", entries: [] }] };
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

/**
 * Expands ssh_config `%` tokens. `%%` is a literal `%`; any other token not
 * given in `tokens` is an error, as OpenSSH's percent_expand makes it fatal.
 *
 * @example
 * expandTokens("~/.ssh/cm-%r@%h:%p", { h: "web", p: "22", r: "deploy", u: "me", d: "/home/me" });
 * // "~/.ssh/cm-deploy@web:22"
 */
export function expandTokens(value: string, tokens: TokenValues): string {
  return expandPercent(value, tokens as unknown as Record<string, string | undefined>);
}

/**
 * Expands a leading `~` or `~/` to the home directory. `~user` is refused
 * rather than guessed, since finding another user's home needs the passwd db.
 *
 * @example
 * expandTilde("~/.ssh/id_ed25519", "/home/me"); // "/home/me/.ssh/id_ed25519"
 */
export function expandTilde(path: string, homeDir: string): string {
  if (!path.startsWith("~")) return path;
  if (path === "~") return homeDir;
  if (path.startsWith("~/")) {
    const home = trimSlash(homeDir);
    return home === "" ? path.slice(1) : home + path.slice(1);
  }
  const user = path.slice(1).split("/")[0];
  throw new TunnelError(
    "BAD_CONFIG",
    `cannot expand "~${user}" in ${path}: only ~ and ~/ are supported; write the full path instead`,
  );
}

// ---------------------------------------------------------------- parsing

/**
 * Splits off the keyword the way readconf.c's strdelim does: the keyword ends
 * at whitespace or `=`, and at most one `=` (with spaces around it) separates
 * it from the arguments. Undefined for blank and comment lines.
 */
function splitKeyword(raw: string): { keyword: string; rest: string } | undefined {
  // OpenSSH strips trailing whitespace, including \r from CRLF files and \f.
  const line = raw.replace(/[ \t\r\n\f]+$/, "");
  let i = 0;
  while (i < line.length && SPACE.has(line[i] as string)) i++;
  const start = i;
  while (i < line.length && !SPACE.has(line[i] as string) && line[i] !== "=") i++;
  const keyword = line.slice(start, i);
  // An empty keyword (a line starting with "=") is silently ignored by OpenSSH too.
  if (keyword === "" || keyword.startsWith("#")) return undefined;
  const skipSpace = (): void => {
    while (i < line.length && SPACE.has(line[i] as string)) i++;
  };
  if (line[i] === "=") {
    i++;
    skipSpace();
  } else {
    skipSpace();
    if (line[i] === "=") {
      i++;
      skipSpace();
    }
  }
  return { keyword, rest: line.slice(i) };
}

/**
 * Word splitting as in OpenSSH's misc.c argv_split with comments enabled.
 * Undefined when a quote is left open.
 */
function splitArgs(text: string): string[] | undefined {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    if (c === "#") break;
    let word = "";
    let quote = "";
    for (; i < text.length; i++) {
      const ch = text[i] as string;
      if (ch === "\\") {
        const next = text[i + 1];
        if (next === "'" || next === '"' || next === "\\" || (quote === "" && next === " ")) {
          word += next;
          i++;
        } else {
          word += ch;
        }
      } else if (quote === "" && (ch === " " || ch === "\t")) {
        break;
      } else if (quote === "" && (ch === '"' || ch === "'")) {
        quote = ch;
      } else if (quote !== "" && ch === quote) {
        quote = "";
      } else {
        word += ch;
      }
    }
    if (quote !== "") return undefined;
    words.push(word);
  }
  return words;
}

/**
 * `Match [!]attr arg ...`, also `attr=arg` (accepted by OpenSSH 9). `all`
 * must come last, as readconf.c refuses anything after it.
 */
function parseMatchCriteria(words: string[], fail: (message: string) => TunnelError): MatchCriterion[] {
  if (words.length === 0) throw fail(`Match needs at least one condition, e.g. "Match host NAME" or "Match all"`);
  const criteria: MatchCriterion[] = [];
  let i = 0;
  while (i < words.length) {
    let word = words[i++] as string;
    const negated = word.startsWith("!");
    if (negated) word = word.slice(1);
    const eq = word.indexOf("=");
    const attribute = (eq >= 0 ? word.slice(0, eq) : word).toLowerCase();
    let arg = eq >= 0 ? word.slice(eq + 1) : undefined;
    if (attribute === "all" || attribute === "canonical" || attribute === "final") {
      if (arg !== undefined) throw fail(`Match ${attribute} takes no argument; remove "=${arg}"`);
      if (attribute === "all" && i < words.length) {
        throw fail(`'all' cannot be combined with other Match conditions; remove "all" or the conditions after it`);
      }
      criteria.push({ attribute, negated });
      continue;
    }
    if (attribute === "") throw fail(`empty Match condition; remove the stray "!" or "="`);
    if (arg === undefined) {
      if (i >= words.length) throw fail(`missing argument for Match ${attribute}; add a pattern after it`);
      arg = words[i++] as string;
    }
    if (arg === "") throw fail(`empty argument for Match ${attribute}; add a pattern after it`);
    criteria.push({ attribute, negated, arg });
  }
  return criteria;
}

// ---------------------------------------------------------------- loading

interface LoadEnv {
  homeDir: string;
  readFile: (path: string) => Promise<string>;
  listDir: (path: string) => Promise<string[]>;
  includeBase: string;
  system: boolean;
}

/** Undefined when the file does not exist. */
async function loadFile(
  path: string,
  depth: number,
  env: LoadEnv,
  includedFrom: ConfigDirective | undefined,
): Promise<ParsedConfig | undefined> {
  let text: string;
  try {
    text = await env.readFile(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    // glob() also returns directories; OpenSSH opens them and reads nothing.
    if (code === "EISDIR") text = "";
    else {
      const where = includedFrom ? `${includedFrom.file} line ${includedFrom.line}: ` : "";
      const reason = err instanceof Error ? err.message : String(err);
      throw new TunnelError("BAD_CONFIG", `${where}cannot read config file ${path} (${reason}); fix its permissions`, {
        cause: err,
      });
    }
  }
  if (depth > MAX_INCLUDE_DEPTH && includedFrom !== undefined) {
    throw new TunnelError(
      "BAD_CONFIG",
      `${includedFrom.file} line ${includedFrom.line}: Include nested more than ${MAX_INCLUDE_DEPTH} levels deep (at ${path}); remove the Include loop`,
    );
  }
  return expandIncludes(parseSshConfig(text, path), depth, env);
}

async function expandIncludes(config: ParsedConfig, depth: number, env: LoadEnv): Promise<ParsedConfig> {
  const blocks: ConfigBlock[] = [];
  for (const block of config.blocks) {
    const entries: ConfigEntry[] = [];
    for (const entry of block.entries) {
      if (entry.kind === "option") {
        entries.push(entry);
        continue;
      }
      const configs: ParsedConfig[] = [];
      for (const arg of entry.directive.args) {
        for (const path of await expandGlob(includePath(arg, entry.directive, env), env.listDir)) {
          const child = await loadFile(path, depth + 1, env, entry.directive);
          if (child !== undefined) configs.push(child);
        }
      }
      entries.push({ kind: "include", directive: entry.directive, configs });
    }
    blocks.push({ ...block, entries });
  }
  return { file: config.file, blocks };
}

/** readconf.c anchors relative paths in ~/.ssh or /etc/ssh and refuses `~` in system files. */
function includePath(arg: string, directive: ConfigDirective, env: LoadEnv): string {
  if (arg.startsWith("~")) {
    if (env.system) {
      throw new TunnelError(
        "BAD_CONFIG",
        `${directive.file} line ${directive.line}: Include path ${arg} may not start with ~ in the system config; use an absolute path`,
      );
    }
    return expandTilde(arg, env.homeDir);
  }
  return arg.startsWith("/") ? arg : `${env.includeBase}/${arg}`;
}

/**
 * A small glob(3): `*` and `?` in any path component, no dot-files unless the
 * component starts with `.`, results sorted bytewise as glob sorts them. A
 * path without wildcards is returned as is (a missing file is skipped later).
 */
async function expandGlob(pattern: string, listDir: (path: string) => Promise<string[]>): Promise<string[]> {
  if (!/[*?]/.test(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  const parts = pattern.split("/").filter((part) => part !== "");
  let prefixes = [absolute ? "" : "."];
  for (const part of parts) {
    const next: string[] = [];
    if (!/[*?]/.test(part)) {
      for (const prefix of prefixes) next.push(`${prefix}/${part}`);
    } else {
      for (const prefix of prefixes) {
        let names: string[];
        try {
          names = await listDir(prefix === "" ? "/" : prefix);
        } catch {
          // glob(3) without GLOB_ERR skips directories it cannot read.
          continue;
        }
        for (const name of names) {
          if (name.startsWith(".") && !part.startsWith(".")) continue;
          if (matchPattern(name, part)) next.push(`${prefix}/${name}`);
        }
      }
    }
    prefixes = next;
  }
  const paths = absolute ? prefixes : prefixes.map((p) => p.slice(2));
  return paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

// ---------------------------------------------------------------- resolving

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
    else blockActive = matchBlockApplies(block, state);
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

/**
 * All conditions must hold (readconf.c match_cfg_line). Conditions we cannot
 * evaluate make the block not match; they only earn a warning when every
 * supported condition held, since otherwise the block was skipped anyway.
 */
function matchBlockApplies(block: Extract<ConfigBlock, { kind: "match" }>, state: ResolveState): boolean {
  const { ctx, result } = state;
  let allHeld = true;
  const unsupported: string[] = [];
  for (const criterion of block.criteria) {
    let held: boolean;
    const list = (criterion.arg ?? "").split(",");
    switch (criterion.attribute) {
      case "all":
        held = true;
        break;
      // We never canonicalise and do no final pass. OpenSSH's first pass sees
      // these as false, but its final pass applies `canonical` and `final`
      // blocks: so they count as unsupported (refused if they route us).
      case "canonical":
      case "final":
        if (!criterion.negated) {
          unsupported.push(criterion.attribute);
          continue;
        }
        held = false; // first pass: not canonical, not final; "!" below makes it true
        break;
      case "host":
        held = hostPatternListMatches(list, currentHostName(ctx, result));
        break;
      case "originalhost":
        held = hostPatternListMatches(list, ctx.host);
        break;
      case "user":
        // match_cfg_line uses the User known so far (command line, then config), else the local user.
        held = hostPatternListMatches(list, ctx.user ?? firstValue(result.options, "user") ?? ctx.localUser, {
          ignoreCase: false,
        });
        break;
      case "localuser":
        held = hostPatternListMatches(list, ctx.localUser, { ignoreCase: false });
        break;
      default:
        unsupported.push(criterion.attribute);
        continue;
    }
    if (criterion.negated) held = !held;
    if (!held) allHeld = false;
  }
  if (!allHeld) return false;
  if (unsupported.length > 0) {
    // Skipping a block that may route the connection or vouch for a host key
    // could connect somewhere the user did not mean (directly instead of
    // through their proxy): refuse. Other blocks are skipped with a warning.
    const risky = blockKeywords(block.entries).filter((keyword) => ROUTING_KEYWORDS.has(keyword));
    if (risky.length > 0) {
      throw new TunnelError(
        "BAD_CONFIG",
        `${block.file} line ${block.line}: Match ${unsupported[0]} is not supported, and that block sets ${[...new Set(risky)].map((k) => ROUTING_KEYWORDS.get(k)).join(", ")}; skipping it could connect another way than you configured. Move those settings into a Host block for this host instead`,
      );
    }
    // Say so only when the block sets something we would use; a distribution's
    // `Match final` block of crypto policies and SendEnv is no news to anyone.
    if (blockKeywords(block.entries).some((keyword) => RELEVANT_KEYWORDS.has(keyword))) {
      for (const attribute of new Set(unsupported)) {
        result.warnings.push(`${block.file} line ${block.line}: Match ${attribute} is not supported; ignoring that block`);
      }
    }
  }
  return unsupported.length === 0;
}

/** Keywords that decide where and how we connect, or which host keys we trust. */
const ROUTING_KEYWORDS = new Map(
  [
    "HostName", "Port", "User", "ProxyCommand", "ProxyJump", "HostKeyAlias", "StrictHostKeyChecking",
    "UserKnownHostsFile", "GlobalKnownHostsFile", "KnownHostsCommand", "RevokedHostKeys", "IdentityFile",
    "IdentityAgent", "IdentitiesOnly", "AddressFamily", "BindAddress",
  ].map((name) => [name.toLowerCase(), name]),
);

/** Other keywords safetunnel acts on: skipping a block that sets them deserves a warning. */
const RELEVANT_KEYWORDS = new Set([
  "batchmode", "connecttimeout", "dynamicforward", "exitonforwardfailure", "gatewayports", "hashknownhosts",
  "localforward", "numberofpasswordprompts", "preferredauthentications", "remoteforward", "serveralivecountmax",
  "serveraliveinterval",
]);

function blockKeywords(entries: ConfigEntry[]): string[] {
  return entries.flatMap((entry) =>
    entry.kind === "option"
      ? [entry.directive.keyword]
      : entry.configs.flatMap((config) => config.blocks.flatMap((b) => blockKeywords(b.entries))),
  );
}

/** `Match host` sees HostName (with %h expanded) once set, else the typed host. */
function currentHostName(ctx: ResolveContext, result: ResolveResult): string {
  const hostName = firstValue(result.options, "hostname");
  return hostName === undefined ? ctx.host : expandPercent(hostName, { h: ctx.host });
}

// ---------------------------------------------------------------- helpers

function expandPercent(value: string, tokens: Record<string, string | undefined>): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== "%") {
      out += c;
      continue;
    }
    const key = value[i + 1];
    i++;
    if (key === undefined) {
      throw new TunnelError("BAD_CONFIG", `"${value}" ends with a lone %; write %% for a literal percent sign`);
    }
    if (key === "%") {
      out += "%";
      continue;
    }
    const replacement = Object.hasOwn(tokens, key) ? tokens[key] : undefined;
    if (replacement === undefined) {
      const known = Object.keys(tokens)
        .filter((k) => tokens[k] !== undefined)
        .map((k) => `%${k}`)
        .join(" ");
      throw new TunnelError(
        "BAD_CONFIG",
        `unknown token %${key} in "${value}"; use one of ${known} or write %% for a literal percent sign`,
      );
    }
    out += replacement;
  }
  return out;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path === "/" ? "" : path;
}

