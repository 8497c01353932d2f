/**
 * Idle half-handshakes cannot shut out a new client: at --max-connections the
 * oldest connection still in its handshake is closed for the new one, with
 * one line saying so; established connections are never the ones closed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import { RawClient } from "../helpers/raw-socks.ts";
import { connect, type Socket } from "node:net";
import process from "node:process";
import { readFile } from "node:fs/promises";
import { openFileLimits } from "../../src/forward/connection-limit.ts";
import { cliPath, startProcess, waitForLine, waitForListen, type Home, type Running } from "../helpers/run.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { freePort, HELLO, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";
import { loginArgs, startSshdWithHome, startSocksTunnel } from "../helpers/tunnel.ts";

describe("--max-connections", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  const running: Running[] = [];

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
  });

  after(async () => {
    for (const cli of running) await cli.stop();
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
  });

  test("with every slot held by a silent handshake, a real client still gets through; the oldest silent one is closed", async () => {
    const { cli, port } = await startSocksTunnel(sshd, home, ["--max-connections", "4"]);
    running.push(cli);
    const idle: RawClient[] = [];
    try {
      // A slowloris: connect, send nothing.
      for (let i = 0; i < 4; i++) idle.push(await RawClient.connect(port));
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(fetched.code, 0, `${fetched.stderr}\n${cli.stderr()}`);
      assert.equal(fetched.stdout.toString(), HELLO);
      // The first silent one made room (closed by the proxy); its FIN reaches it.
      await idle[0]!.readToEnd("the oldest silent connection to be closed");
      await waitForLine(cli, /^Warning: 4 connections are open \(--max-connections\); the oldest one still in its handshake was closed to let a new one in\.$/, "the limit line");
    } finally {
      for (const raw of idle) raw.destroy();
    }
  });
});

describe("a slowloris at the open-file limit", () => {
  let home: Home;
  let sshd: Sshd;
  let http: HttpTarget;
  let cli: Running | undefined;

  before(async () => {
    ({ home, sshd } = await startSshdWithHome());
    http = await startHttpTarget();
  });

  after(async () => {
    await cli?.stop();
    await sshd?.stop();
    await http?.stop();
    await home?.cleanup();
  });

  test("with ulimit -n 256 and 400 silent connections, a real client is still served", async () => {
    const port = await freePort();
    // The shell lowers the limit and becomes node (exec), so the PID we stop is the tunnel's.
    const command = `ulimit -n 256 && exec "$0" "$@"`;
    cli = startProcess("/bin/sh", ["-c", command, process.execPath, cliPath(), "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], {
      env: { ...process.env, HOME: home.home },
    });
    await waitForListen(port, "127.0.0.1", cli);
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 400; i++) {
        const socket = connect({ host: "127.0.0.1", port });
        socket.on("error", () => {});
        idle.push(socket);
      }
      await Promise.all(idle.map((socket) => new Promise((resolve) => (socket.connecting ? socket.once("connect", resolve).once("close", resolve) : resolve(undefined)))));
      const fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(fetched.code, 0, `${fetched.stderr}\n${cli.stderr()}`);
      assert.equal(fetched.stdout.toString(), HELLO);
      // The default cap sat below the limit: 256 - 64.
      assert.match(cli.stderr(), /^Warning: 192 connections are open \(--max-connections\); the oldest one still in its handshake was closed to let a new one in\./m);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  test("with ulimit -n 256 and --max-connections above it: said at start-up, and said once when the descriptors run short (the system drops the rest unseen)", async () => {
    const port = await freePort();
    const command = `ulimit -n 256 && exec "$0" "$@"`;
    const run = startProcess("/bin/sh", ["-c", command, process.execPath, cliPath(), "-N", "--max-connections", "1000", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], {
      env: { ...process.env, HOME: home.home },
    });
    const idle: Socket[] = [];
    try {
      await waitForListen(port, "127.0.0.1", run);
      assert.match(
        run.stderr(),
        /^Warning: --max-connections 1000 is more than the open-file limit leaves for clients \(ulimit -n is 256, less 64 for safetunnel itself\): past 192 connections the system drops new clients without a word\. Raise ulimit -n, or give --max-connections 192 or less\.$/m,
      );
      // In rounds, so that a count (at most one a second) runs while the descriptors are short.
      for (let round = 0; round < 6 && !/open files allowed/.test(run.stderr()); round++) {
        for (let i = 0; i < 60; i++) {
          const socket = connect({ host: "127.0.0.1", port });
          socket.on("error", () => {});
          idle.push(socket);
        }
        await new Promise((resolve) => setTimeout(resolve, 1100));
      }
      await waitForLine(run, /^Warning: \d+ of the 256 open files allowed \(ulimit -n\) are in use: at the limit the system drops new clients before safetunnel sees them\. Raise the limit \(ulimit -n in the shell that starts safetunnel, up to its hard limit, ulimit -Hn\) or lower --max-connections\.$/, "the descriptor warning");
      // Once freed (the tunnel closes its ends as it reads the clients' FINs), the descriptors serve clients again.
      for (const socket of idle) socket.destroy();
      let fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      for (let attempt = 0; attempt < 10 && fetched.code !== 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        fetched = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      }
      assert.equal(fetched.code, 0, `${fetched.stderr}\n${run.stderr()}`);
      assert.equal(run.stderr().split("\n").filter((line) => line.includes("open files allowed")).length, 1);
    } finally {
      for (const socket of idle) socket.destroy();
      await run.stop();
    }
  });

  test("a soft limit below the hard one is raised to it as the runtime starts (so ulimit -Sn alone does not starve the tunnel)", async () => {
    const port = await freePort();
    const command = `ulimit -Sn 256 && exec "$0" "$@"`;
    const run = startProcess("/bin/sh", ["-c", command, process.execPath, cliPath(), "-N", "-D", `127.0.0.1:${port}`, ...loginArgs(sshd)], {
      env: { ...process.env, HOME: home.home },
    });
    try {
      await waitForListen(port, "127.0.0.1", run);
      const limits = openFileLimits(await readFile(`/proc/${run.pid}/limits`, "utf8"));
      assert.ok(limits.hard !== undefined && limits.hard > 256, `this machine's hard limit is ${limits.hard}`);
      assert.equal(limits.soft, limits.hard);
      assert.doesNotMatch(run.stderr(), /--max-connections/);
    } finally {
      await run.stop();
    }
  });
});
