/**
 * Opening the SSH connection: TCP (or a channel through a jump host), host key
 * verification, authentication, keepalives. One call returns one
 * authenticated ssh2 Client; jump hosts (-J) are a chain of such calls where
 * each hop's socket is a direct-tcpip channel of the previous hop, as OpenSSH's
 * ProxyJump does with `ssh -W`.
 *
 * ssh2 is imported lazily so `--version` and `--help` start fast (the
 * single binary measured 45 ms vs 18 ms).
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Client, ConnectConfig } from "ssh2";
import { TunnelError, describeError, isTunnelError } from "../errors.ts";
import { singleLine, type Logger } from "../log.ts";
import { createAuthFlow } from "./auth.ts";
import { loadSsh2 } from "./ssh2-module.ts";
import { verifyHostKey } from "./host-key.ts";
import { openFailureText } from "./channel-failure.ts";
import type { HopSettings } from "../config/settings.ts";
import type { PromptRequest } from "./prompt.ts";
import { keyTypesKnownFor, loadKnownHosts, orderHostKeyAlgorithms } from "../config/known-hosts.ts";
import type { Buffer } from "node:buffer";

export interface ConnectDeps {
  prompt: (request: PromptRequest) => Promise<string | null>;
  log: Logger;
  /** Offer chacha20-poly1305 first (Deno, where it is the fastest cipher). */
  preferChaCha20?: boolean;
}

/** Every host-key algorithm ssh2 can verify, in ssh2's preference order. */
const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  // No "ssh-rsa": SHA-1 signatures, refused by default since OpenSSH 8.8.
];

export interface Chain {
  /** The destination's client: channels are opened on it. */
  client: Client;
  /** Disconnect every hop, innermost first, and wait (bounded) until they are closed. */
  close(): Promise<void>;
}

/** How long a polite disconnect may take before we stop waiting for it. */
const DISCONNECT_WAIT_MS = 2000;

/**
 * Connect through `hops` (jump hosts first, destination last). Resolves with
 * the destination's Client; any hop failing ends the chain.
 *
 * @example
 * const chain = await connectChain([jump, destination], { prompt, log });
 */
