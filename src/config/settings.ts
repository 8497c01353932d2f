/**
 * From resolved ssh_config values (command line first, then files; first
 * value wins) to the typed settings the connection needs. Pure: the local
 * environment (home, user name, SSH_AUTH_SOCK) is passed in.
 *
 * Defaults and value spellings follow ssh_config(5) for OpenSSH 9.2.
 */
import { createHash } from "node:crypto";
import { TunnelError, echoValue } from "../errors.ts";
import { parsePortNumber } from "../address.ts";
import { expandTilde, expandTokens } from "./expand-tokens.ts";

/** ServerAliveInterval when ssh_config says nothing (see hopSettings). */
export const DEFAULT_SERVER_ALIVE_INTERVAL_MS = 15_000;

/** ssh_config(5) StrictHostKeyChecking, with its synonyms folded. */
export type StrictHostKeyChecking = "yes" | "accept-new" | "no" | "ask";

/** Where and how a host's key is checked (ssh/host-key.ts applies it). */
export interface HostKeySettings {
  /** The name known_hosts is searched for: HostKeyAlias, else HostName. */
  host: string;
  port: number;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  strict: StrictHostKeyChecking;
  /** HashKnownHosts=yes forces hashing new entries; otherwise the file's own style decides. */
  hashKnownHosts: boolean | undefined;
  batchMode: boolean;
}

export interface IdentityFile {
  path: string;
  /** Named by -i or IdentityFile (a missing one is worth a warning); defaults are not. */
  explicit: boolean;
}

/** How to log in (ssh/auth.ts applies it). */
export interface AuthOptions {
  identityFiles: IdentityFile[];
  identitiesOnly: boolean;
  /** SSH_AUTH_SOCK or IdentityAgent; "pageant" on Windows; undefined for none. */
  agent: string | undefined;
  batchMode: boolean;
  /** NumberOfPasswordPrompts (OpenSSH default 3). */
  passwordPrompts: number;
  /** PreferredAuthentications, if set; else OpenSSH's default order. */
  preferredAuthentications: string[] | undefined;
}

/** Everything needed to reach and log in to one SSH hop (a jump host or the destination). */
export interface HopSettings {
  /** The host as the user typed it, for messages. */
  alias: string;
  hostname: string;
  port: number;
  user: string;
  addressFamily: "any" | "inet" | "inet6";
  /** ConnectTimeout in ms; undefined waits as long as the OS does. */
  connectTimeoutMs: number | undefined;
  /** ServerAliveInterval in ms; 0 disables keepalives. Default 15 s (DEFAULT_SERVER_ALIVE_INTERVAL_MS). */
  serverAliveIntervalMs: number;
  serverAliveCountMax: number;
  hostKey: HostKeySettings;
  auth: AuthOptions;
}

/** Read access to one host's resolved options (keywords lower case). */
export interface OptionLookup {
  /** Arguments of the first directive that set `keyword`. */
  first(keyword: string): string[] | undefined;
  /** Every directive's arguments, in order (IdentityFile, DynamicForward...). */
  all(keyword: string): string[][];
}

export interface LocalEnvironment {
  homeDir: string;
  localUser: string;
  /** SSH_AUTH_SOCK */
  agentSocket: string | undefined;
  platform: string;
  /** For ${VAR} in IdentityAgent. */
  env?: Record<string, string | undefined>;
  /** os.hostname() and the numeric user id, for the %l %L %C %i tokens. */
  localHostname?: string;
  uid?: number;
}

/**
 * ssh_config(5) TOKENS that describe this machine: %l (local host name), %L
 * (its first label), %i (user id) and %C (SHA-1 of %l%h%p%r, OpenSSH 9.2).
 * Given only when known, so an unknown one is still reported as such.
 */
function localTokens(local: LocalEnvironment, hostname: string, port: string, user: string): Record<string, string> {
  const tokens: Record<string, string> = {};
  if (local.localHostname !== undefined) {
    tokens["l"] = local.localHostname;
    tokens["L"] = local.localHostname.split(".")[0]!;
    tokens["C"] = createHash("sha1").update(local.localHostname + hostname + port + user).digest("hex");
  }
  if (local.uid !== undefined) tokens["i"] = String(local.uid);
  return tokens;
}

export interface JumpHost {
  user?: string;
  host: string;
  port?: number;
}

export interface DestinationSettings extends HopSettings {
  /** ProxyJump hops, outermost first. */
  jumps: JumpHost[];
  gatewayPorts: boolean;
  exitOnForwardFailure: boolean;
  dynamicForwards: string[][];
  localForwards: string[][];
  remoteForwards: string[][];
}

const DEFAULT_IDENTITIES = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"];

/**
 * @example
 * resolveDestination("home", lookup, { homeDir: "/home/me", localUser: "me", agentSocket: undefined, platform: "linux" });
 */
