import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { listenForWebrtcUdp, type StunListener } from "../../src/leakcheck/stun-listener.ts";
import type { UdpSender } from "../../src/platform/udp-owner.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

// Loopback only: the listener is given 127.0.0.1 as "this machine's address", so nothing leaves the machine.
const LOOPBACK = () => ["127.0.0.1"];

/** A Binding request (RFC 5389 section 6): type 0x0001, length 0, the magic cookie, a transaction ID. */
const BINDING_REQUEST = Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0x6a, 0x4f, 0x1e, 0x22, 0x8b, 0x3c, 0x90, 0x05, 0x71, 0xd2, 0xee, 0x13);
/** Not STUN: an RTP-looking first byte. */
const NOT_STUN = Uint8Array.from("\x80hello, not stun", (c) => c.charCodeAt(0));

const sockets: Socket[] = [];
const listeners: StunListener[] = [];
after(async () => {
  for (const socket of sockets) socket.close();
  await Promise.all(listeners.map((listener) => listener.close()));
});

async function sender(): Promise<{ socket: Socket; port: number }> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  socket.bind(0, "127.0.0.1");
  await bounded(once(socket, "listening"), "a UDP sender to bind", 10_000);
  return { socket, port: socket.address().port };
}

function send(socket: Socket, datagram: Uint8Array, port: number): Promise<void> {
  return bounded(
    new Promise<void>((resolve, reject) => socket.send(datagram, port, "127.0.0.1", (err) => (err ? reject(err) : resolve()))),
    "a datagram to be sent",
    10_000,
  );
}

async function listen(options: Parameters<typeof listenForWebrtcUdp>[0]): Promise<StunListener> {
  const listener = await listenForWebrtcUdp(options);
  listeners.push(listener);
  return listener;
}

describe("listenForWebrtcUdp", () => {
  test("a STUN request is an arrival named by senderProgram; a datagram that is not STUN is only counted", async () => {
    const asked: UdpSender[] = [];
    const stuns: string[] = [];
    const listener = await listen({
      addresses: LOOPBACK,
      senderProgram: async (from) => {
        asked.push(from);
        return "firefox-esr";
      },
      onStun: (from) => stuns.push(from),
    });
    const endpoint = listener.endpoint;
    assert.ok(endpoint !== undefined);
    assert.equal(endpoint.address, "127.0.0.1");
    const { socket, port } = await sender();
    await send(socket, NOT_STUN, endpoint.port);
    await send(socket, BINDING_REQUEST, endpoint.port);
    await waitFor(() => stuns.length === 1, "the STUN request to arrive");
    assert.deepEqual(stuns, [`127.0.0.1:${port}`]);
    assert.deepEqual(await listener.close(), {
      listening: { address: "127.0.0.1", port: endpoint.port },
      arrivals: [{ from: `127.0.0.1:${port}`, program: "firefox-esr" }],
      stunCount: 1,
      otherCount: 1,
    });
    assert.deepEqual(asked, [{ address: "127.0.0.1", port }]);
  });

  test("two STUN requests from one source are one arrival, counted twice, and its program asked for once", async () => {
    const stuns: string[] = [];
    let asked = 0;
    const listener = await listen({
      addresses: LOOPBACK,
      senderProgram: async () => {
        asked++;
        return "chromium";
      },
      onStun: (from) => stuns.push(from),
    });
    const { socket, port } = await sender();
    await send(socket, BINDING_REQUEST, listener.endpoint!.port);
    await send(socket, BINDING_REQUEST, listener.endpoint!.port);
    await waitFor(() => stuns.length === 2, "both STUN requests to arrive");
    assert.deepEqual(await listener.close(), {
      listening: { address: "127.0.0.1", port: listener.endpoint!.port },
      arrivals: [{ from: `127.0.0.1:${port}`, program: "chromium" }],
      stunCount: 2,
      otherCount: 0,
    });
    assert.equal(asked, 1);
  });

  test("without senderProgram, or when it finds nothing or fails, arrivals have no program", async () => {
    const stuns: string[] = [];
    const programs = [async () => undefined, async (): Promise<string | undefined> => Promise.reject(new Error("EACCES"))];
    for (const senderProgram of [undefined, ...programs]) {
      stuns.length = 0;
      const listener = await listen({ addresses: LOOPBACK, onStun: (from) => stuns.push(from), ...(senderProgram ? { senderProgram } : {}) });
      const { socket, port } = await sender();
      await send(socket, BINDING_REQUEST, listener.endpoint!.port);
      await waitFor(() => stuns.length === 1, "the STUN request to arrive");
      assert.deepEqual(await listener.close(), {
        listening: { address: "127.0.0.1", port: listener.endpoint!.port },
        arrivals: [{ from: `127.0.0.1:${port}` }],
        stunCount: 1,
        otherCount: 0,
      });
    }
  });

  test("at most 8 sources are listed; the rest are still counted", async () => {
    const stuns: string[] = [];
    const listener = await listen({ addresses: LOOPBACK, onStun: (from) => stuns.push(from) });
    const senders = await Promise.all(Array.from({ length: 9 }, () => sender()));
    for (const { socket } of senders) await send(socket, BINDING_REQUEST, listener.endpoint!.port);
    await waitFor(() => stuns.length === 9, "nine STUN requests to arrive");
    const probe = await listener.close();
    assert.ok("arrivals" in probe);
    assert.deepEqual(probe.arrivals, stuns.slice(0, 8).map((from) => ({ from })));
    assert.equal(probe.stunCount, 9);
    assert.deepEqual(new Set(stuns), new Set(senders.map(({ port }) => `127.0.0.1:${port}`)));
  });

  test("nothing arriving: no arrivals, nothing counted", async () => {
    const listener = await listen({ addresses: LOOPBACK });
    assert.deepEqual(await listener.close(), { listening: { address: "127.0.0.1", port: listener.endpoint!.port }, arrivals: [], stunCount: 0, otherCount: 0 });
  });

  test("no address besides loopback: no endpoint, and close() says why", async () => {
    const listener = await listen({ addresses: () => [] });
    assert.equal(listener.endpoint, undefined);
    assert.deepEqual(await listener.close(), { problem: "this machine has no network address besides loopback, and browsers leave loopback out of WebRTC" });
  });

  test("an address it cannot bind: no endpoint, and close() names the address and the error", async () => {
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is no interface's address here: bind fails with EADDRNOTAVAIL, and nothing is sent.
    const listener = await listen({ addresses: () => ["192.0.2.1"] });
    assert.equal(listener.endpoint, undefined);
    assert.deepEqual(await listener.close(), { problem: "cannot listen on 192.0.2.1 (bind EADDRNOTAVAIL 192.0.2.1)" });
  });

  test("close() twice gives the same result, without waiting on the socket again", async () => {
    const listener = await listen({ addresses: LOOPBACK });
    const first = listener.close();
    assert.equal(listener.close(), first);
    assert.deepEqual(await bounded(first, "close()", 10_000), { listening: { address: "127.0.0.1", port: listener.endpoint!.port }, arrivals: [], stunCount: 0, otherCount: 0 });
  });

  test("only the first address is used", async () => {
    const listener = await listen({ addresses: () => ["127.0.0.1", "192.0.2.1"] });
    assert.equal(listener.endpoint?.address, "127.0.0.1");
  });
});
