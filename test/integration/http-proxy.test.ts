/**
 * Everything through the tunnel with nothing to configure, end to end
 * against a private OpenSSH sshd: the -D port's HTTP side driven by curl
 * (`-x http://`, CONNECT and absolute form), programs under `safetunnel exec`
 * that are given no proxy flags (curl, Python urllib, git over ssh), and
 * OpenSSH's ssh reaching a server by name through `safetunnel nc`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { runCurl } from "../helpers/curl.ts";
import { cliPath, type Home, runCli, startProcess, stderrLines, waitForListen } from "../helpers/run.ts";
import { existsSync } from "node:fs";
import { type Sshd } from "../helpers/sshd.ts";
import { deterministicBytes, freePort, HELLO, type HttpTarget, sha256, startHttpTarget } from "../helpers/targets.ts";
import { type SocksTunnel, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";
import { pacFile } from "../../src/http-proxy/setup-page.ts";
import { waitFor } from "../helpers/wait.ts";

const run = promisify(execFile);

let home: Home;
let sshd: Sshd;
let tunnel: SocksTunnel;
let http: HttpTarget;
let tls: { port: number; caFile: string; requests: number; server: HttpsServer };
let dir: string;

/** An HTTPS server on loopback for the name `localhost`, its certificate made here by openssl. */
async function startTlsTarget(folder: string): Promise<typeof tls> {
  const key = join(folder, "tls.key");
  const cert = join(folder, "tls.crt");
  await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]);
  const target = { port: 0, caFile: cert, requests: 0, server: undefined as unknown as HttpsServer };
  target.server = createHttpsServer({ key: await readFile(key), cert: await readFile(cert) }, (request, response) => {
    target.requests++;
    response.writeHead(200, { "content-type": "text/plain" });
    response.end(`tls ${request.url}\n`);
  });
  await new Promise<void>((resolve) => target.server.listen(0, "127.0.0.1", resolve));
  target.port = (target.server.address() as { port: number }).port;
  return target;
}

before(async () => {
  ({ home, sshd } = await startSshdWithHome());
  // ssh through `nc` reaches the server by the name localhost.
  await home.writeKnownHosts(`${sshd.knownHostsLine()}\n${sshd.knownHostsLine({ hostname: "localhost" })}\n`);
  // -v: a line per request, which shows each program really went through the tunnel.
  tunnel = await startSocksTunnel(sshd, home, ["-v"]);
  http = await startHttpTarget();
  dir = await mkdtemp(join(tmpdir(), "safetunnel-http-proxy-"));
  tls = await startTlsTarget(dir);
});

