import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { NotAFrontEnd, openControl, type ControlConnection } from "../../src/leakcheck/control-client.ts";
import { CONTROL_NAME, CONTROL_PORT, type CanaryEvent } from "../../src/leakcheck/canary-registry.ts";
import { AuthMethod, encodeSocks5ConnectName, encodeSocks5Greeting } from "../../src/socks/codec.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

const HELLO = {
  event: "hello",
  version: "0.1.0",
  canary: "c0ffee.canary.safetunnel.invalid",
  stun: "c0ffee-stun.canary.safetunnel.invalid",
  url: "http://c0ffee.canary.safetunnel.invalid/",
};
/** What leakcheck sends first: the greeting and the CONNECT, in one write. */
const HANDSHAKE = Buffer.concat([encodeSocks5Greeting([AuthMethod.NO_AUTH]), encodeSocks5ConnectName(CONTROL_NAME, CONTROL_PORT)]);
const REQUEST = { request: "stun-udp", address: "10.0.0.2", port: 40000 } as const;
const REQUEST_LINE = '{"request":"stun-udp","address":"10.0.0.2","port":40000}\n';

const servers: Server[] = [];
const frontEndSockets: Socket[] = [];
const controls: ControlConnection[] = [];
after(async () => {
  for (const control of controls) control.close();
  for (const socket of frontEndSockets) socket.destroy();
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
});

/** The front end's side of one control connection: what it has read since the hello, and its socket. */
interface FrontEndConnection {
  socket: Socket;
  handshake: Buffer;
  /** Bytes received after the SOCKS5 handshake. */
  received(): string;
}

/**
 * Just enough of a safetunnel front end on 127.0.0.1: reads the greeting,
 * chooses no authentication, reads the CONNECT, answers success with
 * 0.0.0.0:0 and says hello. Everything after that is the test's to write.
 */
async function fakeFrontEnd(): Promise<{ port: number; connection: () => Promise<FrontEndConnection>; server: Server }> {
  const accepted: Promise<FrontEndConnection>[] = [];
  const server = createServer((socket) => {
    frontEndSockets.push(socket);
    socket.on("error", () => {});
    accepted.push(
      new Promise((resolve) => {
        let buffer = Buffer.alloc(0);
        let stage: "greeting" | "connect" | "open" = "greeting";
        let handshake = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          buffer = Buffer.concat([buffer, chunk]);
          if (stage === "greeting" && buffer.length >= 3) {
            stage = "connect";
            socket.write(Buffer.from([5, 0]));
          }
          if (stage === "connect" && buffer.length >= HANDSHAKE.length) {
            stage = "open";
            handshake = buffer.subarray(0, HANDSHAKE.length);
            buffer = buffer.subarray(HANDSHAKE.length);
            socket.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
            socket.write(`${JSON.stringify(HELLO)}\n`);
            resolve({ socket, handshake, received: () => buffer.toString("utf8") });
          }
        });
      }),
    );
  });
  server.listen(0, "127.0.0.1");
  await bounded(once(server, "listening"), "the fake front end to listen", 10_000);
  servers.push(server);
  return {
    port: (server.address() as AddressInfo).port,
    server,
    connection: async () => {
      await waitFor(() => accepted.length > 0, "the control connection to reach the fake front end");
      return bounded(accepted.shift()!, "the fake front end's handshake", 10_000);
    },
  };
}

/** A control connection through a fresh fake front end, and the front end's side of it. */
async function connected(): Promise<{ control: ControlConnection; front: FrontEndConnection }> {
  const fake = await fakeFrontEnd();
  const opening = openControl({ host: "127.0.0.1", port: fake.port }, 10_000);
  const front = await fake.connection();
  const control = await bounded(opening, "openControl", 10_000);
  controls.push(control);
  assert.deepEqual(front.handshake, HANDSHAKE);
  assert.deepEqual(control.hello, HELLO);
  return { control, front };
}

