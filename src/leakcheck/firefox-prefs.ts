/**
 * Firefox's preference files and how a profile's value of a pref comes about:
 * the files are read as libpref reads them (modules/libpref/parser/src/lib.rs),
 * then layered as Firefox layers them at start-up. Pure: text in, values out;
 * it never throws on a file, it reports what it could not read.
 *
 * Precedence, highest first (libpref, and the enterprise policy engine in
 * browser/components/enterprisepolicies/Policies.sys.mjs):
 * 1. a locked pref: a policy with `"Locked": true` (setAndLockPref) or
 *    `pref(..., locked)` in a default-pref file; user values are then ignored;
 * 2. the user value: user.js, which Firefox reads after prefs.js at every
 *    start-up, over prefs.js;
 * 3. a default set by an unlocked policy (setDefaultPref), over a default-pref
 *    file of the installation (Debian's /etc/firefox-esr/*.js);
 * 4. Firefox's built-in default (the caller's table: firefox-audit.ts).
 */
import { FIREFOX_PREF, type FirefoxPrefValue } from "../client-setup.ts";

/** The three pref functions of a prefs file; `pref` and `sticky_pref` set defaults, `user_pref` user values. */
export type PrefFunction = "pref" | "user_pref" | "sticky_pref";

/** One `user_pref("name", value);` (or `pref`, `sticky_pref`) statement. */
export interface PrefStatement {
  fn: PrefFunction;
  name: string;
  value: FirefoxPrefValue;
  /** `pref("name", value, locked)`. */
  locked: boolean;
  /** 1-based line of the function name. */
  line: number;
}

/** Something the parser could not read; it skipped to the next `;` and went on, as libpref's parser recovers. */
export interface PrefSyntaxError {
  line: number;
  message: string;
}

export interface ParsedPrefs {
  statements: PrefStatement[];
  errors: PrefSyntaxError[];
}

type Token =
  | { kind: "ident"; text: string; line: number }
  | { kind: "string"; text: string; line: number }
  | { kind: "int"; value: number; line: number }
  | { kind: "punct"; text: "(" | ")" | "," | ";"; line: number }
  | { kind: "error"; message: string; line: number }
  | { kind: "end"; line: number };

/** libpref's integers are 32-bit signed; a larger literal is an error there too. */
const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;

/** Reads tokens off the text: comments (`#`, `//`, `/* *\/`) and whitespace skipped. */
class PrefLexer {
  private pos = 0;
  line = 1;

  constructor(private readonly text: string) {}

  next(): Token {
    this.skipSpaceAndComments();
    const line = this.line;
    if (this.pos >= this.text.length) return { kind: "end", line };
    const c = this.text[this.pos]!;
    if (c === "(" || c === ")" || c === "," || c === ";") {
      this.pos++;
      return { kind: "punct", text: c, line };
    }
    if (c === '"' || c === "'") return this.string(c, line);
    if (/[0-9+-]/.test(c)) return this.integer(line);
    if (/[A-Za-z_]/.test(c)) {
      const start = this.pos;
      while (this.pos < this.text.length && /[A-Za-z0-9_]/.test(this.text[this.pos]!)) this.pos++;
      return { kind: "ident", text: this.text.slice(start, this.pos), line };
    }
    this.pos++;
    return { kind: "error", message: `unexpected character ${JSON.stringify(c)}`, line };
  }

  /** After an error: drop everything up to and including the next `;`. */
  skipStatement(): void {
    for (;;) {
      const token = this.next();
      if (token.kind === "end" || (token.kind === "punct" && token.text === ";")) return;
    }
  }

