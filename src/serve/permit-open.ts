/**
 * Where a client may connect (-L, direct-tcpip) and listen (-R, tcpip-forward):
 * `--permit-open` as sshd_config(5) PermitOpen, and the host:port values of
 * authorized_keys permitopen= and permitlisten= (sshd(8) "AUTHORIZED_KEYS FILE
 * FORMAT"). Pure.
 */
import { parsePortNumber } from "../address.ts";
import { TunnelError } from "../errors.ts";
import { singleLine } from "../log.ts";
import { matchPattern } from "../config/patterns.ts";
import type { PermitListenRule, PermitOpenRule } from "./authorized-keys.ts";

export type { PermitListenRule, PermitOpenRule } from "./authorized-keys.ts";

/** A parsed rule, or why the text is not one (a clause to put after "value X: "). */
export type PatternResult<T> = { rule: T } | { problem: string };

const PERMIT_OPEN_FORMS = "expected host:port, [IPv6]:port, * for any host or port, any, or none";

/**
 * Parses the `--permit-open` values. Each value may hold several patterns
 * separated by blanks, as one PermitOpen line does. `any` and `none` must
 * stand alone, as sshd(8) insists for PermitOpen.
 *
 * @returns null when nothing limits the destination (no values, or `any`);
 *   [] when nothing is allowed (`none`).
 * @throws TunnelError("USAGE") naming the value and the forms that work.
 * @example
 * parsePermitOpenList([]); // null
 * parsePermitOpenList(["none"]); // []
 * parsePermitOpenList(["localhost:80", "[::1]:*"]); // [{ host: "localhost", port: 80 }, { host: "::1", port: "*" }]
 */
export function parsePermitOpenList(values: readonly string[]): PermitOpenRule[] | null {
  const entries: { value: string; pattern: string }[] = [];
  for (const value of values) {
    const patterns = value.split(/[ \t]+/).filter((pattern) => pattern !== "");
    if (patterns.length === 0) throw badValue(value, "it is empty");
    for (const pattern of patterns) entries.push({ value, pattern });
  }
  if (entries.length === 0) return null;
  const keyword = entries.find(({ pattern }) => /^(?:any|none)$/i.test(pattern));
  if (keyword !== undefined) {
    if (entries.length > 1) {
      throw badValue(keyword.value, `'${keyword.pattern.toLowerCase()}' must be the only --permit-open value, as sshd_config(5) has it for PermitOpen`);
    }
    return keyword.pattern.toLowerCase() === "any" ? null : [];
  }
  return entries.map(({ value, pattern }) => {
    const parsed = parsePermitOpenPattern(pattern);
    if ("problem" in parsed) throw badValue(value, parsed.problem);
    return parsed.rule;
  });
}

function badValue(value: string, problem: string): TunnelError {
  return new TunnelError("USAGE", oneLine(`Bad --permit-open value '${excerpt(value)}': ${problem}; ${PERMIT_OPEN_FORMS}`));
}

/**
 * One PermitOpen / permitopen= pattern: `host:port` or `[address]:port`, with
 * `*` alone for any host or any port. A port is 1 to 65535 in decimal
 * (service names are not looked up). A host like `*.example.com` is refused:
 * OpenSSH compares the requested name with the host textually (channels.c
 * open_match), so such a pattern would only ever match itself.
 *
 * @example
 * parsePermitOpenPattern("[2001:db8::1]:443"); // { rule: { host: "2001:db8::1", port: 443 } }
 * parsePermitOpenPattern("web:0"); // { problem: "the port must be a number from 1 to 65535, or *" }
 */
export function parsePermitOpenPattern(text: string): PatternResult<PermitOpenRule> {
  const split = splitHostPort(text);
  if ("problem" in split) return split;
  const { host, port } = split.rule;
  if (host !== "*" && /[*?]/.test(host)) {
    return { problem: `the host "${excerpt(host)}" is a pattern, but only a lone * matches more than one host` };
  }
  return { rule: { host, port } };
}

