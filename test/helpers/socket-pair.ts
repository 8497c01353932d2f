/**
 * Connected TCP socket pairs on loopback, for unit tests that need real
 * sockets at both ends (a SOCKS client and the socket accepted from it, a
 * tunnel channel and what it reaches).
 */
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { bounded } from "./wait.ts";

export interface PairServer {
  port: number;
  /**
   * A new connection: `[connecting side, accepted side]`. The accepted side
   * always keeps its write half open after the peer's FIN; the connecting
   * side does unless `allowHalfOpen` is false.
   */
  pair(allowHalfOpen?: boolean): Promise<[Socket, Socket]>;
  /** Destroy every socket of every pair made so far (the server keeps listening). */
  destroySockets(): void;
  /** Destroy every socket and close the server. */
  close(): Promise<void>;
}

/**
 * Listen on 127.0.0.1 and hand each accepted socket to the `pair()` call that
 * connected it. Every wait is bounded by `timeoutMs` (default 10 s). With
 * `ignoreErrors`, both sides get a no-op 'error' listener as soon as they
 * exist, for tests in which resets are expected; otherwise errors are the
 * caller's to handle.
 *
 * @example
 * const pairs = await startPairServer();
 * const [app, local] = await pairs.pair();
 * app.write("ping"); // arrives at `local`
 * await pairs.close();
 */
export async function startPairServer(options: { timeoutMs?: number; ignoreErrors?: boolean } = {}): Promise<PairServer> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const sockets = new Set<Socket>();
  const waiting = new Map<number, (socket: Socket) => void>();
  const arrived = new Map<number, Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    if (options.ignoreErrors === true) socket.on("error", () => {});
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    track(socket);
    // The connecting side's local port names the pair.
    const key = socket.remotePort!;
    const taker = waiting.get(key);
    if (taker) {
      waiting.delete(key);
      taker(socket);
    } else {
      arrived.set(key, socket);
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const destroySockets = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port,
    async pair(allowHalfOpen = true) {
      const client = connect({ port, host: "127.0.0.1", allowHalfOpen });
      track(client);
      await bounded(once(client, "connect"), "a loopback connection", timeoutMs);
      const key = client.localPort!;
      const accepted =
        arrived.get(key) ?? (await bounded(new Promise<Socket>((resolve) => waiting.set(key, resolve)), "the accepted socket", timeoutMs));
      arrived.delete(key);
      return [client, accepted];
    },
    destroySockets,
    close() {
      destroySockets();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
