/**
 * What a -D port says about itself over HTTP: a set-up page for a person who
 * opens it in a browser, and a PAC file for a browser that is pointed at it.
 * Pure: the proxy's address in, text out; the set-up words come from
 * client-setup.ts, as --help's and refusal lines' do.
 */
import { clientSetupHelp, type ProxyEndpoint } from "../client-setup.ts";
import { hostPort } from "../address.ts";
import type { ProxyPage } from "./server.ts";

/** Where the PAC file is served. */
export const PAC_PATH = "/proxy.pac";

/**
 * The PAC file: everything through the tunnel as SOCKS5, and nothing else. No
 * `DIRECT` fallback (a dead tunnel must not mean a direct connection), no
 * `dnsResolve`, `isInNet` or `isResolvable`, which resolve names on this
 * machine. `SOCKS5` and not `SOCKS`: Chromium reads a PAC `SOCKS host` as
 * SOCKS4, which resolves names locally.
 *
 * @example
 * pacFile({ host: "127.0.0.1", port: 9001 })
 * // 'function FindProxyForURL(url, host) {\n  return "SOCKS5 127.0.0.1:9001";\n}\n'
 */
export function pacFile(proxy: ProxyEndpoint): string {
  return `function FindProxyForURL(url, host) {\n  return "SOCKS5 ${hostPort(proxy.host, proxy.port)}";\n}\n`;
}

/**
 * The page at `/`: this is a proxy, and how to use it, with its address filled in.
 *
 * @example
 * setupPage({ host: "127.0.0.1", port: 9001 }) // "<!DOCTYPE html>...curl --socks5-hostname 127.0.0.1:9001..."
 */
export function setupPage(proxy: ProxyEndpoint): string {
  const address = hostPort(proxy.host, proxy.port);
  const lines = [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8"><title>safetunnel proxy on ' + escapeHtml(address) + "</title></head><body>",
    `<h1>safetunnel proxy on ${escapeHtml(address)}</h1>`,
    "<p>This port is a proxy into an SSH tunnel, not a web site. Names are resolved at the far end; requests that carry an IP address are refused, because the name was then looked up on this network.</p>",
    "<h2>SOCKS v5 (browsers, curl)</h2>",
    `<pre>${escapeHtml(clientSetupHelp(proxy))}</pre>`,
    "<h2>HTTP proxy (pip, npm, git, Python, Go)</h2>",
    `<p>The same port speaks HTTP: <code>HTTPS_PROXY=http://${escapeHtml(address)}</code> and <code>HTTP_PROXY=http://${escapeHtml(address)}</code>, or <code>curl -x http://${escapeHtml(address)}</code>. Or run the program under <code>safetunnel exec -- COMMAND</code>, which sets these for it.</p>`,
    "<h2>Nothing to set by hand</h2>",
    "<p><code>safetunnel browser</code> starts Firefox or Chromium with a fresh profile set up for this proxy; <code>safetunnel leakcheck</code> checks a browser you set up yourself.</p>",
    "<h2>PAC file</h2>",
    `<p><a href="${PAC_PATH}">${PAC_PATH}</a> sends everything here as SOCKS5. Prefer the manual settings above: Firefox refuses to resolve names itself only with manual proxy settings, so under a PAC file it may still look names up on this network.</p>`,
    "</body></html>",
    "",
  ];
  return lines.join("\n");
}

/**
 * The proxy's pages by path, for the address the client reached.
 *
 * @example
 * proxyPages("/proxy.pac", { host: "127.0.0.1", port: 9001 }) // { type: "application/x-ns-proxy-autoconfig", body: "function FindProxyForURL..." }
 */
export function proxyPages(path: string, proxy: ProxyEndpoint): ProxyPage | undefined {
  if (path === "/") return { type: "text/html; charset=utf-8", body: setupPage(proxy) };
  // The type Firefox and Chromium expect of a PAC file served over HTTP.
  if (path === PAC_PATH) return { type: "application/x-ns-proxy-autoconfig", body: pacFile(proxy) };
  return undefined;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
