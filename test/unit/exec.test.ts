import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createServer, type Server } from "node:net";
import { after, before, describe, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { runExec, type ExecIo } from "../../src/clients/exec.ts";

/** A child as runExec sees one: kill records, exit on demand. */
class FakeChild extends EventEmitter {
  killed: string[] = [];
  kill(signal: string): boolean {
    this.killed.push(signal);
    return true;
  }
}

/** A stand-in for the tunnel's -D port: it answers exec's check the way `answer` says. */
async function fakeProxy(answer: (request: string) => string | undefined): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", (chunk: Buffer) => {
      requests.push(chunk.toString("latin1"));
      const reply = answer(chunk.toString("latin1"));
      if (reply === undefined) socket.destroy();
      else socket.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port, requests };
}

let server: Server;
let port = 0;
let requests: string[] = [];
before(async () => {
  // The tunnel answers a .invalid name itself: 502, no such host.
  ({ server, port, requests } = await fakeProxy(() => "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
});
after(() => server.close());

function io(options: { terminal: boolean; platform?: NodeJS.Platform; spawn?: ExecIo["spawn"] }) {
  const signals = new EventEmitter();
  const child = new FakeChild();
  let started: () => void = () => {};
  /** Resolves once runExec has started the command (after its check of the proxy). */
  const spawned = new Promise<void>((resolve) => (started = resolve));
  const value: ExecIo = {
    env: { PATH: "/bin" },
    self: ["/usr/local/bin/safetunnel"],
    terminal: options.terminal,
    signals: signals as unknown as ExecIo["signals"],
    spawn:
      options.spawn ??
      (() => {
        setImmediate(started);
        return child as unknown as ChildProcess;
      }),
    platform: options.platform ?? "linux",
  };
  return { value, signals, child, spawned };
}

const plan = (argv: string[]) => ({ command: "exec" as const, proxy: { host: "127.0.0.1", port }, argv, verbosity: 0, json: false });

describe("runExec: signals", () => {
  test("from a terminal only SIGTERM is passed on: Ctrl-C, Ctrl-\\ and the hangup reach the command from the terminal itself", async () => {
    const { value, signals, child, spawned } = io({ terminal: true });
    const outcome = runExec(plan(["sleep", "9"]), value);
    await spawned;
    for (const signal of ["SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM"]) signals.emit(signal);
    child.emit("exit", null, "SIGTERM");
    assert.deepEqual(await outcome, { signal: "SIGTERM" });
    assert.deepEqual(child.killed, ["SIGTERM"]);
    assert.equal(signals.listenerCount("SIGINT"), 0, "listeners removed afterwards");
  });

  test("without a terminal all four are passed on", async () => {
    const { value, signals, child, spawned } = io({ terminal: false });
    const outcome = runExec(plan(["sleep", "9"]), value);
    await spawned;
    for (const signal of ["SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM"]) signals.emit(signal);
    child.emit("exit", 3, null);
    assert.deepEqual(await outcome, { status: 3 });
    assert.deepEqual(child.killed, ["SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM"]);
  });
});

describe("runExec: a command that cannot run", () => {
  test("Windows refusing a .cmd before starting it (EINVAL) is 126 with the cmd /d /c way round, not an internal error", async () => {
    const einval = Object.assign(new Error("spawn EINVAL"), { code: "EINVAL" });
    const { value } = io({ terminal: true, platform: "win32", spawn: () => { throw einval; } });
    await assert.rejects(runExec(plan(["npm.cmd", "install"]), value), {
      code: "COMMAND_NOT_FOUND",
      exitCode: 126,
      message: "exec: cannot run 'npm.cmd' without a shell; a .cmd or .bat program (npm, yarn) runs through cmd: safetunnel exec -- cmd /d /c npm.cmd",
    });
  });

  test("not found is 127; on Windows the message also names the cmd way round", async () => {
    const enoent = Object.assign(new Error("spawn npm ENOENT"), { code: "ENOENT" });
    for (const platform of ["linux", "win32"] as const) {
      const { value, child, spawned } = io({ terminal: true, platform });
      const outcome = runExec(plan(["npm"]), value);
      await spawned;
      child.emit("error", enoent);
      await assert.rejects(outcome, (err: Error & { exitCode?: number }) => {
        assert.equal(err.exitCode, 127);
        assert.equal(/runs through cmd: safetunnel exec -- cmd \/d \/c npm/.test(err.message), platform === "win32");
        return true;
      });
    }
  });
});

describe("runExec: what is at --proxy", () => {
  test("the check asks the HTTP side for a .invalid name, which the tunnel answers itself", () => {
    assert.equal(requests[0], "CONNECT exec-check.safetunnel.invalid:1 HTTP/1.1\r\nHost: exec-check.safetunnel.invalid:1\r\n\r\n");
  });

  test("a port that asks for a login (407) is refused before the command runs: 125 and what to do", async () => {
    const login = await fakeProxy(() => "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    try {
      const { value } = io({ terminal: false, spawn: () => assert.fail("the command must not run") });
      await assert.rejects(runExec({ ...plan(["true"]), proxy: { host: "127.0.0.1", port: login.port } }, value), {
        exitCode: 125,
        message: `exec: the tunnel at 127.0.0.1:${login.port} asks for a login (--socks-auth), which the programs exec runs are not given: use a -D port without --socks-auth for exec`,
      });
    } finally {
      login.server.close();
    }
  });

  test("a port that does not speak HTTP (ssh -D) is not a safetunnel port: 125 and what to do", async () => {
    for (const reply of [undefined, "\x05\xff"]) {
      const other = await fakeProxy(() => reply);
      try {
        const { value } = io({ terminal: false, spawn: () => assert.fail("the command must not run") });
        await assert.rejects(runExec({ ...plan(["true"]), proxy: { host: "127.0.0.1", port: other.port } }, value), {
          exitCode: 125,
          message: new RegExp(`^exec: 127\\.0\\.0\\.1:${other.port} is not a safetunnel -D port \\(no HTTP proxy answered there`),
        });
      } finally {
        other.server.close();
      }
    }
  });
});
