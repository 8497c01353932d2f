/**
 * The client side of one SOCKS5 CONNECT by name (RFC 1928), for the
 * commands that use a running tunnel rather than run one (`nc`): the name
 * goes to the proxy, never to this machine's resolver.
 */
import { connect, type Socket } from "node:net";
import { Buffer } from "node:buffer";
import { TunnelError, errnoCode } from "../errors.ts";
import { hostPort } from "../address.ts";
import {
  AuthMethod,
  describeSocks5Reply,
  encodeSocks5ConnectName,
  encodeSocks5Greeting,
  parseSocks5MethodChoice,
  parseSocks5Reply,
  Socks5Reply,
} from "../socks/codec.ts";

export interface ProxyAddress {
  host: string;
  port: number;
}

/** How long the proxy may take to accept, and then to answer the request. @default 30 s: the SSH server resolves and connects meanwhile */
const DEFAULT_WAIT_MS = 30_000;

/**
 * A socket to `host:port` through the SOCKS5 proxy at `proxy`, once the
 * proxy says it is connected; the bytes after its reply are the
 * destination's. Fails with a TunnelError (exit status 1, as nc's) that says
 * what the proxy answered and what to do.
 *
 * @example
 * const socket = await connectThroughProxy({ host: "127.0.0.1", port: 9001 }, "example.org", 22);
 */
export async function connectThroughProxy(proxy: ProxyAddress, host: string, port: number, waitMs = DEFAULT_WAIT_MS): Promise<Socket> {
  const where = hostPort(proxy.host, proxy.port);
  const target = hostPort(host, port);
  if (Buffer.byteLength(host, "latin1") > 255 || host === "") throw failure("BAD_DESTINATION", `cannot ask for "${host.slice(0, 64)}": a SOCKS5 host name is 1 to 255 bytes`);
  const socket = connect({ host: proxy.host, port: proxy.port, allowHalfOpen: true });
  socket.setNoDelay(true);
  let received = Buffer.alloc(0);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(failure("PROXY_UNREACHABLE", `no answer from the tunnel at ${where} within ${waitMs / 1000} s: check --proxy`)), waitMs);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        // Whatever comes next waits in the socket until the caller reads it.
        socket.pause();
        socket.removeListener("data", onData);
        socket.removeListener("error", onError);
        socket.removeListener("end", onEnd);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onError = (err: Error): void => {
        const code = errnoCode(err);
        done(
          code === "ECONNREFUSED"
            ? failure("PROXY_UNREACHABLE", `nothing is listening on ${where}: start the tunnel first (safetunnel -D ${proxy.port} user@host) or give its port with --proxy`)
            : failure("PROXY_UNREACHABLE", `cannot reach the tunnel at ${where} (${err.message}): check --proxy`),
        );
      };
      const onEnd = (): void => done(failure("PROXY_REFUSED", `${where} closed the connection before answering: is it a SOCKS5 port (safetunnel -D)?`));
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        const choice = parseSocks5MethodChoice(received);
        if (choice.status === "incomplete") return;
        if (choice.status === "invalid") return done(failure("PROXY_REFUSED", `${where} does not speak SOCKS5 (${choice.reason}): give the tunnel's -D port with --proxy`));
        if (choice.value.method !== AuthMethod.NO_AUTH) {
          return done(failure("PROXY_REFUSED", `${where} asks for a SOCKS5 login (a tunnel with --socks-auth): use a -D port without --socks-auth`));
        }
        const reply = parseSocks5Reply(received.subarray(2));
        if (reply.status === "incomplete") return;
        if (reply.status === "invalid") return done(failure("PROXY_REFUSED", `${where} answered the request with something other than SOCKS5 (${reply.reason})`));
        if (reply.value.reply !== Socks5Reply.SUCCEEDED) return done(refusal(target, reply.value.reply));
        received = received.subarray(2 + reply.consumed);
        done();
      };
      socket.on("data", onData);
      socket.on("error", onError);
      socket.on("end", onEnd);
      socket.once("connect", () => socket.write(Buffer.concat([encodeSocks5Greeting([AuthMethod.NO_AUTH]), encodeSocks5ConnectName(host, port)])));
    });
  } catch (err) {
    socket.destroy();
    throw err;
  }
  // Bytes the destination sent with the proxy's reply (an SSH server's banner can arrive in the same read).
  if (received.length > 0) socket.unshift(received);
  return socket;
}

/** What the proxy's refusal means for the one who asked, and what to do. */
function refusal(target: string, reply: number): TunnelError {
  const what = `the tunnel could not connect to ${target}: ${describeSocks5Reply(reply)} (SOCKS5 reply 0x${reply.toString(16).padStart(2, "0")})`;
  const fix =
    reply === Socks5Reply.NOT_ALLOWED
      ? "; an IP address is refused unless the tunnel runs with --allow-ip: give the host name, or see the tunnel's log"
      : reply === Socks5Reply.HOST_UNREACHABLE
        ? "; check the name: it is resolved by the SSH server"
        : "";
  return failure("PROXY_REFUSED", what + fix);
}

function failure(code: "PROXY_UNREACHABLE" | "PROXY_REFUSED" | "BAD_DESTINATION", message: string): TunnelError {
  return new TunnelError(code, message, { exitCode: 1 });
}
