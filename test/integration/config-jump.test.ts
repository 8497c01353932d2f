/**
 * ssh_config, jump hosts and connection failures end to end: the built CLI
 * with a HOME of its own against real sshds on loopback. The jump sshd logs
 * at DEBUG1 so its `server_request_direct_tcpip` line shows that a
 * connection to the target really went through it.
 */
import assert from "node:assert/strict";
import { copyFile, chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeHomeSet, runCli, startCli, type Home } from "../helpers/run.ts";
import { connectOutcome } from "../helpers/sockets.ts";
import { makeKey, startSshd, type KeyPair, type Sshd } from "../helpers/sshd.ts";
import { closedPort, freePort, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { assertWorkingTunnel } from "../helpers/tunnel.ts";

let scratch: string;
let clientKey: KeyPair;
let impostor: KeyPair;
let target: Sshd;
let jump: Sshd;
let http: HttpTarget;
const homes = makeHomeSet();

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-config-jump-"));
  clientKey = await makeKey(scratch, "client");
  impostor = await makeKey(scratch, "impostor-host-key");
  target = await startSshd({ authorizedKeys: [clientKey.publicLine] });
  jump = await startSshd({ authorizedKeys: [clientKey.publicLine], extraConfig: ["LogLevel DEBUG1"] });
  http = await startHttpTarget();
});

after(async () => {
  await jump?.stop();
  await target?.stop();
  await http?.stop();
  await homes.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

/** A HOME whose known_hosts trusts both sshds. */
function trustingHome(): Promise<Home> {
  return homes.trusting(target, jump);
}

/** Put the client key at `~/.ssh/<name>` (mode 0600). */
async function installKey(home: Home, name: string): Promise<string> {
  const path = join(home.sshDir, name);
  await copyFile(clientKey.privatePath, path);
  await chmod(path, 0o600);
  return path;
}

/** Start the CLI, prove the -D port carries a `--socks5-hostname` fetch, stop it; returns stderr. */
function runWorkingTunnel(args: string[], socksPort: number, home: Home): Promise<string> {
  return assertWorkingTunnel(startCli(args, { home: home.home }), socksPort, http);
}

/** How many direct-tcpip channels the jump sshd opened to the target sshd so far. */
function jumpChannelsToTarget(): number {
  // sshd -e ends its lines with "\r\n".
  const line = new RegExp(`server_request_direct_tcpip: originator 127\\.0\\.0\\.1 port \\d+, target 127\\.0\\.0\\.1 port ${target.port}\\r?\\n`, "g");
  return jump.logs().match(line)?.length ?? 0;
}

describe("ssh_config", () => {
  test("a Host alias supplies HostName, Port, User and an IdentityFile with ~ and %h %p %r %u tokens", async () => {
    const home = await trustingHome();
    // %u is the local user; the tests run as the sshd's user, so it equals %r here.
    await installKey(home, `127.0.0.1_${target.port}_${target.user}_${userInfo().username}_key`);
    await home.writeConfig(
      [
        "Host myalias",
        "  HostName 127.0.0.1",
        `  Port ${target.port}`,
        `  User ${target.user}`,
        "  IdentityFile ~/.ssh/%h_%p_%r_%u_key",
        "",
      ].join("\n"),
    );
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-D", String(socksPort), "myalias"], socksPort, home);
    assert.doesNotMatch(stderr, /not accessible|Permission denied/);
  });

  test("-F other.conf is read instead of ~/.ssh/config", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "alias_key");
    const wrongPort = await closedPort();
    await home.writeConfig(`Host myalias\n  HostName 127.0.0.1\n  Port ${wrongPort}\n  IdentityFile ${key}\n`);
    const other = join(home.home, "other.conf");
    await writeFile(other, `Host myalias\n  HostName 127.0.0.1\n  Port ${target.port}\n  IdentityFile ${key}\n`);
    const socksPort = await freePort();
    const stderr = await runWorkingTunnel(["-F", other, "-D", String(socksPort), "myalias"], socksPort, home);
    assert.doesNotMatch(stderr, new RegExp(`port ${wrongPort}`));
  });

  test("Include pulls in a file relative to ~/.ssh whose Host block applies", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "included_key");
    await mkdir(join(home.sshDir, "conf.d"));
    await writeFile(join(home.sshDir, "conf.d", "myalias.conf"), `Host myalias\n  HostName 127.0.0.1\n  Port ${target.port}\n  IdentityFile ${key}\n`);
    await home.writeConfig("Include conf.d/*.conf\n");
    const socksPort = await freePort();
    await runWorkingTunnel(["-D", String(socksPort), "myalias"], socksPort, home);
  });

  test("DynamicForward in the config starts the SOCKS proxy with no -D on the command line", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "alias_key");
    const socksPort = await freePort();
    await home.writeConfig(`Host myalias\n  HostName 127.0.0.1\n  Port ${target.port}\n  IdentityFile ${key}\n  DynamicForward 127.0.0.1:${socksPort}\n`);
    const stderr = await runWorkingTunnel(["myalias"], socksPort, home);
    assert.match(stderr, new RegExp(`SOCKS and HTTP proxy listening on 127\\.0\\.0\\.1:${socksPort} `));
  });

  test("-o Port= overrides the config's Port", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "alias_key");
    await home.writeConfig(`Host myalias\n  HostName 127.0.0.1\n  Port ${await closedPort()}\n  IdentityFile ${key}\n`);
    const socksPort = await freePort();
    await runWorkingTunnel(["-o", `Port=${target.port}`, "-D", String(socksPort), "myalias"], socksPort, home);
  });

  test("-p overrides the config's Port", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "alias_key");
    await home.writeConfig(`Host myalias\n  HostName 127.0.0.1\n  Port ${await closedPort()}\n  IdentityFile ${key}\n`);
    const socksPort = await freePort();
    await runWorkingTunnel(["-p", String(target.port), "-D", String(socksPort), "myalias"], socksPort, home);
  });
});

