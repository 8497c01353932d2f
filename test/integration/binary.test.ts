/**
 * The single executables `npm run build:binaries` writes to dist/ (npm test
 * builds them first). The linux-x64 one alone, copied to an empty folder and
 * run with an environment of only PATH (no node on it) and HOME, carries a
 * real tunnel to a private loopback sshd with curl through it, still refuses
 * a request that carries an IP address, and runs nothing a NODE_OPTIONS
 * --require names. The other targets are checked for their file format:
 * PE32+ x86-64, Mach-O arm64, ELF aarch64. SHA256SUMS matches every file.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { repoRoot, type Running, startProcess, waitForLine, waitForListen } from "../helpers/run.ts";
import { freePort } from "../helpers/targets.ts";
import { loginArgs } from "../helpers/tunnel.ts";
import { loneBinary, type LoneBinary } from "../helpers/lone-binary.ts";

const DIST = join(repoRoot(), "dist");
const LINUX_X64 = join(DIST, "safetunnel-linux-x64");

/** The first bytes of a file. */
async function head(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, 0);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** The bytes of a file at an offset. */
async function slice(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    assert.equal(bytesRead, length, `${path}: ${length} bytes at ${position}`);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** The section names of a 64-bit little-endian ELF file, from its section header table (the ELF-64 object file format). */
async function elfSectionNames(path: string): Promise<string[]> {
  const header = await head(path, 64);
  const shoff = Number(header.readBigUInt64LE(0x28));
  const shentsize = header.readUInt16LE(0x3a);
  const shnum = header.readUInt16LE(0x3c);
  const shstrndx = header.readUInt16LE(0x3e);
  const table = await slice(path, shoff, shentsize * shnum);
  const names = table.subarray(shstrndx * shentsize, (shstrndx + 1) * shentsize);
  const strings = await slice(path, Number(names.readBigUInt64LE(0x18)), Number(names.readBigUInt64LE(0x20)));
  const result: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const nameOffset = table.readUInt32LE(i * shentsize);
    result.push(strings.toString("latin1", nameOffset, strings.indexOf(0, nameOffset)));
  }
  return result;
}