  private skipSpaceAndComments(): void {
    const text = this.text;
    while (this.pos < text.length) {
      const c = text[this.pos]!;
      if (c === "\n") {
        this.line++;
        this.pos++;
      } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v" || c === "\ufeff") {
        this.pos++;
      } else if (c === "#" || text.startsWith("//", this.pos)) {
        while (this.pos < text.length && text[this.pos] !== "\n") this.pos++;
      } else if (text.startsWith("/*", this.pos)) {
        const end = text.indexOf("*/", this.pos + 2);
        const stop = end < 0 ? text.length : end + 2;
        for (let i = this.pos; i < stop; i++) if (text[i] === "\n") this.line++;
        this.pos = stop;
      } else {
        return;
      }
    }
  }

  private string(quote: string, line: number): Token {
    const text = this.text;
    let value = "";
    let bad: string | undefined;
    this.pos++;
    while (this.pos < text.length) {
      const c = text[this.pos]!;
      if (c === quote) {
        this.pos++;
        return { kind: "string", text: value, line };
      }
      if (c === "\n") this.line++;
      if (c !== "\\") {
        value += c;
        this.pos++;
        continue;
      }
      const escape = text[this.pos + 1];
      this.pos += 2;
      switch (escape) {
        case '"':
        case "'":
        case "\\":
          value += escape;
          break;
        case "n":
          value += "\n";
          break;
        case "r":
          value += "\r";
          break;
        case "x":
        case "u": {
          const digits = escape === "x" ? 2 : 4;
          const hex = text.slice(this.pos, this.pos + digits);
          if (hex.length !== digits || !/^[0-9A-Fa-f]+$/.test(hex)) {
            bad = `malformed \\${escape} escape`;
            break;
          }
          // Surrogate pairs arrive as two \u escapes and join up in the UTF-16 string.
          value += String.fromCharCode(parseInt(hex, 16));
          this.pos += digits;
          break;
        }
        default:
          bad ??= `unexpected escape \\${escape ?? ""}`;
      }
      if (bad !== undefined) return this.finishBadString(quote, bad, line);
    }
    return { kind: "error", message: "unterminated string", line };
  }

  /** A bad escape: consume the rest of the string, so recovery starts after it, and report the escape. */
  private finishBadString(quote: string, message: string, line: number): Token {
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      if (this.text[this.pos] === "\\") this.pos++;
      if (this.text[this.pos] === "\n") this.line++;
      this.pos++;
    }
    this.pos++;
    return { kind: "error", message, line };
  }

  private integer(line: number): Token {
    const match = /^[+-]?[0-9]+/.exec(this.text.slice(this.pos, this.pos + 40));
    if (match === null) {
      this.pos++;
      return { kind: "error", message: "a sign without digits", line };
    }
    this.pos += match[0].length;
    const value = Number(match[0]);
    if (value < INT_MIN || value > INT_MAX) return { kind: "error", message: `integer ${match[0]} out of range`, line };
    return { kind: "int", value, line };
  }
}

/**
 * The statements of a prefs.js, user.js or default-pref file, in order, and
 * the ones it could not read (each skipped up to its `;`, as Firefox skips
 * them). Strings take libpref's escapes: `\\" \\' \\\\ \\n \\r \\xNN \\uNNNN`.
 *
 * @example
 * parsePrefsFile('user_pref("network.proxy.type", 1);\nuser_pref("network.proxy.socks", "127.0.0.1");').statements
 * // [{ fn: "user_pref", name: "network.proxy.type", value: 1, locked: false, line: 1 }, { ..., line: 2 }]
 */
