/**
 * `safetunnel demo [-v] [--json]` (and `npm start` with no arguments): the
 * main job on this one machine, nothing to configure.
 */
import { TunnelError, echoValue } from "../errors.ts";

export interface DemoPlan {
  command: "demo";
  json: boolean;
  verbosity: number;
}

export const DEMO_HELP = `usage: safetunnel demo [-v] [--json]

Shows the main job working on this one machine: starts safetunnel serve on a
free loopback port with throwaway keys in a temporary folder, and a SOCKS
proxy (-D 127.0.0.1:1080, or the next free port) through it; then prints how
to point a browser or curl at it and waits for Ctrl-C, removing the keys on
exit. Names are resolved by the serve end, as they would be at home.
`;

/**
 * @example
 * parseDemoArgs([]) // { command: "demo", json: false, verbosity: 0 }
 */
export function parseDemoArgs(argv: string[]): DemoPlan | { command: "help"; text: string } {
  let verbosity = 0;
  let json = false;
  for (const arg of argv) {
    if (arg === "-h" || arg === "--help") return { command: "help", text: DEMO_HELP };
    if (/^-v+$/.test(arg)) verbosity += arg.length - 1;
    else if (arg === "--json") json = true;
    else throw new TunnelError("USAGE", `demo: unknown argument ${echoValue(arg, "'")}; it takes only -v and --json (see 'safetunnel demo --help'); for a real tunnel run safetunnel -D 9001 user@home`);
  }
  return { command: "demo", json, verbosity };
}
