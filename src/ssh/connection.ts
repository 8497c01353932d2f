/**
 * Opening the SSH connection: one authenticated ssh2 Client per hop, its host
 * key checked, keepalives on. Jump hosts (-J) are a chain of hops where each
 * runs over a direct-tcpip channel of the hop before it (transport.ts), as
 * OpenSSH's ProxyJump runs over `ssh -W`.
 *
 * One hop, step by step (connectHop):
 *   1. everything slow first: load ssh2, build the auth flow, read known_hosts;
 *   2. open the socket and hand it to ssh2 in the same turn of the event loop;
 *   3. ConnectTimeout bounds the handshake until the host key arrives;
 *   4. the host key check pins the key it accepts (host-key.ts);
 *   5. `ready` resolves; `close` before it rejects with the error that caused it
 *      (handshake-failure.ts).
 *
 * Nothing here is kept between calls: connectChain(hops, deps) can be called
 * again with the same hops to reconnect.
 */
import type { Duplex } from "node:stream";
import type { Client, ConnectConfig, HostVerifier, ParsedKey } from "ssh2";
import { TunnelError, describeError, echoValue, isTunnelError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HopSettings } from "../config/settings.ts";
import { keyTypesKnownFor, loadKnownHosts, orderHostKeyAlgorithms } from "../config/known-hosts.ts";
import { createAuthFlow, type AuthFlow } from "./auth.ts";
import { coalesceWrites } from "./coalesce-writes.ts";
import { HandshakeFailure } from "./handshake-failure.ts";
import { pinFirstHostKey, verifyHostKey } from "./host-key.ts";
import type { PromptRequest } from "./prompt.ts";
import { loadSsh2 } from "./ssh2-module.ts";
import { openJumpChannel, openTcpSocket } from "./transport.ts";
import { guardChannelOpens } from "./unrequested-opens.ts";
import { guardChannelWindows } from "./window-guard.ts";

export interface ConnectDeps {
  prompt: (request: PromptRequest) => Promise<string | null>;
  log: Logger;
  /**
   * Offer chacha20-poly1305 first (on Deno, where it is the fastest cipher).
   * @default false
   */
  preferChaCha20?: boolean;
  /** Keys unlocked so far in this run (auth.ts), so a reconnect need not ask again. */
  unlockedKeys?: Map<string, ParsedKey>;
}

export interface Chain {
  /** The destination's client: channels are opened on it. */
  client: Client;
  /** Disconnect every hop, innermost first, and wait (bounded) until they are closed. */
  close(): Promise<void>;
}

/** Every host-key algorithm ssh2 can verify, in ssh2's preference order. */
const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  // No "ssh-rsa": SHA-1 signatures, refused by default since OpenSSH 8.8 (release notes).
];

const CHACHA20 = "chacha20-poly1305@openssh.com";

/** How long a polite disconnect may take before we stop waiting for it. */
const DISCONNECT_WAIT_MS = 2000;

/**
 * Connect through `hops` (jump hosts first, destination last). Resolves with
 * the destination's Client; any hop failing ends the chain, and an error of a
 * jump host names it ("jump host gw: ...").
 *
 * @example
 * const chain = await connectChain([jump, destination], { prompt, log });
 * chain.client.forwardOut(...);
 * await chain.close();
 */
export async function connectChain(hops: HopSettings[], deps: ConnectDeps): Promise<Chain> {
  if (hops.length === 0) throw new TunnelError("INTERNAL", "connectChain needs at least one hop");
  const opened: Client[] = [];
  try {
    for (const [index, hop] of hops.entries()) {
      const through = opened.at(-1);
      const openStream = (): Promise<Duplex> => (through === undefined ? openTcpSocket(hop, deps.log) : openJumpChannel(through, hop));
      try {
        opened.push(await connectHop(hop, openStream, deps));
      } catch (err) {
        throw index < hops.length - 1 ? nameJumpHost(hop, err) : err;
      }
    }
  } catch (err) {
    for (const client of [...opened].reverse()) client.end();
    throw err;
  }
  return chainOf(opened);
}

