/**
 * One run of `safetunnel serve`: the host key (made on the first run), the
 * authorized keys, the listeners; then the fingerprint and the exact
 * known_hosts line for clients, and a summary line when stopped.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { TunnelError, errnoCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServePlan } from "../cli/serve-args.ts";
import { formatBytes } from "../forward/stats.ts";
import { networkAddresses } from "../platform/interface-addresses.ts";
import { parseAuthorizedKeys } from "./authorized-keys.ts";
import { userConfigDir } from "./config-dir.ts";
import { knownHostsLine, loadOrCreateHostKey, type HostKey } from "./host-key.ts";
import { parsePermitOpenList } from "./permit-open.ts";
import { createServeStats, startServer, type RunningServer, type ServeStats } from "./server.ts";

export interface ServeEnvironment {
  log: Logger;
  platform: string;
  env: Readonly<Record<string, string | undefined>>;
  homeDir: string;
  /** This machine's name, for the known_hosts line. */
  localHostname: string;
  onStopSignal(handler: (signal: string) => void): void;
  /** Addresses of this machine's interfaces. @default networkAddresses() */
  interfaceAddresses?: () => string[];
}

/**
 * @example
 * const status = await runServe(plan, { log, platform: process.platform, env: process.env, homeDir, localHostname: hostname(), onStopSignal });
 */
export async function runServe(plan: ServePlan, run: ServeEnvironment): Promise<number> {
  const { log } = run;
  const started = await startServe(plan, run);
  return await new Promise<number>((resolve) => {
    run.onStopSignal((signal) => {
      void started.server.close().then(() => {
        log.info(`Stopped by ${signal}: ${serveSummary(started.stats)}.`, { event: "summary", ...started.stats });
        resolve(0);
      });
    });
  });
}

export interface StartedServe {
  server: RunningServer;
  hostKey: HostKey;
  stats: ServeStats;
}

/** Everything up to listening, with the start-up lines; the demo uses this too. */
export async function startServe(plan: ServePlan, run: ServeEnvironment, options: { quiet?: boolean } = {}): Promise<StartedServe> {
  const { log } = run;
  const configDir = userConfigDir(run.platform, run.env, run.homeDir);
  const hostKey = await loadOrCreateHostKey({ configDir, ...(plan.hostKey !== undefined ? { file: plan.hostKey } : {}) });
  const authorizedKeysFile = plan.authorizedKeys ?? join(run.homeDir, ".ssh", "authorized_keys");
  const keyCount = await checkAuthorizedKeys(authorizedKeysFile, log);
  const stats = createServeStats();
  const server = await startServer({
    listen: plan.listen,
    hostKey,
    authorizedKeysFile,
    permitOpen: parsePermitOpenList(plan.permitOpen),
    gatewayPorts: plan.gatewayPorts,
    loginGraceMs: plan.loginGraceSeconds * 1000,
    log,
    stats,
  });
  if (hostKey.created) log.info(`Made a new host key, kept in ${hostKey.file}; clients will see it on every later start.`, { event: "host-key-created" });
  if (!options.quiet) {
    log.info(
      `safetunnel serve listening on ${server.addresses.join(", ")}; ${keyCount} key${keyCount === 1 ? "" : "s"} may log in (${authorizedKeysFile}); names are resolved here.`,
      { event: "listening", port: server.port },
    );
    log.info(`Host key: ${hostKey.type} ${hostKey.fingerprint} (${hostKey.file}).`, { event: "host-key", fingerprint: hostKey.fingerprint });
    const hosts = clientFacingHosts(plan.listen, run);
    log.info("For the clients' ~/.ssh/known_hosts (add the name or address they use if it is not listed, such as your router's public address):");
    log.info(knownHostsLine(hosts, server.port, hostKey), { event: "known-hosts-line" });
  }
  return { server, hostKey, stats };
}

/**
 * @example
 * serveSummary(stats) // "3 logins, 1 failed login, 12 connections, 340.5 MB to clients, 1.2 MB from them, 0 not permitted, 1 failed"
 */
export function serveSummary(stats: ServeStats): string {
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
  return [
    plural(stats.logins, "login"),
    plural(stats.failedLogins, "failed login"),
    plural(stats.connections, "connection"),
    `${formatBytes(stats.bytesUp)} to clients`,
    `${formatBytes(stats.bytesDown)} from them`,
    `${stats.prohibited} not permitted`,
    `${stats.failures} failed`,
  ].join(", ");
}

/** Reads the file once at start: a missing file means nobody could ever log in, which is a set-up mistake to say now. */
async function checkAuthorizedKeys(file: string, log: Logger): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = errnoCode(err);
    const fix = "put the clients' public keys in it, one per line (the contents of their ~/.ssh/id_ed25519.pub), or give --authorized-keys FILE";
    if (code === "ENOENT") throw new TunnelError("USAGE", `serve: ${file} does not exist, so nobody could log in; ${fix}.`);
    throw new TunnelError("USAGE", `serve: cannot read ${file} (${code ?? (err as Error).message}); ${fix}.`);
  }
  const parsed = parseAuthorizedKeys(text, file);
  for (const warning of parsed.warnings) log.warn(`serve: ${warning}`);
  if (parsed.keys.length === 0) log.warn(`serve: ${file} holds no usable key, so nobody can log in yet; add the clients' public keys (it is read again at every login).`);
  return parsed.keys.length;
}

/** The names a client may use: the listen addresses, or for a wildcard this machine's name and addresses. */
function clientFacingHosts(listen: ServePlan["listen"], run: ServeEnvironment): string[] {
  const hosts: string[] = [];
  const add = (host: string): void => {
    if (host !== "" && !hosts.includes(host)) hosts.push(host);
  };
  for (const { host } of listen) {
    if (host === "0.0.0.0" || host === "::") {
      add(run.localHostname.toLowerCase());
      for (const address of (run.interfaceAddresses ?? networkAddresses)()) add(address);
    } else add(host);
  }
  return hosts;
}