export function resolveDestination(alias: string, options: OptionLookup, local: LocalEnvironment): DestinationSettings {
  const hop = resolveHop(alias, options, local);
  const proxyJump = options.first("proxyjump")?.[0];
  return {
    ...hop,
    jumps: proxyJump === undefined || proxyJump.toLowerCase() === "none" ? [] : parseJumpList(proxyJump),
    gatewayPorts: yesNo(options, "gatewayports", false),
    exitOnForwardFailure: yesNo(options, "exitonforwardfailure", false),
    dynamicForwards: options.all("dynamicforward"),
    localForwards: options.all("localforward"),
    remoteForwards: options.all("remoteforward"),
  };
}

/** Settings for one SSH hop (a jump host or the destination). */
export function resolveHop(alias: string, options: OptionLookup, local: LocalEnvironment): HopSettings {
  const port = parsePort(options.first("port")?.[0] ?? "22", "Port");
  const user = options.first("user")?.[0] ?? local.localUser;
  const base = { p: String(port), r: user, u: local.localUser, d: local.homeDir, n: alias };
  const hostname = expandTokens(options.first("hostname")?.[0] ?? alias, { ...base, h: alias });
  const tokens = { ...base, h: hostname, ...localTokens(local, hostname, String(port), user) };
  const path = (raw: string): string => expandTilde(expandTokens(raw, tokens), local.homeDir);

  const batchMode = yesNo(options, "batchmode", false);
  const hostKeyAlias = options.first("hostkeyalias")?.[0];
  const identityFiles = identityFilesFor(options, path);
  return {
    alias,
    hostname,
    port,
    user,
    addressFamily: addressFamily(options.first("addressfamily")?.[0]),
    connectTimeoutMs: seconds(options, "connecttimeout"),
    // 15 s where OpenSSH's default is 0 (off): a tunnel must notice a frozen or
    // vanished server within a minute (ServerAliveCountMax 3) to reconnect, where
    // an interactive ssh has a user to notice. ServerAliveInterval 0 turns it off.
    serverAliveIntervalMs: serverAliveInterval(options),
    serverAliveCountMax: integer(options, "serveralivecountmax", 3),
    hostKey: {
      // OpenSSH: HostKeyAlias is looked up as given, with no [host]:port form.
      host: (hostKeyAlias ?? hostname).toLowerCase(),
      port: hostKeyAlias === undefined ? port : 22,
      userKnownHostsFiles: fileList(options.first("userknownhostsfile") ?? ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"], path),
      globalKnownHostsFiles: fileList(options.first("globalknownhostsfile") ?? ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"], path),
      strict: strictness(options.first("stricthostkeychecking")?.[0]),
      hashKnownHosts: options.first("hashknownhosts") === undefined ? undefined : yesNo(options, "hashknownhosts", false),
      batchMode,
    },
    auth: {
      identityFiles,
      identitiesOnly: yesNo(options, "identitiesonly", false),
      agent: agentFor(options.first("identityagent")?.[0], local, path),
      batchMode,
      passwordPrompts: integer(options, "numberofpasswordprompts", 3),
      preferredAuthentications: options.first("preferredauthentications")?.[0]?.split(","),
    },
  };
}

function identityFilesFor(options: OptionLookup, path: (raw: string) => string): IdentityFile[] {
  const named = options.all("identityfile").map((args) => args[0]!).filter((p) => p.toLowerCase() !== "none");
  // OpenSSH adds the default names only when no IdentityFile was given at all.
  const files = named.length > 0 ? named.map((p) => ({ path: path(p), explicit: true })) : DEFAULT_IDENTITIES.map((p) => ({ path: path(p), explicit: false }));
  const seen = new Set<string>();
  return files.filter((f) => (seen.has(f.path) ? false : (seen.add(f.path), true)));
}

function agentFor(setting: string | undefined, local: LocalEnvironment, path: (raw: string) => string): string | undefined {
  if (setting !== undefined) {
    if (setting.toLowerCase() === "none") return undefined;
    if (setting === "SSH_AUTH_SOCK") return local.agentSocket;
    // ssh_config(5): IdentityAgent takes ${VAR} (and $VAR for a bare variable).
    const expanded = setting.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|^\$([A-Za-z_][A-Za-z0-9_]*)$/g, (_m, braced: string | undefined, bare: string | undefined) => {
      const name = (braced ?? bare)!;
      const value = local.env?.[name];
      if (value === undefined) throw new TunnelError("BAD_CONFIG", `IdentityAgent ${setting}: environment variable ${name} is not set; set it or change IdentityAgent`);
      return value;
    });
    return path(expanded);
  }
  if (local.agentSocket) return local.agentSocket;
  // Windows: Pageant when no OpenSSH agent socket is named.
  return local.platform === "win32" ? "pageant" : undefined;
}

/**
 * ProxyJump / -J: `[user@]host[:port]` or `ssh://[user@]host[:port]`, comma-separated.
 *
 * @example
 * parseJumpList("me@bastion:2222,inner") // [{ user: "me", host: "bastion", port: 2222 }, { host: "inner" }]
 */
export function parseJumpList(text: string): JumpHost[] {
  return text.split(",").map((item) => parseDestination(item.trim(), "ProxyJump"));
}

/**
 * A destination as ssh takes it: `[user@]host`, `[user@]host:port` (ProxyJump
 * only), `[user@][v6]:port`, or `ssh://[user@]host[:port]`.
 */
export function parseDestination(text: string, what = "destination"): JumpHost {
  let rest = text;
  const uri = rest.startsWith("ssh://");
  if (uri) rest = rest.slice("ssh://".length).replace(/\/$/, "");
  const at = rest.lastIndexOf("@");
  const user = at >= 0 ? rest.slice(0, at) : undefined;
  rest = at >= 0 ? rest.slice(at + 1) : rest;
  let host = rest;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = parsePort(bracket[2], what);
  } else if ((uri || what === "ProxyJump") && /^[^:]+:\d+$/.test(rest)) {
    const colon = rest.lastIndexOf(":");
    host = rest.slice(0, colon);
    port = parsePort(rest.slice(colon + 1), what);
  }
  if (host === "" || (user !== undefined && user === "")) {
    throw new TunnelError("USAGE", `Bad ${what} ${echoValue(text, "'")}: expected [user@]host${what === "ProxyJump" ? "[:port]" : ""}`);
  }
  return { ...(user !== undefined ? { user } : {}), host, ...(port !== undefined ? { port } : {}) };
}

