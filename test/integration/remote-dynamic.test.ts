/**
 * -R with a port alone (remote dynamic forwarding, ssh(1) -R) end to end: the
 * built CLI against a private OpenSSH sshd on loopback. The sshd listens on
 * the -R port; curl, standing in for an app on the server, speaks SOCKS to
 * it; safetunnel answers on the forwarded-tcpip channel and connects from
 * here to the loopback HTTP target. Everything stays on 127.0.0.1; every
 * process is stopped by PID.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { RawClient, socks5Open, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { type Home, type Running, startCli, stderrLines, waitForLine } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { closedPort, freePort, HELLO, type HttpTarget, startHttpTarget } from "../helpers/targets.ts";
import { loginArgs, startSshdWithHome } from "../helpers/tunnel.ts";

describe("safetunnel -R PORT: a SOCKS proxy on the server whose connections go out from here", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  const running: Running[] = [];

  function start(args: string[]): Running {
    const cli = startCli(["-N", ...args, ...loginArgs(sshd)], { home: home.home });
    running.push(cli);
    return cli;
  }

  /** `safetunnel -N -R PORT` (plus `extra`) on a free port, once its announcement is out. */
  async function startProxy(extra: string[] = []): Promise<{ cli: Running; port: number; proxy: string; line: string }> {
    const port = await freePort();
    const cli = start([...extra, "-R", String(port)]);
    const line = await waitForLine(cli, /^SOCKS proxy on the server's /, "the -R announcement");
    return { cli, port, proxy: `127.0.0.1:${port}`, line };
  }

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
  });

  afterEach(async () => {
    for (const cli of running.splice(0)) await cli.stop("SIGKILL");
  });

  after(async () => {
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
  });

  test("announces the proxy on the server's localhost port, and curl --socks5-hostname reaches the HTTP target by the name localhost", async () => {
    const { cli, port, proxy, line } = await startProxy();
    assert.equal(line, `SOCKS proxy on the server's localhost:${port} (-R ${port}); names are resolved here, IP-address requests are refused.`);
    const seen = http.requests.length;
    const result = await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${cli.stderr()}`);
    assert.equal(result.stdout.toString("utf8"), HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
    assert.deepEqual(stderrLines(cli), [line]);
  });

  test("refuses curl --socks5 (an address curl resolved itself) with reply 2, reaches nothing, and logs the far-side fix", async () => {
    const { cli, port, proxy } = await startProxy();
    const seen = http.requests.length;
    const result = await curlThroughSocks("--socks5", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 97, result.stderr);
    assert.match(result.stderr, /\(2\)/);
    assert.equal(result.stdout.length, 0);
    assert.deepEqual(http.requests.slice(seen), []);
    const refusal = await waitForLine(cli, /^Warning: Refused SOCKS5 CONNECT/, "the refusal line");
    assert.match(
      refusal,
      new RegExp(
        `^Warning: Refused SOCKS5 CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ on the far side \\(through -R ${port} on the SSH server\\): ` +
          "it carries an IP address, so the app resolved the name itself, over there, and that network saw the DNS lookup\\. " +
          `Fix: make that app send names, e\\.g\\. curl --socks5-hostname localhost:${port} or -x socks5h://localhost:${port}\\. ` +
          "To allow this address on purpose: --allow-ip 127\\.0\\.0\\.1$",
      ),
    );
  });

  test("refuses curl --socks4 with 91 (0x5B), and a raw SOCKS5 request to 127.0.0.1 gets exactly 05 02 00 01 00000000 0000", async () => {
    const { proxy, port } = await startProxy();
    const seen = http.requests.length;
    const four = await curlThroughSocks("--socks4", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(four.code, 97, four.stderr);
    assert.match(four.stderr, /\(91\)/);
    const client = await socks5Open(port, socks5Request("127.0.0.1", http.port), { timeoutMs: 10_000 });
    try {
      assert.equal((await client.readToEnd()).toString("hex"), socks5Reply(0x02).toString("hex"));
    } finally {
      client.destroy();
    }
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("a destination port that refuses connections gets reply 5 (connection refused), logged with the reply", async () => {
    const { cli, port, proxy } = await startProxy();
    const refused = await closedPort();
    const result = await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${refused}/`);
    assert.equal(result.code, 97, result.stderr);
    assert.match(result.stderr, /\(5\)/);
    const line = await waitForLine(cli, new RegExp(`^-R ${port}: connect to localhost:${refused} failed: `), "the failure line");
    assert.match(line, /ECONNREFUSED.*\(SOCKS5 reply 0x05\)\.$/);
    // The raw reply, byte for byte.
    const client = await socks5Open(port, socks5Request("localhost", refused), { timeoutMs: 10_000 });
    try {
      assert.equal((await client.readToEnd()).toString("hex"), socks5Reply(0x05).toString("hex"));
    } finally {
      client.destroy();
    }
  });

  test("a .invalid name gets reply 4 (host unreachable) without a lookup", async () => {
    const { port } = await startProxy();
    const client = await socks5Open(port, socks5Request("nonexistent.invalid", 80), { timeoutMs: 10_000 });
    try {
      assert.equal((await client.readToEnd()).toString("hex"), socks5Reply(0x04).toString("hex"));
    } finally {
      client.destroy();
    }
  });

  test("--allow-ip lets curl --socks5 through to an address inside it, says so, and names the network in the announcement", async () => {
    const { cli, port, proxy, line } = await startProxy(["--allow-ip", "127.0.0.1"]);
    assert.equal(line, `SOCKS proxy on the server's localhost:${port} (-R ${port}); names are resolved here, IP-address requests are refused except inside --allow-ip 127.0.0.1/32.`);
    const result = await curlThroughSocks("--socks5", proxy, `http://127.0.0.1:${http.port}/hello`);
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${cli.stderr()}`);
    assert.equal(result.stdout.toString("utf8"), HELLO);
    await waitForLine(cli, `Allowing IP destination 127.0.0.1:${http.port} for 127.0.0.1:`, "the allow-ip line");
  });

  test("-R 0 prints OpenSSH's 'Allocated port N for remote forward to socks:0' first, and port N serves SOCKS", async () => {
    const cli = start(["-R", "0"]);
    const line = await waitForLine(cli, /^Allocated port \d+ /, "the allocated port line");
    const port = Number(/^Allocated port (\d+) /.exec(line)![1]);
    assert.equal(
      line,
      `Allocated port ${port} for remote forward to socks:0 (a SOCKS proxy on the server's localhost:${port}, -R 0; names are resolved here, IP-address requests are refused).`,
    );
    const result = await curlThroughSocks("-x", `socks5h://127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${cli.stderr()}`);
    assert.equal(result.stdout.toString("utf8"), HELLO);
  });

  test("RemoteForward with one argument, from -o, is the same forward", async () => {
    const port = await freePort();
    const cli = start(["-o", `RemoteForward ${port}`]);
    await waitForLine(cli, `SOCKS proxy on the server's localhost:${port} (-R ${port})`, "the -R announcement");
    const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${cli.stderr()}`);
    assert.equal(result.stdout.toString("utf8"), HELLO);
  });

  test("garbage on the port is dropped as a protocol error and the proxy keeps serving", async () => {
    const { cli, port, proxy } = await startProxy();
    const client = await RawClient.connect(port, { timeoutMs: 10_000 });
    try {
      client.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await client.readToEnd()).length, 0);
    } finally {
      client.destroy();
    }
    await waitForLine(cli, new RegExp(`^-R ${port}: dropped client 127\\.0\\.0\\.1:\\d+ on the far side: the client spoke HTTP`), "the protocol-error line");
    const result = await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
  });

  test("SIGTERM exits 0 with a summary counting the connection, its bytes, the refusal and the failure", async () => {
    const { cli, proxy } = await startProxy();
    const ok = await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${http.port}/hello`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await curlThroughSocks("--socks5", proxy, `http://localhost:${http.port}/hello`)).code, 97);
    assert.equal((await curlThroughSocks("--socks5-hostname", proxy, `http://localhost:${await closedPort()}/`)).code, 97);
    await waitForLine(cli, "failed: ", "the failure line");
    const offset = cli.stderr().length;
    assert.deepEqual(await cli.stop("SIGTERM"), { code: 0, signal: null });
    const summary = stderrLines(cli, offset).at(-1) ?? "";
    assert.match(summary, /^Stopped by SIGTERM: 1 connection, \d+ B up, \d+ B down, 1 refused \(IP address\), 1 failed\.$/);
    // "Up" is what left this machine into the tunnel: the HTTP response, larger than curl's request.
    const [, up, down] = /(\d+) B up, (\d+) B down/.exec(summary)!;
    assert.ok(Number(up) > Number(down) && Number(down) > 0, summary);
  });
});
