/**
 * The built CLI as a SOCKS proxy, end to end: `safetunnel -D` against a
 * private OpenSSH sshd on loopback, driven by curl, the `socks` npm client and
 * a raw byte-level SOCKS client. Names go through; IP literals are refused
 * with whole replies; failures map to exact SOCKS reply codes.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, isIPv4, isIPv6, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { delay, runCommand, within } from "../helpers/child.ts";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { type Home, makeHome, type Running, startCli, waitForListen } from "../helpers/run.ts";
import { type KeyPair, makeKey, type Sshd, startSshd } from "../helpers/sshd.ts";
import {
  closedPort,
  deterministicBytes,
  type EchoTarget,
  freePort,
  type HttpTarget,
  sha256,
  startEchoTarget,
  startHttpTarget,
} from "../helpers/targets.ts";

const HELLO = "hello from target\n";
const WAIT_MS = 10_000;

/** SOCKS5 replies with BND.ADDR 0.0.0.0:0, as safetunnel sends them (RFC 1928 section 6). */
function socks5Reply(rep: number): Buffer {
  return Buffer.from([0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/**
 * A byte-level SOCKS client: a loopback socket (half-open allowed) that
 * collects what it receives, with bounded reads.
 */
class RawClient {
  readonly socket: Socket;
  private received: Buffer = Buffer.alloc(0);
  private ended = false;
  private waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    const finish = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on("end", finish);
    socket.on("close", finish);
    socket.on("error", finish);
  }

  static async open(port: number, host = "127.0.0.1"): Promise<RawClient> {
    const socket = connect({ port, host, allowHalfOpen: true });
    await Promise.race([
      once(socket, "connect"),
      once(socket, "error").then(([err]) => {
        throw err;
      }),
    ]);
    return new RawClient(socket);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private async until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received so far: ${this.received.toString("hex")}`);
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), left);
    }
  }

  /** Exactly `n` bytes; rejects if the stream ends first. */
  async read(n: number): Promise<Buffer> {
    await this.until(() => this.received.length >= n || this.ended, `${n} bytes`);
    if (this.received.length < n) throw new Error(`stream ended after ${this.received.length} of ${n} bytes: ${this.received.toString("hex")}`);
    const out = this.received.subarray(0, n);
    this.received = this.received.subarray(n);
    return out;
  }

  /** Everything up to the peer's FIN (or close). */
  async rest(): Promise<Buffer> {
    await this.until(() => this.ended, "end of stream");
    const out = this.received;
    this.received = Buffer.alloc(0);
    return out;
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A SOCKS5 request (VER CMD RSV ATYP DST.ADDR DST.PORT); IP literals get ATYP 1/4, anything else ATYP 3. */
function socks5Request(host: string, port: number, command = 0x01): Buffer {
  let address: Buffer;
  if (isIPv4(host)) {
    address = Buffer.from([0x01, ...host.split(".").map(Number)]);
  } else if (isIPv6(host)) {
    address = Buffer.concat([Buffer.from([0x04]), ipv6Bytes(host)]);
  } else {
    address = Buffer.concat([Buffer.from([0x03, host.length]), Buffer.from(host, "latin1")]);
  }
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  return Buffer.concat([Buffer.from([0x05, command, 0x00]), address, portBytes]);
}

function ipv6Bytes(text: string): Buffer {
  const [head = "", tail = ""] = text.split("::");
  const groups = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = groups(tail);
  const all = text.includes("::") ? [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right] : left;
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

/** Greet with "no authentication", check the method choice, send the request; the client is ready for the reply. */
async function socks5Open(proxyPort: number, host: string, port: number, command = 0x01): Promise<RawClient> {
  const client = await RawClient.open(proxyPort);
  client.write(Buffer.from([0x05, 0x01, 0x00]));
  assert.equal((await client.read(2)).toString("hex"), "0500");
  client.write(socks5Request(host, port, command));
  return client;
}

/** Everything the proxy sends after the method choice, up to its FIN. */
async function socks5Refusal(proxyPort: number, host: string, port: number, command = 0x01): Promise<Buffer> {
  const client = await socks5Open(proxyPort, host, port, command);
  try {
    return await client.rest();
  } finally {
    client.destroy();
  }
}

function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

/** Write `data` in chunks, waiting for 'drain' whenever the socket says its buffer is full, then end. */
async function writeWithBackpressure(socket: Socket, data: Buffer, chunkSize = 64 * 1024): Promise<number> {
  let waits = 0;
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    if (!socket.write(data.subarray(offset, offset + chunkSize))) {
      waits++;
      const drained = await within(once(socket, "drain"), WAIT_MS);
      if (drained === undefined) throw new Error(`no 'drain' within ${WAIT_MS} ms after ${offset} bytes`);
    }
  }
  socket.end();
  return waits;
}

/** curl with a proxy URL (`-x socks5h://...`), no .curlrc, no proxy variables. */
async function curlWithProxyUrl(proxyUrl: string, url: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]) delete env[name];
  return runCommand("curl", ["-q", "-sS", "--max-time", "15", "-x", proxyUrl, url], { env, timeoutMs: 20_000 });
}

async function waitFor(condition: () => boolean, what: string, describeState: () => string = () => ""): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await delay(50);
  }
  assert.fail(`timed out waiting for ${what}${describeState() === "" ? "" : `; ${describeState()}`}`);
}

