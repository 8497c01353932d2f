/**
 * `--socks-auth` end to end: `safetunnel -D` against a private OpenSSH sshd
 * on loopback asks every SOCKS5 client for a username and password (RFC
 * 1929). curl and the `socks` npm client log in and reach an HTTP server by
 * name; a raw client sees the exact bytes of each refusal; the password,
 * given on the command line or read from a file, never reaches stderr.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { RawClient, type RawClientOptions, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { type Home, startCli, waitForLine } from "../helpers/run.ts";
import { readAll } from "../helpers/sockets.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort, HELLO, type HttpTarget, startHttpTarget } from "../helpers/targets.ts";
import { loginArgs, type SocksTunnel, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";

const WAIT_MS = 10_000;
const RAW: RawClientOptions = { allowHalfOpen: true, timeoutMs: WAIT_MS };

/** Holds a ':' and a space: split on the first ':' by us and by curl alike. */
const USER = "alice";
const PASSWORD = "s3:cret pw";
/** The file's first line; the second must be ignored. */
const FILE_USER = "bob";
const FILE_PASSWORD = "from-file:42";
const FILE_SECOND_LINE = "second-line-not-the-password";
const WRONG_PASSWORD = "s3:cret pX";

/** RFC 1929 request: 01 ULEN UNAME PLEN PASSWD. */
function userPass(user: string, password: string): Buffer {
  const u = Buffer.from(user);
  const p = Buffer.from(password);
  return Buffer.concat([Buffer.from([0x01, u.length]), u, Buffer.from([p.length]), p]);
}

/** Everything a raw client gets for `bytes` (written at once) up to the proxy's FIN. */
async function answerTo(port: number, bytes: Buffer): Promise<string> {
  const client = await RawClient.connect(port, RAW);
  try {
    await client.write(bytes);
    return (await client.readToEnd()).toString("hex");
  } finally {
    client.destroy();
  }
}

