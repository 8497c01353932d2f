/**
 * `safetunnel serve` as the home end, driven by real clients on loopback:
 * OpenSSH's ssh (-N -D, -L, -R, and a plain command it must refuse with a
 * reason) and our own client, with curl through each. Also: the host key
 * made on the first run, kept with mode 0600 and the same after a restart,
 * its fingerprint and known_hosts line printed; keys not in authorized_keys
 * refused; authorized_keys options and --permit-open enforced at the
 * client's SOCKS port (reply 0x02); a burst of failed logins slowing that
 * address down.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curlDirect, curlThroughSocks } from "../helpers/curl.ts";
import { RawClient, socks5Open, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { makeHome, startCli, startProcess, waitForLine, waitForListen, assertNoCrash, type Home, type Running } from "../helpers/run.ts";
import { makeKey, sha256Fingerprint, type KeyPair } from "../helpers/sshd.ts";
import { closedPort, freePort, HELLO, occupyPort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";

/** ssh with nothing of this machine's own: no config, no agent, only the given key and known_hosts. */
/** Every byte our SOCKS port sends after the method choice for a CONNECT to host:port, up to its FIN. */
async function socks5Outcome(proxyPort: number, host: string, port: number): Promise<string> {
  const client = await socks5Open(proxyPort, socks5Request(host, port));
  try {
    return (await client.readToEnd()).toString("hex");
  } finally {
    client.destroy();
  }
}

/** Our client, -D through a serve at `port`, trusting the printed known_hosts line. */
async function startOurClient(home: Home, key: KeyPair, serve: Serve): Promise<{ cli: Running; socksPort: number }> {
  const socksPort = await freePort();
  await home.writeKnownHosts(`${serve.knownHostsLine}\n`);
  const cli = startCli(["-N", "-D", `127.0.0.1:${socksPort}`, "-i", key.privatePath, "-o", "IdentitiesOnly=yes", "-p", String(serve.port), "me@127.0.0.1"], { home: home.home });
  await waitForListen(socksPort, "127.0.0.1", cli);
  return { cli, socksPort };
}

function sshArgs(key: KeyPair, knownHosts: string, port: number): string[] {
  return [
    "-F", "none",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "IdentityAgent=none",
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "ExitOnForwardFailure=yes",
    "-i", key.privatePath,
    "-p", String(port),
  ];
}

interface Serve {
  cli: Running;
  port: number;
  knownHostsLine: string;
  fingerprint: string;
}

