/**
 * How the built CLI's -D forwards start, fail and stop, against a private
 * OpenSSH sshd on loopback: ports already in use (with and without
 * ExitOnForwardFailure), bind addresses and GatewayPorts, SIGINT/SIGTERM with
 * their one-line summary, and the SSH connection going away.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { type Home, type Running, runCli, startCli, stderrLines, waitForLine, waitForListen } from "../helpers/run.ts";
import { connectOutcome, readAll } from "../helpers/sockets.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { type EchoTarget, freePort, HELLO, type HttpTarget, nonLoopbackAddress, occupyPort, startEchoTarget, startHttpTarget } from "../helpers/targets.ts";
import { loginArgs, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";

describe("safetunnel -D forwards: failures, bind addresses and signals", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  let echo: EchoTarget;
  const running: Running[] = [];
  const occupied: { stop(): Promise<void> }[] = [];

  function start(args: string[]): Running {
    const cli = startCli(["-N", ...args, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    return cli;
  }

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
    echo = await startEchoTarget();
  });

  after(async () => {
    for (const cli of running) await cli.stop("SIGKILL");
    for (const holder of occupied) await holder.stop();
    await sshd?.stop();
    await http?.stop();
    await echo?.stop();
    await home?.cleanup();
  });

  test("a forward safetunnel cannot run is refused with exit 255 before any connection to the server is tried", async () => {
    // A listener standing in for the server counts every connection attempt.
    const attempts: Socket[] = [];
    const server = createServer((socket) => attempts.push(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    try {
      const cases: [string[], string][] = [
        [["-L", "8080:/run/app.sock"], "safetunnel: -L 8080:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport"],
        [["-D", "/tmp/socks.sock"], "safetunnel: -D /tmp/socks.sock: listening on a Unix socket is not supported; give [bind_address:]port"],
        [["-R", "9001:/run/app.sock"], "safetunnel: -R 9001:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport"],
      ];
      for (const [forward, message] of cases) {
        const result = await runCli([...forward, "-F", "none", "-o", "BatchMode=yes", "-p", String(port), "127.0.0.1"], { home: home.home });
        assert.equal(result.code, 255, result.stderr);
        assert.equal(result.stderr, `${message}\n`);
      }
      assert.equal(attempts.length, 0, "nothing connected to the server");
    } finally {
      for (const socket of attempts) socket.destroy();
      server.close();
    }
  });

  test("with --allow-ip, the listening line names the networks that are let through", async () => {
    const port = await freePort();
    const cli = start(["--allow-ip", "10.1.2.3/8,192.0.2.7", "-D", `127.0.0.1:${port}`]);
    const line = await waitForLine(cli, /^SOCKS and HTTP proxy listening/, "the listening line");
    assert.equal(
      line,
      `SOCKS and HTTP proxy listening on 127.0.0.1:${port} (-D 127.0.0.1:${port}); names are resolved by the SSH server, IP-address requests are refused except inside --allow-ip 10.0.0.0/8,192.0.2.7/32.`,
    );
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("SIGINT stops listening, exits 0 and prints one summary line with connections, bytes and refusals", async () => {
    const port = await freePort();
    const cli = start(["-v", "-D", `127.0.0.1:${port}`]);
    await waitForListen(port, "127.0.0.1", cli);

    const result = await socksConnect({ host: "127.0.0.1", port }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const received = readAll(result.socket);
    result.socket.end(Buffer.alloc(500, 0x61));
    assert.equal((await received).length, 500);
    // The byte counts are added when both sides have closed; -v says when.
    const closedLine = new RegExp(`closed localhost:${echo.port}: 500 bytes up, 500 down`);
    await waitForLine(cli, closedLine, "the connection-closed line");

    const refused = await socksConnect({ host: "127.0.0.1", port }, { host: "127.0.0.1", port: echo.port });
    assert.equal(refused.ok, false);

    assert.deepEqual(await cli.stop("SIGINT"), { code: 0, signal: null });
    const summaries = stderrLines(cli).filter((line) => line.startsWith("Stopped by"));
    assert.deepEqual(summaries, ["Stopped by SIGINT: 1 connection, 500 B up, 500 B down, 1 refused (IP address), 0 failed."]);
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
  });

  test("SIGTERM stops listening, exits 0 and prints the summary line", async () => {
    const port = await freePort();
    const cli = start(["-D", `127.0.0.1:${port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
    const summaries = stderrLines(cli).filter((line) => line.startsWith("Stopped by"));
    assert.deepEqual(summaries, ["Stopped by SIGTERM: 0 connections, 0 B up, 0 B down, 0 refused (IP address), 0 failed."]);
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
  });

  test("SIGTERM with a tunnelled connection open closes that connection and still exits 0", async () => {
    const port = await freePort();
    const cli = start(["-D", `127.0.0.1:${port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    const result = await socksConnect({ host: "127.0.0.1", port }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const closed = once(result.socket, "close");
    result.socket.on("error", () => {});
    result.socket.write("still open");
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
    await closed;
    const summaries = stderrLines(cli).filter((line) => line.startsWith("Stopped by"));
    assert.equal(summaries.length, 1, cli.stderr());
    assert.match(summaries[0]!, /^Stopped by SIGTERM: 1 connection, .* 0 refused \(IP address\), 0 failed\.$/);
  });

  test("a -D port already in use ends the run with exit 255 and an 'Address already in use' error naming the port", async () => {
    const port = await freePort();
    occupied.push(await occupyPort(port));
    const result = await runCli(["-N", "-D", String(port), ...loginArgs(sshd)], { home: home.home });
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result);
    assert.ok(
      lines.some((line) => line.includes(`127.0.0.1:${port}`) && line.includes("Address already in use")),
      result.stderr,
    );
  });

  test("with ExitOnForwardFailure=yes, one busy -D of two ends the run with exit 255", async () => {
    const busy = await freePort();
    occupied.push(await occupyPort(busy));
    const free = await freePort();
    const result = await runCli(
      ["-N", "-o", "ExitOnForwardFailure=yes", "-D", `127.0.0.1:${free}`, "-D", `127.0.0.1:${busy}`, ...loginArgs(sshd)],
      { home: home.home },
    );
    assert.equal(result.code, 255, result.stderr);
    const lines = stderrLines(result);
    assert.ok(lines.some((line) => line.includes(`127.0.0.1:${busy}`) && line.includes("Address already in use")), result.stderr);
    assert.deepEqual(lines.filter((line) => line.includes("listening")), [], "no forward is announced as listening before the run gives up");
    assert.match(lines.at(-1)!, new RegExp(`ExitOnForwardFailure is set, so the ones that started \\(-D 127\\.0\\.0\\.1:${free}\\) are closed again`));
    assert.equal(await connectOutcome(free), "ECONNREFUSED");
  });

  test("without ExitOnForwardFailure, one busy -D of two is reported and the other one works", async () => {
    const busy = await freePort();
    occupied.push(await occupyPort(busy));
    const free = await freePort();
    const cli = start(["-D", `127.0.0.1:${busy}`, "-D", `127.0.0.1:${free}`]);
    await waitForListen(free, "127.0.0.1", cli);
    const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${free}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    assert.ok(stderrLines(cli).some((line) => line.includes(`127.0.0.1:${busy}`) && line.includes("Address already in use")), cli.stderr());
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("-D 0.0.0.0:PORT without -g warns 'Ignoring bind address' and listens on loopback only", async (t) => {
    const port = await freePort();
    const cli = start(["-D", `0.0.0.0:${port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    assert.ok(
      stderrLines(cli).some((line) => line.startsWith("Warning: Ignoring bind address '0.0.0.0'") && line.includes("-g")),
      cli.stderr(),
    );
    const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    const outside = nonLoopbackAddress();
    if (outside === undefined) {
      assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
      return t.skip("this machine has no non-loopback IPv4 address, so 'not reachable from outside' cannot be checked");
    }
    assert.equal(await connectOutcome(port, outside), "ECONNREFUSED");
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
  });

  test("-g -D 0.0.0.0:PORT listens on every interface without the warning", async (t) => {
    const outside = nonLoopbackAddress();
    const port = await freePort();
    const cli = start(["-g", "-D", `0.0.0.0:${port}`]);
    await waitForListen(port, "127.0.0.1", cli);
    assert.ok(!cli.stderr().includes("Ignoring bind address"), cli.stderr());
    if (outside === undefined) {
      assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
      return t.skip("this machine has no non-loopback IPv4 address");
    }
    assert.equal(await connectOutcome(port, outside), "connected");
    const result = await curlThroughSocks("--socks5-hostname", `${outside}:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
  });
});

describe("safetunnel -D when the SSH connection is lost", () => {
  let home: Home;
  let sshd: Sshd;
  let echo: EchoTarget;
  let cli: Running | undefined;

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    echo = await startEchoTarget();
  });

  after(async () => {
    await cli?.stop("SIGKILL");
    await sshd?.stop();
    await echo?.stop();
    await home?.cleanup();
  });

  test("with --no-reconnect: exits 255 with a message naming the host, closes open connections and stops listening, as ssh does", async () => {
    const tunnel = await startSocksTunnel(sshd, home, ["--no-reconnect"]);
    cli = tunnel.cli;
    const port = tunnel.port;
    const result = await socksConnect({ host: "127.0.0.1", port }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    result.socket.on("error", () => {});
    const closed = once(result.socket, "close");

    assert.equal(await sshd.dropConnections(), 1);
    const status = await cli.exited;
    assert.deepEqual(status, { code: 255, signal: null });
    const lines = stderrLines(cli);
    assert.ok(lines.some((line) => line.startsWith("Connection to 127.0.0.1 closed")), cli.stderr());
    await closed;
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
  });
});
