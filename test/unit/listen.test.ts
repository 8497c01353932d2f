import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { rejection } from "../helpers/rejection.ts";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { listenAll, type Listener } from "../../src/forward/listen.ts";
import { createLogger } from "../../src/log.ts";
import { TunnelError } from "../../src/errors.ts";
import { connectOutcome } from "../helpers/sockets.ts";
import { bounded, waitFor } from "../helpers/wait.ts";
import { freePort, hasIpv6Loopback, occupyPort } from "../helpers/targets.ts";

const ipv6 = await hasIpv6Loopback();
const open: Listener[] = [];
const held: { stop(): Promise<void> }[] = [];
after(async () => {
  await Promise.all(open.map((listener) => listener.close()));
  await Promise.all(held.map((holder) => holder.stop()));
});

function capture(verbosity = 0): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ verbosity, write: (line) => lines.push(line) }) };
}

async function listen(hosts: string[], port: number, onConnection: (socket: Socket) => void = () => {}, verbosity = 0) {
  const { lines, log } = capture(verbosity);
  const listener = await listenAll(hosts, port, `-D ${port}`, onConnection, log);
  open.push(listener);
  return { listener, lines };
}


describe("listenAll", () => {
  test("binds every host on the same port and names each address", async () => {
    const port = await freePort();
    const hosts = ipv6 ? ["127.0.0.1", "::1"] : ["127.0.0.1"];
    const { listener } = await listen(hosts, port);
    assert.equal(listener.port, port);
    assert.deepEqual(listener.addresses, ipv6 ? [`127.0.0.1:${port}`, `[::1]:${port}`] : [`127.0.0.1:${port}`]);
    assert.equal(await connectOutcome(port, "127.0.0.1"), "connected");
    if (ipv6) assert.equal(await connectOutcome(port, "::1"), "connected");
  });

  test("port 0 takes the port the system picks for the first host, and the same one for the next", async (t) => {
    if (!ipv6) return t.skip("no IPv6 loopback here");
    const { listener } = await listen(["127.0.0.1", "::1"], 0);
    assert.notEqual(listener.port, 0);
    assert.deepEqual(listener.addresses, [`127.0.0.1:${listener.port}`, `[::1]:${listener.port}`]);
  });

  test("a port in use on 127.0.0.1 fails the whole forward with PORT_IN_USE, and ::1 is not left listening", async (t) => {
    if (!ipv6) return t.skip("no IPv6 loopback here");
    const port = await freePort();
    held.push(await occupyPort(port, "127.0.0.1"));
    const err = await rejection(listenAll(["127.0.0.1", "::1"], port, `-D ${port}`, () => {}, capture().log), TunnelError);
    assert.equal(err.code, "PORT_IN_USE");
    assert.equal(
      err.message,
      `-D ${port}: cannot listen on 127.0.0.1:${port}: Address already in use; pick another port or stop the program using it (ss -ltnp | grep ${port}).`,
    );
    assert.equal(await connectOutcome(port, "::1"), "ECONNREFUSED");
  });

  test("an address this machine does not have is BIND_FAILED naming it", async () => {
    const port = await freePort();
    const err = await rejection(listenAll(["192.0.2.1"], port, `-D 192.0.2.1:${port}`, () => {}, capture().log), TunnelError);
    assert.equal(err.code, "BIND_FAILED");
    assert.equal(
      err.message,
      `-D 192.0.2.1:${port}: cannot listen on 192.0.2.1:${port}: no such local address; use 127.0.0.1, localhost or an address of this machine.`,
    );
  });

  test("of several hosts, one that does not exist here is skipped (with a debug line) and the others listen", async () => {
    const port = await freePort();
    const { listener, lines } = await listen(["127.0.0.1", "192.0.2.1"], port, () => {}, 1);
    assert.deepEqual(listener.addresses, [`127.0.0.1:${port}`]);
    assert.deepEqual(lines, [`debug1: -D ${port}: cannot listen on 192.0.2.1:${port}: no such local address; use 127.0.0.1, localhost or an address of this machine.`]);
  });

  test("close() stops listening and destroys the sockets it accepted", async () => {
    const port = await freePort();
    const accepted: Socket[] = [];
    const { listener } = await listen(["127.0.0.1"], port, (socket) => accepted.push(socket));
    const client = connect({ host: "127.0.0.1", port });
    await once(client, "connect");
    await waitFor(() => accepted.length === 1, "the listener to accept the client");
    const closed = once(client, "close");
    await listener.close();
    await bounded(closed, "the client to see its connection closed", 10_000);
    assert.equal(accepted[0]!.destroyed, true);
    assert.equal(await connectOutcome(port, "127.0.0.1"), "ECONNREFUSED");
  });

  test("accepted sockets are half-open capable with Nagle off, as forwarded sockets need", async () => {
    const port = await freePort();
    const accepted: Socket[] = [];
    await listen(["127.0.0.1"], port, (socket) => accepted.push(socket));
    const client = connect({ host: "127.0.0.1", port });
    await once(client, "connect");
    await waitFor(() => accepted.length === 1, "the listener to accept the client");
    const socket = accepted[0]!;
    client.end();
    await bounded(once(socket, "end"), "the client's FIN", 10_000);
    // allowHalfOpen: our side may still write after the client's FIN.
    assert.equal(socket.writable, true);
    client.destroy();
  });
});
