/**
 * The reconnecting session over fake ssh2 clients: opens fail at once with
 * "connection-down" while it is down, a new connection is made with backoff,
 * -R registrations are asked for again, a changed host key is fatal, and
 * reconnectNow() skips the wait.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import type { Client } from "ssh2";
import { TunnelError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { ChannelOpenError } from "../../src/ssh/channel-failure.ts";
import type { Chain } from "../../src/ssh/connection.ts";
import { reconnectingSession } from "../../src/ssh/reconnecting-session.ts";
import { waitFor } from "../helpers/wait.ts";

class FakeClient extends EventEmitter {
  readonly forwardIns: string[] = [];
  forwardOut(_a: string, _b: number, _c: string, _d: number, callback: (err: Error | undefined, channel: PassThrough) => void): void {
    callback(undefined, new PassThrough());
  }
  forwardIn(address: string, port: number, callback: (err: Error | undefined, port: number) => void): void {
    this.forwardIns.push(`${address}:${port}`);
    callback(undefined, port === 0 ? 40123 : port);
  }
  /** The server went away. */
  drop(): void {
    this.emit("close");
  }
}

function chainOf(client: FakeClient): Chain {
  return {
    client: client as unknown as Client,
    close: async () => {
      client.drop();
    },
  };
}

const FAST = { firstDelayMs: 5, maxDelayMs: 20, random: () => 0.5, log: silentLogger, alias: "home" };

describe("reconnectingSession", () => {
  test("down: opens fail at once with connection-down; back: opens work, -R is asked for again, outages counted", async () => {
    const first = new FakeClient();
    const second = new FakeClient();
    const made: FakeClient[] = [second];
    const session = reconnectingSession(chainOf(first), { ...FAST, connect: async () => chainOf(made.shift()!), onFatal: () => assert.fail("not fatal") });
    const listen = await session.listenRemote("localhost", 0, () => {});
    assert.equal(listen.port, 40123);
    const downs: string[] = [];
    session.onDown((reason) => downs.push(reason));

    first.drop();
    assert.equal(session.up, false);
    await assert.rejects(session.openDirect("example.org", 80, { address: "127.0.0.1", port: 1 }), (err: unknown) => err instanceof ChannelOpenError && err.kind === "connection-down");
    assert.deepEqual(downs, ["SSH connection closed"]);

    await waitFor(() => session.up, "the reconnect");
    await waitFor(() => second.forwardIns.length === 1, "the -R registration asked for again");
    // The server's choice for port 0 is asked for again by its number.
    assert.deepEqual(second.forwardIns, ["localhost:40123"]);
    await session.openDirect("example.org", 80, { address: "127.0.0.1", port: 1 });
    assert.equal(session.outages, 1);
    await session.close();
  });

  test("keeps trying through failures, and a changed host key is fatal", async () => {
    const first = new FakeClient();
    let tries = 0;
    let fatal: TunnelError | undefined;
    const session = reconnectingSession(chainOf(first), {
      ...FAST,
      connect: async () => {
        tries++;
        if (tries < 3) throw new TunnelError("HOST_UNREACHABLE", "connect to host home port 22: Connection refused");
        throw new TunnelError("HOST_KEY_CHANGED", "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!");
      },
      onFatal: (err) => (fatal = err),
    });
    first.drop();
    await waitFor(() => fatal !== undefined, "the fatal failure");
    assert.equal(tries, 3);
    assert.equal(fatal!.code, "HOST_KEY_CHANGED");
    assert.equal(session.up, false);
  });

  test("reconnectNow() drops a live connection and makes a new one without waiting", async () => {
    const first = new FakeClient();
    const second = new FakeClient();
    const session = reconnectingSession(chainOf(first), { ...FAST, firstDelayMs: 60_000, maxDelayMs: 60_000, connect: async () => chainOf(second), onFatal: () => assert.fail("not fatal") });
    session.reconnectNow();
    // With a minute of backoff, only the skipped wait can make this pass.
    await waitFor(() => session.up && session.outages === 1, "the forced reconnect");
    await session.close();
  });
});