function parsePort(text: string, what: string): number {
  const port = parsePortNumber(text);
  if (port === undefined) throw new TunnelError("BAD_CONFIG", `Bad port ${echoValue(text, "'")} for ${what}: expected a number from 1 to 65535`);
  return port;
}

function yesNo(options: OptionLookup, keyword: string, fallback: boolean): boolean {
  const value = options.first(keyword)?.[0];
  if (value === undefined) return fallback;
  const v = value.toLowerCase();
  if (v === "yes" || v === "true") return true;
  if (v === "no" || v === "false") return false;
  // GatewayPorts also takes "clientspecified" on the server side; on the client it means yes.
  if (keyword === "gatewayports" && v === "clientspecified") return true;
  throw new TunnelError("BAD_CONFIG", `Bad value ${echoValue(value, "'")} for ${keyword}: expected yes or no`);
}

/** ServerAliveInterval in ms: the default when unset, 0 (off) when set to 0, as ssh_config(5) reads it. */
function serverAliveInterval(options: OptionLookup): number {
  if (options.first("serveraliveinterval") === undefined) return DEFAULT_SERVER_ALIVE_INTERVAL_MS;
  return seconds(options, "serveraliveinterval") ?? 0;
}

function seconds(options: OptionLookup, keyword: string): number | undefined {
  const value = options.first(keyword)?.[0];
  if (value === undefined || value.toLowerCase() === "none") return undefined;
  const n = parseTimeSpec(value);
  if (n === undefined) throw new TunnelError("BAD_CONFIG", `Bad value ${echoValue(value, "'")} for ${keyword}: expected seconds, or a time like 30s, 5m, 1h30m`);
  return n === 0 ? undefined : n * 1000;
}

/**
 * sshd_config(5) TIME FORMATS, as OpenSSH's convtime(): a number of seconds,
 * or number+unit pairs (s, m, h, d, w), e.g. "90", "1m30s", "2h".
 *
 * @example
 * parseTimeSpec("1h30m") // 5400
 */
export function parseTimeSpec(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  let rest = text.toLowerCase();
  if (rest === "") return undefined;
  while (rest !== "") {
    const match = /^(\d+)([smhdw]?)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * units[match[2] || "s"]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

function integer(options: OptionLookup, keyword: string, fallback: number): number {
  const value = options.first(keyword)?.[0];
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new TunnelError("BAD_CONFIG", `Bad value ${echoValue(value, "'")} for ${keyword}: expected a whole number`);
  return Number(value);
}

function strictness(value: string | undefined): StrictHostKeyChecking {
  switch (value?.toLowerCase()) {
    case undefined:
    case "ask":
      return "ask";
    case "yes":
    case "true":
      return "yes";
    case "no":
    case "off":
    case "false":
      return "no";
    case "accept-new":
      return "accept-new";
    default:
      throw new TunnelError("BAD_CONFIG", `Bad value ${echoValue(value ?? "", "'")} for StrictHostKeyChecking: expected yes, accept-new, no or ask`);
  }
}

function addressFamily(value: string | undefined): HopSettings["addressFamily"] {
  switch (value?.toLowerCase()) {
    case undefined:
    case "any":
      return "any";
    case "inet":
      return "inet";
    case "inet6":
      return "inet6";
    default:
      throw new TunnelError("BAD_CONFIG", `Bad value ${echoValue(value ?? "", "'")} for AddressFamily: expected any, inet or inet6`);
  }
}

function fileList(args: string[], path: (raw: string) => string): string[] {
  if (args.length === 1 && args[0]!.toLowerCase() === "none") return [];
  return args.map(path);
}
