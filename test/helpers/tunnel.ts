/**
 * The set-up most CLI integration tests share: a private sshd with a HOME that
 * holds the client key and trusts the server, `safetunnel -N -D` logged in
 * without prompts, and proof that a fetch by name goes through the tunnel.
 */
import assert from "node:assert/strict";
import { curlThroughSocks } from "./curl.ts";
import { type Home, makeHome, type Running, startCli, waitForListen } from "./run.ts";
import { type KeyPair, makeKey, type Sshd, startSshd } from "./sshd.ts";
import { freePort, HELLO } from "./targets.ts";

/**
 * Options that log in to `sshd` without prompting and only if its host key is
 * already in known_hosts: `-o BatchMode=yes -o StrictHostKeyChecking=yes -p PORT`.
 *
 * @example
 * startCli(["-N", "-L", spec, ...loginOptions(sshd), `${sshd.user}@127.0.0.1`], { home: home.home });
 */
export function loginOptions(sshd: Sshd): string[] {
  return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-p", String(sshd.port)];
}

/**
 * `loginOptions(sshd)` followed by the destination `user@127.0.0.1`.
 *
 * @example
 * await runCli(["-N", "-D", String(port), ...loginArgs(sshd)], { home: home.home });
 */
export function loginArgs(sshd: Sshd): string[] {
  return [...loginOptions(sshd), `${sshd.user}@127.0.0.1`];
}

/**
 * A throwaway HOME whose `~/.ssh/id_ed25519` is a fresh key (one ssh tries by
 * default), with no known_hosts yet.
 *
 * @example
 * const { home, key } = await makeHomeWithKey();
 * const sshd = await startSshd({ authorizedKeys: [key.publicLine] });
 * await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
 */
export async function makeHomeWithKey(): Promise<{ home: Home; key: KeyPair }> {
  const home = await makeHome();
  try {
    return { home, key: await makeKey(home.sshDir, "id_ed25519") };
  } catch (err) {
    await home.cleanup();
    throw err;
  }
}

export interface SshdWithHome {
  /** Holds `~/.ssh/id_ed25519` and a known_hosts line for `sshd`. */
  home: Home;
  key: KeyPair;
  /** Accepts `key`. */
  sshd: Sshd;
}

/**
 * A private sshd that accepts a fresh key, and a HOME holding that key as
 * `~/.ssh/id_ed25519` and trusting the sshd: `loginArgs(sshd)` logs in.
 * Stop both in the caller's `after` hook (`sshd.stop()`, `home.cleanup()`).
 *
 * @example
 * ({ home, sshd } = await startSshdWithHome({ extraConfig: ["AllowTcpForwarding no"] }));
 */
export async function startSshdWithHome(options: { extraConfig?: string[] } = {}): Promise<SshdWithHome> {
  const { home, key } = await makeHomeWithKey();
  let sshd: Sshd | undefined;
  try {
    sshd = await startSshd({ authorizedKeys: [key.publicLine], ...(options.extraConfig === undefined ? {} : { extraConfig: options.extraConfig }) });
    await home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
    return { home, key, sshd };
  } catch (err) {
    await sshd?.stop();
    await home.cleanup();
    throw err;
  }
}

export interface SocksTunnel {
  cli: Running;
  /** The -D port on 127.0.0.1. */
  port: number;
  /** "127.0.0.1:PORT", as curl's proxy flags take it. */
  proxy: string;
}

/**
 * `safetunnel -N -D 127.0.0.1:PORT` on a free port, logged in to `sshd` with
 * `loginArgs` from `home` (which must hold the key and trust the sshd), once
 * the port accepts connections, with `extraArgs` added. Stop `cli` when done.
 *
 * @example
 * const tunnel = await startSocksTunnel(sshd, home, ["--allow-ip", "::1"]);
 * await curlThroughSocks("--socks5-hostname", tunnel.proxy, `${http.url}/hello`);
 * await tunnel.cli.stop();
 */
export async function startSocksTunnel(sshd: Sshd, home: Home, extraArgs: string[] = []): Promise<SocksTunnel> {
  const port = await freePort();
  const cli = startCli(["-N", ...extraArgs, "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], { home: home.home });
  try {
    await waitForListen(port, "127.0.0.1", cli);
  } catch (err) {
    await cli.stop();
    throw err;
  }
  return { cli, port, proxy: `127.0.0.1:${port}` };
}

/**
 * Fetch `/hello` from the HTTP target by name (`curl --socks5-hostname`)
 * through the -D port and assert it arrived: curl exits 0 (else the message
 * shows both curl's and safetunnel's stderr) and the body is `HELLO`.
 *
 * @example
 * await waitForListen(socksPort, "127.0.0.1", cli);
 * await assertFetchesHello(cli, socksPort, http);
 */
export async function assertFetchesHello(cli: Running, socksPort: number, http: { port: number }): Promise<void> {
  const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
  assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; safetunnel: ${cli.stderr()}`);
  assert.equal(fetched.stdout.toString(), HELLO);
}

/**
 * A tunnel that must work: wait for its -D port, `assertFetchesHello`, then
 * stop it with SIGTERM and assert it exited 0 (whatever happened before).
 * Resolves with everything it wrote to stderr.
 *
 * @example
 * const socksPort = await freePort();
 * const stderr = await assertWorkingTunnel(startCli(["-N", "-D", String(socksPort), "myalias"], { home: home.home }), socksPort, http);
 */
export async function assertWorkingTunnel(cli: Running, socksPort: number, http: { port: number }): Promise<string> {
  try {
    await waitForListen(socksPort, "127.0.0.1", cli);
    await assertFetchesHello(cli, socksPort, http);
  } finally {
    const status = await cli.stop();
    assert.deepEqual(status, { code: 0, signal: null }, cli.stderr());
  }
  return cli.stderr();
}
