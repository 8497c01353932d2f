/**
 * `safetunnel serve [--listen ADDR:PORT]... [--authorized-keys FILE] [--host-key FILE]
 * [--permit-open HOST:PORT]... [--gateway-ports] [--json] [-v]` to a plain
 * ServePlan. cac reads the options; values are checked here, each bad one a
 * one-line USAGE error naming the fix.
 */
import { cac } from "cac";
import { TunnelError, echoValue } from "../errors.ts";
import { parsePortNumber, unbracket } from "../address.ts";
import { parsePermitOpenList } from "../serve/permit-open.ts";

export interface ServePlan {
  command: "serve";
  /** Where to listen; a bare port means both wildcard addresses. */
  listen: { host: string; port: number }[];
  /** undefined: ~/.ssh/authorized_keys. */
  authorizedKeys: string | undefined;
  /** undefined: the key kept in the user's config folder (made on the first run). */
  hostKey: string | undefined;
  /** --permit-open values as typed (checked here already). */
  permitOpen: string[];
  gatewayPorts: boolean;
  /** sshd_config(5) LoginGraceTime, in seconds. */
  loginGraceSeconds: number;
  json: boolean;
  verbosity: number;
}

export const DEFAULT_SERVE_PORT = 2222;

/** sshd_config(5) LoginGraceTime's default. */
export const DEFAULT_LOGIN_GRACE_SECONDS = 120;

export const SERVE_HELP = `usage: safetunnel serve [--listen ADDR:PORT]... [--authorized-keys FILE] [--host-key FILE]
                       [--permit-open HOST:PORT]... [--gateway-ports] [--login-grace-time SECS]
                       [--json] [-v]

The home end of the tunnel, for a machine without an SSH server: run this at
home, then from elsewhere: safetunnel -D 9001 -p 2222 user@home. It only
forwards (the clients' -D, -L and -R); it runs no shell and no command.

  --listen ADDR:PORT       Where to listen (default 0.0.0.0:2222 and [::]:2222;
                           a port alone means both); repeat for more
  --authorized-keys FILE   Public keys allowed to log in, in OpenSSH's format
                           (default ~/.ssh/authorized_keys); restrict,
                           permitopen=, permitlisten= and from= are honoured
  --host-key FILE          This server's private key (default: an ed25519 key
                           made on the first run and kept in your config folder)
  --permit-open HOST:PORT  Only these destinations (* for any host or port;
                           'any' or 'none'), as sshd's PermitOpen; repeat for more
  --gateway-ports          Let clients' -R listen on other addresses than loopback
  --login-grace-time SECS  Close connections not logged in by then (default 120)
  --json                   One JSON object per log line
  -v                       More detail (each connection)

Names are resolved here, by this machine's resolver. Only public-key logins;
a source address that keeps failing is slowed down. Ctrl-C stops it with a
summary line.
`;

const KNOWN = new Set(["--listen", "--authorized-keys", "--host-key", "--permit-open", "--gateway-ports", "--login-grace-time", "--json", "-h", "--help"]);

/**
 * @example
 * parseServeArgs(["--listen", "127.0.0.1:2222"]) // { command: "serve", listen: [{ host: "127.0.0.1", port: 2222 }], ... }
 */
export function parseServeArgs(argv: string[]): ServePlan | { command: "help"; text: string } {
  let verbosity = 0;
  const rest: string[] = [];
  for (const arg of argv) {
    if (/^-v+$/.test(arg)) verbosity += arg.length - 1;
    else rest.push(arg);
  }
  const unknown = rest.find((arg) => arg.startsWith("-") && !KNOWN.has(arg.split("=")[0]!));
  if (unknown !== undefined) throw usage(`unknown option ${echoValue(unknown.split("=")[0]!, "'")}`);
  if (rest.length > 64) throw usage("too many arguments");
  const cli = cac("safetunnel serve");
  cli.option("--listen <address>", "").option("--authorized-keys <file>", "").option("--host-key <file>", "");
  cli.option("--permit-open <pattern>", "").option("--gateway-ports", "").option("--login-grace-time <seconds>", "").option("--json", "").option("-h, --help", "");
  let parsed;
  try {
    parsed = cli.parse(["node", "safetunnel", ...rest], { run: false });
  } catch (err) {
    throw usage((err as Error).message.replace(/`/g, "'"));
  }
  const options = parsed.options as Record<string, unknown>;
  if (options["help"]) return { command: "help", text: SERVE_HELP };
  if (parsed.args.length > 0) throw usage(`serve takes no host (${echoValue(parsed.args.join(" "), "'")}); it listens with --listen`);
  const permitOpen = many(options["permitOpen"], "--permit-open");
  parsePermitOpenList(permitOpen);
  const listenValues = many(options["listen"], "--listen");
  return {
    command: "serve",
    listen: listenValues.length === 0 ? wildcards(DEFAULT_SERVE_PORT) : listenValues.flatMap(parseListen),
    authorizedKeys: single(options["authorizedKeys"], "--authorized-keys"),
    hostKey: single(options["hostKey"], "--host-key"),
    permitOpen,
    gatewayPorts: options["gatewayPorts"] === true,
    loginGraceSeconds: parseGrace(single(options["loginGraceTime"], "--login-grace-time")),
    json: options["json"] === true,
    verbosity,
  };
}

function parseGrace(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LOGIN_GRACE_SECONDS;
  const seconds = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= 1 && seconds <= 3600)) throw usage(`bad --login-grace-time ${echoValue(text, "'")}: expected whole seconds from 1 to 3600, e.g. --login-grace-time 60`);
  return seconds;
}

function wildcards(port: number): { host: string; port: number }[] {
  return [
    { host: "0.0.0.0", port },
    { host: "::", port },
  ];
}

/** `ADDR:PORT`, `[v6]:PORT`, `*:PORT` or a bare port (both wildcard addresses). */
function parseListen(text: string): { host: string; port: number }[] {
  const bare = parsePortNumber(text, 0);
  if (bare !== undefined) return wildcards(bare);
  const colon = text.lastIndexOf(":");
  const host = colon > 0 ? unbracket(text.slice(0, colon)) : "";
  const port = colon > 0 ? parsePortNumber(text.slice(colon + 1), 0) : undefined;
  if (host === "" || port === undefined || (host.includes(":") && !text.startsWith("["))) {
    throw usage(`bad --listen ${echoValue(text, "'")}: expected ADDR:PORT, [IPv6]:PORT or a port, e.g. --listen 0.0.0.0:2222`);
  }
  return host === "*" ? wildcards(port) : [{ host, port }];
}

/** Repeatable options: mri gives a string once, an array when repeated. */
function many(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  return values.map((entry) => {
    if (entry === true || entry === "") throw usage(`${name} needs a value`);
    return String(entry);
  });
}

function single(value: unknown, name: string): string | undefined {
  if (Array.isArray(value)) throw usage(`${name} given more than once; give it once`);
  return many(value, name)[0];
}

function usage(problem: string): TunnelError {
  return new TunnelError("USAGE", `serve: ${problem}; see 'safetunnel serve --help'`);
}