describe("safetunnel -D --socks-auth through a real sshd", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  let secrets: string;
  /** --socks-auth alice:PASSWORD, at -v so every dropped client is logged. */
  let tunnel: SocksTunnel;
  /** --socks-auth bob:@FILE. */
  let fromFile: SocksTunnel;

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
    secrets = await mkdtemp(join(tmpdir(), "safetunnel-socks-auth-"));
    const passwordFile = join(secrets, "socks-password");
    await writeFile(passwordFile, `${FILE_PASSWORD}\n${FILE_SECOND_LINE}\n`, { mode: 0o600 });
    tunnel = await startSocksTunnel(sshd, home, ["-v", "--socks-auth", `${USER}:${PASSWORD}`]);
    fromFile = await startSocksTunnel(sshd, home, [`--socks-auth=${FILE_USER}:@${passwordFile}`]);
  });

  after(async () => {
    await tunnel?.cli.stop();
    await fromFile?.cli.stop();
    await sshd?.stop();
    await http?.stop();
    if (secrets !== undefined) await rm(secrets, { recursive: true, force: true });
    await home?.cleanup();
  });

  test("the listening line says clients must log in", async () => {
    const line = await waitForLine(tunnel.cli, "SOCKS and HTTP proxy listening on", "the listening line");
    assert.match(line, /clients must log in with the --socks-auth username and password \(SOCKS5 only\)\.$/);
  });

  test("curl --socks5-hostname with -U user:pass fetches /hello by name, resolved by the SSH server", async () => {
    const seen = http.requests.length;
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`, { extraArgs: ["-U", `${USER}:${PASSWORD}`] });
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${tunnel.cli.stderr()}`);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
  });

  test("curl with a socks5h://user:pass@ proxy URL fetches /hello by name", async () => {
    const seen = http.requests.length;
    const url = `socks5h://${USER}:${encodeURIComponent(PASSWORD)}@${tunnel.proxy}`;
    const result = await curlThroughSocks("-x", url, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, `curl: ${result.stderr}; safetunnel: ${tunnel.cli.stderr()}`);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
  });

  test("curl without --proxy-user or with a wrong password fails and reaches nothing", async () => {
    const seen = http.requests.length;
    const none = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(none.code, 97, none.stderr);
    const wrong = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`, { extraArgs: ["--proxy-user", `${USER}:${WRONG_PASSWORD}`] });
    assert.equal(wrong.code, 97, wrong.stderr);
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("byte for byte: 05 02 00 02 gets 05 02, the right username and password 01 00, then the CONNECT 05 00 and the page", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      await client.write(Buffer.from([0x05, 0x02, 0x00, 0x02]));
      assert.equal((await client.read(2, "the method choice")).toString("hex"), "0502");
      await client.write(userPass(USER, PASSWORD));
      assert.equal((await client.read(2, "the auth status")).toString("hex"), "0100");
      await client.write(socks5Request("localhost", http.port));
      assert.deepEqual(await client.read(10, "the CONNECT reply"), socks5Reply(0x00));
      await client.write(`GET /hello HTTP/1.0\r\nHost: localhost:${http.port}\r\n\r\n`);
      client.end();
      assert.match((await client.readToEnd("the HTTP answer")).toString(), new RegExp(`${HELLO}$`));
    } finally {
      client.destroy();
    }
  });

  test("a wrong password gets 01 01 and the socket is closed; the request sent with it goes nowhere", async () => {
    const seen = http.requests.length;
    const offset = tunnel.cli.stderr().length;
    const hex = await answerTo(tunnel.port, Buffer.concat([Buffer.from([0x05, 0x01, 0x02]), userPass(USER, WRONG_PASSWORD), socks5Request("localhost", http.port)]));
    assert.equal(hex, "0502" + "0101");
    await waitForLine(tunnel.cli, /dropped client 127\.0\.0\.1:\d+: wrong SOCKS5 username or password: give the client the ones set with --socks-auth/, "the dropped-client line", offset);
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("a greeting that offers no username/password method gets 05 FF and the socket is closed", async () => {
    const offset = tunnel.cli.stderr().length;
    assert.equal(await answerTo(tunnel.port, Buffer.from([0x05, 0x01, 0x00])), "05ff");
    assert.equal(await answerTo(tunnel.port, Buffer.from([0x05, 0x02, 0x00, 0x01])), "05ff");
    await waitForLine(tunnel.cli, /no username\/password authentication \(SOCKS5 method 0x02\).*--socks-auth/, "the dropped-client line", offset);
  });

  test("SOCKS4a gets 00 5B and a line saying to use SOCKS5 with username/password", async () => {
    const offset = tunnel.cli.stderr().length;
    const request = Buffer.concat([Buffer.from([0x04, 0x01, http.port >> 8, http.port & 0xff, 0, 0, 0, 1]), Buffer.from(`${USER}\0localhost\0`)]);
    assert.equal(await answerTo(tunnel.port, request), "005b000000000000");
    await waitForLine(tunnel.cli, /SOCKS4a has no password .*SOCKS5 with username\/password/, "the dropped-client line", offset);
  });

  test("the socks package logs in with userId and password and the stream reaches the server by name", async () => {
    const result = await socksConnect({ host: "127.0.0.1", port: tunnel.port, type: 5, userId: USER, password: PASSWORD }, { host: "localhost", port: http.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const body = readAll(result.socket);
    result.socket.end(`GET /hello HTTP/1.0\r\nHost: localhost:${http.port}\r\n\r\n`);
    assert.match((await body).toString(), new RegExp(`${HELLO}$`));

    const wrong = await socksConnect({ host: "127.0.0.1", port: tunnel.port, type: 5, userId: USER, password: WRONG_PASSWORD }, { host: "localhost", port: http.port });
    assert.equal(wrong.ok, false);
    const socks4 = await socksConnect({ host: "127.0.0.1", port: tunnel.port, type: 4, userId: USER }, { host: "localhost", port: http.port });
    assert.equal(socks4.ok, false);
  });

  test("USER:@FILE takes the password from the file's first line", async () => {
    const url = `http://localhost:${http.port}/hello`;
    const right = await curlThroughSocks("--socks5-hostname", fromFile.proxy, url, { extraArgs: ["-U", `${FILE_USER}:${FILE_PASSWORD}`] });
    assert.equal(right.code, 0, `curl: ${right.stderr}; safetunnel: ${fromFile.cli.stderr()}`);
    assert.equal(right.stdout.toString(), HELLO);
    const secondLine = await curlThroughSocks("--socks5-hostname", fromFile.proxy, url, { extraArgs: ["-U", `${FILE_USER}:${FILE_SECOND_LINE}`] });
    assert.equal(secondLine.code, 97, secondLine.stderr);
    const fromOther = await curlThroughSocks("--socks5-hostname", fromFile.proxy, url, { extraArgs: ["-U", `${USER}:${PASSWORD}`] });
    assert.equal(fromOther.code, 97, fromOther.stderr);
  });

  test("-R with a port alone (the SOCKS proxy on the server) asks for the same login; a run with no SOCKS port is warned", async () => {
    const remotePort = await freePort();
    const remote = startCli(["-N", "--socks-auth", `${USER}:${PASSWORD}`, "-R", `127.0.0.1:${remotePort}`, ...loginArgs(sshd)], { home: home.home });
    try {
      await waitForLine(
        remote,
        `SOCKS proxy on the server's 127.0.0.1:${remotePort} (-R 127.0.0.1:${remotePort}); names are resolved here, IP-address requests are refused; clients must log in with the --socks-auth username and password (SOCKS5 only).`,
        "the -R announcement",
      );
      // The test's sshd is on this machine: its port is the "server side".
      const url = `http://localhost:${http.port}/hello`;
      const without = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${remotePort}`, url);
      assert.equal(without.code, 97, without.stderr);
      const wrong = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${remotePort}`, url, { extraArgs: ["-U", `${USER}:${WRONG_PASSWORD}`] });
      assert.equal(wrong.code, 97, wrong.stderr);
      const right = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${remotePort}`, url, { extraArgs: ["-U", `${USER}:${PASSWORD}`] });
      assert.equal(right.code, 0, `curl: ${right.stderr}; safetunnel: ${remote.stderr()}`);
      assert.equal(right.stdout.toString(), HELLO);
      assert.doesNotMatch(remote.stderr(), /--socks-auth has no effect/);
    } finally {
      await remote.stop();
    }
    const localOnly = startCli(["-N", "--socks-auth", `${USER}:${PASSWORD}`, "-L", `127.0.0.1:${await freePort()}:localhost:${http.port}`, ...loginArgs(sshd)], { home: home.home });
    try {
      await waitForLine(localOnly, "Warning: --socks-auth has no effect: this run has no SOCKS port (-D, or -R with a port alone).", "the no-effect warning");
    } finally {
      await localOnly.stop();
    }
    for (const cli of [remote, localOnly]) assert.ok(!cli.stderr().includes(PASSWORD), cli.stderr());
  });

  test("leakcheck on a --socks-auth port says browsers cannot log in to it, and exits 2 (could not test)", async () => {
    const check = startCli(["leakcheck", "--proxy", `127.0.0.1:${tunnel.port}`, "--wait", "5"], { home: home.home });
    const status = await check.exited;
    assert.equal(status.code, 2, check.stderr());
    assert.match(check.stdout() + check.stderr(), new RegExp(`127\\.0\\.0\\.1:${tunnel.port} requires a SOCKS5 username and password \\(a tunnel started with --socks-auth, or another proxy\\): browsers cannot log in to it`));
  });

  test("no password, right or wrong, ever appears in stderr, also at -v and in the summary", async () => {
    for (const cli of [tunnel.cli, fromFile.cli]) {
      const status = await cli.stop();
      assert.deepEqual(status, { code: 0, signal: null }, cli.stderr());
      const stderr = cli.stderr();
      assert.match(stderr, /Stopped by SIGTERM: /);
      for (const secret of [PASSWORD, WRONG_PASSWORD, FILE_PASSWORD, FILE_SECOND_LINE, encodeURIComponent(PASSWORD)]) {
        assert.ok(!stderr.includes(secret), `stderr holds ${JSON.stringify(secret)}:\n${stderr}`);
      }
    }
  });
});
