/**
 * Debian's chromium, headless, as a SOCKS client: load one URL through a
 * proxy and dump the DOM. As root it needs --no-sandbox; the other switches
 * keep its own background traffic (updates, sync, QUIC) off the closed
 * network, and a fresh profile folder keeps every run alike.
 */
import { runCommand, type CommandResult } from "./child.ts";

export const CHROMIUM = "/usr/bin/chromium";

/**
 * @example
 * const result = await loadInChromium({ profile, proxyServer: `socks5://127.0.0.1:${port}`, url });
 */
export function loadInChromium(options: { profile: string; proxyServer: string; url: string; extraArgs?: string[]; timeoutMs?: number }): Promise<CommandResult> {
  return runCommand(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${options.profile}`,
      `--proxy-server=${options.proxyServer}`,
      ...(options.extraArgs ?? []),
      "--dump-dom",
      options.url,
    ],
    { timeoutMs: options.timeoutMs ?? 60_000 },
  );
}
