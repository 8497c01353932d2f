/**
 * The environment `safetunnel exec` gives a program so that it uses the
 * tunnel without being told: the proxy variables that curl, pip, npm, git,
 * Python and Go read, and an ssh for git that reaches its server through
 * `safetunnel nc`. Pure: the proxy and the inherited environment in, the
 * new environment out.
 *
 * Which variable each tool reads (and so why every spelling is set):
 * - curl: `<scheme>_proxy` (http_proxy only in lower case), then
 *   `ALL_PROXY`/`all_proxy`; `NO_PROXY` (curl(1), ENVIRONMENT);
 * - Python urllib and pip: `<scheme>_proxy` in either case (urllib.request.getproxies);
 * - Go net/http: `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, either case
 *   (golang.org/x/net/http/httpproxy); it never proxies requests to
 *   localhost or loopback addresses, whatever the variables say;
 * - git over https: curl's; git over ssh: `GIT_SSH_COMMAND` (git(1)).
 */
import { hostPort } from "../address.ts";

export interface ProxyEndpointAddress {
  host: string;
  port: number;
}

/** The variables `proxyEnvironment` sets, in both cases where tools differ. */
export const PROXY_VARIABLES = [
  "ALL_PROXY",
  "all_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "NO_PROXY",
  "no_proxy",
  "GIT_SSH_COMMAND",
] as const;

/**
 * `inherited` with every proxy variable pointing at the tunnel: SOCKS5 with
 * remote names (`socks5h://`) for ALL_PROXY, the same port's HTTP side for
 * HTTP(S)_PROXY (names travel in CONNECT and absolute-form requests, never
 * resolved here), an empty NO_PROXY (nothing bypasses the tunnel), and
 * GIT_SSH_COMMAND with `self nc` as ProxyCommand (`self` is how to run this
 * program again).
 *
 * @example
 * proxyEnvironment({ host: "127.0.0.1", port: 9001 }, ["/usr/bin/safetunnel"], { PATH: "/usr/bin" })
 * // { PATH: "/usr/bin", ALL_PROXY: "socks5h://127.0.0.1:9001", ..., HTTPS_PROXY: "http://127.0.0.1:9001", NO_PROXY: "", GIT_SSH_COMMAND: 'ssh -o "ProxyCommand=/usr/bin/safetunnel nc --proxy 127.0.0.1:9001 %h %p"' }
 */
export function proxyEnvironment(proxy: ProxyEndpointAddress, self: readonly string[], inherited: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) if (value !== undefined) env[name] = value;
  const address = hostPort(proxy.host, proxy.port);
  const socks = `socks5h://${address}`;
  const http = `http://${address}`;
  Object.assign(env, {
    ALL_PROXY: socks,
    all_proxy: socks,
    HTTP_PROXY: http,
    http_proxy: http,
    HTTPS_PROXY: http,
    https_proxy: http,
    NO_PROXY: "",
    no_proxy: "",
    GIT_SSH_COMMAND: gitSshCommand(proxy, self, inherited["GIT_SSH_COMMAND"]),
  });
  return env;
}

/**
 * The GIT_SSH_COMMAND that reaches git's SSH server through the tunnel:
 * `ssh -o ProxyCommand=...` after the user's own command (git runs it with a
 * shell and adds the host and command). ssh takes the first value of an
 * option (ssh_config(5)), so a ProxyCommand the user gave first wins.
 *
 * Three readers see the ProxyCommand: git's shell, which takes the double
 * quotes; ssh, which expands `%` tokens (ssh_config(5) TOKENS, so a `%` of
 * ours is `%%`); and the shell ssh runs it with, which takes the single
 * quotes round each word of `self`.
 *
 * @example
 * gitSshCommand({ host: "127.0.0.1", port: 9001 }, ["/opt/st/safetunnel"], undefined)
 * // 'ssh -o "ProxyCommand=/opt/st/safetunnel nc --proxy 127.0.0.1:9001 %h %p"'
 */
export function gitSshCommand(proxy: ProxyEndpointAddress, self: readonly string[], existing: string | undefined): string {
  const words = [...self.map(shellQuote), "nc", "--proxy", shellQuote(hostPort(proxy.host, proxy.port))].map((word) => word.replace(/%/g, "%%"));
  const proxyCommand = `ProxyCommand=${words.join(" ")} %h %p`;
  const base = existing === undefined || existing.trim() === "" ? "ssh" : existing;
  return `${base} -o "${proxyCommand.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/**
 * One word for a POSIX shell: as is when it holds only characters no shell
 * reads specially, else in single quotes (a single quote as '\'').
 *
 * @example
 * shellQuote("127.0.0.1:9001") // "127.0.0.1:9001"
 * shellQuote("/home/o'brien/st") // "'/home/o'\\''brien/st'"
 */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_./:@%+=,-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, "'\\''")}'`;
}
