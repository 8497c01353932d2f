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
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { within } from "../helpers/child.ts";
import { curlThroughSocks, socksConnect } from "../helpers/curl.ts";
import { type Home, stderrLines, waitForLine } from "../helpers/run.ts";
import { waitFor } from "../helpers/wait.ts";
import { RawClient, type RawClientOptions, socks5Open, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { readAll } from "../helpers/sockets.ts";
import { type KeyPair, type Sshd, startSshd } from "../helpers/sshd.ts";
import {
  closedPort,
  deterministicBytes,
  type EchoTarget,
  hasIpv6Loopback,
  HELLO,
  type HttpTarget,
  sha256,
  startEchoTarget,
  startHttpTarget,
} from "../helpers/targets.ts";
import { makeHomeWithKey, type SocksTunnel, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";

const WAIT_MS = 10_000;

/** Raw clients keep their write side open after the proxy's FIN, and wait up to WAIT_MS. */
const RAW: RawClientOptions = { allowHalfOpen: true, timeoutMs: WAIT_MS };

/** Everything the proxy sends after the method choice, up to its FIN. */
async function socks5Refusal(proxyPort: number, host: string, port: number, command = 0x01): Promise<Buffer> {
  const client = await socks5Open(proxyPort, socks5Request(host, port, command), RAW);
  try {
    return await client.readToEnd();
  } finally {
    client.destroy();
  }
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

describe("safetunnel -D through a real sshd", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  let echo: EchoTarget;
  let tunnel: SocksTunnel;
  /**
   * At -v, for the tests that wait for a dropped-client line: by default drops
   * are folded to one line per client program (or address) per 10 s, and the
   * tests before them drop clients of this same program.
   */
  let verbose: SocksTunnel;

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
    echo = await startEchoTarget();
    tunnel = await startSocksTunnel(sshd, home);
    verbose = await startSocksTunnel(sshd, home, ["-v"]);
  });

  after(async () => {
    await tunnel?.cli.stop();
    await verbose?.cli.stop();
    await sshd?.stop();
    await http?.stop();
    await echo?.stop();
    await home?.cleanup();
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
    const result = await curlThroughSocks("-x", `socks5h://${tunnel.proxy}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.toString(), HELLO);
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
    // program within 10 s are folded into the next full line (forward/refusal-log.ts).
    const refusal = new RegExp(`^Warning: Refused SOCKS5 CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): `);
    await waitForLine(tunnel.cli, refusal, "the refusal line", logOffset);
    const lines = stderrLines(tunnel.cli, logOffset).filter((line) => line.includes("Refused"));
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
    const refusal = new RegExp(`^Warning: Refused SOCKS4 CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): .*plain SOCKS4`);
    const line = await waitForLine(tunnel.cli, refusal, "the SOCKS4 refusal line", logOffset);
    assert.ok(line.includes(`Fix: use curl --socks5-hostname ${tunnel.proxy} (or -x socks5h://${tunnel.proxy})`), line);
  });

  test("names curl in every refusal of a parallel burst, and --json writes the full refusal at level warn", async () => {
    // Its own tunnel: -v shows the refusals folded into the full line, each with its program.
    const json = await startSocksTunnel(sshd, home, ["-v", "--json"]);
    try {
      const seen = http.requests.length;
      const results = await Promise.all(Array.from({ length: 8 }, () => curlThroughSocks("--socks5", json.proxy, `http://localhost:${http.port}/hello`)));
      assert.deepEqual(results.map((result) => result.code), Array(8).fill(97), results.map((result) => result.stderr).join(""));
      assert.deepEqual(http.requests.slice(seen), []);
      const refusals = (): Record<string, unknown>[] =>
        stderrLines(json.cli)
          .map((line) => JSON.parse(line) as Record<string, unknown>) // --json: every line is one object
          .filter((record) => String(record["msg"]).startsWith("Refused SOCKS5 CONNECT"));
      await waitFor(() => refusals().length === 8, "eight refusal records", () => json.cli.stderr());
      const records = refusals();
      for (const record of records) assert.match(String(record["msg"]), /from 127\.0\.0\.1:\d+ \(curl\)/);
      const full = records.filter((record) => record["level"] === "warn");
      assert.equal(full.length, 1, JSON.stringify(records));
      assert.equal(full[0]!["event"], "refused");
      assert.equal(full[0]!["code"], "SOCKS_IP_REFUSED");
      assert.equal(full[0]!["program"], "curl");
      assert.equal(full[0]!["destination"], `127.0.0.1:${http.port}`);
      assert.deepEqual(
        records.filter((record) => record !== full[0]).map((record) => record["level"]),
        Array(7).fill("debug1"),
      );
    } finally {
      await json.cli.stop();
    }
  });

  test("answers a plain SOCKS4 request for an IP with exactly 00 5B and six zero bytes", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      // VN=4 CD=1 DSTPORT DSTIP=127.0.0.1 USERID="" NUL
      client.write(Buffer.from([0x04, 0x01, http.port >> 8, http.port & 0xff, 127, 0, 0, 1, 0x00]));
      assert.equal((await client.readToEnd()).toString("hex"), "005b000000000000");
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
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      const name = Buffer.from("127.0.0.1", "latin1");
      client.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from([http.port >> 8, http.port & 0xff])]));
      assert.equal((await client.readToEnd()).toString("hex"), socks5Reply(0x02).toString("hex"));
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
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      // VN=4 CD=1 DSTPORT DSTIP=0.0.0.1 USERID="" NUL HOST="127.0.0.1" NUL
      client.write(Buffer.concat([Buffer.from([0x04, 0x01, http.port >> 8, http.port & 0xff, 0, 0, 0, 1, 0x00]), Buffer.from("127.0.0.1\0", "latin1")]));
      assert.equal((await client.readToEnd()).toString("hex"), "005b000000000000");
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
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x02]));
      assert.equal((await client.readToEnd()).toString("hex"), "05ff");
    } finally {
      client.destroy();
    }
  });

  test("garbage bytes close only that socket; the proxy keeps serving", async () => {
    const logOffset = verbose.cli.stderr().length;
    const client = await RawClient.connect(verbose.port, RAW);
    try {
      client.write(Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x13, 0x37]));
      assert.equal((await client.readToEnd()).length, 0);
    } finally {
      client.destroy();
    }
    await waitForLine(verbose.cli, "not a SOCKS request (first byte 0x00)", "the protocol-error line", logOffset);
    const result = await curlThroughSocks("--socks5-hostname", verbose.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("TLS sent to the -D port (a client told https:// for the proxy) closes only that socket, says so, and the proxy keeps serving", async () => {
    const logOffset = verbose.cli.stderr().length;
    const client = await RawClient.connect(verbose.port, RAW);
    try {
      // The first bytes of a TLS 1.2 ClientHello record.
      client.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
      assert.equal((await client.readToEnd()).length, 0);
    } finally {
      client.destroy();
    }
    await waitForLine(verbose.cli, "the client spoke TLS, not SOCKS: configure it as a SOCKS v5 proxy (or an http:// proxy, not https://)", "the TLS line", logOffset);
    const result = await curlThroughSocks("--socks5-hostname", verbose.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("a truncated request followed by FIN closes that socket without a reply; the proxy keeps serving", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      // ATYP 3 announcing a 10-byte name, then only 3 bytes of it.
      client.socket.end(Buffer.from([0x05, 0x01, 0x00, 0x03, 0x0a, 0x61, 0x62, 0x63]));
      assert.equal((await client.readToEnd()).length, 0);
    } finally {
      client.destroy();
    }
    const result = await curlThroughSocks("--socks5-hostname", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("a SOCKS4 user id longer than 255 bytes gets 00 5B and is closed; the proxy keeps serving", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.write(Buffer.concat([Buffer.from([0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1]), Buffer.alloc(600, 0x41)]));
      assert.equal((await client.readToEnd()).toString("hex"), "005b000000000000");
    } finally {
      client.destroy();
    }
    const result = await curlThroughSocks("--socks4a", tunnel.proxy, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
  });

  test("an unknown address type (ATYP 0x05) gets reply 0x08, whole", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.write(Buffer.from([0x05, 0x01, 0x00]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      client.write(Buffer.from([0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0x00, 0x50]));
      assert.equal((await client.readToEnd()).toString("hex"), socks5Reply(0x08).toString("hex"));
    } finally {
      client.destroy();
    }
  });

  test("data sent together with the request (before the reply) reaches the target after the success reply", async () => {
    const client = await RawClient.connect(tunnel.port, RAW);
    try {
      client.socket.end(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), socks5Request("localhost", echo.port), Buffer.from("early bytes")]));
      assert.equal((await client.read(2)).toString("hex"), "0500");
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      assert.equal((await client.readToEnd()).toString(), "early bytes");
    } finally {
      client.destroy();
    }
  });

  test("half-close from the client: after shutting down its write side it still receives every echoed byte, then EOF", async () => {
    const payload = deterministicBytes(1024 * 1024 + 3, 5);
    const client = await socks5Open(tunnel.port, socks5Request("localhost", echo.port), RAW);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      client.socket.end(payload);
      const back = await client.readToEnd();
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
    const client = await socks5Open(tunnel.port, socks5Request("localhost", port), RAW);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      assert.equal((await client.readToEnd()).toString(), "greeting, then FIN\n");
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
  let home: Home;
  let sshd: Sshd;
  let http4: HttpTarget;
  let http6: HttpTarget | undefined;
  let echo6: EchoTarget | undefined;
  let tunnel: SocksTunnel;
  let ipv6 = false;

  before(async () => {
    ipv6 = await hasIpv6Loopback();
    ({ home, sshd } = await startSshdWithHome());
    http4 = await startHttpTarget();
    if (ipv6) {
      http6 = await startHttpTarget("::1");
      echo6 = await startEchoTarget("::1");
    }
    tunnel = await startSocksTunnel(sshd, home, ["--allow-ip", "::1,127.0.0.1"]);
  });

  after(async () => {
    await tunnel?.cli.stop();
    await sshd?.stop();
    await http4?.stop();
    await http6?.stop();
    await echo6?.stop();
    await home?.cleanup();
  });

  test("lets a SOCKS5 ATYP 4 request for ::1 through and logs 'Allowing'", async (t) => {
    if (!ipv6 || echo6 === undefined) return t.skip("no IPv6 loopback here");
    const logOffset = tunnel.cli.stderr().length;
    const client = await socks5Open(tunnel.port, socks5Request("::1", echo6.port), RAW);
    try {
      assert.equal((await client.read(10)).toString("hex"), socks5Reply(0x00).toString("hex"));
      client.socket.end("over ::1");
      assert.equal((await client.readToEnd()).toString(), "over ::1");
    } finally {
      client.destroy();
    }
    const lines = stderrLines(tunnel.cli, logOffset);
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
    const lines = stderrLines(tunnel.cli, logOffset);
    assert.ok(lines.some((line) => line.startsWith(`Allowing IP destination 127.0.0.1:${http4.port} for 127.0.0.1:`)), lines.join("\n"));
  });

  test("still refuses addresses outside the list (127.0.0.2)", async () => {
    const reply = await socks5Refusal(tunnel.port, "127.0.0.2", http4.port);
    assert.equal(reply.toString("hex"), socks5Reply(0x02).toString("hex"));
  });
});

describe("safetunnel -D against an sshd that forbids the forwarding", () => {
  let scratch: string;
  let sshHome: { home: Home; key: KeyPair };
  const sshds: Sshd[] = [];
  const tunnels: SocksTunnel[] = [];
  let http: HttpTarget;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "safetunnel-prohibited-"));
    sshHome = await makeHomeWithKey();
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
      await sshHome.home.writeKnownHosts(`${sshd.knownHostsLine()}\n`);
      const tunnel = await startSocksTunnel(sshd, sshHome.home);
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
