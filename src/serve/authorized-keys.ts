/**
 * OpenSSH's authorized_keys format, as sshd(8) "AUTHORIZED_KEYS FILE FORMAT"
 * describes it and auth-options.c parses it: which keys may log in to
 * `safetunnel serve`, and what each may forward. Pure: the caller reads the
 * file and logs the warnings.
 *
 * safetunnel serve runs no commands and no sessions, so a line with an option
 * it cannot honour (command=, environment=, ...) is refused rather than let
 * in with less restriction than its author wrote.
 */
import { formatAddress, mappedIPv4, parseIPv4, parseIPv6 } from "../address.ts";
import { cidrContains, parseCidr, type Cidr } from "../cidr.ts";
import { hostKeyFromBlob } from "../config/known-hosts.ts";
import { decodeStrictBase64, nextToken, skipBlanks } from "../config/key-line.ts";
import { matchPattern } from "../config/patterns.ts";
import { singleLine } from "../log.ts";
import { parsePermitListenPattern, parsePermitOpenPattern } from "./permit-open.ts";

/** A permitopen= or --permit-open rule; host "*" is any host, port "*" any port (sshd_config(5) PermitOpen). */
export interface PermitOpenRule {
  host: string;
  port: number | "*";
}

/** A permitlisten= rule. host null: only a port was given, which OpenSSH reads as `*:port`. */
export interface PermitListenRule {
  host: string | null;
  port: number | "*";
}

/** One usable line of an authorized_keys file. */
export interface AuthorizedKey {
  /** 1-based line number. */
  line: number;
  /** The key type, e.g. "ssh-ed25519"; always equal to the type inside `blob`. */
  algorithm: string;
  /** The public key in SSH wire format (RFC 4253 section 6.6), decoded from the base64 field. */
  blob: Uint8Array;
  /** The rest of the line after the key, as written (escape it before showing it). */
  comment: string;
  /** `restrict` was given. */
  restrict: boolean;
  /** false after `restrict` or `no-port-forwarding`, true again after `port-forwarding` (the last one wins). */
  portForwarding: boolean;
  /** permitopen= rules; null when the line has none (no limit from this key). */
  permitOpen: PermitOpenRule[] | null;
  /** permitlisten= rules; null when the line has none (no limit from this key). */
  permitListen: PermitListenRule[] | null;
  /** from= patterns, split on commas; null when any address may use the key. */
  from: string[] | null;
}

export interface AuthorizedKeysFile {
  keys: AuthorizedKey[];
  /** One line each, starting with `source:line:`, free of control characters. */
  warnings: string[];
}

/**
 * Key types whose blobs OpenSSH reads from authorized_keys (sshkey.c). DSA is
 * left out on purpose: OpenSSH has refused ssh-dss by default since 7.0
 * (PubkeyAcceptedAlgorithms), stopped building it in 9.8 and removed it in 10.0.
 */