export function parsePrefsFile(text: string): ParsedPrefs {
  const lexer = new PrefLexer(text);
  const statements: PrefStatement[] = [];
  const errors: PrefSyntaxError[] = [];
  const fail = (token: Token, message: string): void => {
    errors.push({ line: token.line, message: token.kind === "error" ? token.message : message });
    if (!(token.kind === "punct" && token.text === ";") && token.kind !== "end") lexer.skipStatement();
  };
  const isPunct = (token: Token, text: string) => token.kind === "punct" && token.text === text;

  for (;;) {
    const head = lexer.next();
    if (head.kind === "end") break;
    if (head.kind !== "ident" || !["pref", "user_pref", "sticky_pref"].includes(head.text)) {
      fail(head, "expected pref, user_pref or sticky_pref");
      continue;
    }
    const open = lexer.next();
    if (!isPunct(open, "(")) {
      fail(open, "expected (");
      continue;
    }
    const name = lexer.next();
    if (name.kind !== "string") {
      fail(name, "expected the pref name as a string");
      continue;
    }
    const comma = lexer.next();
    if (!isPunct(comma, ",")) {
      fail(comma, "expected ,");
      continue;
    }
    const valueToken = lexer.next();
    let value: FirefoxPrefValue;
    if (valueToken.kind === "string") value = valueToken.text;
    else if (valueToken.kind === "int") value = valueToken.value;
    else if (valueToken.kind === "ident" && (valueToken.text === "true" || valueToken.text === "false")) value = valueToken.text === "true";
    else {
      fail(valueToken, "expected a string, an integer, true or false");
      continue;
    }
    let locked = false;
    let token = lexer.next();
    let bad: Token | undefined;
    while (isPunct(token, ",")) {
      const attribute = lexer.next();
      // Attributes belong to default prefs only (libpref: "user_pref() cannot have attributes").
      if (head.text === "user_pref" || attribute.kind !== "ident" || (attribute.text !== "locked" && attribute.text !== "sticky")) {
        bad = attribute;
        break;
      }
      if (attribute.text === "locked") locked = true;
      token = lexer.next();
    }
    if (bad !== undefined) {
      fail(bad, head.text === "user_pref" ? "user_pref takes no attributes" : "expected locked or sticky");
      continue;
    }
    if (!isPunct(token, ")")) {
      fail(token, "expected )");
      continue;
    }
    const semicolon = lexer.next();
    if (!isPunct(semicolon, ";")) {
      fail(semicolon, "expected ;");
      continue;
    }
    statements.push({ fn: head.text as PrefFunction, name: name.text, value, locked, line: head.line });
  }
  return { statements, errors };
}

/** A text file and where it was read. */
export interface TextFile {
  path: string;
  text: string;
}

/** A pref as one policy sets it. */
export interface PolicyPref {
  name: string;
  /** Undefined: locked at whatever the default is (a locked Proxy policy locks every proxy pref). */
  value: FirefoxPrefValue | undefined;
  locked: boolean;
  /** "Proxy" or "DNSOverHTTPS". */
  policy: string;
}

export interface ParsedPolicies {
  prefs: PolicyPref[];
  errors: string[];
}

/** Every pref a Proxy policy sets or locks (ProxyPolicies.sys.mjs `proxyPreferences`, the ones leakcheck reads). */
const PROXY_POLICY_PREFS = [
  FIREFOX_PREF.proxyType,
  FIREFOX_PREF.autoconfigUrl,
  FIREFOX_PREF.socks4RemoteDns,
  FIREFOX_PREF.socks5RemoteDns,
  FIREFOX_PREF.socksVersion,
  FIREFOX_PREF.noProxiesOn,
  FIREFOX_PREF.socksHost,
  FIREFOX_PREF.socksPort,
];

/** ProxyPolicies.sys.mjs PROXY_TYPES_MAP: Mode to network.proxy.type. */
const PROXY_MODES: Record<string, number> = { none: 0, system: 5, manual: 1, autoDetect: 4, autoConfig: 2 };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The prefs a policies.json sets, from the two policies that decide where
 * names are resolved: `Proxy` (ProxyPolicies.sys.mjs configureProxySettings)
 * and `DNSOverHTTPS` (Policies.sys.mjs). Unlocked, a policy only sets
 * defaults, which prefs.js and user.js still override; locked, it wins.
 *
 * @example
 * parseFirefoxPolicies('{"policies": {"Proxy": {"Mode": "system", "Locked": true}}}').prefs[0]
 * // { name: "network.proxy.type", value: 5, locked: true, policy: "Proxy" }
 */