export async function connectChain(hops: HopSettings[], deps: ConnectDeps): Promise<Chain> {
  let previous: Client | undefined;
  const opened: Client[] = [];
  try {
    for (const [index, hop] of hops.entries()) {
      const through = previous;
      try {
        const client = await connectOne(hop, () => (through === undefined ? openTcp(hop, deps.log) : openThroughJump(through, hop)), deps);
        opened.push(client);
        previous = client;
      } catch (err) {
        // Say which hop failed: "Connection refused" alone is a puzzle with -J.
        if (index < hops.length - 1 && isTunnelError(err)) {
          throw new TunnelError(err.code, `jump host ${hop.alias}: ${err.message}`, { exitCode: err.exitCode, cause: err });
        }
        throw err;
      }
    }
  } catch (err) {
    for (const client of opened.reverse()) client.end();
    throw err;
  }
  // When any hop goes down the whole chain is useless: close it all.
  for (const client of opened) {
    client.once("close", () => {
      for (const other of opened) if (other !== client) other.end();
    });
  }
  const closed = opened.map((client) => new Promise<void>((resolve) => client.once("close", () => resolve())));
  return {
    client: previous!,
    close: async () => {
      // Innermost first, so each jump host sees its channel end before its own session.
      for (const client of [...opened].reverse()) client.end();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(closed), new Promise((resolve) => (timer = setTimeout(resolve, DISCONNECT_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

function openTcp(hop: HopSettings, log: Logger): Promise<Socket> {
  const family = hop.addressFamily === "inet" ? 4 : hop.addressFamily === "inet6" ? 6 : 0;
  const literal = isIP(hop.hostname);
  if (family !== 0 && literal !== 0 && literal !== family) {
    return Promise.reject(
      new TunnelError("HOST_UNREACHABLE", `${hop.hostname} is an IPv${literal} address but -${family} (AddressFamily ${hop.addressFamily}) was asked for: Address family for hostname not supported; drop -${family} or give an IPv${family} address.`),
    );
  }
  // RFC 7686: .onion names must not go to DNS, and only Tor can reach them.
  if (/\.onion\.?$/i.test(hop.hostname)) {
    return Promise.reject(
      new TunnelError("HOST_UNREACHABLE", `${hop.hostname} is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor.`),
    );
  }
  log.debug(1, `Connecting to ${hop.hostname} port ${hop.port}.`);
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: hop.hostname, port: hop.port, family });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (hop.connectTimeoutMs !== undefined) {
      timer = setTimeout(() => {
        sock.destroy();
        reject(
          new TunnelError(
            "CONNECT_TIMEOUT",
            `connect to host ${hop.hostname} port ${hop.port}: Connection timed out after ${hop.connectTimeoutMs! / 1000} s (ConnectTimeout); check the address and that the network lets SSH through.`,
          ),
        );
      }, hop.connectTimeoutMs);
    }
    sock.once("connect", () => {
      clearTimeout(timer);
      // Without this, Deno's ssh2 transfers stall in about half of all runs (FACTS.md).
      sock.setNoDelay(true);
      // OpenSSH's TCPKeepAlive (default yes): a dead network ends the session
      // instead of leaving every tunnelled connection hanging.
      sock.setKeepAlive(true);
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(tcpError(hop, err));
    });
  });
}

function tcpError(hop: HopSettings, err: NodeJS.ErrnoException): TunnelError {
  const where = `connect to host ${hop.hostname} port ${hop.port}`;
  switch (err.code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new TunnelError("HOST_UNREACHABLE", `Could not resolve hostname ${hop.hostname}: Name or service not known; check the spelling or the HostName in your ssh config.`);
    case "ECONNREFUSED":
      return new TunnelError("HOST_UNREACHABLE", `${where}: Connection refused; is sshd running there, and is the port (-p) right?`);
    case "ETIMEDOUT":
      return new TunnelError("CONNECT_TIMEOUT", `${where}: Connection timed out; check the address and that the network lets SSH through.`);
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new TunnelError("HOST_UNREACHABLE", `${where}: ${err.code === "ENETUNREACH" ? "Network" : "No route to host"} is unreachable; check the address and your network.`);
    default:
      return new TunnelError("HOST_UNREACHABLE", `${where}: ${err.message}`);
  }
}

function openThroughJump(jump: Client, hop: HopSettings): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    try {
      jump.forwardOut("127.0.0.1", 0, hop.hostname, hop.port, (err, channel) => {
        if (err) {
          reject(
            new TunnelError(
              "HOST_UNREACHABLE",
              `jump host could not open a channel to ${hop.hostname} port ${hop.port}: ${openFailureText(err)}; check the destination's name and port as the jump host sees them.`,
            ),
          );
          return;
        }
        resolve(channel);
      });
    } catch (err) {
      reject(new TunnelError("SSH_DISCONNECTED", `jump host connection closed before reaching ${hop.hostname}: ${describeError(err)}`));
    }
  });
}

/**
 * Everything slow (loading ssh2, reading known_hosts) happens before the
 * socket is opened: once it is, ssh2 must own it at once, or a server that
 * hangs up right away (MaxStartups, a firewall) closes it unobserved.
 */
