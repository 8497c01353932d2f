/**
 * Listening sockets for -D and -L: one forward may bind several addresses
 * (both loopbacks by default). A forward counts as started when at least one
 * address is bound, as in OpenSSH; an address already in use is a failure of
 * that forward with a message naming the fix.
 */
import { createServer, type Server, type Socket } from "node:net";
import { TunnelError, errnoCode } from "../errors.ts";
import { hostPort } from "../address.ts";
import type { Logger } from "../log.ts";

export interface Listener {
  /** "127.0.0.1:9001" style addresses actually bound. */
  readonly addresses: string[];
  /** The port bound (useful when 0 was asked for). */
  readonly port: number;
  /** Stop accepting and destroy every socket this listener accepted. */
  close(): Promise<void>;
}

/**
 * @example
 * const listener = await listenAll(["127.0.0.1", "::1"], 9001, "-D 9001", (s) => handle(s), log);
 */
export async function listenAll(
  hosts: string[],
  port: number,
  label: string,
  onConnection: (socket: Socket) => void,
  log: Logger,
): Promise<Listener> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  let boundPort = port;
  let firstError: TunnelError | undefined;
  const accepted = new Set<Socket>();
  const track = (socket: Socket): void => {
    accepted.add(socket);
    socket.once("close", () => accepted.delete(socket));
    onConnection(socket);
  };
  for (const host of hosts) {
    // noDelay: as OpenSSH does for forwarded sockets; small interactive writes must not wait.
    const server = createServer({ allowHalfOpen: true, noDelay: true }, track);
    try {
      boundPort = await bind(server, host, boundPort, label, log);
      servers.push(server);
      addresses.push(hostPort(host, boundPort));
    } catch (err) {
      const code = bindErrnoCode(err);
      const error = bindError(err as Error, code, host, boundPort, label);
      // A machine without IPv6 (or IPv4) loopback: the other one is enough.
      if (hosts.length > 1 && (code === "EADDRNOTAVAIL" || code === "EAFNOSUPPORT")) {
        log.debug(1, error.message);
        continue;
      }
      // Anything else fails the whole forward: half a listener (127.0.0.1 taken
      // by another program, ::1 ours) would send some clients elsewhere.
      firstError ??= error;
    }
  }
  if (firstError !== undefined || servers.length === 0) {
    await Promise.all(servers.map((s) => closeServer(s)));
    throw firstError ?? new TunnelError("BIND_FAILED", `${label}: nothing to listen on`);
  }
  return {
    addresses,
    port: boundPort,
    close: async () => {
      const closing = Promise.all(servers.map((s) => closeServer(s)));
      // server.close() waits for open connections; we are the ones ending them.
      for (const socket of accepted) socket.destroy();
      await closing;
    },
  };
}

function bind(server: Server, host: string, port: number, label: string, log: Logger): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    // ipv6Only: "::" must not also claim the IPv4 wildcard that "0.0.0.0" takes.
    server.listen({ host, port, ipv6Only: host.includes(":"), exclusive: true }, () => {
      server.removeListener("error", onError);
      // Errors after listening (EMFILE on accept) must not crash the process,
      // but clients then hang, so say it (once: it repeats on every accept).
      let told = false;
      server.on("error", (err: Error) => {
        if (told) return;
        told = true;
        log.warn(`${label}: cannot accept connections: ${err.message}; raise the open-file limit (ulimit -n) or close some connections.`);
      });
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

/**
 * The error code of a failed bind. Deno 2.9 reports `listen EINVAL` where
 * Linux's bind(2) says EADDRNOTAVAIL (an address this machine does not have;
 * measured with 192.0.2.1): on Deno, EINVAL from a listen is read as that.
 */
function bindErrnoCode(err: unknown): string | undefined {
  const code = errnoCode(err);
  return code === "EINVAL" && "Deno" in globalThis ? "EADDRNOTAVAIL" : code;
}

function bindError(err: Error, code: string | undefined, host: string, port: number, label: string): TunnelError {
  const where = hostPort(host, port);
  switch (code) {
    case "EADDRINUSE":
      return new TunnelError("PORT_IN_USE", `${label}: cannot listen on ${where}: Address already in use; pick another port or stop the program using it (ss -ltnp | grep ${port}).`);
    case "EACCES":
      return new TunnelError("BIND_FAILED", `${label}: cannot listen on ${where}: Permission denied; ports below 1024 need root, pick a port above 1024.`);
    case "EADDRNOTAVAIL":
      return new TunnelError("BIND_FAILED", `${label}: cannot listen on ${where}: no such local address; use 127.0.0.1, localhost or an address of this machine.`);
    default:
      return new TunnelError("BIND_FAILED", `${label}: cannot listen on ${where}: ${err.message}`);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