export function parseFirefoxPolicies(text: string): ParsedPolicies {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // Firefox ignores every policy of a policies.json it cannot parse.
    return { prefs: [], errors: [`not JSON (${(error as Error).message}); Firefox ignores the whole file`] };
  }
  if (!isRecord(json) || !isRecord(json["policies"])) return { prefs: [], errors: ['no "policies" object'] };
  const policies = json["policies"];
  const prefs: PolicyPref[] = [];
  const errors: string[] = [];

  const proxy = policies["Proxy"];
  if (isRecord(proxy)) {
    const locked = proxy["Locked"] === true;
    const set = (name: string, value: FirefoxPrefValue) => prefs.push({ name, value, locked, policy: "Proxy" });
    if (typeof proxy["Mode"] === "string") {
      const type = PROXY_MODES[proxy["Mode"]];
      if (type === undefined) errors.push(`Proxy.Mode ${JSON.stringify(proxy["Mode"])} is not one Firefox knows`);
      else set(FIREFOX_PREF.proxyType, type);
    }
    if (typeof proxy["AutoConfigURL"] === "string") set(FIREFOX_PREF.autoconfigUrl, proxy["AutoConfigURL"]);
    if (typeof proxy["UseProxyForDNS"] === "boolean") {
      set(FIREFOX_PREF.socks4RemoteDns, proxy["UseProxyForDNS"]);
      set(FIREFOX_PREF.socks5RemoteDns, proxy["UseProxyForDNS"]);
    }
    if (proxy["SOCKSVersion"] !== undefined) {
      if (proxy["SOCKSVersion"] === 4 || proxy["SOCKSVersion"] === 5) set(FIREFOX_PREF.socksVersion, proxy["SOCKSVersion"]);
      else errors.push("Proxy.SOCKSVersion must be 4 or 5; Firefox ignores it");
    }
    if (typeof proxy["Passthrough"] === "string") set(FIREFOX_PREF.noProxiesOn, proxy["Passthrough"]);
    if (typeof proxy["SOCKSProxy"] === "string" && proxy["SOCKSProxy"] !== "") {
      // Firefox prepends https:// and lets the URL parser split host and port.
      const url = URL.canParse(`https://${proxy["SOCKSProxy"]}`) ? new URL(`https://${proxy["SOCKSProxy"]}`) : undefined;
      if (url === undefined) errors.push(`Proxy.SOCKSProxy ${JSON.stringify(proxy["SOCKSProxy"])} is not host:port; Firefox ignores it`);
      else {
        set(FIREFOX_PREF.socksHost, url.hostname);
        if (url.port !== "") set(FIREFOX_PREF.socksPort, Number(url.port));
      }
    }
    // "All preferences should be locked regardless of whether or not a specific value was set."
    if (locked) {
      for (const name of PROXY_POLICY_PREFS) {
        if (!prefs.some((pref) => pref.name === name)) prefs.push({ name, value: undefined, locked: true, policy: "Proxy" });
      }
    }
  }

  const doh = policies["DNSOverHTTPS"];
  if (isRecord(doh)) {
    const locked = doh["Locked"] === true;
    if (typeof doh["Enabled"] === "boolean") prefs.push({ name: FIREFOX_PREF.trrMode, value: doh["Enabled"] ? 2 : 5, locked, policy: "DNSOverHTTPS" });
    if (typeof doh["ProviderURL"] === "string") prefs.push({ name: FIREFOX_PREF.trrUri, value: doh["ProviderURL"], locked, policy: "DNSOverHTTPS" });
  }
  return { prefs, errors };
}

/** Where a pref's value came from. */
export type PrefOrigin =
  | { kind: "default" }
  | { kind: "user"; file: string; line: number }
  | { kind: "default-file"; file: string; line: number; locked: boolean }
  | { kind: "policy"; file: string; policy: string; locked: boolean };