describe("jump hosts", () => {
  test("-J user@127.0.0.1:JUMPPORT reaches the target through the jump sshd", async () => {
    const home = await trustingHome();
    await installKey(home, "id_ed25519");
    const before = jumpChannelsToTarget();
    const socksPort = await freePort();
    await runWorkingTunnel(["-J", `${jump.user}@127.0.0.1:${jump.port}`, "-p", String(target.port), "-D", String(socksPort), `${target.user}@127.0.0.1`], socksPort, home);
    assert.equal(jumpChannelsToTarget() - before, 1, jump.logs());
  });

  test("ProxyJump in the config, naming another alias, reaches the target through the jump sshd", async () => {
    const home = await trustingHome();
    const key = await installKey(home, "alias_key");
    await home.writeConfig(
      [
        "Host inner",
        "  HostName 127.0.0.1",
        `  Port ${target.port}`,
        "  ProxyJump bastion",
        "Host bastion",
        "  HostName 127.0.0.1",
        `  Port ${jump.port}`,
        "Host *",
        `  IdentityFile ${key}`,
        `  User ${target.user}`,
        "",
      ].join("\n"),
    );
    const before = jumpChannelsToTarget();
    const socksPort = await freePort();
    await runWorkingTunnel(["-D", String(socksPort), "inner"], socksPort, home);
    assert.equal(jumpChannelsToTarget() - before, 1, jump.logs());
  });

  test("a jump host whose key changed is refused with exit 255 naming the jump host, before the target is reached", async () => {
    const home = await homes.make();
    await installKey(home, "id_ed25519");
    const impostorKey = impostor.publicLine.split(" ").slice(0, 2).join(" ");
    await home.writeKnownHosts(`${target.knownHostsLine()}\n[127.0.0.1]:${jump.port} ${impostorKey}\n`);
    const before = jumpChannelsToTarget();
    const socksPort = await freePort();
    const result = await runCli(["-J", `${jump.user}@127.0.0.1:${jump.port}`, "-p", String(target.port), "-D", String(socksPort), `${target.user}@127.0.0.1`], {
      home: home.home,
    });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.ok(result.stderr.includes(`Host key for [127.0.0.1]:${jump.port} has changed`), result.stderr);
    assert.ok(result.stderr.includes(`${join(home.sshDir, "known_hosts")}:2`), result.stderr);
    assert.equal(jumpChannelsToTarget(), before);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });
});

describe("an SSH server that cannot be reached", () => {
  test("a target the jump host cannot connect to fails with exit 255 naming the target port and 'Connection refused'", async () => {
    const home = await trustingHome();
    await installKey(home, "id_ed25519");
    const port = await closedPort();
    const socksPort = await freePort();
    const result = await runCli(["-J", `${jump.user}@127.0.0.1:${jump.port}`, "-p", String(port), "-D", String(socksPort), `${target.user}@127.0.0.1`], {
      home: home.home,
    });
    assert.equal(result.code, 255, result.stderr);
    assert.ok(result.stderr.includes(`127.0.0.1 port ${port}: Connection refused`), result.stderr);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });

  test("a closed port fails with exit 255 and one 'Connection refused' line", async () => {
    const port = await closedPort();
    const socksPort = await freePort();
    const result = await runCli(["-D", String(socksPort), "-p", String(port), "127.0.0.1"]);
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stdout, "");
    const lines = result.stderr.split("\n").filter((line) => line !== "");
    assert.equal(lines.length, 1, result.stderr);
    assert.ok(lines[0]!.startsWith(`safetunnel: connect to host 127.0.0.1 port ${port}: Connection refused`), result.stderr);
    assert.equal(await connectOutcome(socksPort), "ECONNREFUSED");
  });

  test("an unknown host name fails with exit 255 and 'Could not resolve hostname'", async () => {
    const socksPort = await freePort();
    const result = await runCli(["-D", String(socksPort), "nonexistent.invalid"]);
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stdout, "");
    const lines = result.stderr.split("\n").filter((line) => line !== "");
    assert.equal(lines.length, 1, result.stderr);
    assert.ok(lines[0]!.startsWith("safetunnel: Could not resolve hostname nonexistent.invalid"), result.stderr);
  });
});
