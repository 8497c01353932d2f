import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rejection } from "../helpers/rejection.ts";
import { serveForwards } from "../../src/tunnel.ts";
import { resolveTunnelSettings } from "../../src/config/tunnel-settings.ts";
import type { ConfigLine } from "../../src/config/host-lookup.ts";
import { createLogger } from "../../src/log.ts";
import { parseCidrList } from "../../src/cidr.ts";
import { TunnelError } from "../../src/errors.ts";
import { FakeSession, grantListen, refuseListen } from "../helpers/fake-session.ts";
import { connectOutcome } from "../helpers/sockets.ts";
import { freePort, occupyPort } from "../helpers/targets.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

function flags(...pairs: [string, string][]): ConfigLine[] {
  const keyword: Record<string, string> = { "-D": "dynamicforward", "-L": "localforward", "-R": "remoteforward", "-o": "exitonforwardfailure" };
  return pairs.map(([flag, value]) => ({ keyword: keyword[flag]!, args: [value], source: flag }));
}

function settingsFor(lines: ConfigLine[]) {
  return resolveTunnelSettings({ host: "home", user: undefined, configLines: lines }, [], { homeDir: "/home/me", localUser: "me", agentSocket: undefined, platform: "linux" }, () => {});
}

function harness() {
  const lines: string[] = [];
  const log = createLogger({ verbosity: 0, write: (line) => lines.push(line) });
  let stop: ((signal: string) => void) | undefined;
  return {
    lines,
    run: { log, onStopSignal: (handler: (signal: string) => void) => void (stop = handler) },
    stop: (signal: string) => {
      assert.ok(stop !== undefined, "a stop handler is registered once the forwards are up");
      stop(signal);
    },
    stopRegistered: () => stop !== undefined,
  };
}