after(async () => {
  await tunnel?.cli.stop();
  await sshd?.stop();
  await http?.stop();
  tls?.server.closeAllConnections();
  tls?.server.close();
  await home?.cleanup();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Wait for the tunnel's -v line for `request` ("HTTP GET localhost:8080") written after `since` characters of its stderr. */
async function assertThroughTunnel(since: number, request: string): Promise<void> {
  await waitFor(() => tunnel.cli.stderr().slice(since).includes(`: ${request} from 127.0.0.1:`), `the tunnel's line for ${request}`, () => tunnel.cli.stderr().slice(since));
}

describe("curl -x http:// at the -D port", () => {
  test("absolute form: GET http://localhost:PORT/hello is forwarded by name and answered", async () => {
    const since = tunnel.cli.stderr().length;
    const result = await runCurl(["-x", `http://${tunnel.proxy}`, `http://localhost:${http.port}/hello`], 15);
    assert.equal(result.code, 0, `${result.stderr}; ${tunnel.cli.stderr()}`);
    assert.equal(result.stdout.toString(), HELLO);
    assert.equal(http.requests.at(-1), `localhost:${http.port}`);
    await assertThroughTunnel(since, `HTTP GET localhost:${http.port}`);
  });

  test("CONNECT: https by name through the tunnel, the certificate checked for localhost", async () => {
    const since = tunnel.cli.stderr().length;
    const result = await runCurl(["-x", `http://${tunnel.proxy}`, "--cacert", tls.caFile, `https://localhost:${tls.port}/via-connect`], 15);
    assert.equal(result.code, 0, `${result.stderr}; ${tunnel.cli.stderr()}`);
    assert.equal(result.stdout.toString(), "tls /via-connect\n");
    await assertThroughTunnel(since, `HTTP CONNECT localhost:${tls.port}`);
  });

  test("an IP-literal CONNECT is 403 with the fix in the body and the log; nothing reaches the target", async () => {
    const seen = http.requests.length;
    const logged = stderrLines(tunnel.cli).length;
    const result = await runCurl(["-p", "-x", `http://${tunnel.proxy}`, "-v", `http://127.0.0.1:${http.port}/hello`], 15);
    assert.equal(result.code, 56, result.stderr);
    assert.match(result.stderr, /< HTTP\/1\.1 403 Forbidden/);
    assert.match(result.stderr, /CONNECT tunnel failed, response 403/);
    assert.deepEqual(http.requests.slice(seen), []);
    await waitFor(() => stderrLines(tunnel.cli).length > logged, "the refusal line");
    const line = stderrLines(tunnel.cli).slice(logged).join("\n");
    assert.match(line, new RegExp(`Refused HTTP CONNECT to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): .*give curl a URL with the host name`));
  });

  test("GET /proxy.pac from the port itself is the PAC for this port", async () => {
    const result = await runCurl(["-i", `http://${tunnel.proxy}/proxy.pac`], 15);
    assert.equal(result.code, 0, result.stderr);
    const text = result.stdout.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/x-ns-proxy-autoconfig\r\n/);
    assert.ok(text.endsWith(`\r\n\r\n${pacFile({ host: "127.0.0.1", port: tunnel.port })}`), text);
  });

  test("oversized headers from curl are 431 and the port keeps serving", async () => {
    const result = await runCurl(["-x", `http://${tunnel.proxy}`, "-H", `X-Big: ${"b".repeat(20_000)}`, "-o", "/dev/null", "-w", "%{http_code}", `http://localhost:${http.port}/hello`], 15);
    assert.equal(result.stdout.toString(), "431");
    const again = await runCurl(["-x", `http://${tunnel.proxy}`, `http://localhost:${http.port}/hello`], 15);
    assert.equal(again.stdout.toString(), HELLO);
  });
});

/** `safetunnel exec --proxy <tunnel> -- ...argv`, to completion. */
function execUnder(argv: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(["exec", "--proxy", tunnel.proxy, "--", ...argv], { home: home.home, env, timeoutMs: 30_000 });
}

describe("safetunnel exec: programs with no proxy flags", () => {
  test("curl: http and https by name both go through the tunnel (the target sees them; curl was given no proxy)", async () => {
    const seen = http.requests.length;
    const since = tunnel.cli.stderr().length;
    const plain = await execUnder(["curl", "-q", "-sS", "--max-time", "15", `http://localhost:${http.port}/hello`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, HELLO);
    assert.equal(http.requests.length, seen + 1);
    const secure = await execUnder(["curl", "-q", "-sS", "--max-time", "15", "--cacert", tls.caFile, `https://localhost:${tls.port}/exec`]);
    assert.equal(secure.code, 0, secure.stderr);
    assert.equal(secure.stdout, "tls /exec\n");
    await assertThroughTunnel(since, `HTTP GET localhost:${http.port}`);
    await assertThroughTunnel(since, `HTTP CONNECT localhost:${tls.port}`);
  });

  test("an IP literal under exec is refused by the tunnel (403 and its line): curl went through it", async () => {
    const seen = http.requests.length;
    const refused = await execUnder(["curl", "-q", "-sS", "--max-time", "15", "-w", "%{http_code}", `http://127.0.0.1:${http.port}/hello`]);
    assert.equal(refused.code, 0, refused.stderr);
    assert.match(refused.stdout, new RegExp(`^Refused HTTP GET to 127\\.0\\.0\\.1:${http.port} from 127\\.0\\.0\\.1:\\d+ \\(curl\\): [^\\n]+\\n403$`));
    assert.deepEqual(http.requests.slice(seen), []);
  });

  test("Python urllib, given no proxy, fetches http and https through the tunnel", async () => {
    const script = [
      "import ssl, sys, urllib.request",
      "print(urllib.request.getproxies()['https'])",
      `print(urllib.request.urlopen('http://localhost:${http.port}/hello', timeout=15).read().decode(), end='')`,
      `print(urllib.request.urlopen('https://localhost:${tls.port}/python', timeout=15, context=ssl.create_default_context(cafile=sys.argv[1])).read().decode(), end='')`,
    ].join("\n");
    const since = tunnel.cli.stderr().length;
    const result = await execUnder(["python3", "-c", script, tls.caFile]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `http://${tunnel.proxy}\n${HELLO}tls /python\n`);
    await assertThroughTunnel(since, `HTTP GET localhost:${http.port}`);
    await assertThroughTunnel(since, `HTTP CONNECT localhost:${tls.port}`);
  });

  test("exit status and a command that is not there pass through", async () => {
    assert.equal((await execUnder(["sh", "-c", "exit 7"])).code, 7);
    const missing = await execUnder(["no-such-command-here"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /exec: 'no-such-command-here': command not found/);
  });

  test("a signal that kills the command kills exec the same way", async () => {
    const result = await execUnder(["sh", "-c", "kill -TERM $$"]);
    assert.equal(result.code, null);
  });

  test("no tunnel at --proxy: 125 and the fix", async () => {
    const result = await runCli(["exec", "--proxy", "127.0.0.1:1", "--", "true"], { home: home.home });
    assert.equal(result.code, 125);
    assert.match(result.stderr, /^safetunnel: exec: no tunnel at 127\.0\.0\.1:1 \(.*ECONNREFUSED.*\): start the tunnel first/);
  });

  test("--proxy at OpenSSH's ssh -D (SOCKS only, no HTTP side): 125 saying it is not a safetunnel port, and the command never runs", async () => {
    const port = await freePort();
    const ssh = startProcess("ssh", [
      "-F", "/dev/null", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${join(home.sshDir, "known_hosts")}`, "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", join(home.sshDir, "id_ed25519"), "-p", String(sshd.port),
      "-N", "-D", `127.0.0.1:${port}`, `${sshd.user}@127.0.0.1`,
    ]);
    try {
      await waitForListen(port, "127.0.0.1", ssh);
      const marker = join(dir, "ran-under-ssh-d");
      const result = await runCli(["exec", "--proxy", `127.0.0.1:${port}`, "--", "touch", marker], { home: home.home });
      assert.equal(result.code, 125, result.stderr);
      assert.match(result.stderr, new RegExp(`^safetunnel: exec: 127\\.0\\.0\\.1:${port} is not a safetunnel -D port \\(no HTTP proxy answered there, and exec points programs at one; ssh -D speaks only SOCKS\\)`));
      assert.equal(existsSync(marker), false);
    } finally {
      await ssh.stop();
    }
  });

  test("--proxy at a tunnel with --socks-auth: 125 saying the programs would not have the login", async () => {
    const password = join(dir, "socks-password");
    await writeFile(password, "s3cret\n");
    const guarded = await startSocksTunnel(sshd, home, ["--socks-auth", `me:@${password}`]);
    try {
      const result = await runCli(["exec", "--proxy", guarded.proxy, "--", "true"], { home: home.home });
      assert.equal(result.code, 125, result.stderr);
      assert.equal(result.stderr, `safetunnel: exec: the tunnel at ${guarded.proxy} asks for a login (--socks-auth), which the programs exec runs are not given: use a -D port without --socks-auth for exec\n`);
    } finally {
      await guarded.cli.stop();
    }
    // Asking cost the tunnel nothing it would count against a client.
    assert.doesNotMatch(guarded.cli.stderr(), /dropped client|Refused/);
  });

  test("git over ssh by name: GIT_SSH_COMMAND goes through safetunnel nc; the clone matches", async () => {
    const repo = join(dir, "repo.git");
    const work = join(dir, "work");
    await run("git", ["init", "-q", "-b", "main", work]);
    await writeFile(join(work, "data.bin"), deterministicBytes(256 * 1024, 5));
    await run("git", ["-C", work, "add", "data.bin"]);
    await run("git", ["-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "data"]);
    await run("git", ["clone", "-q", "--bare", work, repo]);
    const clone = join(dir, "clone");
    // ssh reads ~/.ssh from the account's home, not $HOME: the test's key and known_hosts are given in the
    // user's own GIT_SSH_COMMAND, which exec keeps and adds its ProxyCommand to.
    const own = `ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile=${join(home.sshDir, "known_hosts")} -o StrictHostKeyChecking=yes -i ${join(home.sshDir, "id_ed25519")}`;
    const since = tunnel.cli.stderr().length;
    const result = await execUnder(["git", "clone", "-q", `ssh://${sshd.user}@localhost:${sshd.port}${repo}`, clone], { GIT_SSH_COMMAND: own });
    assert.equal(result.code, 0, `${result.stderr}\n${tunnel.cli.stderr()}`);
    assert.equal(sha256(await readFile(join(clone, "data.bin"))), sha256(deterministicBytes(256 * 1024, 5)));
    await assertThroughTunnel(since, `SOCKS5 CONNECT localhost:${sshd.port}`);
  });
});

describe("safetunnel nc as ssh's ProxyCommand", () => {
  test("ssh reaches the server by name through the tunnel; a 1 MiB file comes back byte for byte", async () => {
    const file = join(dir, "one-mib.bin");
    const data = deterministicBytes(1024 * 1024, 9);
    await writeFile(file, data);
    const since = tunnel.cli.stderr().length;
    const proxyCommand = `${process.execPath} ${cliPath()} nc --proxy ${tunnel.proxy} %h %p`;
    const ssh = await run(
      "ssh",
      ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${join(home.sshDir, "known_hosts")}`, "-o", "StrictHostKeyChecking=yes",
        "-i", join(home.sshDir, "id_ed25519"), "-o", `ProxyCommand=${proxyCommand}`, "-p", String(sshd.port), `${sshd.user}@localhost`, "cat", file],
      { env: { ...process.env, HOME: home.home }, encoding: "buffer", maxBuffer: 4 * 1024 * 1024, timeout: 30_000 },
    );
    assert.equal(sha256(ssh.stdout), sha256(data));
    await assertThroughTunnel(since, `SOCKS5 CONNECT localhost:${sshd.port}`);
  });

  test("an address is refused with the tunnel's answer and the fix; a closed port says so", async () => {
    const ip = await runCli(["nc", "--proxy", tunnel.proxy, "127.0.0.1", String(sshd.port)], { home: home.home });
    assert.equal(ip.code, 1);
    assert.match(ip.stderr, /^safetunnel: the tunnel could not connect to 127\.0\.0\.1:\d+: connection not allowed by ruleset \(SOCKS5 reply 0x02\); an IP address is refused unless the tunnel runs with --allow-ip/);
  });

  test("no tunnel at --proxy: exit 1 and the fix", async () => {
    const result = await runCli(["nc", "--proxy", "127.0.0.1:1", "localhost", "22"], { home: home.home });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^safetunnel: nothing is listening on 127\.0\.0\.1:1: start the tunnel first/);
  });
});
