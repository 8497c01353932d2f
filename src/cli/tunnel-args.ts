/**
 * The tunnel command's arguments, read as ssh(1) reads them, into a plain
 * TunnelPlan (no sockets, no files).
 *
 * OpenSSH's short flags go through a getopt pass of our own that matches
 * ssh(1): flags may be clustered (`-NvD 9001`), a value may be attached
 * (`-D9001`) or separate, options may follow the destination, and the first
 * word after the destination starts a remote command. cac's parser (mri)
 * cannot do that: it turns values like `007` into numbers and does not know
 * which flags take a value. cac checks and reads the few long options.
 *
 * Every flag becomes an ssh_config line (`-p 2222` is `Port 2222`), in
 * OpenSSH's precedence: the command line comes before any file, first value
 * wins, so the rest of the program only ever reads resolved config.
 */
import { cac } from "cac";
import { Buffer } from "node:buffer";
import { TunnelError, describeError, echoValue } from "../errors.ts";
import { parseSshConfig } from "../config/ssh-config.ts";
import { isIgnoredKeyword, isKnownKeyword } from "../config/keywords.ts";
import type { ConfigLine } from "../config/host-lookup.ts";
import { parseDestination } from "../config/settings.ts";
import { parseCidrList } from "../cidr.ts";
import type { SocksAuthOption, TunnelOptions } from "../tunnel.ts";
import type { SocksCredentials } from "../socks/server.ts";
import { USERPASS_MAX_FIELD } from "../socks/codec.ts";
import { HELP_TEXT } from "./help.ts";
import { VERSION } from "../version.ts";

export interface TunnelPlan extends TunnelOptions {
  command: "tunnel";
  /** The destination as typed: `host`, `user@host` or `ssh://user@host:port`. */
  destination: string;
  /** -1 for -q, 0 by default, +1 per -v. */
  verbosity: number;
  json: boolean;
  /** -f: go to the background once every forward listens (background/foreground.ts). */
  background: boolean;
  /** -E: append the log to this file instead of stderr. */
  logFile: string | undefined;
  /** -y: the log to syslog instead of stderr (so does -f without -E). */
  syslog: boolean;
  /** --pid-file: where the running tunnel writes its PID (removed when it stops). */
  pidFile: string | undefined;
  /** --print-unit: print a systemd user unit for this command line instead of running it. */
  printUnit: boolean;
}

/** What the tunnel command's argv asks for: a tunnel, or help or the version instead. */
export type TunnelArgsResult =
  | TunnelPlan
  | { command: "help"; text: string }
  /** `-V` writes to stderr like `ssh -V` (scripts do `ssh -V 2>&1`); `--version` to stdout. */
  | { command: "version"; text: string; stream: "stdout" | "stderr" };

/** Long options without a value (--allow-ip, --allow-users and --socks-auth, which take one, are read on their own); any other `--word` is refused. */
const LONG_SWITCHES = new Set(["--json", "--no-reconnect", "--help", "--version", "--print-unit"]);

/** ssh(1) flags that take a value, and those that do not. */
export const WITH_VALUE: ReadonlySet<string> = new Set("BbcDEeFIiJLlmOoPpQRSWw".split(""));

/** Long options that take a value (read by getopt below, one by one, so a value stays text). */
export const LONG_WITH_VALUE: ReadonlySet<string> = new Set(["--allow-ip", "--allow-users", "--max-connections", "--socks-auth", "--pid-file"]);
const WITHOUT_VALUE = new Set("46AaCfGgKkhMNnqsTtVvXxYy".split(""));

/** Flags we implement; the others are accepted (ssh scripts pass them) and named in a warning. */
const SUPPORTED = new Set("46DEFfghiJLlNopqRVvy".split(""));