describe("serveForwards", () => {
  test("starts every forward, announces each once all have started, and on a signal closes them and exits 0 with a summary", async () => {
    const [socks, local] = [await freePort(), await freePort()];
    const session = new FakeSession({ listen: grantListen() });
    const h = harness();
    const done = serveForwards(session, settingsFor(flags(["-D", `127.0.0.1:${socks}`], ["-L", `127.0.0.1:${local}:web:80`], ["-R", "9003:internal:80"])), [], h.run);
    await waitFor(h.stopRegistered, "the forwards to start");
    assert.deepEqual(h.lines, [
      `SOCKS and HTTP proxy listening on 127.0.0.1:${socks} (-D 127.0.0.1:${socks}); names are resolved by the SSH server, IP-address requests are refused.`,
      `Forwarding 127.0.0.1:${local} to web:80 as seen from the SSH server (-L 127.0.0.1:${local}:web:80).`,
      "Forwarding localhost:9003 on the SSH server to internal:80 as seen from here (-R 9003:internal:80).",
    ]);
    assert.deepEqual(session.remote, [{ address: "localhost", port: 9003 }]);
    assert.equal(await connectOutcome(socks), "connected");

    h.stop("SIGTERM");
    assert.equal(await bounded(done, "the run to end after the signal", 10_000), 0);
    assert.equal(h.lines.at(-1), "Stopped by SIGTERM: 0 connections, 0 B up, 0 B down, 0 refused (IP address), 0 failed.");
    assert.equal(session.closed, 1);
    assert.equal(await connectOutcome(socks), "ECONNREFUSED");
    assert.equal(await connectOutcome(local), "ECONNREFUSED");
  });

  test("-R 0 is announced with OpenSSH's 'Allocated port' line", async () => {
    const h = harness();
    const done = serveForwards(new FakeSession({ listen: grantListen() }), settingsFor(flags(["-R", "0:internal:80"])), [], h.run);
    await waitFor(h.stopRegistered, "the forward to start");
    assert.deepEqual(h.lines, ["Allocated port 40000 for remote forward to internal:80"]);
    h.stop("SIGINT");
    assert.equal(await bounded(done, "the run to end", 10_000), 0);
  });

  test("where it cannot tell who connects, or other hosts can connect (-g), it says so once the ports are up, and names --socks-auth", async () => {
    const access = { ownUid: 1000, allowed: new Set<number>() };
    const cases: Array<{ platform: string; lines: ConfigLine[]; note: string }> = [
      {
        platform: "darwin",
        lines: flags(["-D", `127.0.0.1:${await freePort()}`]),
        note: "Any program of any account on this machine can use these ports: this system does not say who owns a connection (only Linux does), so safetunnel cannot tell who connects. To require a password on -D, use --socks-auth USER:@FILE.",
      },
      {
        platform: "linux",
        lines: [{ keyword: "gatewayports", args: ["yes"], source: "-g" }, ...flags(["-D", `0.0.0.0:${await freePort()}`])],
        note: "Other hosts on the network can use these ports too (-g), and the account check sees only this machine's programs. To require a password on -D, use --socks-auth USER:@FILE.",
      },
      { platform: "linux", lines: flags(["-D", `127.0.0.1:${await freePort()}`]), note: "" },
    ];
    for (const { platform, lines, note } of cases) {
      const h = harness();
      const done = serveForwards(new FakeSession({ listen: grantListen() }), settingsFor(lines), [], { ...h.run, platform, access });
      await waitFor(h.stopRegistered, "the forward to start");
      assert.deepEqual(h.lines.slice(1), note === "" ? [] : [note], platform);
      h.stop("SIGINT");
      assert.equal(await bounded(done, "the run to end", 10_000), 0);
    }
  });

  test("the -D listening line names the --allow-ip networks", async () => {
    const port = await freePort();
    const h = harness();
    const done = serveForwards(new FakeSession({ listen: grantListen() }), settingsFor(flags(["-D", `127.0.0.1:${port}`])), parseCidrList("10.0.0.0/8,2001:db8::/32"), h.run);
    await waitFor(h.stopRegistered, "the forward to start");
    assert.equal(
      h.lines[0],
      `SOCKS and HTTP proxy listening on 127.0.0.1:${port} (-D 127.0.0.1:${port}); names are resolved by the SSH server, IP-address requests are refused except inside --allow-ip 10.0.0.0/8,2001:db8::/32.`,
    );
    h.stop("SIGINT");
    await bounded(done, "the run to end", 10_000);
  });

  test("with ExitOnForwardFailure, one failure closes the forwards that started, announces none and names them", async () => {
    const [free, busy] = [await freePort(), await freePort()];
    const holder = await occupyPort(busy);
    try {
      const session = new FakeSession({ listen: grantListen() });
      const h = harness();
      const err = await rejection(
        serveForwards(session, settingsFor(flags(["-o", "yes"], ["-D", `127.0.0.1:${free}`], ["-D", `127.0.0.1:${busy}`])), [], h.run),
        TunnelError,
      );
      assert.equal(err.code, "FORWARD_FAILED");
      assert.equal(
        err.message,
        `a forwarding failed and ExitOnForwardFailure is set, so the ones that started (-D 127.0.0.1:${free}) are closed again; fix the failure above or set ExitOnForwardFailure=no`,
      );
      assert.deepEqual(h.lines, [
        `-D 127.0.0.1:${busy}: cannot listen on 127.0.0.1:${busy}: Address already in use; pick another port or stop the program using it (ss -ltnp | grep ${busy}).`,
      ]);
      assert.equal(session.closed, 1);
      assert.equal(await connectOutcome(free), "ECONNREFUSED");
    } finally {
      await holder.stop();
    }
  });

  test("without ExitOnForwardFailure, a failed forward is reported and the others are announced and stay up", async () => {
    const session = new FakeSession({ listen: refuseListen("request failed") });
    const port = await freePort();
    const h = harness();
    const done = serveForwards(session, settingsFor(flags(["-D", `127.0.0.1:${port}`], ["-R", "9003:internal:80"])), [], h.run);
    await waitFor(h.stopRegistered, "the forwards to start");
    assert.equal(h.lines.length, 2);
    assert.match(h.lines[0]!, /^-R 9003:internal:80: the server refused to listen on localhost port 9003 \(request failed\)/);
    assert.match(h.lines[1]!, /^SOCKS and HTTP proxy listening on /);
    h.stop("SIGTERM");
    assert.equal(await bounded(done, "the run to end", 10_000), 0);
  });

  test("when no forward can start, the run fails with FORWARD_FAILED and closes the session", async () => {
    const session = new FakeSession({ listen: refuseListen("request failed") });
    const err = await rejection(serveForwards(session, settingsFor(flags(["-R", "9003:internal:80"])), [], harness().run), TunnelError);
    assert.equal(err.code, "FORWARD_FAILED");
    assert.equal(err.message, "no forwarding could be started; see the errors above");
    assert.equal(session.closed, 1);
  });

  test("a connection lost while the forwards start fails the run, closing what started", async () => {
    const port = await freePort();
    const grant = grantListen();
    const session: FakeSession = new FakeSession({
      // The connection drops while the -R request is on its way; the server still grants it.
      listen: (address, port, onIncoming) => {
        session.drop("Connection reset by peer");
        return grant(address, port, onIncoming);
      },
    });
    const h = harness();
    const err = await rejection(serveForwards(session, settingsFor(flags(["-D", `127.0.0.1:${port}`], ["-R", "9003:internal:80"])), [], h.run), TunnelError);
    assert.equal(err.code, "SSH_DISCONNECTED");
    assert.equal(err.message, "Connection to home closed while starting the forwards: Connection reset by peer.");
    assert.deepEqual(h.lines.filter((line) => line.includes("listening")), []);
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
  });

  test("a connection lost after start-up is reported, the listeners close, and the run ends with 255", async () => {
    const port = await freePort();
    const session = new FakeSession({ listen: grantListen() });
    const h = harness();
    const done = serveForwards(session, settingsFor(flags(["-D", `127.0.0.1:${port}`])), [], h.run);
    await waitFor(h.stopRegistered, "the forward to start");
    session.drop("Connection reset by peer");
    assert.equal(await bounded(done, "the run to end", 10_000), 255);
    assert.deepEqual(h.lines.slice(1), [
      "Connection to home closed: Connection reset by peer.",
      "Tunnel closed: 0 connections, 0 B up, 0 B down, 0 refused (IP address), 0 failed.",
    ]);
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
  });
});