const KEY_TYPES = new Set(["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]);

/** FIDO security-key types (PROTOCOL.u2f): OpenSSH takes them, but ssh2 verifies no sk-* signature, so such a key could never log in here. */
const SECURITY_KEY_TYPES = new Set(["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]);

/** A first field that names a key type rather than options: no option name starts like this. */
const KEY_TYPE_LIKE = /^(?:ssh|ecdsa|sk|x509v3)-[^\s=,"]*$/;

/**
 * Options that restrict only what safetunnel serve never does (ptys, agent and
 * X11 forwarding, rc files), each with its `no-` form (auth-options.c
 * opt_flag). The security-key flags are accepted too: they only matter for sk-*
 * keys, whose lines are refused anyway.
 */
const HARMLESS_FLAGS = new Set(["pty", "agent-forwarding", "x11-forwarding", "user-rc", "touch-required", "verify-required"]);

/** Options we refuse, and why: honouring them means running or granting something we never do. */
const UNSUPPORTED: Record<string, { why: string; fix: string }> = {
  command: { why: "which runs no commands", fix: "remove the option to allow the key for forwarding only" },
  environment: { why: "which starts no sessions", fix: "remove the option to allow the key for forwarding only" },
  tunnel: { why: "which forwards TCP ports, not tun devices", fix: "remove the option to allow the key for forwarding only" },
  principals: { why: "which accepts no certificates", fix: "list the user's own public key instead" },
  "cert-authority": { why: "which accepts no certificates", fix: "list the user's own public key instead" },
  "expiry-time": { why: "which cannot enforce it", fix: "remove the option, and remove the key when it should expire" },
};

const REFETCH = "copy the whole line again from the client's .pub file";


/** Why a line is refused: the problem, and what the user can do about it. */
interface Refusal {
  problem: string;
  fix: string;
}

interface KeyOptions {
  restrict: boolean;
  portForwarding: boolean;
  permitOpen: PermitOpenRule[] | null;
  permitListen: PermitListenRule[] | null;
  from: string[] | null;
}

/**
 * Parses authorized_keys text. Blank lines and `#` comments are skipped; a
 * line that is malformed, or whose options cannot be honoured, is left out
 * with a warning naming `source:line`, the problem and the fix. Never throws.
 * A few accepted lines get a warning too (a from= host name that can never
 * match an address).
 *
 * @example
 * const file = parseAuthorizedKeys('restrict,port-forwarding,permitopen="localhost:80" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJutvyrJceTbStbm+HVICQzZtO9zlsbLEFYOtsnN/7Bl alice\n', "~/.ssh/authorized_keys");
 * file.keys[0]?.permitOpen; // [{ host: "localhost", port: 80 }]
 * file.warnings; // []
 */
export function parseAuthorizedKeys(text: string, source: string): AuthorizedKeysFile {
  const keys: AuthorizedKey[] = [];
  const warnings: string[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    let raw = lines[n]!;
    if (raw.endsWith("\r")) raw = raw.slice(0, -1);
    // Editors on Windows may start the file with a byte order mark.
    if (n === 0 && raw.startsWith("\uFEFF")) raw = raw.slice(1);
    const where = `${source}:${n + 1}`;
    const notes: string[] = [];
    const result = parseLine(raw, n + 1, notes);
    if (result === null) continue;
    if ("problem" in result) {
      warnings.push(oneLine(`${where}: ${result.problem}; that key is refused (${result.fix})`));
    } else {
      for (const note of notes) warnings.push(oneLine(`${where}: ${note}`));
      keys.push(result);
    }
  }
  return { keys, warnings };
}

function parseLine(text: string, line: number, notes: string[]): AuthorizedKey | Refusal | null {
  let i = skipBlanks(text, 0);
  if (i === text.length || text[i] === "#") return null;

  // auth2-pubkeyfile.c tries the line as a key first, then as options and a key; a first
  // field shaped like a key type name means there are no options.
  let options = defaultOptions();
  const first = nextToken(text, i);
  if (!KEY_TYPE_LIKE.test(first.token)) {
    const parsed = parseOptions(text, i, notes);
    if ("problem" in parsed) return parsed;
    options = parsed.options;
    i = skipBlanks(text, parsed.end);
    if (i === text.length || text[i] === "#") {
      return { problem: "there is no key after the options", fix: "write the options, a blank, then the key line from the client's .pub file" };
    }
  }

  const type = nextToken(text, i);
  const algorithm = type.token;
  const typeProblem = checkKeyType(algorithm);
  if (typeProblem !== null) return typeProblem;
  i = skipBlanks(text, type.end);
  if (i === text.length) return { problem: `the key type ${algorithm} is not followed by the key data`, fix: REFETCH };
  const data = nextToken(text, i);
  const decoded = decodeStrictBase64(data.token);
  if (decoded === null) return { problem: "the key data is not valid base64", fix: REFETCH };
  let inner: string;
  try {
    inner = hostKeyFromBlob(decoded).type;
  } catch {
    return { problem: `the key data is not a well-formed ${algorithm} public key`, fix: REFETCH };
  }
  // sshkey_read(): the declared type must be the one inside the blob.
  if (inner !== algorithm) {
    return { problem: `the key type ${algorithm} does not match the key data, which holds a ${excerpt(inner)} key`, fix: REFETCH };
  }
  return {
    line,
    algorithm,
    blob: new Uint8Array(decoded),
    comment: text.slice(skipBlanks(text, data.end)).trimEnd(),
    ...options,
  };
}

function checkKeyType(algorithm: string): Refusal | null {
  if (KEY_TYPES.has(algorithm)) return null;
  const shown = `"${excerpt(algorithm)}"`;
  if (SECURITY_KEY_TYPES.has(algorithm)) {
    return { problem: `security-key (${algorithm}) logins are not supported by safetunnel serve, which cannot check their signatures`, fix: "give the client an ordinary key too: ssh-keygen -t ed25519" };
  }
  if (algorithm === "ssh-dss") {
    return { problem: "ssh-dss (DSA) keys are refused, as OpenSSH has done by default since 7.0", fix: "give the client an ed25519 key: ssh-keygen -t ed25519" };
  }
  if (/-cert-v0[01]@openssh\.com$/.test(algorithm)) {
    return { problem: `the certificate type ${shown} is not supported by safetunnel serve, which accepts no certificates`, fix: "list the user's own public key instead" };
  }
  if (KEY_TYPE_LIKE.test(algorithm)) {
    return { problem: `the key type ${shown} is not supported by safetunnel serve`, fix: "use an ed25519, ECDSA or RSA key" };
  }
  return { problem: `expected a key type such as ssh-ed25519 after the options, found ${shown}`, fix: "write the options, a blank, then the key line from the client's .pub file" };
}

function defaultOptions(): KeyOptions {
  return { restrict: false, portForwarding: true, permitOpen: null, permitListen: null, from: null };
}

/**
 * sshauthopt_parse(): comma-separated options up to the first blank outside
 * quotes. Names ignore case; a value is in double quotes, where `\"` stands
 * for a quote and every other character, backslashes included, is literal
 * (misc.c opt_dequote). Options apply in order, so `port-forwarding,restrict`
 * ends with forwarding off.
 */
function parseOptions(text: string, start: number, notes: string[]): { options: KeyOptions; end: number } | Refusal {
  const options = defaultOptions();
  let i = start;
  for (;;) {
    let j = i;
    while (j < text.length && !"=, \t".includes(text[j]!)) j++;
    const name = text.slice(i, j);
    const lower = name.toLowerCase();
    const shown = `"${excerpt(name)}"`;
    if (name === "") {
      return { problem: "the option list has an empty option", fix: "remove the extra comma" };
    }
    const unsupported = Object.hasOwn(UNSUPPORTED, lower) ? UNSUPPORTED[lower]! : undefined;
    if (unsupported !== undefined) {
      return { problem: `option ${shown} is not supported by safetunnel serve, ${unsupported.why}`, fix: unsupported.fix };
    }
    const base = lower.startsWith("no-") ? lower.slice(3) : lower;
    const isFlag = lower === "restrict" || base === "port-forwarding" || HARMLESS_FLAGS.has(base);
    const takesValue = lower === "permitopen" || lower === "permitlisten" || lower === "from";
    if (!isFlag && !takesValue) {
      return { problem: `unknown option ${shown}`, fix: `check its spelling against sshd(8) "AUTHORIZED_KEYS FILE FORMAT", or remove it` };
    }
    if (isFlag) {
      if (text[j] === "=") return { problem: `option ${shown} takes no value`, fix: `write ${name} alone` };
      if (lower === "restrict") {
        options.restrict = true;
        options.portForwarding = false;
      } else if (base === "port-forwarding") {
        options.portForwarding = lower === base;
      }
      i = j;
    } else {
      const example = lower === "from" ? 'from="192.0.2.0/24"' : lower === "permitopen" ? 'permitopen="localhost:8080"' : 'permitlisten="localhost:8080"';
      if (text[j] !== "=" || text[j + 1] !== '"') {
        return { problem: `option ${shown} needs a value in double quotes`, fix: `write it like ${example}` };
      }
      const quoted = dequote(text, j + 2);
      if (quoted === null) return { problem: `the value of option ${shown} has no closing double quote`, fix: `write it like ${example}` };
      const refusal = applyValue(options, lower, name, quoted.value, notes);
      if (refusal !== null) return refusal;
      i = quoted.end;
    }
    if (i === text.length || text[i] === " " || text[i] === "\t") return { options, end: i };
    if (text[i] !== ",") {
      return { problem: `unexpected text after option ${shown}`, fix: "separate options with commas only, and put the key after a blank" };
    }
    i++;
  }
}

function dequote(text: string, from: number): { value: string; end: number } | null {
  let value = "";
  let i = from;
  while (i < text.length && text[i] !== '"') {
    if (text[i] === "\\" && text[i + 1] === '"') i++;
    value += text[i]!;
    i++;
  }
  return i < text.length ? { value, end: i + 1 } : null;
}

function applyValue(options: KeyOptions, lower: string, name: string, value: string, notes: string[]): Refusal | null {
  const written = `${name}="${excerpt(value)}"`;
  if (lower === "permitopen") {
    const parsed = parsePermitOpenPattern(value);
    if ("problem" in parsed) {
      return { problem: `option ${written}: ${parsed.problem}`, fix: "write host:port, [IPv6]:port, with * alone for any host or any port" };
    }
    (options.permitOpen ??= []).push(parsed.rule);
    return null;
  }
  if (lower === "permitlisten") {
    const parsed = parsePermitListenPattern(value);
    if ("problem" in parsed) {
      return { problem: `option ${written}: ${parsed.problem}`, fix: "write port, host:port or [IPv6]:port, with * for any port" };
    }
    (options.permitListen ??= []).push(parsed.rule);
    return null;
  }
  // from=: auth-options.c refuses a second from= clause.
  if (options.from !== null) return { problem: `option ${name} is given twice`, fix: "merge the patterns into one from=\"...\" list" };
  const patterns = value.split(",");
  for (const pattern of patterns) {
    const entry = classifyFromEntry(pattern);
    if ("problem" in entry) return { problem: `option ${written}: ${entry.problem}`, fix: entry.fix };
    if (entry.kind === "pattern" && looksLikeHostName(entry.pattern)) {
      const shown = `"${excerpt(pattern)}"`;
      if (entry.negated) {
        return {
          problem: `option ${written}: ${shown} excludes a host name, but safetunnel serve matches only the client's IP address (as sshd with UseDNS no), so it would exclude nobody`,
          fix: "exclude addresses or networks such as !192.0.2.0/24 instead",
        };
      }
      notes.push(
        `option ${written}: ${shown} is a host name, but safetunnel serve matches only the client's IP address (as sshd with UseDNS no), so it never matches (write addresses or networks such as 192.0.2.0/24 instead)`,
      );
    }
  }
  options.from = patterns;
  return null;
}

type FromEntry =
  | { negated: boolean; kind: "network"; cidr: Cidr }
  | { negated: boolean; kind: "pattern"; pattern: string }
  | Refusal;

/**
 * One from= entry, as addrmatch.c addr_match_list() reads it: `!` negates;
 * an address or address/prefix is a network; anything else is a `*`/`?`
 * pattern matched against the address as text. Where OpenSSH would refuse the
 * whole key at login (an empty entry, a bad prefix, host bits set past the
 * prefix) or the entry could never match (blanks, a prefix on a non-address),
 * the entry is refused here, so the line is refused when it is read.
 */
function classifyFromEntry(text: string): FromEntry {
  const negated = text.startsWith("!");
  const body = negated ? text.slice(1) : text;
  const shown = `"${excerpt(text)}"`;
  if (body === "") return { problem: "it has an empty entry", fix: "remove the extra comma" };
  if (/\s/.test(body)) return { problem: `the entry ${shown} contains a blank`, fix: "separate entries with commas only, without blanks" };
  const slash = body.indexOf("/");
  const addressText = slash < 0 ? body : body.slice(0, slash);
  const address = parseIPv4(addressText) ?? parseIPv6(addressText);
  if (address === null) {
    if (slash >= 0) return { problem: `the entry ${shown} is not an address/prefix`, fix: "write a network like 192.0.2.0/24 or 2001:db8::/32" };
    return { negated, kind: "pattern", pattern: body.toLowerCase() };
  }
  const maxPrefix = address.length * 8;
  if (slash >= 0) {
    const prefixText = body.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      return { problem: `the entry ${shown} has a bad prefix length`, fix: `use a prefix length from 0 to ${maxPrefix}` };
    }
  }
  const cidr = parseCidr(body);
  const comparable = cidr.family === 4 && address.length === 16 ? mappedIPv4(address)! : address;
  if (!comparable.every((byte, index) => byte === cidr.bytes[index])) {
    return { problem: `the entry ${shown} has bits set past its prefix`, fix: `write ${negated ? "!" : ""}${cidr.text}` };
  }
  return { negated, kind: "network", cidr };
}

/** A pattern with letters no address has (beyond the hex digits) names a host. */
function looksLikeHostName(pattern: string): boolean {
  return /[g-z_]/.test(pattern);
}

/**
 * Finds the line for a key the client offers: the first with the same type
 * and the same blob. `rsa-sha2-256` and `rsa-sha2-512` (RFC 8332 signature
 * names) find `ssh-rsa` keys. With `address`, lines whose from= refuses that
 * address are passed over, as sshd goes on to the next line when a matching
 * key's options do not authorise the connection (auth2-pubkeyfile.c).
 *
 * @example
 * findAuthorizedKey(file, "ssh-ed25519", blob)?.line; // 3
 * findAuthorizedKey(file, "ssh-ed25519", blob, "192.0.2.7")?.line; // the first line that also allows 192.0.2.7
 */
export function findAuthorizedKey(file: AuthorizedKeysFile, algorithm: string, blob: Uint8Array, address?: string): AuthorizedKey | undefined {
  const type = algorithm === "rsa-sha2-256" || algorithm === "rsa-sha2-512" ? "ssh-rsa" : algorithm;
  return file.keys.find(
    (key) =>
      key.algorithm === type &&
      key.blob.length === blob.length &&
      key.blob.every((byte, index) => byte === blob[index]) &&
      (address === undefined || fromAllows(key.from, address)),
  );
}

/**
 * Whether a client address may use a key with these from= patterns (null:
 * any). As OpenSSH's match_host_and_ip() with UseDNS no: a network entry
 * matches by address, a wildcard entry matches the address as text (IPv6 in
 * RFC 5952 form), entries ignore case, and a matching negated entry refuses
 * even when another entry matches. An IPv4-mapped IPv6 address counts as the
 * IPv4 address (as sshd's ipv64_normalise_mapped). A malformed list, or an
 * address that is not an IP address, allows nothing.
 *
 * @example
 * fromAllows(["192.0.2.0/24", "!192.0.2.13"], "::ffff:192.0.2.7"); // true
 * fromAllows(["192.0.2.0/24", "!192.0.2.13"], "192.0.2.13"); // false
 * fromAllows(["10.1.*"], "10.1.2.3"); // true
 */
export function fromAllows(patterns: readonly string[] | null, address: string): boolean {
  if (patterns === null) return true;
  let text = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  let bytes = parseIPv4(text) ?? parseIPv6(text);
  if (bytes === null) return false;
  bytes = mappedIPv4(bytes) ?? bytes;
  const spelled = formatAddress(bytes);
  let matched = false;
  for (const pattern of patterns) {
    const entry = classifyFromEntry(pattern);
    if ("problem" in entry) return false;
    const hit = entry.kind === "network" ? cidrContains(entry.cidr, bytes) : matchPattern(spelled, entry.pattern);
    if (!hit) continue;
    if (entry.negated) return false;
    matched = true;
  }
  return matched;
}

function excerpt(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}

/** Text from the file inside a warning: one line, no control characters. */
function oneLine(text: string): string {
  return singleLine(text).replace(/[\t\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
