/**
 * `safetunnel nc [--proxy HOST:PORT] HOST PORT`: standard input and output
 * joined to HOST:PORT through the tunnel, by name, for
 * `ssh -o ProxyCommand='safetunnel nc %h %p'` (where ssh would otherwise
 * resolve the name here) and anything else that takes a netcat.
 */
import type { Readable, Writable } from "node:stream";
import { connectThroughProxy, type ProxyAddress } from "./socks-connect.ts";

export interface NcPlan {
  command: "nc";
  proxy: ProxyAddress;
  host: string;
  port: number;
  verbosity: number;
  json: boolean;
}

export interface NcIo {
  stdin: Readable;
  stdout: Writable;
}

/**
 * Resolves with the exit status once the far end has closed (its last bytes
 * written out) or the connection is gone: 0 when it ended cleanly, 1 when it
 * was reset. As OpenBSD nc(1) does, the far end's EOF ends the run even
 * while standard input is open (a terminal would otherwise hold it); our own
 * EOF (standard input ending) is passed on and the far end's answer still
 * read. A failure to connect is thrown (a TunnelError with exit status 1).
 *
 * @example
 * process.exitCode = await runNc({ command: "nc", proxy: { host: "127.0.0.1", port: 9001 }, host: "example.org", port: 22, verbosity: 0, json: false }, { stdin: process.stdin, stdout: process.stdout });
 */
export async function runNc(plan: NcPlan, io: NcIo): Promise<number> {
  const socket = await connectThroughProxy(plan.proxy, plan.host, plan.port);
  return new Promise<number>((resolve) => {
    let settled = false;
    const finish = (status: number): void => {
      if (settled) return;
      settled = true;
      io.stdin.unpipe(socket);
      // Nothing more will be read: a terminal or pipe must not keep us alive.
      io.stdin.pause();
      socket.destroy();
      resolve(status);
    };
    socket.on("error", () => finish(1));
    socket.once("close", () => finish(0));
    io.stdin.on("error", () => finish(1));
    io.stdout.on("error", () => finish(1));
    io.stdin.pipe(socket);
    socket.pipe(io.stdout, { end: false });
    // Written out before we go: the callback of an empty write runs after everything queued before it.
    socket.once("end", () => io.stdout.write("", () => finish(0)));
  });
}