const IGNORED_REASON: Record<string, string> = {
  A: "agent forwarding",
  a: "agent forwarding",
  C: "compression",
  G: "printing the configuration",
  K: "GSSAPI",
  k: "GSSAPI",
  M: "connection sharing",
  n: "stdin redirection",
  s: "subsystems",
  T: "terminals",
  t: "terminals",
  X: "X11 forwarding",
  x: "X11 forwarding",
  Y: "X11 forwarding",
  B: "bind interfaces",
  b: "choosing the source address",
  c: "cipher selection",
  e: "escape characters",
  I: "PKCS#11",
  m: "MAC selection",
  O: "control commands",
  P: "tags",
  Q: "queries",
  S: "control sockets",
  W: "stdio forwarding",
  w: "tun devices",
};

interface ShortFlag {
  flag: string;
  value?: string;
}

/** Split argv into short flags, long options, the destination and any remote command. */
function getopt(argv: string[]): {
  flags: ShortFlag[];
  long: Set<string>;
  positional: string[];
  allowIp: string[];
  allowUsers: string[];
  socksAuth: SocksAuthOption | undefined;
  maxConnections: number | undefined;
  pidFile: string | undefined;
  flagsBeforeDestination: number;
} {
  const flags: ShortFlag[] = [];
  let flagsBeforeDestination = -1;
  const allowIp: string[] = [];
  const allowUsers: string[] = [];
  let maxConnections: number | undefined;
  let pidFile: string | undefined;
  let socksAuth: SocksAuthOption | undefined;
  const long = new Set<string>();
  const positional: string[] = [];
  let i = 0;
  let optionsDone = false;
  while (i < argv.length) {
    const arg = argv[i]!;
    i++;
    if (optionsDone || arg === "-" || !arg.startsWith("-")) {
      if (positional.length === 0) flagsBeforeDestination = flags.length;
      positional.push(arg);
      // Options may follow the destination; after a second word, all is command.
      if (positional.length >= 2) optionsDone = true;
      continue;
    }
    if (arg === "--") {
      optionsDone = true;
      continue;
    }
    if (arg === "--allow-ip" || arg.startsWith("--allow-ip=")) {
      // Taken here, not by cac: mri would turn a value like "10" into a number.
      const value = arg === "--allow-ip" ? argv[i++] : arg.slice("--allow-ip=".length);
      if (value === undefined || value === "") throw usage("option --allow-ip needs a value, e.g. --allow-ip 10.0.0.0/8");
      allowIp.push(value);
      continue;
    }
    if (arg === "--allow-users" || arg.startsWith("--allow-users=")) {
      // As --allow-ip: a uid must stay text.
      const value = arg === "--allow-users" ? argv[i++] : arg.slice("--allow-users=".length);
      if (value === undefined || value === "") throw usage("option --allow-users needs a value, e.g. --allow-users alice,1002 or --allow-users '*'");
      allowUsers.push(value);
      continue;
    }
    if (arg === "--max-connections" || arg.startsWith("--max-connections=")) {
      const value = arg === "--max-connections" ? argv[i++] : arg.slice("--max-connections=".length);
      const n = value !== undefined && /^\d{1,7}$/.test(value) ? Number(value) : NaN;
      if (!(n >= 1 && n <= 1_000_000)) throw usage("option --max-connections needs a whole number from 1 to 1000000, e.g. --max-connections 512");
      maxConnections = n;
      continue;
    }
    if (arg === "--pid-file" || arg.startsWith("--pid-file=")) {
      const value = arg === "--pid-file" ? argv[i++] : arg.slice("--pid-file=".length);
      if (value === undefined || value === "") throw usage("option --pid-file needs a file name, e.g. --pid-file ~/.safetunnel.pid");
      pidFile = value;
      continue;
    }
    if (arg === "--socks-auth" || arg.startsWith("--socks-auth=")) {
      // As --allow-ip: a password of digits must stay text. Never echoed: it holds the password.
      const value = arg === "--socks-auth" ? argv[i++] : arg.slice("--socks-auth=".length);
      if (value === undefined || value === "") throw usage(`option --socks-auth needs a value: ${SOCKS_AUTH_FORMS}`);
      if (socksAuth !== undefined) throw usage("--socks-auth is given twice; a run has one SOCKS username and password, so give it once");
      socksAuth = parseSocksAuth(value);
      continue;
    }
    if (arg.startsWith("--")) {
      // Checked here, one word at a time, so cac sees at most each switch
      // once: its parse slows down faster than quadratically with many
      // options (8,000 unknown ones took 9 s).
      const [name, value] = splitOnce(arg, "=");
      if (!LONG_SWITCHES.has(name)) throw usage(`unknown option ${echoValue(name, "'")}`);
      if (value !== undefined) throw usage(`option ${echoValue(name, "'")} takes no value; give ${echoValue(name)} alone`);
      long.add(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      if (WITH_VALUE.has(flag)) {
        let value = arg.slice(j + 1);
        if (value === "") {
          if (i >= argv.length) throw usage(`option requires an argument -- ${flag}`);
          value = argv[i++]!;
        }
        flags.push({ flag, value });
        break;
      }
      if (!WITHOUT_VALUE.has(flag)) throw usage(`unknown option -- ${flag}`);
      flags.push({ flag });
    }
  }
  return { flags, long, positional, allowIp, allowUsers, socksAuth, maxConnections, pidFile, flagsBeforeDestination };
}

const SOCKS_AUTH_FORMS = "USER:PASS, or USER:@FILE to read the password from FILE's first line (it then stays out of ps), e.g. --socks-auth alice:@/home/alice/.socks-password";

/**
 * `--socks-auth USER:PASS` or `USER:@FILE`, split on the first ':' (a
 * password may hold more). Checks what it can without files: RFC 1929 fields
 * are 1 to 255 bytes (sent as UTF-8). Errors never repeat the value, which
 * holds the password.
 *
 * @example
 * parseSocksAuth("alice:s3:cret") // { user: "alice", password: "s3:cret" }
 * parseSocksAuth("alice:@~/.socks-password") // { user: "alice", passwordFile: "~/.socks-password" }
 */
export function parseSocksAuth(text: string): SocksAuthOption {
  const [user, rest] = splitOnce(text, ":");
  if (rest === undefined) throw usage(`--socks-auth has no ':' between username and password; give ${SOCKS_AUTH_FORMS}`);
  if (user === "") throw usage(`--socks-auth has an empty username (before the ':'); give ${SOCKS_AUTH_FORMS}`);
  checkSocksField("username", Buffer.byteLength(user, "utf8"));
  if (rest.startsWith("@")) {
    const passwordFile = rest.slice(1);
    if (passwordFile === "") throw usage(`--socks-auth has '@' but no file name after it; give ${SOCKS_AUTH_FORMS}`);
    return { user, passwordFile };
  }
  if (rest === "") throw usage(`--socks-auth has an empty password (after the ':'); give ${SOCKS_AUTH_FORMS}`);
  checkSocksField("password", Buffer.byteLength(rest, "utf8"));
  return { user, password: rest };
}

/** RFC 1929 sends each length in one byte. */
function checkSocksField(what: "username" | "password", bytes: number, source = ""): void {
  if (bytes > USERPASS_MAX_FIELD) {
    throw usage(`the --socks-auth ${what}${source} is ${bytes} bytes; SOCKS5 (RFC 1929) allows at most ${USERPASS_MAX_FIELD}: choose a shorter one`);
  }
}

/**
 * The bytes a -D client must send for `option`, reading the password file if
 * it names one (its first line, without the line ending; `~/` is the home
 * folder, which the shell does not expand after `USER:@`). `readFile` is
 * injected: the caller reads files, the parser does not.
 *
 * @example
 * socksCredentials({ user: "alice", passwordFile: "~/.socks-password" }, { readFile: (path) => readFileSync(path), homeDir: "/home/alice" })
 * // { username: <alice>, password: <first line of /home/alice/.socks-password> }
 */
export function socksCredentials(option: SocksAuthOption, files: { readFile(path: string): Uint8Array; homeDir: string }): SocksCredentials {
  const username = Buffer.from(option.user, "utf8");
  if ("password" in option) return { username, password: Buffer.from(option.password, "utf8") };
  const path = option.passwordFile.startsWith("~/") ? `${files.homeDir.replace(/\/+$/, "")}/${option.passwordFile.slice(2)}` : option.passwordFile;
  const shown = echoValue(path, "'");
  let content: Uint8Array;
  try {
    content = files.readFile(path);
  } catch (err) {
    throw usage(`--socks-auth: cannot read the password file ${shown} (${describeError(err)}); give a file this account can read, with the password on its first line`);
  }
  const newline = content.indexOf(0x0a);
  let line = newline < 0 ? content : content.subarray(0, newline);
  if (line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
  if (line.length === 0) throw usage(`--socks-auth: the first line of the password file ${shown} is empty; put the password on it`);
  checkSocksField("password", line.length, ` (first line of ${shown})`);
  return { username, password: Buffer.from(line) };
}

/** `a=b` as ["a", "b"]; `a` as ["a", undefined]. */
function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

function usage(problem: string): TunnelError {
  return new TunnelError("USAGE", `${problem}; see 'safetunnel --help'`);
}

/**
 * @example
 * parseTunnelArgs(["-D", "9001", "user@home"]).command // "tunnel"
 */
export function parseTunnelArgs(argv: string[]): TunnelArgsResult {
  const { flags, long, positional, allowIp, allowUsers, socksAuth, maxConnections, pidFile, flagsBeforeDestination } = getopt(argv);

  // cac reads the long options (its own help and version would print as a
  // side effect of parse(), so HELP_TEXT and VERSION are ours).
  const cli = cac("safetunnel");
  cli.option("--json", "Log one JSON object per line instead of text");
  cli.option("--no-reconnect", "Exit 255 when the connection drops, as ssh does");
  cli.option("--print-unit", "Print a systemd user unit for this command line");
  cli.option("-h, --help", "Show this help").option("--version", "Print the version");

  let parsed;
  try {
    parsed = cli.parse(["node", "safetunnel", ...long], { run: false });
    (cli.matchedCommand ?? cli.globalCommand).checkUnknownOptions();
  } catch (err) {
    throw usage((err as Error).message.replace(/`/g, "'").replace(/^Unknown option/, "unknown option"));
  }
  const longOptions = parsed.options as { help?: boolean; version?: boolean; json?: boolean; reconnect?: boolean; printUnit?: boolean };

  if (longOptions.help || flags.some((f) => f.flag === "h")) return { command: "help", text: HELP_TEXT };
  if (longOptions.version) return { command: "version", text: `safetunnel ${VERSION}`, stream: "stdout" };
  if (flags.some((f) => f.flag === "V")) return { command: "version", text: `safetunnel ${VERSION}`, stream: "stderr" };

  const warnings: string[] = [];
  // In argv order: OpenSSH sets -p, -l and -o values first-come-first-served.
  const configLines: ConfigLine[] = [];
  // ssh assigns -4/-6 and -g outright, so they beat any -o; the last -4/-6 wins.
  let family: ConfigLine | undefined;
  let gateway: ConfigLine | undefined;
  let configFile: string | undefined;
  let verbosity = 0;
  let jumpGiven = false;
  let background = false;
  let syslog = false;
  let logFile: string | undefined;

  const [destinationText, ...command] = positional;
  if (destinationText === undefined) throw usage("no destination given: safetunnel [options] [user@]host, e.g. safetunnel -D 9001 user@home");
  if (command.length > 0) {
    throw usage(`safetunnel runs no remote commands (${echoValue(command.join(" "), "'")}); it only forwards ports. Remove the command (or use ssh for it)`);
  }
  const destination = parseDestination(destinationText);
  // ssh takes user@host (and ssh://...:port) where it stands in argv: a -l
  // before it wins, a -l after it does not.
  const destinationLines: ConfigLine[] = [
    ...(destination.user !== undefined ? [{ keyword: "user", args: [destination.user], source: "user@host" }] : []),
    ...(destination.port !== undefined ? [{ keyword: "port", args: [String(destination.port)], source: "ssh://" }] : []),
  ];

  for (const [index, { flag, value }] of flags.entries()) {
    if (index === flagsBeforeDestination) configLines.push(...destinationLines);
    const v = value ?? "";
    switch (flag) {
      // ssh: the last of -q and -v decides.
      case "v": verbosity = Math.max(verbosity, 0) + 1; break;
      case "q": verbosity = -1; break;
      case "N": break; // We never run a remote command; -N is what we always do.
      case "f": background = true; break;
      case "y": syslog = true; break;
      // ssh: the last -E wins.
      case "E": logFile = v; break;
      case "V": break;
      case "4": family = { keyword: "addressfamily", args: ["inet"], source: "-4" }; break;
      case "6": family = { keyword: "addressfamily", args: ["inet6"], source: "-6" }; break;
      case "g": gateway = { keyword: "gatewayports", args: ["yes"], source: "-g" }; break;
      case "p": configLines.push({ keyword: "port", args: [v], source: "-p" }); break;
      case "l": configLines.push({ keyword: "user", args: [v], source: "-l" }); break;
      case "i": configLines.push({ keyword: "identityfile", args: [v], source: "-i" }); break;
      case "J":
        if (jumpGiven) throw usage("only a single -J option is permitted; list several jump hosts with commas: -J a,b");
        jumpGiven = true;
        configLines.push({ keyword: "proxyjump", args: [v], source: "-J" });
        break;
      case "D": configLines.push({ keyword: "dynamicforward", args: [v], source: "-D" }); break;
      case "L": configLines.push({ keyword: "localforward", args: [v], source: "-L" }); break;
      case "R": configLines.push({ keyword: "remoteforward", args: [v], source: "-R" }); break;
      case "F": configFile = v; break;
      case "o": {
        const line = parseDashO(v);
        if (isIgnoredKeyword(line.keyword)) warnings.push(`-o ${echoValue(v)}: safetunnel does not use this ssh option; ignoring it.`);
        configLines.push(line);
        break;
      }
      default:
        if (!SUPPORTED.has(flag)) warnings.push(`-${flag} (${IGNORED_REASON[flag] ?? "not supported"}) is an ssh option safetunnel does not support; ignoring it.`);
    }
  }

  if (flagsBeforeDestination === flags.length) configLines.push(...destinationLines);
  return {
    command: "tunnel",
    destination: destinationText,
    host: destination.host,
    user: destination.user,
    configLines: [...(family ? [family] : []), ...(gateway ? [gateway] : []), ...configLines],
    configFile,
    verbosity,
    json: Boolean(longOptions.json),
    background,
    logFile,
    syslog,
    pidFile,
    printUnit: Boolean(longOptions.printUnit),
    // cac reads --no-X as X = false.
    reconnect: longOptions.reconnect !== false,
    allowIp: allowIp.flatMap((text) => parseCidrList(text)),
    allowUsers,
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(socksAuth !== undefined ? { socksAuth } : {}),
    warnings,
  };
}

/** `-o Keyword=value` or `-o "Keyword value"`: one ssh_config line, read by the same parser as the files. */
function parseDashO(text: string): ConfigLine {
  // readconf.c refuses these on the command line: they only make sense in a file.
  const typed = /^\s*([A-Za-z]+)/.exec(text)?.[1] ?? "";
  if (["host", "match", "include"].includes(typed.toLowerCase())) {
    throw usage(`-o ${echoValue(text)}: ${typed} is not supported as a command-line option (it only works in a config file); use -F with a file that has it`);
  }
  let directive;
  try {
    const parsed = parseSshConfig(text, "-o");
    const entry = parsed.blocks[0]?.entries[0];
    directive = entry?.kind === "option" ? entry.directive : undefined;
  } catch {
    directive = undefined;
  }
  if (directive === undefined || directive.args.length === 0) {
    throw usage(`bad -o option ${echoValue(text, "'")}: expected -o Keyword=value, e.g. -o Port=2222`);
  }
  if (!isKnownKeyword(directive.keyword)) {
    throw usage(`-o ${echoValue(text)}: Bad configuration option (not an ssh_config keyword)`);
  }
  return { keyword: directive.keyword, args: directive.args, source: "-o" };
}

