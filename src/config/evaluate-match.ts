/**
 * Whether a `Match` block applies, as readconf.c's match_cfg_line decides it
 * on ssh's first pass. Conditions we cannot evaluate (exec, localnetwork,
 * canonical, final...) make the block not match, with a warning, or stop us
 * when skipping the block could connect another way than configured. Pure.
 */
import { TunnelError, echoValue } from "../errors.ts";
import { canonicalKeywordName, ROUTING_KEYWORDS, USED_KEYWORDS } from "./keywords.ts";
import { hostPatternListMatches } from "./patterns.ts";
import { expandPercent } from "./expand-tokens.ts";
import type { ConfigBlock, ConfigEntry } from "./parse-ssh-config.ts";

export type MatchBlock = Extract<ConfigBlock, { kind: "match" }>;

/** The destination that Host and Match lines are judged against. */
export interface ResolveContext {
  /** The destination as typed by the user, after `user@` is stripped. */
  host: string;
  localUser: string;
  /** From `-l` or `user@host`, when given; consulted by `Match user`. */
  user?: string;
}

/**
 * All conditions must hold (readconf.c match_cfg_line). Conditions we cannot
 * evaluate make the block not match; they only earn a warning when every
 * supported condition held, since otherwise the block was skipped anyway.
 * `resolved` is what the lines before this block set (first value wins):
 * `Match host` sees HostName and `Match user` sees User from there.
 *
 * @example
 * const [, block] = parseSshConfig("Match host web.example\n  Port 2222\n", "cfg").blocks;
 * matchBlockApplies(block as MatchBlock, { host: "web", localUser: "me" }, new Map([["hostname", ["web.example"]]]));
 * // { applies: true, warnings: [] }
 */
export function matchBlockApplies(
  block: MatchBlock,
  ctx: ResolveContext,
  resolved: ReadonlyMap<string, readonly string[]>,
): { applies: boolean; warnings: string[] } {
  const warnings: string[] = [];
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
        held = hostPatternListMatches(list, currentHostName(ctx, resolved));
        break;
      case "originalhost":
        held = hostPatternListMatches(list, ctx.host);
        break;
      case "user":
        // match_cfg_line uses the User known so far (command line, then config), else the local user.
        held = hostPatternListMatches(list, ctx.user ?? resolved.get("user")?.[0] ?? ctx.localUser, {
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
  if (!allHeld) return { applies: false, warnings };
  if (unsupported.length > 0) {
    // Skipping a block that may route the connection or vouch for a host key
    // could connect somewhere the user did not mean (directly instead of
    // through their proxy): refuse. Other blocks are skipped with a warning.
    const risky = blockKeywords(block.entries).filter((keyword) => ROUTING_KEYWORDS.has(keyword));
    if (risky.length > 0) {
      throw new TunnelError(
        "BAD_CONFIG",
        `${block.file} line ${block.line}: Match ${echoValue(unsupported[0]!)} is not supported, and that block sets ${[...new Set(risky)].map((keyword) => canonicalKeywordName(keyword)).join(", ")}; skipping it could connect another way than you configured. Move those settings into a Host block for this host instead`,
      );
    }
    // Say so only when the block sets something we would use; a distribution's
    // `Match final` block of crypto policies and SendEnv is no news to anyone.
    if (blockKeywords(block.entries).some((keyword) => USED_KEYWORDS.has(keyword))) {
      for (const attribute of new Set(unsupported)) {
        warnings.push(`${block.file} line ${block.line}: Match ${echoValue(attribute)} is not supported; ignoring that block`);
      }
    }
  }
  return { applies: unsupported.length === 0, warnings };
}

function blockKeywords(entries: ConfigEntry[]): string[] {
  return entries.flatMap((entry) =>
    entry.kind === "option"
      ? [entry.directive.keyword]
      : entry.configs.flatMap((config) => config.blocks.flatMap((b) => blockKeywords(b.entries))),
  );
}

/** `Match host` sees HostName (with %h expanded) once set, else the typed host. */
function currentHostName(ctx: ResolveContext, resolved: ReadonlyMap<string, readonly string[]>): string {
  const hostName = resolved.get("hostname")?.[0];
  return hostName === undefined ? ctx.host : expandPercent(hostName, { h: ctx.host });
}
