/**
 * How each SOCKS client must be set up so that names, not addresses, reach
 * the proxy, and the fix for one that sent an address. The one place these
 * texts live: refusal lines, --help and leakcheck all say the same thing.
 *
 * What each client does, and where to check it:
 * - Firefox decides SOCKS v5 name handling by `network.proxy.socks5_remote_dns`
 *   (the "Proxy DNS when using SOCKS v5" box, Fluent id
 *   connection-proxy-socks-remote-dns); `network.proxy.socks_remote_dns` ("Proxy
 *   DNS when using SOCKS v4", connection-proxy-socks4-remote-dns) now covers
 *   SOCKS v4 only, where it makes Firefox send SOCKS4a names.
 * - Chromium sends names with `--proxy-server=socks5://`; with `socks4://` it
 *   resolves every name locally (net/socket/socks_client_socket.cc resolves the
 *   host before it writes a SOCKS4 request; it has no 4a), seen with Chromium 156.
 * - curl: `--socks5-hostname` and `socks5h://` send names; `--socks5`,
 *   `socks5://` and `--socks4` resolve locally (curl(1), --socks5-hostname).
 */
import { hostPort, unbracket } from "./address.ts";

/** The clients we know how to set up. */
export type SocksApp = "firefox" | "chromium" | "curl";

/** The proxy as an app is given it: host and port (`"N"` for help text). */
export interface ProxyEndpoint {
  host: string;
  port: number | string;
}

/** Firefox's pref and checkbox for remote DNS, per SOCKS version. */
const FIREFOX_REMOTE_DNS = {
  5: { pref: "network.proxy.socks5_remote_dns", box: "Proxy DNS when using SOCKS v5" },
  4: { pref: "network.proxy.socks_remote_dns", box: "Proxy DNS when using SOCKS v4" },
} as const;

/** `network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5")` */
function firefoxRemoteDns(version: 4 | 5): string {
  const { pref, box } = FIREFOX_REMOTE_DNS[version];
  return `${pref} = true ("${box}")`;
}

/** host:port as proxy URLs write it (IPv6 in brackets); the port may be a placeholder such as "N". */
function proxyAddress(proxy: ProxyEndpoint): string {
  return hostPort(proxy.host, proxy.port);
}

function chromiumFlag(proxy: ProxyEndpoint): string {
  return `--proxy-server=socks5://${proxyAddress(proxy)}`;
}

function curlFlags(proxy: ProxyEndpoint, separator: string): string {
  const address = proxyAddress(proxy);
  return `--socks5-hostname ${address}${separator}-x socks5h://${address}`;
}

/** Firefox's proxy dialog takes the bare host (no IPv6 brackets) and the port apart. */
function firefoxProxy(proxy: ProxyEndpoint): string {
  return `SOCKS v5 host ${unbracket(proxy.host)} port ${proxy.port}`;
}

/**
 * Which app a program is, from its /proc/<pid>/comm (cut to 15 characters:
 * "Chromium-browse" is chromium-browser), or undefined for any other.
 * Forks are set up like their parent browser.
 *
 * @example
 * socksAppFromProgram("firefox-esr") // "firefox"
 * socksAppFromProgram("wget") // undefined
 */
export function socksAppFromProgram(program: string | undefined): SocksApp | undefined {
  const name = (program ?? "").toLowerCase();
  if (name.includes("firefox") || name.includes("librewolf") || name.includes("icecat")) return "firefox";
  if (name.includes("chrom") || name.includes("brave") || name.includes("edge")) return "chromium";
  if (name === "curl") return "curl";
  return undefined;
}

/**
 * The fix for a client that sent an IP address with SOCKS `version`, for the
 * app `program` names, or for the common apps when it names none we know.
 * `proxy` is the address the client reached us on, so the fix can be pasted.
 *
 * @example
 * refusalFix("curl", 5, { host: "127.0.0.1", port: 9001 })
 * // "use curl --socks5-hostname 127.0.0.1:9001 (or -x socks5h://127.0.0.1:9001)"
 */
export function refusalFix(program: string | undefined, version: 4 | 5, proxy: ProxyEndpoint): string {
  switch (socksAppFromProgram(program)) {
    case "firefox":
      return version === 5
        ? `in Firefox set ${firefoxRemoteDns(5)} with ${firefoxProxy(proxy)}`
        : `in Firefox use ${firefoxProxy(proxy)} with ${firefoxRemoteDns(5)}, or keep SOCKS v4 and set ${firefoxRemoteDns(4)}`;
    case "chromium":
      return `start Chromium with ${chromiumFlag(proxy)} (socks5, not socks4)`;
    case "curl":
      return `use curl ${curlFlags(proxy, " (or ")})`;
    case undefined: {
      const firefox =
        version === 5
          ? `${FIREFOX_REMOTE_DNS[5].pref} = true`
          : `SOCKS v5 with ${FIREFOX_REMOTE_DNS[5].pref} = true, or ${FIREFOX_REMOTE_DNS[4].pref} = true for SOCKS v4`;
      const address = proxyAddress(proxy);
      return `make the app send names: Firefox: ${firefox}; Chromium: ${chromiumFlag(proxy)}; curl: --socks5-hostname ${address} or socks5h://`;
    }
  }
}

/**
 * The client set-up paragraph of --help (and of anything else that shows
 * every app at once), lines of at most 80 columns, no trailing newline.
 *
 * @example
 * clientSetupHelp()
 * // Client setup (N is the -D port):
 * //   Firefox:  SOCKS v5 host 127.0.0.1 port N with "Proxy DNS when using SOCKS
 * //             v5" (network.proxy.socks5_remote_dns = true); ...
 */
export function clientSetupHelp(proxy: ProxyEndpoint = { host: "127.0.0.1", port: "N" }): string {
  const v5 = FIREFOX_REMOTE_DNS[5];
  const v4 = FIREFOX_REMOTE_DNS[4];
  const entries: [string, string][] = [
    [
      "Firefox:",
      `${firefoxProxy(proxy)} with ${unbroken(`"${v5.box}"`)} ${unbroken(`(${v5.pref} = true)`)}; ` +
        `with SOCKS v4 instead, ${unbroken(`"${v4.box}"`)} ${unbroken(`(${v4.pref} = true)`)}`,
    ],
    ["Chromium:", `${chromiumFlag(proxy)} (socks5, not socks4)`],
    ["curl:", curlFlags(proxy, " or ")],
  ];
  const heading = typeof proxy.port === "string" ? `Client setup (${proxy.port} is the -D port):` : "Client setup:";
  return [heading, ...entries.flatMap(([app, text]) => hangingIndent(`  ${app.padEnd(10)}`, text, 80))].join("\n");
}

/** A phrase the help text does not break across lines (a pref, a checkbox label). */
function unbroken(phrase: string): string {
  return phrase.replace(/ /g, "\u00a0");
}

/** `text` after `lead`, wrapped between words to `width`, continuation lines indented like it. */
function hangingIndent(lead: string, text: string, width: number): string[] {
  const lines: string[] = [];
  let line = lead;
  for (const word of text.split(" ")) {
    if (line.length > lead.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(lead.length) + word;
    } else {
      line += (line.length > lead.length ? " " : "") + word;
    }
  }
  lines.push(line);
  return lines.map((l) => l.replace(/\u00a0/g, " "));
}
