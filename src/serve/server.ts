/**
 * `safetunnel serve`: the home end of the tunnel, an SSH server (ssh2's
 * Server) that only forwards.
 *
 * - Public-key authentication against an OpenSSH authorized_keys file, read
 *   again at every attempt as sshd(8) does, so a key added while it runs
 *   works at once. Connections that end without logging in are counted per
 *   source address and slow that address down (attempt-limiter.ts).
 * - direct-tcpip (the clients' -D and -L): the name is resolved here, with
 *   this machine's resolver, which is the point of the product; a failed
 *   connect goes back with the reason code and the strerror()-style text
 *   OpenSSH's sshd sends (RFC 4254 section 7.2), so clients map it to the
 *   exact SOCKS reply.
 * - tcpip-forward / cancel-tcpip-forward (the clients' -R, RFC 4254 section
 *   7.1): bound on loopback unless --gateway-ports, as sshd_config(5)
 *   GatewayPorts no.
 * - Sessions are accepted only to say, on the client's terminal, that this
 *   server runs no shell or command; pty, agent and X11 requests are refused.
 */
import { Buffer } from "node:buffer";
import { connect as netConnect, Socket } from "node:net";
import { readFile } from "node:fs/promises";
import type { Duplex } from "node:stream";
import type { Connection, AuthContext, ServerChannel } from "ssh2";
import type { Logger } from "../log.ts";
import { singleLine } from "../log.ts";
import { hostPort } from "../address.ts";
import { errnoCode } from "../errors.ts";
import { fingerprintSha256 } from "../config/known-hosts.ts";
import { loadSsh2 } from "../ssh/ssh2-module.ts";
import { listenAll, type Listener } from "../forward/listen.ts";
import { joinStreams } from "../forward/pipe.ts";
import { sendGateOf } from "../ssh/send-backlog.ts";
import { coalesceWrites } from "../ssh/coalesce-writes.ts";
import type { TrafficStats } from "../forward/stats.ts";
import { findAuthorizedKey, parseAuthorizedKeys, type AuthorizedKey } from "./authorized-keys.ts";
import { permitsListen, permitsOpen, type PermitOpenRule } from "./permit-open.ts";
import { AttemptLimiter, attemptSource } from "./attempt-limiter.ts";
import type { HostKey } from "./host-key.ts";

export interface ServeOptions {
  /** Addresses to listen on; entries with the same port share one listener. */
  listen: readonly { host: string; port: number }[];
  hostKey: HostKey;
  authorizedKeysFile: string;
  /** --permit-open rules; null: anywhere. */
  permitOpen: PermitOpenRule[] | null;
  /** --gateway-ports: -R binds the address the client asks for. */
  gatewayPorts: boolean;
  log: Logger;
  stats: ServeStats;
  limiter?: AttemptLimiter;
  /** Bound on a direct-tcpip connect (a SYN to a silent host retries for minutes). @default 20000 */
  connectTimeoutMs?: number;
  /** For tests: the authorized_keys text. @default reads authorizedKeysFile */
  readAuthorizedKeys?: (file: string) => Promise<string>;
  /** sshd_config(5) LoginGraceTime: a connection not logged in by then is closed. @default 120000 */
  loginGraceMs?: number;
}

/**
 * One run's counters. pipe.ts counts each connection's bytes with the
 * destination (or the -R listener's client) as the local side, so `bytesUp`
 * is what went to SSH clients and `bytesDown` what came from them.
 */
export interface ServeStats extends TrafficStats {
  /** SSH clients that logged in. */
  logins: number;
  /** Connections that ended without logging in after trying. */
  failedLogins: number;
  /** Opens and -R listens refused by --permit-open or the key's options. */
  prohibited: number;
}

export function createServeStats(): ServeStats {
  return { connections: 0, active: 0, bytesUp: 0, bytesDown: 0, refusals: 0, failures: 0, protocolErrors: 0, logins: 0, failedLogins: 0, prohibited: 0 };
}

export interface RunningServer {
  /** "0.0.0.0:2222" style addresses bound. */
  addresses: string[];
  /** The port of the first listener (the one bound when 0 was asked for). */
  port: number;
  close(): Promise<void>;
}

