/**
 * The commands that use a running tunnel for another program:
 * `safetunnel exec [--proxy HOST:PORT] [--] COMMAND [ARGS]`,
 * `safetunnel nc [--proxy HOST:PORT] HOST PORT` and `safetunnel browser`,
 * to plain plans. Read by
 * hand, not by cac: everything from COMMAND on belongs to COMMAND, dashes
 * and all, as with env(1) and sudo(8).
 */
import { Buffer } from "node:buffer";
import { domainToASCII } from "node:url";
import { TunnelError, echoValue } from "../errors.ts";
import { parsePortNumber } from "../address.ts";
import { DEFAULT_PROXY, parseProxyOption } from "./proxy-option.ts";
import type { ExecPlan } from "../clients/exec.ts";
import type { NcPlan } from "../clients/nc.ts";
import type { BrowserPlan } from "../clients/browser.ts";

export const EXEC_HELP = `usage: safetunnel exec [--proxy HOST:PORT] [--] COMMAND [ARGS...]

Runs COMMAND with the tunnel as its proxy, with nothing to set by hand:
  ALL_PROXY, all_proxy          socks5h://HOST:PORT (names resolved far away)
  HTTP_PROXY, HTTPS_PROXY       http://HOST:PORT, the same port's HTTP side
  (and lower case)              (CONNECT for https; names, never addresses)
  NO_PROXY, no_proxy            empty: nothing bypasses the tunnel
  GIT_SSH_COMMAND               ssh through 'safetunnel nc' (git over ssh)
curl, wget, pip, npm, git, Python and most tools read these. No root, no
LD_PRELOAD: a program that ignores them is not proxied (Go programs never
proxy localhost). Start the tunnel first: safetunnel -D 1080 user@host.

  --proxy HOST:PORT   The tunnel's -D port (default ${DEFAULT_PROXY}; a port
                      alone means 127.0.0.1)

Exit status: COMMAND's (or its signal); 125 no safetunnel -D port without a
login at --proxy (COMMAND not run), 126 COMMAND cannot run, 127 COMMAND not
found.
`;

export const NC_HELP = `usage: safetunnel nc [--proxy HOST:PORT] HOST PORT

Joins standard input and output to HOST:PORT through the tunnel, by name:
HOST is resolved by the SSH server, never here. For ssh to other machines
through the tunnel:
  ssh -o ProxyCommand='safetunnel nc --proxy 127.0.0.1:1080 %h %p' user@far-host

  --proxy HOST:PORT   The tunnel's -D port (default ${DEFAULT_PROXY}; a port
                      alone means 127.0.0.1)

Exit status: 0 when the connection ended, 1 when it could not be made or was
reset (the message says what the tunnel answered).
`;

export const BROWSER_HELP = `usage: safetunnel browser [firefox|chromium] [--proxy HOST:PORT] [--profile DIR]
                         [--no-webrtc] [-- BROWSER ARGS...]

Starts an installed browser (Firefox if there is one, else Chromium, Chrome,
Brave or Edge) with a fresh profile set up so that nothing leaks, and opens
the leak check as its first page: the verdict is printed here, and the browser
stays open for you to use. Nothing to set by hand.
  Firefox:   manual SOCKS5 with remote DNS, no direct failover or bypass,
             loopback through the tunnel, DNS-over-HTTPS off, WebRTC only
             through the proxy, no prefetch or speculative connections
  Chromium:  --proxy-server=socks5://, loopback through the tunnel, a host
             resolver that answers nothing, QUIC off; WebRTC's UDP only
             through the proxy and DNS-over-HTTPS off in the profile

  --proxy HOST:PORT   The tunnel's -D port (default ${DEFAULT_PROXY}; a port
                      alone means 127.0.0.1)
  --profile DIR       Use and keep this profile folder (settings above are
                      written into it) instead of a fresh one
  --no-webrtc         Firefox: turn WebRTC off instead of keeping it inside
                      the proxy
  -- BROWSER ARGS     Given to the browser (a URL opens as another tab)

Exit status, once the browser is closed: 0 the check passed, 1 LEAK, 2 could
not test (no tunnel at --proxy: then no browser is started).
`;

type Help = { command: "help"; text: string };

/**
 * @example
 * parseExecArgs(["--proxy", "9001", "--", "curl", "-sS", "https://example.org"])
 * // { command: "exec", proxy: { host: "127.0.0.1", port: 9001 }, argv: ["curl", "-sS", "https://example.org"], verbosity: 0, json: false }
 */
export function parseExecArgs(argv: string[]): ExecPlan | Help {
  const usage = usageFor("exec");
  const { proxy, rest, help } = leadingOptions(argv, usage);
  if (help) return { command: "help", text: EXEC_HELP };
  if (rest.length === 0) throw usage("give the command to run, e.g. safetunnel exec -- curl https://example.org");
  return { command: "exec", proxy, argv: rest, verbosity: 0, json: false };
}

