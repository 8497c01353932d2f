/**
 * The smallest SOCKS5 client the bench needs (RFC 1928): no authentication,
 * CONNECT by name (ATYP 3), greeting and request in one write, as curl
 * --socks5-hostname does. Resolves with the socket once the proxy answered
 * success (paused: resume() or pipe it), with any bytes that came after
 * the reply put back; rejects with the reply code otherwise. Cheap enough
 * to open thousands at once from one process.
 */
import { connect, type Socket } from "node:net";
import { Buffer } from "node:buffer";

/**
 * @example
 * const socket = await socksConnect(9001, "localhost", 8080);
 * socket.end("GET / HTTP/1.0\r\n\r\n");
 */
export function socksConnect(proxyPort: number, host: string, port: number, timeoutMs = 30_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: proxyPort, noDelay: true });
    let buffered = Buffer.alloc(0);
    const fail = (why: string): void => {
      socket.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`no SOCKS reply from 127.0.0.1:${proxyPort} within ${timeoutMs} ms`), timeoutMs);
    socket.once("error", (err) => {
      clearTimeout(timer);
      fail(err.message);
    });
    socket.once("connect", () => {
      const name = Buffer.from(host);
      socket.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]));
    });
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 + 5) return;
      if (buffered[0] !== 5 || buffered[1] !== 0) return fail(`method choice ${buffered.subarray(0, 2).toString("hex")}`);
      if (buffered[3] !== 0) return fail(`SOCKS reply 0x${buffered[3]!.toString(16).padStart(2, "0")}`);
      // VER REP RSV ATYP, then the bound address by type, then the port.
      const atyp = buffered[5];
      const addressLength = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buffered[6]! : -1;
      if (addressLength < 0) return fail(`bound address type ${atyp}`);
      const end = 2 + 4 + addressLength + 2;
      if (buffered.length < end) return;
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeAllListeners("error");
      socket.pause();
      if (buffered.length > end) socket.unshift(buffered.subarray(end));
      resolve(socket);
    };
    socket.on("data", onData);
  });
}