/** RFC 4254 section 5.1 SSH_MSG_CHANNEL_OPEN_FAILURE reason codes. */
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

/** OpenSSH's MaxAuthTries default (sshd_config(5)). */
const MAX_AUTH_TRIES = 6;

/** OpenSSH's LoginGraceTime default (sshd_config(5)). */
const LOGIN_GRACE_MS = 120_000;

/**
 * Connections not yet logged in, at most: in all, and from one address (an
 * IPv6 /64 counts as one). OpenSSH's MaxStartups defaults to 10 in all and
 * drops at random from there; a server meant for one household can be
 * stricter per address and still let its own clients in while someone else
 * knocks.
 */
const MAX_UNAUTHENTICATED = 64;
const MAX_UNAUTHENTICATED_PER_SOURCE = 8;

const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

/** What a client that opens a session reads on its terminal. */
export const NO_SESSION_TEXT =
  "safetunnel serve only forwards ports; it runs no shell and no command. Connect with -N and forwards, e.g. safetunnel -N -D 9001 user@host or ssh -N -D 9001 -p PORT user@host.";

/**
 * @example
 * const server = await startServer({ listen: [{ host: "0.0.0.0", port: 2222 }], hostKey, authorizedKeysFile, permitOpen: null, gatewayPorts: false, log, stats });
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { log } = options;
  const ssh2 = await loadSsh2();
  // As many free failures as a client may try keys in one connection: someone with six keys in their agent is not slowed.
  const limiter = options.limiter ?? new AttemptLimiter({ freeFailures: MAX_AUTH_TRIES });
  const readKeys = options.readAuthorizedKeys ?? ((file: string) => readFile(file, "utf8"));
  const warnings = new WarningsOnce(log);
  const connections = new Set<Connection>();
  const unauthenticated = new Map<string, number>();
  let unauthenticatedTotal = 0;
  const graceMs = options.loginGraceMs ?? LOGIN_GRACE_MS;
  // ssh2 makes its connection object only once the client's version line has
  // arrived; it names the socket by address and port, which find the socket's
  // login clock here.
  const waitingForLogin = new Map<string, () => void>();
  const server = new ssh2.Server({ hostKeys: [options.hostKey.privateKey], ident: "safetunnel" }, (client, info) => {
    connections.add(client);
    const internals = client as unknown as { _sock?: unknown; _protocol?: unknown };
    if (internals._sock instanceof Socket) coalesceWrites(internals._sock, internals._protocol);
    const loggedIn = waitingForLogin.get(`${info.ip}|${info.port}`);
    if (loggedIn !== undefined) client.once("ready", loggedIn);
    client.once("close", () => connections.delete(client));
    serveClient(client, { address: info.ip, port: info.port }, { ...options, limiter, readKeys, warnings, utils: ssh2.utils });
  });
  server.on("error", (err: Error) => log.debug(1, `serve: ${err.message}`));

  const tooMany = new Set<string>();
  const accept = (socket: Socket): void => {
    socket.setKeepAlive(true);
    // listenAll's sockets allow half-open (forwarded connections need it);
    // an SSH connection does not: when the client's side ends, so does ours,
    // or a client that just drops the TCP connection would be kept forever.
    socket.once("end", () => socket.end());
    const address = socket.remoteAddress ?? "";
    const source = attemptSource(address);
    const fromSource = unauthenticated.get(source) ?? 0;
    if (fromSource >= MAX_UNAUTHENTICATED_PER_SOURCE || unauthenticatedTotal >= MAX_UNAUTHENTICATED) {
      // Said once while it lasts: a flood must not flood the log too.
      if (!tooMany.has(source)) {
        // Bounded: an attacker with many addresses must not grow this either.
        if (tooMany.size >= MAX_UNAUTHENTICATED) tooMany.clear();
        tooMany.add(source);
        log.info(
          `serve: dropping new connections from ${source}: ${fromSource} from there (${unauthenticatedTotal} in all) have not logged in yet; at most ${MAX_UNAUTHENTICATED_PER_SOURCE} from one address and ${MAX_UNAUTHENTICATED} in all.`,
          { event: "too-many-unauthenticated", address: source },
        );
      }
      socket.destroy();
      return;
    }
    tooMany.delete(source);
    unauthenticated.set(source, fromSource + 1);
    unauthenticatedTotal++;
    // From the first byte: a client that never even sends its version line is closed too.
    const grace = setTimeout(() => {
      log.info(`serve: ${address} port ${socket.remotePort} did not log in within ${Math.round(graceMs / 1000)} s; disconnecting.`, { event: "login-timeout", address });
      socket.destroy();
    }, graceMs);
    grace.unref?.();
    const key = `${address}|${socket.remotePort}`;
    let waiting = true;
    const stopWaiting = (): void => {
      clearTimeout(grace);
      waitingForLogin.delete(key);
      if (!waiting) return;
      waiting = false;
      unauthenticatedTotal--;
      const left = (unauthenticated.get(source) ?? 1) - 1;
      if (left === 0) unauthenticated.delete(source);
      else unauthenticated.set(source, left);
    };
    waitingForLogin.set(key, stopWaiting);
    socket.once("close", stopWaiting);
    server.injectSocket(socket);
  };

  const byPort = new Map<number, string[]>();
  for (const { host, port } of options.listen) byPort.set(port, [...(byPort.get(port) ?? []), host]);
  const listeners: Listener[] = [];
  try {
    for (const [port, hosts] of byPort) {
      listeners.push(
        await listenAll(hosts, port, "serve", accept, log),
      );
    }
  } catch (err) {
    await Promise.all(listeners.map((listener) => listener.close()));
    throw err;
  }
  return {
    addresses: listeners.flatMap((listener) => listener.addresses),
    port: listeners[0]!.port,
    close: async () => {
      for (const client of connections) client.end();
      await Promise.all(listeners.map((listener) => listener.close()));
    },
  };
}

interface Peer {
  address: string;
  port: number;
}

type Ssh2Utils = Awaited<ReturnType<typeof loadSsh2>>["utils"];

interface ClientDeps extends ServeOptions {
  limiter: AttemptLimiter;
  readKeys: (file: string) => Promise<string>;
  warnings: WarningsOnce;
  utils: Ssh2Utils;
}

/** authorized_keys warnings, said again only when the file's text changes (it is read at every login attempt). */
class WarningsOnce {
  #lastText: string | undefined;
  constructor(private readonly log: Logger) {}
  say(text: string, warnings: readonly string[]): void {
    if (text === this.#lastText) return;
    this.#lastText = text;
    for (const warning of warnings) this.log.warn(`serve: ${warning}`);
  }
}

function serveClient(client: Connection, peer: Peer, deps: ClientDeps): void {
  const { log, stats } = deps;
  const from = `${peer.address} port ${peer.port}`;
  let key: AuthorizedKey | undefined;
  let user = "";
  let tries = 0;
  let lastFailure = "";
  const triedFingerprints: string[] = [];
  // direct-tcpip connects still under way: they must not outlive this connection.
  const connecting = new Set<Socket>();
  let closed = false;
  // Our own -R listeners for this client, by "address:port" as it asked.
  const remoteListeners = new Map<string, Listener>();

  client.on("error", (err: Error) => log.debug(1, `serve: ${from}: ${singleLine(err.message)}`));
  client.on("authentication", (ctx: AuthContext) => {
    user = ctx.username;
    void authenticate(ctx).catch((err: unknown) => {
      log.warn(`serve: authentication of ${from} failed: ${(err as Error).message}`);
      ctx.reject(["publickey"]);
    });
  });

  const authenticate = async (ctx: AuthContext): Promise<void> => {
    // "none" is every client's first question, answered with the one method there is.
    if (ctx.method === "none") {
      ctx.reject(["publickey"]);
      return;
    }
    if (ctx.method !== "publickey") {
      // Passwords and the rest are never accepted, but each try counts, as in sshd.
      await refuse(ctx, `${ctx.method} is not accepted`);
      return;
    }
    const blob = Buffer.from(ctx.key.data);
    const fingerprint = fingerprintSha256(blob);
    const found = await lookUpKey(blob);
    if (found === undefined) {
      if (!triedFingerprints.includes(fingerprint)) triedFingerprints.push(fingerprint);
      await refuse(ctx, `key ${fingerprint} not in ${deps.authorizedKeysFile}`);
      return;
    }
    if (ctx.signature === undefined) {
      // The client asks whether this key would do (RFC 4252 section 7): yes.
      ctx.accept();
      return;
    }
    const publicKey = deps.utils.parseKey(`${found.algorithm} ${Buffer.from(found.blob).toString("base64")}`);
    const verified = !(publicKey instanceof Error) && !Array.isArray(publicKey) && publicKey.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true;
    if (!verified) {
      await refuse(ctx, `a bad signature for key ${fingerprint}`);
      return;
    }
    key = found;
    ctx.accept();
  };

  /**
   * Every refused attempt counts toward MaxAuthTries for this connection and
   * toward the slow-down of its source address, whose answers wait once it
   * has failed too often, across all its connections at once.
   */
  const refuse = async (ctx: AuthContext, why: string): Promise<void> => {
    lastFailure = why;
    tries++;
    const before = deps.limiter.delayMs(peer.address);
    deps.limiter.failed(peer.address);
    const wait = deps.limiter.delayMs(peer.address);
    if (wait > before) {
      log.info(`serve: ${attemptSource(peer.address)} keeps failing to log in: its next attempts wait ${Math.ceil(wait / 1000)} s before each answer; other addresses are not affected.`, {
        event: "slow-down",
        address: peer.address,
      });
    }
    if (tries >= MAX_AUTH_TRIES) {
      log.info(`serve: too many authentication failures for ${printableUser(ctx.username)} from ${from}; disconnecting.`, { event: "auth-failed" });
      client.end();
      return;
    }
    if (before > 0) {
      log.debug(1, `serve: answering ${from} after ${Math.ceil(before / 1000)} s (it keeps failing to log in)`);
      await new Promise((resolve) => setTimeout(resolve, before).unref?.());
    }
    ctx.reject(["publickey"]);
  };

  const lookUpKey = async (blob: Buffer): Promise<AuthorizedKey | undefined> => {
    let text: string;
    try {
      text = await deps.readKeys(deps.authorizedKeysFile);
    } catch (err) {
      log.warn(`serve: cannot read ${deps.authorizedKeysFile} (${errnoCode(err) ?? (err as Error).message}): nobody can log in; create it with the clients' public keys (one per line, as in ~/.ssh/authorized_keys).`);
      return undefined;
    }
    const file = parseAuthorizedKeys(text, deps.authorizedKeysFile);
    deps.warnings.say(text, file.warnings);
    const algorithm = blobKeyType(blob);
    // With the address, a line whose from= refuses it is passed over for the next one, as sshd does.
    return algorithm === undefined ? undefined : findAuthorizedKey(file, algorithm, blob, peer.address);
  };

  client.on("ready", () => {
    stats.logins++;
    deps.limiter.succeeded(peer.address);
    log.info(`serve: accepted key ${fingerprintSha256(Buffer.from(key!.blob))} (${authorizedKeysWhere(deps.authorizedKeysFile, key!)}) for ${printableUser(user)} from ${from}.`, {
      event: "login",
      address: peer.address,
    });

    client.on("tcpip", (accept, reject, info) => {
      openDirect(info.destIP, info.destPort, { address: info.srcIP, port: info.srcPort }, accept as () => Duplex, (reason, text) => rejectOpen(client, reject, reason, text));
    });
    client.on("request", (accept, reject, name, info) => {
      if (name === "tcpip-forward") void listenForClient(info.bindAddr, info.bindPort, accept, reject);
      else if (name === "cancel-tcpip-forward") {
        const listener = remoteListeners.get(hostPort(info.bindAddr, info.bindPort));
        remoteListeners.delete(hostPort(info.bindAddr, info.bindPort));
        void listener?.close();
        if (listener !== undefined) accept?.();
        else reject?.();
      } else reject?.();
    });
    client.on("session", (accept) => {
      const session = accept();
      const explain = (acceptRequest: () => ServerChannel): void => {
        const channel = acceptRequest();
        channel.stderr.write(`${NO_SESSION_TEXT}\r\n`);
        channel.exit(1);
        channel.end();
      };
      // Accepted without a terminal behind it: with ssh -t a refused pty is fatal, and the client would never see why.
      session.on("pty", (acceptRequest) => acceptRequest?.());
      session.on("x11", (_accept, rejectRequest) => rejectRequest?.());
      session.on("auth-agent", (_accept, rejectRequest) => rejectRequest?.());
      session.on("env", (_accept, rejectRequest) => rejectRequest?.());
      session.on("shell", (acceptRequest) => explain(acceptRequest));
      session.on("exec", (acceptRequest) => explain(acceptRequest));
      session.on("subsystem", (acceptRequest) => explain(acceptRequest));
      log.info(`serve: ${printableUser(user)} from ${from} opened a session; told it that only forwarding is served.`, { event: "session-refused" });
    });
  });

  client.on("close", () => {
    closed = true;
    for (const socket of connecting) socket.destroy();
    connecting.clear();
    for (const listener of remoteListeners.values()) void listener.close();
    remoteListeners.clear();
    if (key === undefined && tries > 0) {
      stats.failedLogins++;
      const keys = triedFingerprints.length === 0 ? lastFailure : `key${triedFingerprints.length === 1 ? "" : "s"} ${triedFingerprints.join(", ")} not in ${deps.authorizedKeysFile}`;
      log.info(`serve: failed login for ${printableUser(user)} from ${from}: ${keys}.`, { event: "auth-failed", address: peer.address });
    }
  });

  const openDirect = (host: string, port: number, origin: Peer, accept: () => Duplex, reject: (reason: number, text: string) => void): void => {
    const target = hostPort(host, port);
    if (!key!.portForwarding || !permitsOpen(key!.permitOpen, host, port) || !permitsOpen(deps.permitOpen, host, port)) {
      stats.prohibited++;
      log.info(`serve: refused ${target} for ${from}: not permitted (${!key!.portForwarding ? "the key's authorized_keys line forbids forwarding" : "--permit-open or the key's permitopen="}).`, {
        event: "open-prohibited",
        destination: target,
      });
      reject(OPEN_ADMINISTRATIVELY_PROHIBITED, "open failed");
      return;
    }
    // The name is resolved here, by this machine's resolver (getaddrinfo).
    if (closed) return;
    const socket = netConnect({ host, port, allowHalfOpen: true });
    connecting.add(socket);
    let settled = false;
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    socket.once("connect", () => {
      settled = true;
      connecting.delete(socket);
      clearTimeout(timer);
      if (closed) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      let channel: Duplex;
      try {
        channel = accept();
      } catch {
        socket.destroy();
        return;
      }
      log.debug(1, `serve: ${from} connected to ${target} (for ${hostPort(origin.address, origin.port)})`);
      joinStreams(socket, channel, () => {}, { tally: stats, gate: sendGateOf(channel) });
    });
    socket.on("error", (err) => {
      // After the connect, errors are pipe.ts's business.
      if (settled) return;
      settled = true;
      connecting.delete(socket);
      clearTimeout(timer);
      if (closed) return;
      stats.failures++;
      const text = connectFailureText(err);
      log.info(`serve: connect to ${target} for ${from} failed: ${text}.`, { event: "open-failed", destination: target });
      reject(OPEN_CONNECT_FAILED, text);
    });
  };

  const listenForClient = async (bindAddr: string, bindPort: number, accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined): Promise<void> => {
    const asked = hostPort(bindAddr, bindPort);
    if (!key!.portForwarding || !permitsListen(key!.permitListen, bindAddr, bindPort)) {
      stats.prohibited++;
      log.info(`serve: refused -R ${asked} for ${from}: the key's authorized_keys line forbids it.`, { event: "listen-prohibited" });
      reject?.();
      return;
    }
    const hosts = remoteBindHosts(bindAddr, deps.gatewayPorts);
    try {
      const listener = await listenAll(hosts, bindPort, `-R ${asked}`, (socket: Socket) => forwardBack(socket, bindAddr, listener), log);
      if (closed) {
        // The client left while we were binding.
        await listener.close();
        return;
      }
      remoteListeners.set(asked, listener);
      if (bindPort === 0) remoteListeners.set(hostPort(bindAddr, listener.port), listener);
      log.info(`serve: listening on ${listener.addresses.join(", ")} for ${from} (-R ${asked}).`, { event: "remote-listen" });
      accept?.(listener.port);
    } catch (err) {
      log.info(`serve: cannot listen for ${from} (-R ${asked}): ${(err as Error).message}`, { event: "remote-listen-failed" });
      reject?.();
    }
  };

  const forwardBack = (socket: Socket, bindAddr: string, listener: Listener): void => {
    const origin = { address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    client.forwardOut(bindAddr, listener.port, origin.address, origin.port, (err, channel) => {
      if (err) {
        stats.failures++;
        log.info(`serve: ${from} did not take a connection to its -R ${hostPort(bindAddr, listener.port)}: ${singleLine(err.message)}.`, { event: "open-failed" });
        socket.destroy();
        return;
      }
      joinStreams(socket, channel, () => {}, { tally: stats, gate: sendGateOf(channel) });
    });
  };
}

/**
 * Sends the failure with its reason and text. ssh2's reject() always says
 * CONNECT_FAILED with an empty text, which would leave clients unable to tell
 * "refused" from "unreachable" from "prohibited"; its protocol object's
 * channelOpenFail(recipient, reason, text) is what reject() calls, so the
 * values are put in for that one synchronous call.
 */
function rejectOpen(client: Connection, reject: () => void, reason: number, text: string): void {
  const protocol = (client as unknown as { _protocol?: { channelOpenFail?: (recipient: number, reason: number, text: string) => void } })._protocol;
  const original = protocol?.channelOpenFail;
  if (protocol === undefined || typeof original !== "function") {
    reject();
    return;
  }
  protocol.channelOpenFail = (recipient: number) => original.call(protocol, recipient, reason, text);
  try {
    reject();
  } finally {
    protocol.channelOpenFail = original;
  }
}

/** The text sshd puts in a failed open: strerror() or gai_strerror() wording, which clients classify. */
export function connectFailureText(err: unknown): string {
  switch (errnoCode(err)) {
    case "ECONNREFUSED":
      return "Connection refused";
    case "ENOTFOUND":
    case "EAI_NONAME":
    case "EAI_NODATA":
      return "Name or service not known";
    case "EAI_AGAIN":
      return "Temporary failure in name resolution";
    case "ETIMEDOUT":
      return "Connection timed out";
    case "EHOSTUNREACH":
      return "No route to host";
    case "ENETUNREACH":
      return "Network is unreachable";
    case "ECONNRESET":
      return "Connection reset by peer";
    default:
      return singleLine((err as Error).message);
  }
}

/** What a -R bind asks for, as sshd_config(5) GatewayPorts: loopback only unless the server allows more. */
export function remoteBindHosts(bindAddr: string, gatewayPorts: boolean): string[] {
  const loopback = ["127.0.0.1", "::1"];
  if (!gatewayPorts) return loopback;
  if (bindAddr === "" || bindAddr === "*" || bindAddr === "0.0.0.0") return ["0.0.0.0", "::"];
  if (bindAddr === "localhost") return loopback;
  return [bindAddr];
}

/** The key type named inside a public key blob (its first SSH string, RFC 4253 section 6.6). */
function blobKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  return length > 0 && length <= 64 && 4 + length <= blob.length ? blob.toString("latin1", 4, 4 + length) : undefined;
}

function authorizedKeysWhere(file: string, key: AuthorizedKey): string {
  return `${file}:${key.line}${key.comment !== "" ? ` ${singleLine(key.comment)}` : ""}`;
}

/** A client's user name is its own text: shown without control characters, and bounded. */
function printableUser(user: string): string {
  const clean = singleLine(user);
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean;
}