async function startServe(home: Home, extra: string[] = [], configHome?: string): Promise<Serve> {
  const port = await freePort();
  const cli = startCli(["serve", "--listen", `127.0.0.1:${port}`, ...extra], {
    home: home.home,
    env: { XDG_CONFIG_HOME: configHome ?? join(home.home, ".config") },
  });
  await waitForListen(port, "127.0.0.1", cli);
  const hostLine = await waitForLine(cli, /^Host key: ssh-ed25519 SHA256:/, "the host key line");
  const knownHostsLine = await waitForLine(cli, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${port} ssh-ed25519 AAAA`), "the known_hosts line");
  return { cli, port, knownHostsLine, fingerprint: /SHA256:\S+/.exec(hostLine)![0]!.replace(/\s.*$/, "") };
}

/** A serve of a test's own: a new HOME with these authorized_keys, and a known_hosts file trusting it. */
async function startSeparateServe(dir: string, name: string, authorizedKeys: string, extra: string[] = []): Promise<Serve & { home: Home; knownHosts: string; stop(): Promise<void> }> {
  const home = await makeHome();
  await writeFile(join(home.sshDir, "authorized_keys"), authorizedKeys, { mode: 0o600 });
  const serve = await startServe(home, extra);
  const knownHosts = join(dir, `known_hosts_${name}`);
  await writeFile(knownHosts, `${serve.knownHostsLine}\n`);
  return {
    ...serve,
    home,
    knownHosts,
    async stop() {
      await serve.cli.stop();
      await home.cleanup();
    },
  };
}

describe("safetunnel serve", () => {
  let dir: string;
  let home: Home;
  let client: KeyPair;
  let stranger: KeyPair;
  let http: HttpTarget;
  let serve: Serve;
  let knownHosts: string;
  const started: Running[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "safetunnel-serve-test-"));
    home = await makeHome();
    client = await makeKey(dir, "client");
    stranger = await makeKey(dir, "stranger");
    await writeFile(join(home.sshDir, "authorized_keys"), `${client.publicLine}\n`, { mode: 0o600 });
    http = await startHttpTarget();
    serve = await startServe(home);
    knownHosts = join(dir, "known_hosts");
    await writeFile(knownHosts, `${serve.knownHostsLine}\n`);
  });

  after(async () => {
    for (const running of started) await running.stop();
    await serve?.cli.stop();
    await http?.stop();
    await home?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test("makes its host key on the first run, mode 0600, and prints its fingerprint", async () => {
    const file = join(home.home, ".config", "safetunnel", "host_ed25519_key");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const publicLine = serve.knownHostsLine.split(" ").slice(1).join(" ");
    const pub = join(dir, "host.pub");
    await writeFile(pub, `${publicLine}\n`);
    assert.equal(serve.fingerprint, await sha256Fingerprint(pub));
    assert.match(serve.cli.stderr(), /Made a new host key, kept in .*host_ed25519_key/);
  });

  test("OpenSSH's ssh -N -D through it: curl reaches a loopback server by name", async () => {
    const socksPort = await freePort();
    const ssh = startProcess("ssh", [...sshArgs(client, knownHosts, serve.port), "-N", "-D", `127.0.0.1:${socksPort}`, "me@127.0.0.1"]);
    started.push(ssh);
    await waitForListen(socksPort, "127.0.0.1", ssh);
    const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    assert.match(serve.cli.stderr(), /serve: accepted key SHA256:\S+ \(.*authorized_keys:1 client\) for me from 127\.0\.0\.1/);
    await ssh.stop();
  });

  test("OpenSSH's ssh -N -L through it", async () => {
    const localPort = await freePort();
    const ssh = startProcess("ssh", [...sshArgs(client, knownHosts, serve.port), "-N", "-L", `127.0.0.1:${localPort}:localhost:${http.port}`, "me@127.0.0.1"]);
    started.push(ssh);
    await waitForListen(localPort, "127.0.0.1", ssh);
    const result = await curlDirect(`http://127.0.0.1:${localPort}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    await ssh.stop();
  });

  test("OpenSSH's ssh -N -R through it: serve listens on loopback and hands connections back", async () => {
    const remotePort = await freePort();
    const ssh = startProcess("ssh", [...sshArgs(client, knownHosts, serve.port), "-N", "-R", `0.0.0.0:${remotePort}:localhost:${http.port}`, "me@127.0.0.1"]);
    started.push(ssh);
    await waitForListen(remotePort, "127.0.0.1", ssh);
    // Asked for every address, given loopback only: no --gateway-ports.
    await waitForLine(serve.cli, new RegExp(`serve: listening on 127\\.0\\.0\\.1:${remotePort}(, \\[::1\\]:${remotePort})? for 127\\.0\\.0\\.1 port \\d+ \\(-R 0\\.0\\.0\\.0:${remotePort}\\)`), "the -R listening line");
    const result = await curlDirect(`http://127.0.0.1:${remotePort}/hello`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), HELLO);
    await ssh.stop();
  });

  test("cancel-tcpip-forward closes the listener a client's tcpip-forward made (RFC 4254 section 7.1)", async () => {
    const { Client } = (await import("ssh2")).default as typeof import("ssh2");
    const ssh = new Client();
    const remotePort = await freePort();
    try {
      await new Promise<void>((resolve, reject) => {
        ssh.once("ready", () => resolve());
        ssh.once("error", reject);
        ssh.connect({ host: "127.0.0.1", port: serve.port, username: "me", privateKey: readFileSync(client.privatePath) });
      });
      await new Promise<void>((resolve, reject) => ssh.forwardIn("127.0.0.1", remotePort, (err) => (err ? reject(err) : resolve())));
      await waitForListen(remotePort, "127.0.0.1");
      await new Promise<void>((resolve, reject) => ssh.unforwardIn("127.0.0.1", remotePort, (err) => (err ? reject(err) : resolve())));
      // Closed: the port can be bound again here.
      const again = await occupyPort(remotePort);
      await again.stop();
    } finally {
      ssh.end();
    }
  });

  test("a command or a shell is refused with the reason on the client's terminal", async () => {
    const ssh = startProcess("ssh", [...sshArgs(client, knownHosts, serve.port), "me@127.0.0.1", "echo", "hello"]);
    const status = await ssh.exited;
    assert.equal(status.code, 1);
    assert.match(ssh.stderr(), /safetunnel serve only forwards ports; it runs no shell and no command/);
    assert.doesNotMatch(ssh.stdout(), /hello/);
  });

  test("a shell with a terminal (ssh -tt) gets the reason too", async () => {
    const ssh = startProcess("ssh", [...sshArgs(client, knownHosts, serve.port), "-tt", "me@127.0.0.1"]);
    const status = await ssh.exited;
    assert.equal(status.code, 1);
    assert.match(ssh.stdout() + ssh.stderr(), /safetunnel serve only forwards ports; it runs no shell and no command/);
  });

  test("a key that is not in authorized_keys is refused, and the attempt logged with the address", async () => {
    const ssh = startProcess("ssh", [...sshArgs(stranger, knownHosts, serve.port), "-N", "-D", String(await freePort()), "me@127.0.0.1"]);
    const status = await ssh.exited;
    assert.equal(status.code, 255);
    assert.match(ssh.stderr(), /Permission denied \(publickey\)/);
    const fingerprint = await sha256Fingerprint(stranger.publicPath);
    await waitForLine(serve.cli, new RegExp(`failed login for me from 127\\.0\\.0\\.1 port \\d+: key ${fingerprint.replace(/[+/]/g, "\\$&")} not in `), "the failed login line");
  });

  test("our own client through it: -D works; a closed port is reply 0x05, an IP literal 0x02", async () => {
    const { cli, socksPort } = await startOurClient(home, client, serve);
    started.push(cli);
    const ok = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.toString(), HELLO);
    assert.equal(await socks5Outcome(socksPort, "localhost", await closedPort()), socks5Reply(0x05).toString("hex"));
    assert.equal(await socks5Outcome(socksPort, "127.0.0.1", http.port), socks5Reply(0x02).toString("hex"));
    await cli.stop();
    assertNoCrash(cli.stderr());
  });

  test("our own client's -L and -R through it", async () => {
    const localPort = await freePort();
    const remotePort = await freePort();
    await home.writeKnownHosts(`${serve.knownHostsLine}\n`);
    const cli = startCli(
      ["-N", "-L", `127.0.0.1:${localPort}:localhost:${http.port}`, "-R", `${remotePort}:localhost:${http.port}`, "-i", client.privatePath, "-o", "IdentitiesOnly=yes", "-p", String(serve.port), "me@127.0.0.1"],
      { home: home.home },
    );
    started.push(cli);
    await waitForListen(localPort, "127.0.0.1", cli);
    await waitForListen(remotePort, "127.0.0.1", cli);
    for (const port of [localPort, remotePort]) {
      const result = await curlDirect(`http://127.0.0.1:${port}/hello`);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString(), HELLO);
    }
    await cli.stop();
    assertNoCrash(cli.stderr());
  });

  test("our client's remote dynamic forward (-R port alone) through it: curl on the serve side, by name; refused by IP", async () => {
    const remotePort = await freePort();
    await home.writeKnownHosts(`${serve.knownHostsLine}\n`);
    const cli = startCli(["-N", "-R", `127.0.0.1:${remotePort}`, "-i", client.privatePath, "-o", "IdentitiesOnly=yes", "-p", String(serve.port), "me@127.0.0.1"], { home: home.home });
    started.push(cli);
    await waitForLine(cli, new RegExp(`SOCKS proxy on the server's 127\\.0\\.0\\.1:${remotePort} \\(-R 127\\.0\\.0\\.1:${remotePort}\\)`), "the -R announcement");
    const byName = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${remotePort}`, `http://localhost:${http.port}/hello`);
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(byName.stdout.toString(), HELLO);
    const byIp = await curlThroughSocks("--socks5", `127.0.0.1:${remotePort}`, `http://127.0.0.1:${http.port}/hello`);
    assert.equal(byIp.code, 97, byIp.stderr);
    await waitForLine(cli, /Refused SOCKS5 CONNECT to 127\.0\.0\.1:\d+ from .* on the far side/, "the refusal line");
    await cli.stop();
    assertNoCrash(cli.stderr());
  });

  test("the host key is the same after a restart", async () => {
    await serve.cli.stop();
    const again = await startServe(home);
    assert.equal(again.fingerprint, serve.fingerprint);
    assert.equal(again.knownHostsLine.split(" ").slice(1).join(" "), serve.knownHostsLine.split(" ").slice(1).join(" "));
    assert.doesNotMatch(again.cli.stderr(), /Made a new host key/);
    const stopped = await again.cli.stop("SIGTERM");
    assert.equal(stopped.code, 0);
    assert.match(again.cli.stderr(), /^Stopped by SIGTERM: 0 logins, 0 failed logins, 0 connections/m);
    serve = await startServe(home);
    await writeFile(knownHosts, `${serve.knownHostsLine}\n`);
  });

  test("--permit-open limits destinations: our client's SOCKS port answers 0x02", async () => {
    const limited = await startSeparateServe(dir, "permit-open", `${client.publicLine}\n`, ["--permit-open", `localhost:${http.port}`]);
    const { cli, socksPort } = await startOurClient(limited.home, client, limited);
    try {
      const allowed = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${http.port}/hello`);
      assert.equal(allowed.stdout.toString(), HELLO);
      assert.equal(await socks5Outcome(socksPort, "localhost", await closedPort()), socks5Reply(0x02).toString("hex"));
      await waitForLine(limited.cli, /serve: refused localhost:\d+ for 127\.0\.0\.1 port \d+: not permitted/, "the refusal line");
    } finally {
      await cli.stop();
      await limited.stop();
    }
  });

  test("authorized_keys options: from= refuses other addresses, permitopen= limits that key", async () => {
    const fromKey = await makeKey(dir, "from-elsewhere");
    const openKey = await makeKey(dir, "permit-open");
    const limited = await startSeparateServe(
      dir,
      "options",
      `from="192.0.2.0/24" ${fromKey.publicLine}\npermitopen="localhost:${http.port}" ${openKey.publicLine}\ncommand="/bin/false" ${client.publicLine}\n`,
    );
    assert.match(limited.cli.stderr(), /authorized_keys:3: option "command" is not supported/);
    const kh = limited.knownHosts;
    try {
      const refused = startProcess("ssh", [...sshArgs(fromKey, kh, limited.port), "-N", "-D", String(await freePort()), "me@127.0.0.1"]);
      assert.equal((await refused.exited).code, 255);
      assert.match(refused.stderr(), /Permission denied \(publickey\)/);
      const commandKey = startProcess("ssh", [...sshArgs(client, kh, limited.port), "-N", "-D", String(await freePort()), "me@127.0.0.1"]);
      assert.equal((await commandKey.exited).code, 255);

      const localPort = await freePort();
      const other2 = await freePort();
      const ssh = startProcess("ssh", [...sshArgs(openKey, kh, limited.port), "-N", "-L", `127.0.0.1:${localPort}:localhost:${http.port}`, "-L", `127.0.0.1:${other2}:127.0.0.1:${http.port}`, "me@127.0.0.1"]);
      try {
        await waitForListen(localPort, "127.0.0.1", ssh);
        const allowed = await curlDirect(`http://127.0.0.1:${localPort}/hello`);
        assert.equal(allowed.stdout.toString(), HELLO);
        const blocked = await curlDirect(`http://127.0.0.1:${other2}/hello`);
        assert.notEqual(blocked.code, 0);
        assert.match(ssh.stderr(), /administratively prohibited/);
      } finally {
        await ssh.stop();
      }
    } finally {
      await limited.stop();
    }
  });

  test("a burst of failed logins slows that address down, and only that address", async () => {
    const watched = await startSeparateServe(dir, "burst", `${client.publicLine}\n`, ["-v"]);
    const kh = watched.knownHosts;
    try {
      // Six refused attempts are free (a client may try that many keys); the seventh on each is answered later.
      for (let i = 0; i < 8; i++) {
        const ssh = startProcess("ssh", [...sshArgs(stranger, kh, watched.port), "-N", "-D", String(await freePort()), "me@127.0.0.1"]);
        assert.equal((await ssh.exited).code, 255);
      }
      await waitForLine(watched.cli, /serve: 127\.0\.0\.1 keeps failing to log in: its next attempts wait \d+ s before each answer/, "the slow-down line");
      await waitForLine(watched.cli, /serve: answering 127\.0\.0\.1 port \d+ after \d+ s \(it keeps failing to log in\)/, "a delayed answer");
      // Another address logs in with the right key, and is neither slowed nor named.
      const socksPort = await freePort();
      const fine = startProcess("ssh", [...sshArgs(client, kh, watched.port), "-b", "127.0.0.2", "-N", "-D", `127.0.0.1:${socksPort}`, "me@127.0.0.1"]);
      try {
        await waitForListen(socksPort, "127.0.0.1", fine);
        await waitForLine(watched.cli, /serve: accepted key \S+ .* from 127\.0\.0\.2 port/, "the other address's login");
        assert.doesNotMatch(watched.cli.stderr(), /127\.0\.0\.2 keeps failing|answering 127\.0\.0\.2/);
      } finally {
        await fine.stop();
      }
    } finally {
      await watched.stop();
    }
  });

  test("restrict forbids forwarding; permitlisten= limits a key's -R", async () => {
    const restricted = await makeKey(dir, "restricted");
    const listenOnly = await makeKey(dir, "listen-only");
    const allowedPort = await freePort();
    const limited = await startSeparateServe(dir, "restrict", `restrict ${restricted.publicLine}\nrestrict,port-forwarding,permitlisten="${allowedPort}" ${listenOnly.publicLine}\n`);
    const kh = limited.knownHosts;
    try {
      const localPort = await freePort();
      const noForwarding = startProcess("ssh", [...sshArgs(restricted, kh, limited.port), "-o", "ExitOnForwardFailure=no", "-N", "-L", `127.0.0.1:${localPort}:localhost:${http.port}`, "me@127.0.0.1"]);
      try {
        await waitForListen(localPort, "127.0.0.1", noForwarding);
        const blocked = await curlDirect(`http://127.0.0.1:${localPort}/hello`);
        assert.notEqual(blocked.code, 0);
        await waitForLine(limited.cli, /serve: refused localhost:\d+ for 127\.0\.0\.1 port \d+: not permitted \(the key's authorized_keys line forbids forwarding\)/, "the restrict refusal");
      } finally {
        await noForwarding.stop();
      }
      const wrongPort = await freePort();
      const refusedListen = startProcess("ssh", [...sshArgs(listenOnly, kh, limited.port), "-N", "-R", `${wrongPort}:localhost:${http.port}`, "me@127.0.0.1"]);
      assert.equal((await refusedListen.exited).code, 255);
      assert.match(refusedListen.stderr(), /remote port forwarding failed for listen port/);
      const rightListen = startProcess("ssh", [...sshArgs(listenOnly, kh, limited.port), "-N", "-R", `${allowedPort}:localhost:${http.port}`, "me@127.0.0.1"]);
      try {
        await waitForListen(allowedPort, "127.0.0.1", rightListen);
        const result = await curlDirect(`http://127.0.0.1:${allowedPort}/hello`);
        assert.equal(result.stdout.toString(), HELLO);
      } finally {
        await rightListen.stop();
      }
    } finally {
      await limited.stop();
    }
  });

  test("connections that do not log in are closed after --login-grace-time, and at most 8 from one address wait at once", async () => {
    const limited = await startSeparateServe(dir, "grace", `${client.publicLine}\n`, ["--login-grace-time", "2"]);
    const idle: RawClient[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const raw = await RawClient.connect(limited.port);
        idle.push(raw);
        assert.match((await raw.read(8, "the banner")).toString("latin1"), /^SSH-2\.0-/);
      }
      // The ninth from the same address is dropped at once, the flood said once.
      const ninth = await RawClient.connect(limited.port);
      await ninth.readToEnd("the ninth connection to be closed");
      ninth.destroy();
      await waitForLine(limited.cli, /serve: dropping new connections from 127\.0\.0\.1: 8 from there \(8 in all\) have not logged in yet/, "the flood line");
      for (const raw of idle) await raw.readToEnd("an idle connection to be closed by the grace time");
      await waitForLine(limited.cli, /serve: 127\.0\.0\.1 port \d+ did not log in within 2 s; disconnecting\./, "the grace-time line");
      // Room again: a real client logs in.
      const socksPort = await freePort();
      const ssh = startProcess("ssh", [...sshArgs(client, limited.knownHosts, limited.port), "-N", "-D", `127.0.0.1:${socksPort}`, "me@127.0.0.1"]);
      try {
        await waitForListen(socksPort, "127.0.0.1", ssh);
      } finally {
        await ssh.stop();
      }
    } finally {
      for (const raw of idle) raw.destroy();
      await limited.stop();
    }
  });

  test("stops on SIGINT with a summary line", async () => {
    const status = await serve.cli.stop("SIGINT");
    assert.equal(status.code, 0);
    assert.match(serve.cli.stderr(), /^Stopped by SIGINT: \d+ logins?, \d+ failed logins?, \d+ connections?, /m);
    assertNoCrash(serve.cli.stderr());
  });
});