export interface ResolvedPref {
  /** Undefined: nothing sets it, so Firefox's built-in default applies. */
  value: FirefoxPrefValue | undefined;
  origin: PrefOrigin;
}

/** What shapes one profile's prefs. */
export interface PrefSources {
  /** Default-pref files of the installation (Debian: /etc/firefox-esr/*.js), in load order. */
  defaultFiles?: TextFile[];
  /** The policies.json Firefox reads (only one: /etc/firefox/policies first, else the installation's distribution/). */
  policies?: TextFile;
  prefsJs?: TextFile;
  userJs?: TextFile;
}

/** A problem reading one of the files, for the report. */
export interface PrefFileProblem {
  file: string;
  message: string;
}

/** One profile's prefs as Firefox would see them at start-up. */
export interface ProfilePrefs {
  get(name: string): ResolvedPref;
  problems: PrefFileProblem[];
}

/**
 * Layers a profile's files as Firefox does at start-up (see the top of this file).
 *
 * @example
 * const prefs = resolveProfilePrefs({
 *   prefsJs: { path: "p/prefs.js", text: 'user_pref("network.proxy.type", 5);' },
 *   userJs: { path: "p/user.js", text: 'user_pref("network.proxy.type", 1);' },
 * });
 * prefs.get("network.proxy.type") // { value: 1, origin: { kind: "user", file: "p/user.js", line: 1 } }
 */
export function resolveProfilePrefs(sources: PrefSources): ProfilePrefs {
  const problems: PrefFileProblem[] = [];
  const defaults = new Map<string, ResolvedPref>();
  const locked = new Map<string, ResolvedPref>();
  const user = new Map<string, ResolvedPref>();

  const read = (file: TextFile): PrefStatement[] => {
    const parsed = parsePrefsFile(file.text);
    for (const error of parsed.errors) problems.push({ file: file.path, message: `line ${error.line}: ${error.message}` });
    return parsed.statements;
  };

  for (const file of sources.defaultFiles ?? []) {
    for (const statement of read(file)) {
      const resolved: ResolvedPref = {
        value: statement.value,
        origin: { kind: "default-file", file: file.path, line: statement.line, locked: statement.locked },
      };
      if (statement.fn === "user_pref") user.set(statement.name, { value: statement.value, origin: { kind: "user", file: file.path, line: statement.line } });
      else if (statement.locked) locked.set(statement.name, resolved);
      else defaults.set(statement.name, resolved);
    }
  }
  if (sources.policies !== undefined) {
    const file = sources.policies.path;
    const parsed = parseFirefoxPolicies(sources.policies.text);
    for (const message of parsed.errors) problems.push({ file, message });
    for (const pref of parsed.prefs) {
      const origin: PrefOrigin = { kind: "policy", file, policy: pref.policy, locked: pref.locked };
      const previous = pref.value === undefined ? (defaults.get(pref.name)?.value ?? undefined) : pref.value;
      if (pref.locked) locked.set(pref.name, { value: previous, origin });
      else defaults.set(pref.name, { value: pref.value, origin });
    }
  }
  // user.js is read after prefs.js at every start-up, so its values win.
  for (const file of [sources.prefsJs, sources.userJs]) {
    if (file === undefined) continue;
    for (const statement of read(file)) {
      const resolved: ResolvedPref = { value: statement.value, origin: { kind: "user", file: file.path, line: statement.line } };
      if (statement.fn === "user_pref") user.set(statement.name, resolved);
      else defaults.set(statement.name, { value: statement.value, origin: { kind: "default-file", file: file.path, line: statement.line, locked: false } });
    }
  }

  return {
    problems,
    get(name: string): ResolvedPref {
      return locked.get(name) ?? user.get(name) ?? defaults.get(name) ?? { value: undefined, origin: { kind: "default" } };
    },
  };
}
