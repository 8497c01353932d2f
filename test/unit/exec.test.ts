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

let server: Server;
let port = 0;
before(async () => {
  // Something listening where the tunnel would be: runExec only checks that it answers.
  server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
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