/**
 * One permitlisten= value: `[host:]port`. Without a host it is `host: null`,
 * which OpenSSH reads as `*:port` (auth-options.c handle_permit). The host may
 * hold the `*` and `?` wildcards, which OpenSSH matches against the requested
 * listen address (channels.c remote_open_match).
 *
 * @example
 * parsePermitListenPattern("8080"); // { rule: { host: null, port: 8080 } }
 * parsePermitListenPattern("localhost:*"); // { rule: { host: "localhost", port: "*" } }
 */
export function parsePermitListenPattern(text: string): PatternResult<PermitListenRule> {
  if (!text.includes(":")) {
    const port = parsePort(text);
    return port === undefined ? { problem: PORT_PROBLEM } : { rule: { host: null, port } };
  }
  return splitHostPort(text);
}

const PORT_PROBLEM = "the port must be a number from 1 to 65535, or *";

function parsePort(text: string): number | "*" | undefined {
  return text === "*" ? "*" : parsePortNumber(text);
}

/** OpenSSH's hpdelim2() for the ':' separator: `[host]:port` or `host:port`, brackets removed. */
function splitHostPort(text: string): PatternResult<{ host: string; port: number | "*" }> {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      return { problem: "an address in brackets must be followed by :port, like [::1]:8080" };
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.indexOf(":");
    if (colon < 0) return { problem: "it has no :port" };
    if (text.indexOf(":", colon + 1) >= 0) {
      return { problem: "an IPv6 address must be in brackets, like [::1]:8080" };
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (host === "") return { problem: "the host is empty" };
  // NI_MAXHOST (1025) is OpenSSH's limit; blanks and control characters never make a host name.
  if (host.length >= 1025) return { problem: "the host is longer than 1024 characters" };
  if (/[\s\u0000-\u001f\u007f-\u009f]/.test(host)) return { problem: "the host contains a blank or a control character" };
  const port = parsePort(portText);
  if (port === undefined) return { problem: PORT_PROBLEM };
  return { rule: { host, port } };
}

/**
 * Whether a client may open a channel to host:port (RFC 4254 section 7.2,
 * direct-tcpip). null rules allow everything; [] allows nothing. The host is
 * compared as text, ignoring case, with no name resolution, as OpenSSH does:
 * a rule for `localhost` does not allow `127.0.0.1`.
 *
 * @example
 * permitsOpen([{ host: "LocalHost", port: 80 }], "localhost", 80); // true
 * permitsOpen([{ host: "localhost", port: 80 }], "127.0.0.1", 80); // false
 * permitsOpen(null, "example.org", 22); // true
 */
export function permitsOpen(rules: readonly PermitOpenRule[] | null, host: string, port: number): boolean {
  if (rules === null) return true;
  const wanted = host.toLowerCase();
  return rules.some((rule) => (rule.port === "*" || rule.port === port) && (rule.host === "*" || rule.host.toLowerCase() === wanted));
}

/**
 * Whether a client may listen on bindAddr:port (RFC 4254 section 7.1,
 * tcpip-forward) under a key's permitlisten= rules. null allows everything.
 * A rule without a host, or with `*`, allows any listen address; otherwise
 * the host is a wildcard pattern matched without regard to case, as OpenSSH's
 * remote_open_match() does. A request for port 0 (let the server choose) is
 * allowed only by a `*` port.
 *
 * @example
 * permitsListen([{ host: null, port: 8080 }], "localhost", 8080); // true
 * permitsListen([{ host: "127.0.0.*", port: "*" }], "127.0.0.1", 9000); // true
 * permitsListen([{ host: "localhost", port: 8080 }], "0.0.0.0", 8080); // false
 */
export function permitsListen(rules: readonly PermitListenRule[] | null, bindAddr: string, port: number): boolean {
  if (rules === null) return true;
  const wanted = bindAddr.toLowerCase();
  return rules.some(
    (rule) => (rule.port === "*" || rule.port === port) && (rule.host === null || matchPattern(wanted, rule.host.toLowerCase())),
  );
}

function excerpt(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}

/** User text inside a message: one line, no control characters. */
function oneLine(text: string): string {
  return singleLine(text).replace(/[\t\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