async function connectOne(hop: HopSettings, openSocket: () => Promise<Duplex>, deps: ConnectDeps): Promise<Client> {
  const ssh2 = await loadSsh2();
  const { log, prompt } = deps;
  const client: Client = new ssh2.Client();
  // OpenSSH names the host in prompts by HostKeyAlias or HostName, never by the alias typed.
  const auth = createAuthFlow({ ...hop.auth, user: hop.user, host: hop.hostKey.host, prompt, log }, ssh2);
  const known = keyTypesKnownFor(
    await loadKnownHosts([...hop.hostKey.userKnownHostsFiles, ...hop.hostKey.globalKnownHostsFiles]),
    hop.hostKey.host,
    hop.hostKey.port,
  );
  // OpenSSH's order_hostkeyalgs(): ask for a key type we already know, so a
  // server with several keys does not make us prompt about a second one.
  // A full list, not ssh2's `prepend`: prepend skips algorithms already in the default list.
  const hostKeyAlgorithms = orderHostKeyAlgorithms(HOST_KEY_ALGORITHMS, known);

  let failure: TunnelError | undefined;
  let lastError: Error | undefined;
  const sock = await openSocket();
  let stopBannerTimer = (): void => {};
  let verifiedKey: Buffer | undefined;
  const config: ConnectConfig = {
    sock: sock as ConnectConfig["sock"],
    username: hop.user,
    readyTimeout: 0,
    keepaliveInterval: hop.serverAliveIntervalMs,
    keepaliveCountMax: hop.serverAliveCountMax,
    authHandler: auth.handler,
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      stopBannerTimer();
      // ssh2 asks again at every re-key: the key accepted at the start (even
      // one not recorded anywhere) is the only one a re-key may present.
      if (verifiedKey !== undefined) {
        const same = verifiedKey.equals(key);
        // After login nobody reads `failure`: say it here, or the user only sees "Host denied".
        if (!same) log.error(`${hop.hostname} presented a different host key while re-keying; disconnecting. Host key verification failed.`);
        verify(same);
        return;
      }
      verifyHostKey(key, { ...hop.hostKey, prompt, log }).then(
        () => {
          verifiedKey = key;
          verify(true);
        },
        (err: unknown) => {
          failure = isTunnelError(err)
            ? err
            : new TunnelError("BAD_CONFIG", `host key check failed: ${describeError(err)}`);
          verify(false);
        },
      );
    },
    algorithms: {
      serverHostKey: hostKeyAlgorithms as never,
      // FACTS.md: on Deno chacha20 is twice as fast as AES-GCM; on Node AES-GCM wins.
      // ssh2's prepend skips names already listed, so remove it first (keys apply in order).
      ...(deps.preferChaCha20 ? { cipher: { remove: ["chacha20-poly1305@openssh.com"], prepend: ["chacha20-poly1305@openssh.com"] } as never } : {}),
    },
    ...(log.debugEnabled(3) ? { debug: (line: string) => log.debug(3, line) } : {}),
  };

  return new Promise((resolve, reject) => {
    let ready = false;
    // ConnectTimeout also covers the banner and key exchange, as in OpenSSH,
    // up to the host key check (which may wait for the user).
    let banner: ReturnType<typeof setTimeout> | undefined;
    if (hop.connectTimeoutMs !== undefined) {
      banner = setTimeout(() => {
        failure ??= new TunnelError(
          "CONNECT_TIMEOUT",
          `Connection to ${hop.hostname} port ${hop.port} timed out during banner exchange (ConnectTimeout ${hop.connectTimeoutMs! / 1000} s); is that an SSH server?`,
        );
        sock.destroy();
      }, hop.connectTimeoutMs);
    }
    stopBannerTimer = () => clearTimeout(banner);
    client.on("error", (err: Error & { level?: string }) => {
      if (ready) return;
      // ssh2 reports agent hiccups as errors but carries on with the next method.
      if (err.level === "agent") {
        log.debug(1, `agent: ${err.message}`);
        return;
      }
      // The first error is the cause; later ones (ECONNRESET as the server
      // hangs up after "no matching host key") are its echo. The end of
      // authentication is the exception: it sums up the attempts before it.
      if (err.level === "client-authentication" && /authentication methods failed/i.test(err.message)) lastError = err;
      else lastError ??= err;
    });
    client.once("ready", () => {
      ready = true;
      log.debug(1, `Authenticated to ${hop.hostname} ([${hop.hostname}]:${hop.port}).`);
      resolve(client);
    });
    client.once("close", () => {
      clearTimeout(banner);
      if (ready) return;
      reject(failure ?? auth.cancelled() ?? explainFailure(hop, lastError, auth.serverMethods()));
    });
    client.connect(config);
  });
}

function explainFailure(hop: HopSettings, err: Error | undefined, methods: string[]): TunnelError {
  // The server may have chosen this text (a disconnect reason): keep it on one line.
  const message = singleLine(err?.message ?? "connection closed during the SSH handshake");
  if (/authentication methods failed/i.test(message)) {
    return new TunnelError(
      "AUTH_FAILED",
      `${hop.user}@${hop.hostname}: Permission denied (${methods.join(",") || "publickey"}); load a key into ssh-agent or pass one with -i, and check the user name (-l).`,
    );
  }
  if (/handshake failed|no matching/i.test(message)) {
    return new TunnelError("SSH_DISCONNECTED", `Unable to negotiate with ${hop.hostname} port ${hop.port}: ${message}`);
  }
  return new TunnelError("SSH_DISCONNECTED", `Connection to ${hop.hostname} port ${hop.port} closed: ${message}`);
}
