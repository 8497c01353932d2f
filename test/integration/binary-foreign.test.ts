/**
 * The foreign single executables `npm run build:binaries` writes to dist/,
 * run for real (binary.test.ts checks only their headers):
 *
 * - safetunnel-linux-arm64 under qemu-user (`qemu-aarch64 -L
 *   /usr/aarch64-linux-gnu`), copied to an empty folder with an environment
 *   of only PATH (an empty folder: no node) and HOME: --version, a real -D
 *   tunnel to a private loopback sshd for curl --socks5-hostname, plain
 *   --socks5 (an IP address) refused, and exit 0 on SIGTERM. --version under
 *   emulation took 1.1 s (median of 30) against about 0.1 s natively, so the
 *   waits are long bounds.
 * - safetunnel-win-x64.exe under wine (wine64 in Windows 10 mode, a prefix of
 *   the test's own): --version and the same tunnel and refusal. Its output
 *   goes to files: Node under wine 8 fails with "open EBADF" on a pipe.
 *
 * Each is skipped, naming the apt packages, where its emulator is missing
 * (scripts/ensure-test-tools.sh installs them).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { delay, within } from "../helpers/child.ts";
import { curlThroughSocks } from "../helpers/curl.ts";
import { repoRoot, type Running, startProcess, stderrLines, waitForLine, waitForListen } from "../helpers/run.ts";
import { freePort, HELLO } from "../helpers/targets.ts";
import { loginArgs } from "../helpers/tunnel.ts";
import { loneBinary, type LoneBinary } from "../helpers/lone-binary.ts";
import { bounded } from "../helpers/wait.ts";

const LINUX_ARM64 = join(repoRoot(), "dist", "safetunnel-linux-arm64");
/** qemu-aarch64's `-L`: where the guest's /lib/ld-linux-aarch64.so.1 and libraries are looked up. */
const AARCH64_ROOT = "/usr/aarch64-linux-gnu";
/** What the binary needs from AARCH64_ROOT besides libc (Node links libstdc++), by the apt package that brings it. */
const AARCH64_FILES: [path: string, aptPackage: string][] = [
  [join(AARCH64_ROOT, "lib", "ld-linux-aarch64.so.1"), "libc6-arm64-cross"],
  [join(AARCH64_ROOT, "lib", "libstdc++.so.6"), "libstdc++6-arm64-cross"],
];
/** Bounds, not expectations: --version took 1.0-1.7 s under qemu on a busy 2-core machine, the tunnel test about 3 s. */
const START_MS = 60_000;
const STOP_MS = 30_000;

/** qemu-aarch64's absolute path from this process's PATH (the binary's own PATH is an empty folder). */
function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const QEMU = findOnPath("qemu-aarch64");

function skipReason(): string | undefined {
  const missing: string[] = [];
  const packages: string[] = [];
  if (QEMU === undefined) {
    missing.push("qemu-aarch64 (not on PATH)");
    packages.push("qemu-user");
  }
  for (const [path, aptPackage] of AARCH64_FILES) {
    if (!existsSync(path)) {
      missing.push(path);
      packages.push(aptPackage);
    }
  }
  if (missing.length === 0) return undefined;
  return `cannot run the linux-arm64 binary: missing ${missing.join(", ")}; apt-get install ${packages.join(" ")} (bash scripts/ensure-test-tools.sh does)`;
}

