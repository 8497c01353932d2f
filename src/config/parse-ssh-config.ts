/**
 * The ssh_config(5) tokenizer and parser: text in, blocks of directives out.
 * Pure. Keywords are lowercased and de-aliased (config/keywords.ts) but not
 * judged: values stay raw strings and unknown keywords survive, so the caller
 * decides what each one means.
 */
import { TunnelError, echoValue } from "../errors.ts";
import { COMMAND_KEYWORDS, currentKeyword } from "./keywords.ts";

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
    const keyword = currentKeyword(lower);
    if (split.rest === "") throw fail(`no argument after keyword ${echoValue(typed, '"')}; add a value or remove the line`);
    const words = splitArgs(split.rest);
    if (words === undefined) {
      throw fail(`unbalanced quotes after ${echoValue(typed, '"')}; close the quote or escape it with a backslash`);
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
      throw fail(`missing argument for ${echoValue(typed, '"')}; add a value or remove the line`);
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
      if (arg !== undefined) throw fail(`Match ${attribute} takes no argument; remove ${echoValue(`=${arg}`, '"')}`);
      if (attribute === "all" && i < words.length) {
        throw fail(`'all' cannot be combined with other Match conditions; remove "all" or the conditions after it`);
      }
      criteria.push({ attribute, negated });
      continue;
    }
    if (attribute === "") throw fail(`empty Match condition; remove the stray "!" or "="`);
    if (arg === undefined) {
      if (i >= words.length) throw fail(`missing argument for Match ${echoValue(attribute)}; add a pattern after it`);
      arg = words[i++] as string;
    }
    if (arg === "") throw fail(`empty argument for Match ${echoValue(attribute)}; add a pattern after it`);
    criteria.push({ attribute, negated, arg });
  }
  return criteria;
}