describe("the single executables in dist/", () => {
  let rig: LoneBinary;

  before(async () => {
    rig = await loneBinary(LINUX_X64, "safetunnel");
  });

  after(async () => {
    await rig?.cleanup();
  });

  /** The binary with an environment of PATH (a folder with no node) and HOME only, plus `extra`. */
  function startBinary(args: string[], extra: Record<string, string> = {}): Running {
    return rig.track(startProcess(rig.binary, args, { env: { PATH: rig.emptyPath, HOME: rig.home.home, ...extra }, cwd: rig.app }));
  }

  test("--version answers alone, with no node on PATH", async () => {
    const version = JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")).version as string;
    const child = startBinary(["--version"]);
    const status = await child.exited;
    assert.equal(status.code, 0, child.stderr());
    assert.equal(child.stdout(), `safetunnel ${version}\n`);
    assert.equal(child.stderr(), "");
  });

  test("NODE_OPTIONS and other Node flags from the environment run nothing", async () => {
    const marker = join(rig.scratch, "injected");
    const script = join(rig.scratch, "inject.cjs");
    await writeFile(script, `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran"); process.stdout.write("INJECTED\\n");\n`);
    const child = startBinary(["--version"], { NODE_OPTIONS: `--require ${script}` });
    const status = await child.exited;
    assert.equal(status.code, 0, child.stderr());
    assert.doesNotMatch(child.stdout(), /INJECTED/);
    assert.equal(existsSync(marker), false, "the --require script ran");
  });

  test("carries a real -D tunnel to the loopback sshd, and refuses a request carrying an IP address", async () => {
    const port = await freePort();
    const tunnel = startBinary(["-N", "-D", `127.0.0.1:${port}`, ...loginArgs(rig.sshd)]);
    await waitForListen(port, "127.0.0.1", tunnel);
    const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${rig.http.port}/hello`);
    assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; safetunnel: ${tunnel.stderr()}`);
    assert.equal(fetched.stdout.toString(), "hello from target\n");
    // Plain --socks5: curl resolves the name itself and sends the address, which is refused.
    const refused = await curlThroughSocks("--socks5", `127.0.0.1:${port}`, `http://localhost:${rig.http.port}/hello`);
    assert.notEqual(refused.code, 0);
    const status = await tunnel.stop("SIGTERM");
    assert.equal(status.code, 0, tunnel.stderr());
    assert.match(tunnel.stderr(), /Refused SOCKS5 CONNECT to 127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+.*: it carries an IP address/);
  });

  test("the same file is both ends: serve, and a -D tunnel through it", async () => {
    const authorizedKeys = join(rig.scratch, "authorized_keys");
    await writeFile(authorizedKeys, await readFile(join(rig.home.sshDir, "id_ed25519.pub")));
    const servePort = await freePort();
    const serve = startBinary(["serve", "--listen", `127.0.0.1:${servePort}`, "--authorized-keys", authorizedKeys], { XDG_CONFIG_HOME: join(rig.scratch, "config") });
    await waitForListen(servePort, "127.0.0.1", serve);
    const knownHostsLine = await waitForLine(serve, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${servePort} ssh-ed25519 `), "the known_hosts line");
    const knownHosts = join(rig.scratch, "known_hosts_serve");
    await writeFile(knownHosts, `${knownHostsLine}\n`);
    const socksPort = await freePort();
    const tunnel = startBinary(["-N", "-D", `127.0.0.1:${socksPort}`, "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "BatchMode=yes", "-p", String(servePort), "me@127.0.0.1"]);
    await waitForListen(socksPort, "127.0.0.1", tunnel);
    const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${rig.http.port}/hello`);
    assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; client: ${tunnel.stderr()}; serve: ${serve.stderr()}`);
    assert.equal(fetched.stdout.toString(), "hello from target\n");
    assert.equal((await tunnel.stop("SIGTERM")).code, 0);
    assert.equal((await serve.stop("SIGTERM")).code, 0);
    assert.match(serve.stderr(), /^Stopped by SIGTERM: 1 login, 0 failed logins, 1 connection, /m);
  });

  test("exec and nc from the binary: ssh under exec reaches the server by name through the binary's own nc", async () => {
    const port = await freePort();
    const tunnel = startBinary(["-N", "-v", "-D", `127.0.0.1:${port}`, ...loginArgs(rig.sshd)]);
    await waitForListen(port, "127.0.0.1", tunnel);
    // The user's own GIT_SSH_COMMAND, kept by exec with the ProxyCommand added: the known_hosts entry is
    // for [127.0.0.1]:PORT, so the alias lets ssh check the key while it connects by the name localhost.
    const own = [
      "/usr/bin/ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes",
      `-o UserKnownHostsFile=${join(rig.home.sshDir, "known_hosts")} -o HostKeyAlias=[127.0.0.1]:${rig.sshd.port}`,
      `-i ${join(rig.home.sshDir, "id_ed25519")} -p ${rig.sshd.port}`,
    ].join(" ");
    const child = startBinary(["exec", "--proxy", `127.0.0.1:${port}`, "--", "/bin/sh", "-c", 'printf "%s\\n" "$GIT_SSH_COMMAND"; eval "$GIT_SSH_COMMAND $0 echo through-nc"', `${rig.sshd.user}@localhost`], { GIT_SSH_COMMAND: own });
    const status = await child.exited;
    assert.equal(status.code, 0, `exec: ${child.stderr()}\ntunnel: ${tunnel.stderr()}`);
    const [command, answer] = child.stdout().split("\n");
    assert.equal(command, `${own} -o "ProxyCommand=${rig.binary} nc --proxy 127.0.0.1:${port} %h %p"`);
    assert.equal(answer, "through-nc");
    assert.equal((await tunnel.stop("SIGTERM")).code, 0);
    assert.match(tunnel.stderr(), new RegExp(`SOCKS5 CONNECT localhost:${rig.sshd.port}\\b`));
  });

  test("-f from the binary: it starts itself again in the background, the foreground exits 0, SIGTERM stops it with its summary in the -E file", async () => {
    const port = await freePort();
    const log = join(rig.scratch, "background.log");
    const pidFile = join(rig.scratch, "background.pid");
    const foreground = startBinary(["-f", "-N", "-D", `127.0.0.1:${port}`, "-E", log, "--pid-file", pidFile, ...loginArgs(rig.sshd)]);
    const status = await foreground.exited;
    const pid = Number((await readFile(pidFile, "utf8").catch(() => "0")).trim());
    try {
      assert.equal(status.code, 0, foreground.stderr());
      assert.match(foreground.stderr(), new RegExp(`^In the background as PID ${pid} \\(stop it with kill ${pid}\\); its log goes to `, "m"));
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${rig.http.port}/hello`);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.equal(fetched.stdout.toString(), "hello from target\n");
      assert.equal(await readlink(`/proc/${pid}/exe`), rig.binary, "the background process is the binary itself");
    } finally {
      if (pid > 0) process.kill(pid, "SIGTERM");
    }
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(existsSync(pidFile), false, "the PID file is removed as it stops");
    assert.match(await readFile(log, "utf8"), /\nStopped by SIGTERM: 1 connection, /);
  });

  test("the other targets are the right kind of executable", async () => {
    // PE32+: "MZ", then at e_lfanew "PE\0\0", machine 0x8664 (x86-64), optional header magic 0x20b.
    const pe = await head(join(DIST, "safetunnel-win-x64.exe"), 4096);
    assert.equal(pe.toString("latin1", 0, 2), "MZ");
    const lfanew = pe.readUInt32LE(0x3c);
    assert.equal(pe.toString("latin1", lfanew, lfanew + 4), "PE\0\0");
    assert.equal(pe.readUInt16LE(lfanew + 4), 0x8664);
    assert.equal(pe.readUInt16LE(lfanew + 24), 0x20b);
    // Mach-O 64-bit (magic 0xfeedfacf, little-endian), CPU type ARM64 (0x0100000c).
    const macho = await head(join(DIST, "safetunnel-darwin-arm64"), 8);
    assert.equal(macho.readUInt32LE(0), 0xfeedfacf);
    assert.equal(macho.readUInt32LE(4), 0x0100000c);
    // ELF 64-bit little-endian, e_machine 183 (EM_AARCH64).
    const elf = await head(join(DIST, "safetunnel-linux-arm64"), 20);
    assert.equal(elf.toString("latin1", 0, 4), "\x7fELF");
    assert.equal(elf[4], 2);
    assert.equal(elf.readUInt16LE(18), 183);
  });

  test("the Linux ones are stripped of their symbol tables", async () => {
    for (const name of ["safetunnel-linux-x64", "safetunnel-linux-arm64"]) {
      const sections = await elfSectionNames(join(DIST, name));
      // A .text section proves the table was read right; .symtab is what strip removes.
      assert.ok(sections.includes(".text"), `${name}: ${sections.join(" ")}`);
      assert.ok(!sections.includes(".symtab"), `${name} still has a symbol table: build:binaries strips it`);
    }
  });

  test("SHA256SUMS lists every binary with its checksum", async () => {
    const sums = await readFile(join(DIST, "SHA256SUMS"), "utf8");
    const names = ["safetunnel-linux-x64", "safetunnel-linux-arm64", "safetunnel-win-x64.exe", "safetunnel-darwin-arm64"];
    const lines = sums.trimEnd().split("\n");
    assert.deepEqual(lines.map((line) => line.split("  ")[1]).sort(), [...names].sort());
    for (const line of lines) {
      const [sum, name] = line.split("  ") as [string, string];
      const actual = createHash("sha256").update(await readFile(join(DIST, name))).digest("hex");
      assert.equal(sum, actual, name);
    }
  });
});