describe("the linux-arm64 single executable under qemu-aarch64", { skip: skipReason() ?? false }, () => {
  let rig: LoneBinary;

  before(async () => {
    rig = await loneBinary(LINUX_ARM64, "safetunnel");
  });

  after(async () => {
    await rig?.cleanup();
  });

  /**
   * The binary under qemu-aarch64 with an environment of PATH (a folder with
   * no node) and HOME only. qemu-user translates in-process: the PID is
   * qemu's and the guest's alike, and signals sent to it reach the guest.
   */
  function startBinary(args: string[]): Running {
    return rig.track(startProcess(QEMU!, ["-L", AARCH64_ROOT, rig.binary, ...args], { env: { PATH: rig.emptyPath, HOME: rig.home.home }, cwd: rig.app }));
  }

  test("--version prints exactly 'safetunnel <package.json version>' with no node on PATH", async () => {
    const version = JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")).version as string;
    const child = startBinary(["--version"]);
    const status = await bounded(child.exited, "--version under qemu to exit", START_MS);
    assert.deepEqual(status, { code: 0, signal: null }, child.stderr());
    assert.equal(child.stdout(), `safetunnel ${version}\n`);
    assert.equal(child.stderr(), "");
  });

  test("carries a real -D tunnel for curl --socks5-hostname by name, refuses plain --socks5, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const proxy = `127.0.0.1:${port}`;
    const url = `http://localhost:${rig.http.port}/hello`;
    const tunnel = startBinary(["-N", "-D", proxy, ...loginArgs(rig.sshd)]);
    await waitForListen(port, "127.0.0.1", tunnel, START_MS);

    const fetched = await curlThroughSocks("--socks5-hostname", proxy, url, { maxTimeSeconds: 60 });
    assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; safetunnel: ${tunnel.stderr()}`);
    assert.equal(fetched.stderr, "");
    assert.equal(fetched.stdout.toString(), HELLO);
    assert.deepEqual(rig.http.requests, [`localhost:${rig.http.port}`]);

    // Plain --socks5: curl resolves "localhost" itself and sends 127.0.0.1, which is refused with reply 2.
    const logOffset = tunnel.stderr().length;
    const refused = await curlThroughSocks("--socks5", proxy, url, { maxTimeSeconds: 60 });
    assert.equal(refused.code, 97, refused.stderr);
    assert.match(refused.stderr, /\(2\)/);
    assert.equal(refused.stdout.length, 0);
    assert.deepEqual(rig.http.requests, [`localhost:${rig.http.port}`], "the refused request reached the target");
    const refusal = new RegExp(`^Warning: Refused SOCKS5 CONNECT to 127\\.0\\.0\\.1:${rig.http.port} from 127\\.0\\.0\\.1:\\d+ .*: it carries an IP address`);
    await waitForLine(tunnel, refusal, "the refusal line", logOffset);
    const lines = stderrLines(tunnel, logOffset).filter((line) => line.includes("Refused"));
    assert.equal(lines.length, 1, lines.join("\n"));

    // By PID, which is qemu's: it delivers SIGTERM to the emulated Node, whose handler ends with 0.
    process.kill(tunnel.pid, "SIGTERM");
    const status = await bounded(tunnel.exited, "safetunnel under qemu to exit after SIGTERM", STOP_MS);
    assert.deepEqual(status, { code: 0, signal: null }, tunnel.stderr());
  });
});

const WIN_X64 = join(repoRoot(), "dist", "safetunnel-win-x64.exe");
/** Debian's wine64 (apt wine64): the 64-bit loader, not on PATH. */
const WINE64 = "/usr/lib/wine/wine64";
const WINESERVER = "/usr/lib/wine/wineserver";

describe("the win-x64 single executable under wine", { skip: existsSync(WINE64) ? false : `cannot run the .exe: no ${WINE64}; apt-get install wine64 (bash scripts/ensure-test-tools.sh does)` }, () => {
  let rig: LoneBinary;
  let env: NodeJS.ProcessEnv;
  /** Numbers the output files of each .exe run. */
  let outputs = 0;

  before(async () => {
    rig = await loneBinary(WIN_X64, "safetunnel.exe");
    // A Wine prefix of our own, in Windows 10 mode (Node 22 refuses older Windows); quiet.
    env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: rig.home.home, WINEPREFIX: join(rig.scratch, "prefix"), WINEDEBUG: "-all" };
    const setUp = rig.track(startProcess(WINE64, ["winecfg", "/v", "win10"], { env, cwd: rig.scratch }));
    const status = await bounded(setUp.exited, "wine to set up its prefix", 120_000);
    assert.equal(status.code, 0, setUp.stderr());
  });

  after(async () => {
    // The wineserver our wine64 runs started for this prefix: ended, or it lingers a few seconds.
    if (env !== undefined && existsSync(WINESERVER)) await within(startProcess(WINESERVER, ["-k"], { env }).exited, 15_000);
    await rig?.cleanup();
  });

  /**
   * The .exe under wine, its stdout and stderr in files: on a pipe, Node under
   * wine 8 fails with "open EBADF" (measured: a pipe for stdout alone is
   * enough), so the shell redirects them and `exec`s wine64, whose PID it is.
   */
  function startExe(args: string[]): { child: Running; stdout: () => Promise<string>; stderr: () => Promise<string> } {
    const id = (outputs += 1);
    const out = join(rig.scratch, `out-${id}.txt`);
    const err = join(rig.scratch, `err-${id}.txt`);
    const child = startProcess("/bin/sh", ["-c", 'out="$1"; err="$2"; shift 2; exec "$@" >"$out" 2>"$err" </dev/null', "sh", out, err, WINE64, rig.binary, ...args], {
      env,
      cwd: rig.app,
    });
    rig.track(child);
    const read = (path: string) => async () => (existsSync(path) ? (await readFile(path, "utf8")).replace(/\r\n/g, "\n") : "");
    return { child, stdout: read(out), stderr: read(err) };
  }

  test("--version prints exactly 'safetunnel <package.json version>'", async () => {
    const version = JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")).version as string;
    const exe = startExe(["--version"]);
    const status = await bounded(exe.child.exited, "--version under wine to exit", START_MS);
    assert.equal(status.code, 0, await exe.stderr());
    assert.equal(await exe.stdout(), `safetunnel ${version}\n`);
  });

  test("carries a real -D tunnel for curl --socks5-hostname by name and refuses plain --socks5", async () => {
    const port = await freePort();
    const proxy = `127.0.0.1:${port}`;
    const url = `http://localhost:${rig.http.port}/hello`;
    // The key and known_hosts by path: the Windows process finds no ~/.ssh of its own.
    const sshDir = join(rig.home.home, ".ssh");
    const tunnel = startExe(["-N", "-D", proxy, "-i", join(sshDir, "id_ed25519"), "-o", `UserKnownHostsFile=${join(sshDir, "known_hosts")}`, ...loginArgs(rig.sshd)]);
    await waitForListen(port, "127.0.0.1", tunnel.child, START_MS);
    const fetched = await curlThroughSocks("--socks5-hostname", proxy, url, { maxTimeSeconds: 60 });
    assert.equal(fetched.code, 0, `curl: ${fetched.stderr}; safetunnel: ${await tunnel.stderr()}`);
    assert.equal(fetched.stdout.toString(), HELLO);
    const refused = await curlThroughSocks("--socks5", proxy, url, { maxTimeSeconds: 60 });
    assert.equal(refused.code, 97, refused.stderr);
    assert.match(refused.stderr, /\(2\)/);
    const refusal = /Refused SOCKS5 CONNECT to 127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+.*: it carries an IP address/;
    // Bounded: up to 300 reads 100 ms apart.
    let log = "";
    for (let i = 0; i < 300 && !refusal.test(log); i++) {
      await delay(100);
      log = await tunnel.stderr();
    }
    assert.match(log, refusal);
  });
});
