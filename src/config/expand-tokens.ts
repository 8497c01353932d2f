/**
 * ssh_config's `%` tokens and `~` in paths, expanded as OpenSSH's
 * percent_expand and tilde_expand_filename do, as far as we can without the
 * passwd database. Pure.
 */
import { TunnelError, echoValue } from "../errors.ts";

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
    `cannot expand ${echoValue(`~${user}`, '"')} in ${echoValue(path)}: only ~ and ~/ are supported; write the full path instead`,
  );
}

/**
 * `expandTokens` for any set of tokens, such as the `%h` alone that
 * `Match host` knows before the other tokens are settled.
 *
 * @example
 * expandPercent("%h.example.com", { h: "web" }); // "web.example.com"
 */
export function expandPercent(value: string, tokens: Record<string, string | undefined>): string {
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
      throw new TunnelError("BAD_CONFIG", `${echoValue(value, '"')} ends with a lone %; write %% for a literal percent sign`);
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
        `unknown token %${key} in ${echoValue(value, '"')}; use one of ${known} or write %% for a literal percent sign`,
      );
    }
    out += replacement;
  }
  return out;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path === "/" ? "" : path;
}