/** "Connection refused" alone is a puzzle with -J: say which hop it was. */
function nameJumpHost(hop: HopSettings, err: unknown): unknown {
  if (!isTunnelError(err)) return err;
  return new TunnelError(err.code, `jump host ${echoValue(hop.alias)}: ${err.message}`, { exitCode: err.exitCode, cause: err });
}

function chainOf(opened: Client[]): Chain {
  // When any hop goes down the whole chain is useless: close it all.
  for (const client of opened) {
    client.once("close", () => {
      for (const other of opened) if (other !== client) other.end();
    });
  }
  const closed = Promise.all(opened.map((client) => new Promise<void>((resolve) => client.once("close", () => resolve()))));
  return {
    client: opened.at(-1)!,
    close: async () => {
      // Innermost first, so each jump host sees its channel end before its own session.
      for (const client of [...opened].reverse()) client.end();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, DISCONNECT_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

/** What a hop needs before its socket is opened. */
interface PreparedHop {
  client: Client;
  auth: AuthFlow;
  hostKeyAlgorithms: string[];
}

/** One hop: prepare, open the stream, shake hands. */
async function connectHop(hop: HopSettings, openStream: () => Promise<Duplex>, deps: ConnectDeps): Promise<Client> {
  const prepared = await prepareHop(hop, deps);
  const stream = await openStream();
  // No await from here until ssh2 has the stream: a server that hangs up at
  // once (sshd's MaxStartups, a firewall) would otherwise close it unobserved.
  return handshake(hop, stream, prepared, deps);
}

/**
 * Everything slow, done before the socket exists: importing ssh2 (lazily, so
 * `--version` stays fast) and reading known_hosts.
 */
async function prepareHop(hop: HopSettings, deps: ConnectDeps): Promise<PreparedHop> {
  const ssh2 = await loadSsh2();
  // OpenSSH names the host in prompts by HostKeyAlias or HostName, never by the alias typed.
  const auth = createAuthFlow(
    { ...hop.auth, user: hop.user, host: hop.hostKey.host, prompt: deps.prompt, log: deps.log, ...(deps.unlockedKeys !== undefined ? { unlockedKeys: deps.unlockedKeys } : {}) },
    ssh2,
  );
  const { host, port, userKnownHostsFiles, globalKnownHostsFiles } = hop.hostKey;
  const known = keyTypesKnownFor(await loadKnownHosts([...userKnownHostsFiles, ...globalKnownHostsFiles]), host, port);
  // OpenSSH's order_hostkeyalgs() (sshconnect2.c): ask for a key type we
  // already know, so a server with several keys does not make us prompt about
  // a second one. A full list, not ssh2's `prepend`, which skips algorithms
  // already in its default list.
  return { client: new ssh2.Client(), auth, hostKeyAlgorithms: orderHostKeyAlgorithms(HOST_KEY_ALGORITHMS, known) };
}

/** Runs ssh2's handshake on `stream`; resolves at `ready`, rejects at a `close` before it. */
function handshake(hop: HopSettings, stream: Duplex, { client, auth, hostKeyAlgorithms }: PreparedHop, deps: ConnectDeps): Promise<Client> {
  const { log, prompt } = deps;
  const failure = new HandshakeFailure();
  const stopTimer = startHandshakeTimer(hop, () => {
    failure.refuse(bannerTimeout(hop));
    stream.destroy();
  });
  const hostVerifier = pinFirstHostKey({
    check: (key) => {
      // The check may wait for the user: ConnectTimeout ends here.
      stopTimer();
      return verifyHostKey(key, { ...hop.hostKey, prompt, log });
    },
    refused: (reason) => failure.refuse(isTunnelError(reason) ? reason : new TunnelError("BAD_CONFIG", `host key check failed: ${describeError(reason)}`)),
    // After login nobody reads `failure`: say it here, or the user only sees "Host denied".
    changed: () => log.error(`${hop.hostname} presented a different host key while re-keying; disconnecting. Host key verification failed.`),
  });

  return new Promise((resolve, reject) => {
    let ready = false;
    client.on("error", (err: Error & { level?: string }) => {
      if (ready) return;
      // ssh2 reports agent hiccups (no agent at the socket, a refused
      // signature) as errors, then goes on with the next method.
      if (err.level === "agent") log.debug(1, `agent: ${err.message}`);
      else failure.record(err);
    });
    client.once("ready", () => {
      ready = true;
      log.debug(1, `Authenticated to ${hop.hostname} ([${hop.hostname}]:${hop.port}).`);
      resolve(client);
    });
    client.once("close", () => {
      stopTimer();
      if (!ready) reject(failure.explain(hop, auth));
    });
    client.connect(connectConfig(hop, stream, { auth, hostVerifier, hostKeyAlgorithms, preferChaCha20: deps.preferChaCha20 ?? false, log }));
    coalesceWrites(stream, (client as unknown as { _protocol?: unknown })._protocol);
    // From the first packet on, jump hosts included: an X11 or agent channel
    // nobody asked for is refused and reported (unrequested-opens.ts).
    guardChannelOpens(client, { log });
    // And held to the window we advertise (window-guard.ts).
    guardChannelWindows(client, log, hop.hostname);
  });
}

/**
 * OpenSSH spends what ConnectTimeout left after connect() on waiting for the
 * server's identification string (ssh_config(5) ConnectTimeout; sshconnect.c
 * ssh_login(), kex.c kex_exchange_identification(): "Connection timed out
 * during banner exchange"). Ours starts afresh when the stream is open and runs
 * until the host key arrives, so a server that sends a banner and then stalls
 * the key exchange is caught too; what comes after may wait for the user.
 * Returns the function that stops it.
 */
function startHandshakeTimer(hop: HopSettings, onTimeout: () => void): () => void {
  if (hop.connectTimeoutMs === undefined) return () => {};
  const timer = setTimeout(onTimeout, hop.connectTimeoutMs);
  return () => clearTimeout(timer);
}

function bannerTimeout(hop: HopSettings): TunnelError {
  return new TunnelError(
    "CONNECT_TIMEOUT",
    `Connection to ${hop.hostname} port ${hop.port} timed out during banner exchange (ConnectTimeout ${hop.connectTimeoutMs! / 1000} s); is that an SSH server?`,
  );
}

interface ConfigParts {
  auth: AuthFlow;
  hostVerifier: HostVerifier;
  hostKeyAlgorithms: string[];
  preferChaCha20: boolean;
  log: Logger;
}

/** ssh2's ConnectConfig for one hop over an already open stream. */
function connectConfig(hop: HopSettings, stream: Duplex, parts: ConfigParts): ConnectConfig {
  return {
    sock: stream as ConnectConfig["sock"],
    username: hop.user,
    // ssh2's readyTimeout would also cut short a user typing a passphrase or
    // answering the host key question; ConnectTimeout is ours (above).
    readyTimeout: 0,
    // ssh_config(5) ServerAliveInterval and ServerAliveCountMax; 0 disables.
    keepaliveInterval: hop.serverAliveIntervalMs,
    keepaliveCountMax: hop.serverAliveCountMax,
    authHandler: parts.auth.handler,
    hostVerifier: parts.hostVerifier,
    algorithms: {
      serverHostKey: parts.hostKeyAlgorithms as never,
      // Measured through one forwardOut (256 MiB, median MiB/s): Deno 2
      // chacha20-poly1305 409, aes128-gcm 203; Node 20 chacha20 671,
      // aes128-gcm 777. So only Deno puts chacha20 first. ssh2's `prepend`
      // skips names already listed, hence the `remove` first (applied in order).
      ...(parts.preferChaCha20 ? { cipher: { remove: [CHACHA20], prepend: [CHACHA20] } as never } : {}),
    },
    ...(parts.log.debugEnabled(3) ? { debug: (line: string) => parts.log.debug(3, line) } : {}),
  };
}
