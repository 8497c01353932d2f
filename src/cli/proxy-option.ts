/**
 * `--proxy HOST:PORT`, the running tunnel's -D port, as every command that
 * uses a tunnel rather than runs one takes it (leakcheck, exec, nc, browser).
 */
import { echoValue, type TunnelError } from "../errors.ts";
import { parsePortNumber, unbracket } from "../address.ts";

/** Where those commands look without --proxy: ssh -D's customary port on loopback. */
export const DEFAULT_PROXY = "127.0.0.1:1080";

/**
 * `HOST:PORT`, `[v6]:PORT`, or a bare port on 127.0.0.1; a USAGE error from
 * `usage` naming the fix for anything else.
 *
 * @example
 * parseProxyOption("9001", usage) // { host: "127.0.0.1", port: 9001 }
 * parseProxyOption("[::1]:9001", usage) // { host: "::1", port: 9001 }
 */
export function parseProxyOption(text: string, usage: (problem: string) => TunnelError): { host: string; port: number } {
  const bare = parsePortNumber(text);
  if (bare !== undefined) return { host: "127.0.0.1", port: bare };
  const colon = text.lastIndexOf(":");
  const host = colon > 0 ? unbracket(text.slice(0, colon)) : "";
  const port = colon > 0 ? parsePortNumber(text.slice(colon + 1)) : undefined;
  if (host === "" || port === undefined || (host.includes(":") && !text.startsWith("["))) {
    throw usage(`bad --proxy ${echoValue(text, "'")}: expected HOST:PORT of the tunnel's SOCKS port, e.g. --proxy 127.0.0.1:9001`);
  }
  return { host, port };
}
