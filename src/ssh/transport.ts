/**
 * The byte stream an SSH connection runs over: a TCP socket to the hop, or,
 * behind a jump host, a "direct-tcpip" channel of the jump host's connection
 * (RFC 4254 section 7.2), which is what OpenSSH's ProxyJump gets from
 * `ssh -W host:port`. Failures are worded as OpenSSH's sshconnect.c words them
 * ("connect to host H port P: Connection refused"), then name the fix.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Client } from "ssh2";
import { TunnelError, describeError, echoValue } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HopSettings } from "../config/settings.ts";
import { openFailureText } from "./channel-failure.ts";

/** What opening a TCP connection to a hop needs to know. */
export type TcpTarget = Pick<HopSettings, "hostname" | "port" | "addressFamily" | "connectTimeoutMs">;

/**
 * A connected TCP socket to `target`, with TCP_NODELAY and SO_KEEPALIVE set.
 * Rejects with a TunnelError (HOST_UNREACHABLE or CONNECT_TIMEOUT) that says
 * what to check. ConnectTimeout bounds the TCP handshake only; the caller
 * bounds what follows.
 *
 * @example
 * const sock = await openTcpSocket({ hostname: "example.org", port: 22, addressFamily: "any", connectTimeoutMs: 10_000 }, log);
 */
export function openTcpSocket(target: TcpTarget, log: Logger): Promise<Socket> {
  const refusal = refuseBeforeConnecting(target);
  if (refusal !== undefined) return Promise.reject(refusal);
  const family = familyNumber(target.addressFamily);
  log.debug(1, `Connecting to ${echoValue(target.hostname)} port ${target.port}.`);
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: target.hostname, port: target.port, family });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      reject(tcpConnectError(target, err));
    };
    if (target.connectTimeoutMs !== undefined) {
      const seconds = target.connectTimeoutMs / 1000;
      timer = setTimeout(() => {
        sock.off("error", onError);
        sock.destroy();
        reject(
          new TunnelError(
            "CONNECT_TIMEOUT",
            `connect to host ${echoValue(target.hostname)} port ${target.port}: Connection timed out after ${seconds} s (ConnectTimeout); check the address and that the network lets SSH through.`,
          ),
        );
      }, target.connectTimeoutMs);
    }
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      // From here on the SSH client listens for errors.
      sock.off("error", onError);
      // Measured with ssh2 on Deno 2: without TCP_NODELAY, transfers stalled
      // at 25-60 MiB/s in about half of all runs (waiting, not computing);
      // with it none of 34 did. It costs nothing on Node.
      sock.setNoDelay(true);
      // OpenSSH's TCPKeepAlive (ssh_config(5), default yes): a dead network
      // ends the session instead of leaving every tunnelled connection hanging.
      sock.setKeepAlive(true);
      resolve(sock);
    });
  });
}

function familyNumber(family: TcpTarget["addressFamily"]): 0 | 4 | 6 {
  return family === "inet" ? 4 : family === "inet6" ? 6 : 0;
}

/** Names that must not be tried at all: a literal of the other family than -4/-6 asks for, and Tor onion names. */
function refuseBeforeConnecting(target: TcpTarget): TunnelError | undefined {
  const family = familyNumber(target.addressFamily);
  const literal = isIP(target.hostname);
  if (family !== 0 && literal !== 0 && literal !== family) {
    // getaddrinfo() with AI_NUMERICHOST and the other family fails with
    // EAI_FAMILY; ssh prints its gai_strerror() text.
    return new TunnelError(
      "HOST_UNREACHABLE",
      `${echoValue(target.hostname)} is an IPv${literal} address but -${family} (AddressFamily ${target.addressFamily}) was asked for: Address family for hostname not supported; drop -${family} or give an IPv${family} address.`,
    );
  }
  // RFC 7686 section 2: .onion names must not go to DNS, and only Tor can reach them.
  if (/\.onion\.?$/i.test(target.hostname)) {
    return new TunnelError(
      "HOST_UNREACHABLE",
      `${echoValue(target.hostname)} is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor.`,
    );
  }
  return undefined;
}

/**
 * The TunnelError for a failed TCP connect or name lookup, in ssh's words
 * plus what to check.
 *
 * @example
 * tcpConnectError({ hostname: "h", port: 22, addressFamily: "any", connectTimeoutMs: undefined }, Object.assign(new Error("x"), { code: "ECONNREFUSED" })).message
 * // "connect to host h port 22: Connection refused; is sshd running there, and is the port (-p) right?"
 */
export function tcpConnectError(target: TcpTarget, err: NodeJS.ErrnoException): TunnelError {
  const where = `connect to host ${echoValue(target.hostname)} port ${target.port}`;
  switch (err.code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new TunnelError("HOST_UNREACHABLE", `Could not resolve hostname ${echoValue(target.hostname)}: Name or service not known; check the spelling or the HostName in your ssh config.`);
    case "ECONNREFUSED":
      return new TunnelError("HOST_UNREACHABLE", `${where}: Connection refused; is sshd running there, and is the port (-p) right?`);
    case "ETIMEDOUT":
      return new TunnelError("CONNECT_TIMEOUT", `${where}: Connection timed out; check the address and that the network lets SSH through.`);
    case "EHOSTUNREACH":
      return new TunnelError("HOST_UNREACHABLE", `${where}: No route to host; check the address and your network.`);
    case "ENETUNREACH":
      return new TunnelError("HOST_UNREACHABLE", `${where}: Network is unreachable; check the address and your network.`);
    default:
      return new TunnelError("HOST_UNREACHABLE", `${where}: ${describeError(err)}`);
  }
}

/**
 * A direct-tcpip channel from `jump` to the hop, to carry the hop's SSH
 * connection. The originator address is 127.0.0.1 port 0, as `ssh -W` sends.
 *
 * @example
 * const stream = await openJumpChannel(jumpClient, destination);
 */
export function openJumpChannel(jump: Client, target: Pick<HopSettings, "hostname" | "port">): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    try {
      jump.forwardOut("127.0.0.1", 0, target.hostname, target.port, (err, channel) => {
        if (err) {
          reject(
            new TunnelError(
              "HOST_UNREACHABLE",
              `jump host could not open a channel to ${echoValue(target.hostname)} port ${target.port}: ${openFailureText(err)}; check the destination's name and port as the jump host sees them.`,
            ),
          );
          return;
        }
        resolve(channel);
      });
    } catch (err) {
      // ssh2 throws when the jump host's connection is already gone.
      reject(new TunnelError("SSH_DISCONNECTED", `jump host connection closed before reaching ${echoValue(target.hostname)}: ${describeError(err)}`));
    }
  });
}