describe("ControlConnection.request against a fake front end", () => {
  test("sends the request as one line and resolves with the answer written after it was read", async () => {
    const { control, front } = await connected();
    const answering = control.request(REQUEST, 10_000);
    await waitFor(() => front.received().includes("\n"), "the request line");
    assert.equal(front.received(), REQUEST_LINE);
    front.socket.write('{"event":"stun-udp","address":"10.0.0.2","port":40000}\n');
    assert.deepEqual(await bounded(answering, "the answer", 10_000), { event: "stun-udp", address: "10.0.0.2", port: 40000 });
  });

  test("a refusal is an answer too", async () => {
    const { control, front } = await connected();
    const answering = control.request(REQUEST, 10_000);
    await waitFor(() => front.received() === REQUEST_LINE, "the request line");
    front.socket.write('{"event":"request-refused","request":"stun-udp","reason":"not JSON"}\n');
    assert.deepEqual(await bounded(answering, "the answer", 10_000), { event: "request-refused", request: "stun-udp", reason: "not JSON" });
  });

  test("the answer never reaches onEvent listeners; an event line around it does, in order", async () => {
    const { control, front } = await connected();
    const events: CanaryEvent[] = [];
    control.onEvent((event) => events.push(event));
    const answering = control.request(REQUEST, 10_000);
    await waitFor(() => front.received() === REQUEST_LINE, "the request line");
    const page: CanaryEvent = { event: "page", method: "GET", path: "/", userAgent: "curl/8.5.0" };
    const canary: CanaryEvent = { event: "canary", name: HELLO.canary, port: 80, client: "127.0.0.1:50000", program: "curl" };
    front.socket.write(`${JSON.stringify(page)}\n{"event":"stun-udp","address":"10.0.0.2","port":40000}\n${JSON.stringify(canary)}\n`);
    assert.deepEqual(await bounded(answering, "the answer", 10_000), { event: "stun-udp", address: "10.0.0.2", port: 40000 });
    await waitFor(() => events.length >= 2, "both events");
    assert.deepEqual(events, [page, canary]);
  });

  test("resolves undefined after the given ms when no answer comes, and a late answer is dropped, not an event", async () => {
    const { control, front } = await connected();
    const events: CanaryEvent[] = [];
    control.onEvent((event) => events.push(event));
    assert.equal(await bounded(control.request(REQUEST, 50), "request() to give up", 10_000), undefined);
    assert.equal(front.received(), REQUEST_LINE);
    const page: CanaryEvent = { event: "page", method: "GET", path: "/", userAgent: null };
    front.socket.write(`{"event":"stun-udp","address":"10.0.0.2","port":40000}\n${JSON.stringify(page)}\n`);
    await waitFor(() => events.length >= 1, "the event after the late answer");
    assert.deepEqual(events, [page]);
  });

  test("a late answer to a request that timed out is not taken as the answer to the next request", async () => {
    const { control, front } = await connected();
    assert.equal(await bounded(control.request(REQUEST, 50), "the first request() to give up", 10_000), undefined);
    const second = control.request({ request: "stun-udp", address: "10.0.0.3", port: 40001 }, 10_000);
    await waitFor(() => front.received().split("\n").length === 3, "the second request line");
    // The front end answers in order: first the late answer to the first request, then the second's.
    front.socket.write(`{"event":"request-refused","request":"stun-udp","reason":"late"}\n{"event":"stun-udp","address":"10.0.0.3","port":40001}\n`);
    assert.deepEqual(await bounded(second, "the second answer", 10_000), { event: "stun-udp", address: "10.0.0.3", port: 40001 });
  });

  test("resolves undefined at once, not after ms, when the front end closes while it waits", async () => {
    const { control, front } = await connected();
    let lost = 0;
    control.onLost(() => lost++);
    const answering = control.request(REQUEST, 30_000);
    await waitFor(() => front.received() === REQUEST_LINE, "the request line");
    front.socket.destroy();
    assert.equal(await bounded(answering, "request() to give up when the front end closed", 10_000), undefined);
    await waitFor(() => lost === 1, "onLost");
  });

  test("resolves undefined at once once the front end has gone, or after close()", async () => {
    const { control, front } = await connected();
    front.socket.destroy();
    const lost = new Promise<void>((resolve) => control.onLost(resolve));
    await bounded(lost, "onLost", 10_000);
    assert.equal(await bounded(control.request(REQUEST, 30_000), "request() after the front end went", 10_000), undefined);

    const second = await connected();
    second.control.close();
    assert.equal(await bounded(second.control.request(REQUEST, 30_000), "request() after close()", 10_000), undefined);
  });
});

describe("openControl against a port that wants a login", () => {
  test("05 FF (a --socks-auth tunnel) is not a front end leakcheck can check, said as such with exit status 2", async () => {
    const server = createServer((socket) => {
      frontEndSockets.push(socket);
      socket.on("error", () => {});
      socket.once("data", () => socket.end(Buffer.from([5, 0xff])));
    });
    server.listen(0, "127.0.0.1");
    await bounded(once(server, "listening"), "the server to listen", 10_000);
    servers.push(server);
    const port = (server.address() as AddressInfo).port;
    const error = await bounded(
      openControl({ host: "127.0.0.1", port }, 10_000).then(
        () => assert.fail("openControl resolved"),
        (err: unknown) => err,
      ),
      "openControl to fail",
      10_000,
    );
    assert.ok(error instanceof NotAFrontEnd);
    assert.equal(error.exitCode, 2);
    assert.equal(
      error.message,
      `127.0.0.1:${port} requires a SOCKS5 username and password (a tunnel started with --socks-auth, or another proxy): browsers cannot log in to it, so there is nothing for leakcheck to check there; check a -D port without --socks-auth, the one your browser uses`,
    );
  });
});
