/**
 * argv to a Plan: which command runs, with what (no sockets, no files).
 *
 * `safetunnel [ssh options] host` is the tunnel (cli/tunnel-args.ts, read as
 * ssh(1) reads its argv). A first word naming a subcommand (`leakcheck`,
 * `serve`, ...) hands the rest of argv to that subcommand's own parser, so
 * adding one never touches the tunnel's flags; a host with such a name stays
 * reachable as `user@leakcheck` or `ssh://leakcheck`.
 */
import { parseTunnelArgs, type TunnelArgsResult } from "./cli/tunnel-args.ts";
import { parseLeakcheckArgs, type LeakcheckPlan } from "./cli/leakcheck-args.ts";
import { parseServeArgs, type ServePlan } from "./cli/serve-args.ts";
import { parseDemoArgs, type DemoPlan } from "./cli/demo-args.ts";
import { parseBrowserArgs, parseExecArgs, parseNcArgs } from "./cli/client-args.ts";
import type { BrowserPlan } from "./clients/browser.ts";
import type { ExecPlan } from "./clients/exec.ts";
import type { NcPlan } from "./clients/nc.ts";

export type { TunnelPlan } from "./cli/tunnel-args.ts";
export type { LeakcheckPlan } from "./cli/leakcheck-args.ts";
export type { ServePlan } from "./cli/serve-args.ts";
export type { DemoPlan } from "./cli/demo-args.ts";
export type { ExecPlan } from "./clients/exec.ts";
export type { NcPlan } from "./clients/nc.ts";
export type { BrowserPlan } from "./clients/browser.ts";
export { HELP_TEXT } from "./cli/help.ts";
export { VERSION } from "./version.ts";

/**
 * Every command's plan, told apart by `command`; main.ts runs the one it
 * gets. A subcommand adds its own plan type to this union and its runner to
 * main.ts.
 */
export type Plan = TunnelArgsResult | LeakcheckPlan | ServePlan | DemoPlan | ExecPlan | NcPlan | BrowserPlan;

/** A subcommand: its name as typed first on the command line, and its parser. */
export interface Subcommand {
  name: string;
  /** Reads the words after the subcommand's name. */
  parse(argv: string[]): Plan;
}

/** The subcommands, by name. */
export const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map(
  [
    { name: "leakcheck", parse: parseLeakcheckArgs },
    { name: "serve", parse: parseServeArgs },
    { name: "demo", parse: parseDemoArgs },
    { name: "exec", parse: parseExecArgs },
    { name: "nc", parse: parseNcArgs },
    { name: "browser", parse: parseBrowserArgs },
  ].map((subcommand) => [subcommand.name, subcommand]),
);

/**
 * @example
 * parseCommandLine(["-D", "9001", "user@home"]).command // "tunnel"
 */
export function parseCommandLine(argv: string[], subcommands: ReadonlyMap<string, Subcommand> = SUBCOMMANDS): Plan {
  const subcommand = argv[0] === undefined ? undefined : subcommands.get(argv[0]);
  return subcommand === undefined ? parseTunnelArgs(argv) : subcommand.parse(argv.slice(1));
}