/**
 * A name in another script as its IDNA form (RFC 5891), what a resolver is
 * asked; no lookup here. "" when it is not a host name: URL syntax first
 * (node:url would read "ü/x" as the host "ü"), and a result of anything but
 * letters, digits and hyphens in dot-separated labels (Deno's converter
 * passes spaces and controls through).
 *
 * @example
 * idnaName("例え.jp") // "xn--r8jz45g.jp"
 */
function idnaName(name: string): string {
  if (/[\x00-\x20/?#@:%[\]\\]/.test(name)) return "";
  const ascii = domainToASCII(name);
  return /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(ascii) ? ascii : "";
}

/**
 * @example
 * parseNcArgs(["example.org", "22"]) // { command: "nc", proxy: { host: "127.0.0.1", port: 1080 }, host: "example.org", port: 22, verbosity: 0, json: false }
 */
export function parseNcArgs(argv: string[]): NcPlan | Help {
  const usage = usageFor("nc");
  const { proxy, rest, help } = leadingOptions(argv, usage);
  if (help) return { command: "help", text: NC_HELP };
  if (rest.length !== 2) throw usage(`expected HOST PORT, got ${rest.length === 0 ? "nothing" : echoValue(rest.join(" "), "'")}`);
  const [typed, portText] = rest as [string, string];
  const port = parsePortNumber(portText);
  if (port === undefined) throw usage(`bad port ${echoValue(portText, "'")}: expected a number from 1 to 65535`);
  const host = /^[\x00-\x7f]*$/.test(typed) ? typed : idnaName(typed);
  if (host === "") throw usage(`${echoValue(typed, "'")} is not a valid host name`);
  if (Buffer.byteLength(host) > 255) throw usage("HOST must be 1 to 255 bytes");
  return { command: "nc", proxy, host, port, verbosity: 0, json: false };
}

/**
 * @example
 * parseBrowserArgs(["chromium", "--proxy", "9001", "--", "--headless"])
 * // { command: "browser", browser: "chromium", proxy: { host: "127.0.0.1", port: 9001 }, profile: undefined, webrtc: true, browserArgs: ["--headless"], ... }
 */
export function parseBrowserArgs(argv: string[]): BrowserPlan | Help {
  const usage = usageFor("browser");
  const dash = argv.indexOf("--");
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const browserArgs = dash < 0 ? [] : argv.slice(dash + 1);
  let browser: BrowserPlan["browser"];
  let proxyText: string | undefined;
  let profile: string | undefined;
  let webrtc = true;
  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    const [name, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const given = inline ?? own[++i];
      if (given === undefined || given === "") throw usage(`${name} needs a value`);
      return given;
    };
    if (name === "-h" || name === "--help") return { command: "help", text: BROWSER_HELP };
    else if (name === "--proxy") {
      if (proxyText !== undefined) throw usage("--proxy given more than once; give it once");
      proxyText = value();
    } else if (name === "--profile") {
      if (profile !== undefined) throw usage("--profile given more than once; give it once");
      profile = value();
    } else if (name === "--no-webrtc") webrtc = false;
    else if (name === "firefox" || name === "chromium") {
      if (browser !== undefined) throw usage(`one browser at a time (${browser} and ${name} given)`);
      browser = name;
    } else if (name.startsWith("-")) throw usage(`unknown option ${echoValue(name, "'")} (the browser's own options go after --)`);
    else throw usage(`unknown browser ${echoValue(name, "'")}: give firefox or chromium (Chrome, Brave and Edge count as chromium)`);
  }
  if (!webrtc && browser === "chromium") {
    throw usage("--no-webrtc is for Firefox: Chromium cannot turn WebRTC off without an admin policy (its WebRTC is kept inside the proxy anyway)");
  }
  return { command: "browser", browser, proxy: parseProxyOption(proxyText ?? DEFAULT_PROXY, usage), profile, webrtc, browserArgs, verbosity: 0, json: false };
}

/** --proxy and --help before the first other word (or `--`); the rest as given. */
function leadingOptions(argv: string[], usage: (problem: string) => TunnelError): { proxy: { host: string; port: number }; rest: string[]; help: boolean } {
  let proxyText: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (arg === "-h" || arg === "--help") return { proxy: parseProxyOption(DEFAULT_PROXY, usage), rest: [], help: true };
    if (arg === "--proxy" || arg.startsWith("--proxy=")) {
      if (proxyText !== undefined) throw usage("--proxy given more than once; give it once");
      const value = arg === "--proxy" ? argv[++i] : arg.slice("--proxy=".length);
      if (value === undefined || value === "") throw usage("--proxy needs a value, e.g. --proxy 127.0.0.1:9001");
      proxyText = value;
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") throw usage(`unknown option ${echoValue(arg.split("=")[0]!, "'")} (options of the command go after --)`);
    break;
  }
  return { proxy: parseProxyOption(proxyText ?? DEFAULT_PROXY, usage), rest: argv.slice(i), help: false };
}

function usageFor(command: string): (problem: string) => TunnelError {
  return (problem) => new TunnelError("USAGE", `${command}: ${problem}; see 'safetunnel ${command} --help'`);
}