/** Lines safetunnel wrote to stderr after `offset` characters. */
function linesSince(cli: Running, offset: number): string[] {
  return cli
    .stderr()
    .slice(offset)
    .split("\n")
    .filter((line) => line !== "");
}

async function hasIPv6Loopback(): Promise<boolean> {
  const server = createServer();
  try {
    server.listen(0, "::1");
    await Promise.race([once(server, "listening"), once(server, "error").then(([err]) => Promise.reject(err))]);
    return true;
  } catch {
    return false;
  } finally {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface Tunnel {
  cli: Running;
  port: number;
  proxy: string;
}

/** safetunnel -N -D 127.0.0.1:PORT against `sshd`, with a HOME whose ~/.ssh holds the key and known_hosts. */
async function startTunnel(sshd: Sshd, home: Home, extraArgs: string[] = []): Promise<Tunnel> {
  const port = await freePort();
  const cli = startCli(
    ["-N", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", ...extraArgs, "-D", `127.0.0.1:${port}`, "-p", String(sshd.port), `${sshd.user}@127.0.0.1`],
    { home: home.home },
  );
  try {
    await waitForListen(port, "127.0.0.1", cli);
  } catch (err) {
    await cli.stop();
    throw err;
  }
  return { cli, port, proxy: `127.0.0.1:${port}` };
}

/** A HOME with ~/.ssh/id_ed25519 and known_hosts for `sshd` filled in by `trust`. */
async function makeSshHome(): Promise<{ home: Home; key: KeyPair; trust(sshd: Sshd): Promise<void> }> {
  const home = await makeHome();
  const key = await makeKey(home.sshDir, "id_ed25519");
  return {
    home,
    key,
    trust: (sshd) => home.writeKnownHosts(`${sshd.knownHostsLine()}\n`),
  };
}

describe("safetunnel -D through a real sshd", () => {
  let sshHome: Awaited<ReturnType<typeof makeSshHome>>;
  let sshd: Sshd;
  let http: HttpTarget;
  let echo: EchoTarget;
  let tunnel: Tunnel;

  before(async () => {
    sshHome = await makeSshHome();
    sshd = await startSshd({ authorizedKeys: [sshHome.key.publicLine] });
    await sshHome.trust(sshd);
    http = await startHttpTarget();
    echo = await startEchoTarget();
    tunnel = await startTunnel(sshd, sshHome.home);
  });

  after(async () => {
    await tunnel?.cli.stop();
    await sshd?.stop();
    await http?.stop();
    await echo?.stop();
    await sshHome?.home.cleanup();
  });

  test("curl --socks5-hostname fetches /hello by name, resolved by the SSH server", async () => {
    const seen = http.requests.length;
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
  });

  test("curl with a socks5h:// proxy URL fetches /hello by name", async () => {
    const seen = http.requests.length;
    const result = await curlWithProxyUrl(`socks5h://${tunnel.proxy}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout, HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
  });

  test("refuses curl --socks5 (a locally resolved IPv4 address) with reply 2, reaches nothing and logs one line naming curl and the fix", async () => {
    const seen = http.requests.length;
    const logOffset = tunnel.cli.stderr().length;
    const result = await curlThroughSocks("--socks5", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 97, result.stderr);
    assert.match(result.stderr, /\(2\)/);
    assert.equal(result.stdout.length, 0);
    assert.deepEqual(http.requests.slice(seen), []);
    // This must be the run's first SOCKS5 refusal: later ones from the same
    // address within 10 s are folded into the next full line (forward/dynamic.ts).
    const refusal = new RegExp(`^Refused SOCKS5 CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): `);
    await waitFor(
      () => linesSince(tunnel.cli, logOffset).some((line) => refusal.test(line)),
      "the refusal line",
      () => `stderr: ${tunnel.cli.stderr().slice(logOffset)}`,
    );
    const lines = linesSince(tunnel.cli, logOffset).filter((line) => line.includes("Refused"));
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, refusal);
    assert.ok(lines[0]!.includes(`--socks5-hostname ${tunnel.proxy}`), lines[0]);
  });

  test("refuses curl --socks4 (plain SOCKS4 carries only an address) with 91 and reaches nothing", async () => {
    const seen = http.requests.length;
    const logOffset = tunnel.cli.stderr().length;
    const result = await curlThroughSocks("--socks4", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 97, result.stderr);
    assert.match(result.stderr, /\(91\)/);
    assert.equal(result.stdout.length, 0);
    assert.deepEqual(http.requests.slice(seen), []);
    // The run's first SOCKS4 refusal (see above).
    const refusal = new RegExp(`^Refused SOCKS4 CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): .*plain SOCKS4`);
    await waitFor(
      () => linesSince(tunnel.cli, logOffset).some((line) => refusal.test(line)),
      "the SOCKS4 refusal line",
      () => `stderr: ${tunnel.cli.stderr().slice(logOffset)}`,
    );
  });

  test("answers a plain SOCKS4 request for an IP with exactly 00 5B and six zero bytes", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      // VN=4 CD=1 DSTPORT DSTIP=127.0.0.1 USERID="" NUL
      client.write(Buffer.from([0x04, 0x01, http.port >> 8, http.port & 0xff, 127, 0, 0, 1, 0x00]));
      assert.equal((await client.rest()).toString("hex"), "005b000000000000");
    } finally {
      client.destroy();
    }
  });

  test("curl --socks4a fetches /hello by name", async () => {
    const seen = http.requests.length;
    const result = await curlThroughSocks("--socks4a", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(http.requests.slice(seen), [`localhost:${http.port}`]);
  });

  test("refuses a SOCKS5 IPv6 request (ATYP 4) for ::1 with exactly 05 02 00 01 00 00 00 00 00 00", async () => {
    const reply = await socks5Refusal(tunnel.port, "::1", http.port);
    assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
  });

  test("refuses an IPv4 request (ATYP 1) with the whole 10-byte reply 0x02", async () => {
    const seen = http.requests.length;
    const reply = await socks5Refusal(tunnel.port, "127.0.0.1", http.port);
    assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("refuses an IP literal sent in the name field (ATYP 3 \"127.0.0.1\") with reply 0x02", async () => {
    const seen = http.requests.length;
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      const name = Buffer.from("127.0.0.1", "latin1");
      client.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from([http.port >> 8, http.port & 0xff])]));
      assert.equal((await client.rest()).toString("hex"), socks5Reply(0x02).toString("hex"));
    } finally {
      client.destroy();
    }
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("refuses an inet_aton form in the name field (\"127.1\", which sshd would read as 127.0.0.1) with reply 0x02", async () => {
    const seen = http.requests.length;
    const reply = await socks5Refusal(tunnel.port, "127.1", http.port);
    assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("refuses a SOCKS4a request whose name is an IP literal with 00 5B", async () => {
    const seen = http.requests.length;
    const client = await RawClient.open(tunnel.port);
    try {
      // VN=4 CD=1 DSTPORT DSTIP=0.0.0.1 USERID="" NUL HOST="127.0.0.1" NUL
      client.write(Buffer.concat([Buffer.from([0x04, 0x01, http.port >> 8, http.port & 0xff, 0, 0, 0, 1, 0x00]), Buffer.from("127.0.0.1\0", "latin1")]));
      assert.equal((await client.rest()).toString("hex"), "005b000000000000");
    } finally {
      client.destroy();
    }
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("refuses curl --socks5-hostname to http://[::1]:port/ (an IP literal where a name belongs)", async () => {
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://[::1]:${http.port}/hello`);
    assert.equal(result.code, 97, result.stderr);
    assert.match(result.stderr, /\(2\)/);
    assert.equal(result.stdout.length, 0);
  });

  test("the socks client reaches the echo target by name and gets its bytes back", async () => {
    const seen = echo.connections;
    const result = await socksConnect({ host: "127.0.0.1", port: tunnel.port }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const received = readAll(result.socket);
    result.socket.end("round trip through safetunnel");
    assert.equal((await received).toString(), "round trip through safetunnel");
    assert.equal(echo.connections, seen + 1);
  });

  test("the socks client is refused for an IP destination with 'not allowed by ruleset'", async () => {
    const seen = echo.connections;
    const result = await socksConnect({ host: "127.0.0.1", port: tunnel.port }, { host: "127.0.0.1", port: echo.port });
    assert.equal(result.ok, false);
    assert.equal(result.ok ? "" : result.error, "Socks5 proxy rejected connection - NotAllowed");
    const v4 = await socksConnect({ host: "127.0.0.1", port: tunnel.port, type: 4 }, { host: "127.0.0.1", port: echo.port });
    assert.equal(v4.ok, false);
    // The socks package names SOCKS4 reply 91 (0x5B, "request rejected or failed") "Failed".
    assert.equal(v4.ok ? "" : v4.error, "Socks4 Proxy rejected connection - (Failed)");
    assert.equal(echo.connections, seen);
  });

  test("32 MiB download arrives intact (sha256 equal to deterministicBytes)", async () => {
    const n = 32 * 1024 * 1024;
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/bytes/${n}`, { maxTimeSeconds: 60 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, n);
    assert.equal(sha256(result.stdout), sha256(deterministicBytes(n)));
  });

  test("8 MiB uploaded with backpressure comes back from the echo target intact", async () => {
    const n = 8 * 1024 * 1024;
    const data = deterministicBytes(n, 99);
    const result = await socksConnect({ host: "127.0.0.1", port: tunnel.port }, { host: "localhost", port: echo.port });
    assert.ok(result.ok, result.ok ? "" : result.error);
    const received = readAll(result.socket);
    await writeWithBackpressure(result.socket, data);
    const back = await received;
    assert.equal(back.length, n);
    assert.equal(sha256(back), sha256(data));
  });

  test("50 concurrent connections each get their own bytes back", async () => {
    const seen = echo.connections;
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const payload = Buffer.concat([Buffer.from(`connection ${i}:`), deterministicBytes(16 * 1024 + i, i + 1)]);
        const result = await socksConnect({ host: "127.0.0.1", port: tunnel.port }, { host: "localhost", port: echo.port }, { timeoutMs: 20_000 });
        if (!result.ok) return `connection ${i}: ${result.error}`;
        const received = readAll(result.socket);
        result.socket.end(payload);
        const back = await received;
        return back.equals(payload) ? "ok" : `connection ${i}: got ${back.length} bytes, ${sha256(back)} instead of ${sha256(payload)}`;
      }),
    );
    assert.deepEqual(outcomes, new Array<string>(50).fill("ok"));
    assert.equal(echo.connections, seen + 50);
  });

  test("a name whose port refuses connections gets reply 0x05 (connection refused), whole", async () => {
    const reply = await socks5Refusal(tunnel.port, "localhost", await closedPort());
    assert.equal(reply.toString("hex"), socks5Reply(0x05).toString("hex"));
  });

  test("a name that does not resolve (nonexistent.invalid) gets reply 0x04 (host unreachable), whole", async () => {
    const reply = await socks5Refusal(tunnel.port, "nonexistent.invalid", 80);
    assert.equal(reply.toString("hex"), socks5Reply(0x04).toString("hex"));
  });

  test("BIND gets reply 0x07 (command not supported), whole", async () => {
    const reply = await socks5Refusal(tunnel.port, "localhost", http.port, 0x02);
    assert.equal(reply.toString("hex"), socks5Reply(0x07).toString("hex"));
  });

  test("UDP ASSOCIATE gets reply 0x07 (command not supported), whole", async () => {
    const reply = await socks5Refusal(tunnel.port, "0.0.0.0", 0, 0x03);
    assert.equal(reply.toString("hex"), socks5Reply(0x07).toString("hex"));
  });

  test("a client offering only username/password (method 0x02) gets 05 FF and the socket is closed", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x02]));
      assert.equal((await client.rest()).toString("hex"), "05ff");
    } finally {
      client.destroy();
    }
  });

  test("garbage bytes close only that socket; the proxy keeps serving", async () => {
    const logOffset = tunnel.cli.stderr().length;
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x13, 0x37]));
      assert.equal((await client.rest()).length, 0);
    } finally {
      client.destroy();
    }
    await waitFor(() => linesSince(tunnel.cli, logOffset).some((line) => line.includes("not a SOCKS request (first byte 0x00)")), "the protocol-error line", () =>
      tunnel.cli.stderr().slice(logOffset),
    );
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("an HTTP request to the SOCKS port closes only that socket, says so, and the proxy keeps serving", async () => {
    const logOffset = tunnel.cli.stderr().length;
    const seen = http.requests.length;
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(`GET http://localhost:${http.port}/hello HTTP/1.1\r\nHost: localhost:${http.port}\r\n\r\n`);
      assert.equal((await client.rest()).length, 0);
    } finally {
      client.destroy();
    }
    await waitFor(() => linesSince(tunnel.cli, logOffset).some((line) => line.includes("the client spoke HTTP, not SOCKS")), "the HTTP line", () =>
      tunnel.cli.stderr().slice(logOffset),
    );
    assert.deepEqual(http.requests.slice(seen), []);
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("a truncated request followed by FIN closes that socket without a reply; the proxy keeps serving", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      // ATYP 3 announcing a 10-byte name, then only 3 bytes of it.
      client.socket.end(Buffer.from([0x05, 0x01, 0x00, 0x03, 0x0a, 0x61, 0x62, 0x63]));
      assert.equal((await client.rest()).length, 0);
    } finally {
      client.destroy();
    }
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("a SOCKS4 user id longer than 255 bytes gets 00 5B and is closed; the proxy keeps serving", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.concat([Buffer.from([0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1]), Buffer.alloc(600, 0x41)]));
      assert.equal((await client.rest()).toString("hex"), "005b000000000000");
    } finally {
      client.destroy();
    }
    const result = await curlThroughSocks("--socks4a", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("an unknown address type (ATYP 0x05) gets reply 0x08, whole", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      client.write(Buffer.from([0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0x00, 0x50]));
      assert.equal((await client.rest()).toString("hex"), socks5Reply(0x08).toString("hex"));
    } finally {
      client.destroy();
    }
  });

  test("data sent together with the request (before the reply) reaches the target after the success reply", async () => {
    const client = await RawClient.open(tunnel.port);
    try {
      client.socket.end(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), socks5Request("localhost", echo.port), Buffer.from("early bytes")]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      assert.equal((await client.rest()).toString(), "early bytes");
    } finally {
      client.destroy();
    }
  });

  test("half-close from the client: after shutting down its write side it still receives every echoed byte, then EOF", async () => {
    const payload = deterministicBytes(1024 * 1024 + 3, 5);
    const client = await socks5Open(tunnel.port, "localhost", echo.port);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      client.socket.end(payload);
      const back = await client.rest();
      assert.equal(back.length, payload.length);
      assert.equal(sha256(back), sha256(payload));
      assert.equal(client.socket.readableEnded, true);
    } finally {
      client.destroy();
    }
  });

  test("half-close from the target: the client sees EOF and can still send, and the target gets it", async () => {
    const received: Buffer[] = [];
    let resolveGot!: (data: Buffer) => void;
    const got = new Promise<Buffer>((resolve) => (resolveGot = resolve));
    const sockets = new Set<Socket>();
    const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.on("error", () => socket.destroy());
      socket.on("data", (chunk: Buffer) => received.push(chunk));
      socket.on("end", () => {
        resolveGot(Buffer.concat(received));
        socket.destroy();
      });
      // Greet and shut down our write side at once; keep reading.
      socket.end("greeting, then FIN\n");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const client = await socks5Open(tunnel.port, "localhost", port);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      assert.equal((await client.rest()).toString(), "greeting, then FIN\n");
      client.socket.end("sent after the target's FIN");
      const data = await within(got, WAIT_MS);
      assert.equal(data?.toString(), "sent after the target's FIN");
    } finally {
      client.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe("safetunnel --allow-ip", () => {
  let sshHome: Awaited<ReturnType<typeof makeSshHome>>;
  let sshd: Sshd;
  let http4: HttpTarget;
  let http6: HttpTarget | undefined;
  let echo6: EchoTarget | undefined;
  let tunnel: Tunnel;
  let ipv6 = false;

  before(async () => {
    ipv6 = await hasIPv6Loopback();
    sshHome = await makeSshHome();
    sshd = await startSshd({ authorizedKeys: [sshHome.key.publicLine] });
    await sshHome.trust(sshd);
    http4 = await startHttpTarget();
    if (ipv6) {
      http6 = await startHttpTarget("::1");
      echo6 = await startEchoTarget("::1");
    }
    tunnel = await startTunnel(sshd, sshHome.home, ["--allow-ip", "::1,127.0.0.1"]);
  });

  after(async () => {
    await tunnel?.cli.stop();
    await sshd?.stop();
    await http4?.stop();
    await http6?.stop();
    await echo6?.stop();
    await sshHome?.home.cleanup();
  });

  test("lets a SOCKS5 ATYP 4 request for ::1 through and logs 'Allowing'", async (t) => {
    if (!ipv6 || echo6 === undefined) return t.skip("no IPv6 loopback here");
    const logOffset = tunnel.cli.stderr().length;
    const client = await socks5Open(tunnel.port, "::1", echo6.port);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      client.socket.end("over ::1");
      assert.equal((await client.rest()).toString(), "over ::1");
    } finally {
      client.destroy();
    }
    const lines = linesSince(tunnel.cli, logOffset);
    assert.ok(
      lines.some((line) => line.startsWith(`Allowing IP destination [::1]:${echo6!.port} for 127.0.0.1:`) && line.includes("--allow-ip ::1/128")),
      lines.join("\n"),
    );
  });

  test("lets curl --socks5-hostname to http://[::1]:port/ through", async (t) => {
    if (!ipv6 || http6 === undefined) return t.skip("no IPv6 loopback here");
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `${http6.url}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    assert.deepEqual(http6.requests, [`[::1]:${http6.port}`]);
  });

  test("lets curl --socks5 to 127.0.0.1 through and logs 'Allowing'", async () => {
    const logOffset = tunnel.cli.stderr().length;
    const result = await curlThroughSocks("--socks5", tunnel.proxy, `${http4.url}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    const lines = linesSince(tunnel.cli, logOffset);
    assert.ok(lines.some((line) => line.startsWith(`Allowing IP destination 127.0.0.1:${http4.port} for 127.0.0.1:`)), lines.join("\n"));
  });

  test("still refuses addresses outside the list (127.0.0.2)", async () => {
    const reply = await socks5Refusal(tunnel.port, "127.0.0.2", http4.port);
    assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
  });
});

describe("safetunnel -D against an sshd that forbids the forwarding", () => {
  let scratch: string;
  let sshHome: Awaited<ReturnType<typeof makeSshHome>>;
  const sshds: Sshd[] = [];
  const tunnels: Tunnel[] = [];
  let http: HttpTarget;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "safetunnel-prohibited-"));
    sshHome = await makeSshHome();
    http = await startHttpTarget();
  });

  after(async () => {
    for (const tunnel of tunnels) await tunnel.cli.stop();
    for (const sshd of sshds) await sshd.stop();
    await http?.stop();
    await sshHome?.home.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  for (const rule of ["PermitOpen localhost:1", "AllowTcpForwarding no"]) {
    test(`maps sshd's "${rule}" refusal to reply 0x02 (not allowed), whole, and reaches nothing`, async () => {
      const sshd = await startSshd({ authorizedKeys: [sshHome.key.publicLine], extraConfig: [rule] });
      sshds.push(sshd);
      await sshHome.trust(sshd);
      const tunnel = await startTunnel(sshd, sshHome.home);
      tunnels.push(tunnel);
      const seen = http.requests.length;
      const reply = await socks5Refusal(tunnel.port, "localhost", http.port);
      assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
      assert.deepEqual(http.requests.slice(seen), []);
      const curl = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
      assert.equal(curl.code, 97, curl.stderr);
      assert.match(curl.stderr, /\(2\)/);
      // The tunnel itself stays up after a refused channel.
      await tunnel.cli.stop("SIGTERM").then((status) => assert.equal(status.code, 0, tunnel.cli.stderr()));
    });
  }
});
