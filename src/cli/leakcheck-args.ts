/**
 * `safetunnel leakcheck [--proxy HOST:PORT] [--wait SECONDS] [--open] [--watch] [--pcap FILE] [--json]`
 * to a plain LeakcheckPlan. cac reads the options; values are checked here,
 * each bad one a one-line USAGE error naming the fix.
 */
import { cac } from "cac";
import { TunnelError, echoValue } from "../errors.ts";
import { DEFAULT_PROXY, parseProxyOption } from "./proxy-option.ts";

export interface LeakcheckPlan {
  command: "leakcheck";
  /** The running safetunnel -D port to test. */
  proxy: { host: string; port: number };
  /** How long to wait for the browser. */
  waitMs: number;
  /** Open the URL in the default browser. */
  open: boolean;
  /** Keep reporting local resolver use until Ctrl-C. */
  watch: boolean;
  /** A capture to analyse (pcap or pcapng). */
  pcap: string | undefined;
  json: boolean;
  /**
   * Read the browsers' settings from the home folder and report on them.
   * `safetunnel browser` turns it off: the profile it launches is its own,
   * written from the same knowledge. @default true
   */
  settings?: boolean;
  /**
   * The browser that opens the URL itself (`safetunnel browser`): the first
   * line then names it instead of asking the user to open the URL.
   */
  openedIn?: string;
}

export const LEAKCHECK_HELP = `usage: safetunnel leakcheck [--proxy HOST:PORT] [--wait SECONDS] [--open] [--watch]
                           [--pcap FILE] [--json]

Proves, before you browse, that your browser leaks nothing to the local
network. Start the tunnel first (safetunnel -D 9001 user@home), run this, and
open the URL it prints in the browser you will use through the tunnel.

  --proxy HOST:PORT   The tunnel's SOCKS port (default 127.0.0.1:1080; a port
                      alone means 127.0.0.1)
  --wait SECONDS      How long to wait for the browser (default 60; not with --watch)
  --open              Open the URL in the default browser
  --watch             Keep reporting while you browse, until Ctrl-C
  --pcap FILE         Also analyse a capture (pcap or pcapng) you are writing
                      during the check; it is read when the check ends. With
                      no tunnel at --proxy, analyse the capture alone
  --json              One JSON object per line; the last is the verdict

Local lookups are captured live with tcpdump when run as root (or with
CAP_NET_RAW); otherwise, on Linux, resolver sockets are read from /proc.

Exit status: 0 PASS, 1 LEAK (including: the page never arrived by name),
2 could not test (no tunnel at --proxy, a port that asks for a login
(--socks-auth), the tunnel stopped, Ctrl-C before the page arrived, a capture
read alone without a canary lookup).
`;

const DEFAULT_WAIT_SECONDS = 60;

/**
 * @example
 * parseLeakcheckArgs(["--proxy", "127.0.0.1:9001"]) // { command: "leakcheck", proxy: { host: "127.0.0.1", port: 9001 }, waitMs: 60000, ... }
 */
export function parseLeakcheckArgs(argv: string[]): LeakcheckPlan | { command: "help"; text: string } {
  const cli = cac("safetunnel leakcheck");
  cli.option("--proxy <address>", "").option("--wait <seconds>", "").option("--open", "").option("--watch", "").option("--pcap <file>", "").option("--json", "");
  cli.option("-h, --help", "");
  // Bounded input for cac's parser, whose cost grows faster than linearly.
  const unknown = argv.find((arg) => arg.startsWith("-") && !KNOWN.has(arg.split("=")[0]!));
  if (unknown !== undefined) throw usage(`unknown option ${echoValue(unknown.split("=")[0]!, "'")}`);
  if (argv.length > 32) throw usage("too many arguments");
  let parsed;
  try {
    parsed = cli.parse(["node", "safetunnel", ...argv], { run: false });
    cli.globalCommand.checkUnknownOptions();
  } catch (err) {
    throw usage((err as Error).message.replace(/`/g, "'").replace(/^Unknown option/, "unknown option"));
  }
  const options = parsed.options as Record<string, unknown>;
  if (options["help"]) return { command: "help", text: LEAKCHECK_HELP };
  if (parsed.args.length > 0) throw usage(`leakcheck takes no host (${echoValue(parsed.args.join(" "), "'")}); it tests the tunnel at --proxy`);
  if (options["watch"] === true && options["wait"] !== undefined) throw usage("--watch runs until Ctrl-C, so --wait does not apply; give one of them");
  return {
    command: "leakcheck",
    proxy: parseProxyOption(single(options["proxy"], "--proxy") ?? DEFAULT_PROXY, usage),
    waitMs: parseWait(single(options["wait"], "--wait")) * 1000,
    open: options["open"] === true,
    watch: options["watch"] === true,
    pcap: single(options["pcap"], "--pcap"),
    json: options["json"] === true,
  };
}

const KNOWN = new Set(["--proxy", "--wait", "--open", "--watch", "--pcap", "--json", "-h", "--help"]);

/** An option's value as typed (mri turns "60" into 60 and repeats into arrays). */
function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw usage(`${name} given more than once; give it once`);
  if (value === true || value === "") throw usage(`${name} needs a value`);
  return String(value);
}

function parseWait(text: string | undefined): number {
  if (text === undefined) return DEFAULT_WAIT_SECONDS;
  const seconds = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= 1 && seconds <= 86_400)) throw usage(`bad --wait ${echoValue(text, "'")}: expected whole seconds from 1 to 86400, e.g. --wait 120`);
  return seconds;
}

function usage(problem: string): TunnelError {
  return new TunnelError("USAGE", `leakcheck: ${problem}; see 'safetunnel leakcheck --help'`);
}
