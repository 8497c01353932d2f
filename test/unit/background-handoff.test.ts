import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { decodeDownMessage, decodeUpMessage, encodeMessage, LineSplitter, MAX_MESSAGE_BYTES } from "../../src/background/handoff-protocol.ts";
import { BACKGROUND_OF, BACKGROUND_TTY, handoffToForeground, isBackgroundProcess } from "../../src/background/background-end.ts";
import { runInBackground, type ForegroundEnvironment } from "../../src/background/foreground.ts";
import type { TtyLike } from "../../src/ssh/prompt.ts";

describe("the -f hand-off protocol", () => {
  test("messages are one JSON object and a newline, byte for byte", () => {
    assert.equal(encodeMessage({ type: "ready", pid: 4242 }), '{"type":"ready","pid":4242}\n');
    assert.equal(encodeMessage({ type: "log", line: 'a "quoted"\nline' }), '{"type":"log","line":"a \\"quoted\\"\\nline"}\n');
    assert.equal(encodeMessage({ type: "tty-keys", keys: null }), '{"type":"tty-keys","keys":null}\n');
  });

  test("every up message decodes to itself", () => {
    for (const message of [
      { type: "log", line: "x" },
      { type: "tty-write", text: "\rEnter passphrase: " },
      { type: "tty-raw", raw: false },
      { type: "tty-read" },
      { type: "tty-close" },
      { type: "ready", pid: 1 },
    ] as const) {
      assert.deepEqual(decodeUpMessage(encodeMessage(message).trimEnd()), message);
    }
  });

  test("anything else is not a message: not JSON, wrong field types, a PID that is not a positive integer, an oversized line", () => {
    for (const line of ["hello", "[]", "null", '{"type":"log"}', '{"type":"log","line":3}', '{"type":"tty-raw","raw":"yes"}', '{"type":"ready","pid":0}', '{"type":"ready","pid":1.5}', '{"type":"other"}']) {
      assert.equal(decodeUpMessage(line), undefined, line);
    }
    assert.equal(decodeUpMessage(JSON.stringify({ type: "log", line: "x".repeat(MAX_MESSAGE_BYTES) })), undefined);
    assert.deepEqual(decodeDownMessage('{"type":"tty-keys","keys":"pw\\r"}'), { type: "tty-keys", keys: "pw\r" });
    assert.equal(decodeDownMessage('{"type":"tty-keys","keys":7}'), undefined);
    assert.equal(decodeDownMessage('{"type":"ready","pid":7}'), undefined);
  });

  test("LineSplitter hands over lines as they complete, across chunks, and drops an endless one", () => {
    const lines: string[] = [];
    let oversized = 0;
    const splitter = new LineSplitter((line) => lines.push(line), () => oversized++);
    splitter.push('{"a":');
    splitter.push('1}\n{"b"');
    splitter.push(":2}\n\n");
    assert.deepEqual(lines, ['{"a":1}', '{"b":2}', ""]);
    splitter.push("x".repeat(MAX_MESSAGE_BYTES + 1));
    assert.equal(oversized, 1);
    splitter.push("tail\n");
    assert.deepEqual(lines.at(-1), "tail");
  });
});

describe("the background process's end", () => {
  test("it is the background process only when the variable names its parent", () => {
    assert.equal(isBackgroundProcess({ [BACKGROUND_OF]: "4242" }, 4242), true);
    assert.equal(isBackgroundProcess({ [BACKGROUND_OF]: "4242" }, 1), false);
    assert.equal(isBackgroundProcess({}, 4242), false);
  });

  test("log lines and prompts go up; typed keys come down; after ready nothing is sent and no terminal is lent", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const sent: string[] = [];
    output.setEncoding("utf8");
    output.on("data", (chunk: string) => sent.push(chunk));
    const handoff = handoffToForeground(input, output, { terminal: true });
    handoff.log("first line");
    const tty = handoff.openTty();
    assert.ok(tty !== null);
    tty.setRawMode(true);
    tty.write("\rPassword: ");
    const keys = tty.read();
    await new Promise((resolve) => setImmediate(resolve));
    input.write('{"type":"tty-keys","keys":"sec"}\n');
    assert.equal(await keys, "sec");
    tty.setRawMode(false);
    tty.close();
    handoff.ready(99);
    handoff.log("after ready");
    assert.equal(handoff.openTty(), null);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(
      sent.join(""),
      [
        '{"type":"log","line":"first line"}',
        '{"type":"tty-raw","raw":true}',
        '{"type":"tty-write","text":"\\rPassword: "}',
        '{"type":"tty-read"}',
        '{"type":"tty-raw","raw":false}',
        '{"type":"tty-close"}',
        '{"type":"ready","pid":99}',
        "",
      ].join("\n"),
    );
  });

  test("the foreground gone before ready is told once; after ready its going is normal", () => {
    const early = new PassThrough();
    let abandoned = 0;
    handoffToForeground(early, new PassThrough(), { terminal: false, onAbandoned: () => abandoned++ });
    early.end();
    return new Promise<void>((resolve) => setImmediate(() => {
      assert.equal(abandoned, 1);
      const late = new PassThrough();
      let lateAbandoned = 0;
      const handoff = handoffToForeground(late, new PassThrough(), { terminal: false, onAbandoned: () => lateAbandoned++ });
      handoff.ready(5);
      late.end();
      setImmediate(() => {
        assert.equal(lateAbandoned, 0);
        resolve();
      });
    }));
  });

  test("no terminal lent: openTty is null; a read after the foreground went away is null", async () => {
    assert.equal(handoffToForeground(new PassThrough(), new PassThrough(), { terminal: false }).openTty(), null);
    const input = new PassThrough();
    const tty = handoffToForeground(input, new PassThrough(), { terminal: true }).openTty()!;
    const keys = tty.read();
    input.end();
    assert.equal(await keys, null);
    assert.equal(await tty.read(), null);
  });
});

/** A child process as runInBackground sees one: stdio streams, events, kill. */
class FakeChild extends EventEmitter {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly pid = 777;
  killed: string[] = [];
  unrefed = false;
  kill(signal: string): boolean {
    this.killed.push(signal);
    return true;
  }
  unref(): void {
    this.unrefed = true;
  }
  say(message: object): void {
    this.stdout.write(`${JSON.stringify(message)}\n`);
  }
}

class FakeTty implements TtyLike {
  readonly events: string[] = [];
  write(text: string): void {
    this.events.push(`write ${text}`);
  }
  setRawMode(raw: boolean): void {
    this.events.push(`raw ${raw}`);
  }
  read(): Promise<string | null> {
    this.events.push("read");
    return Promise.resolve("typed\r");
  }
  close(): void {
    this.events.push("close");
  }
}

function foreground(options: { tty?: boolean } = {}) {
  const child = new FakeChild();
  const spawned: { command: string; args: readonly string[]; options: SpawnOptions }[] = [];
  const errors: string[] = [];
  const ttys: FakeTty[] = [];
  let stop: ((signal: string) => void) | undefined;
  const environment: ForegroundEnvironment = {
    spawn: (command, args, spawnOptions) => {
      spawned.push({ command, args, options: spawnOptions });
      return child as unknown as ChildProcess;
    },
    env: { PATH: "/bin", [BACKGROUND_TTY]: "stale" },
    pid: 4242,
    openTty: () => {
      if (options.tty === false) return null;
      const tty = new FakeTty();
      ttys.push(tty);
      return tty;
    },
    writeErr: (line) => errors.push(line),
    writeErrRaw: (chunk) => errors.push(`raw:${Buffer.from(chunk).toString()}`),
    onStopSignal: (handler) => (stop = handler),
  };
  return { child, spawned, errors, ttys, environment, stop: (signal: string) => stop?.(signal) };
}

describe("the foreground's end", () => {
  test("starts the same command line detached, marked with its PID, and exits 0 with the PID once ready; lines and prompts pass through", async () => {
    const f = foreground();
    const outcome = runInBackground(["/usr/bin/node", "/opt/safetunnel.cjs"], ["-f", "-D", "9001", "home"], f.environment);
    assert.equal(f.spawned.length, 1);
    const { command, args, options } = f.spawned[0]!;
    assert.equal(command, "/usr/bin/node");
    assert.deepEqual(args, ["/opt/safetunnel.cjs", "-f", "-D", "9001", "home"]);
    assert.equal(options.detached, true);
    assert.deepEqual(options.stdio, ["pipe", "pipe", "pipe"]);
    assert.equal((options.env as Record<string, string>)[BACKGROUND_OF], "4242");
    assert.equal((options.env as Record<string, string>)[BACKGROUND_TTY], "1");
    const down: string[] = [];
    f.child.stdin.setEncoding("utf8");
    f.child.stdin.on("data", (chunk: string) => down.push(chunk));
    f.child.say({ type: "log", line: "Enter the passphrase next" });
    f.child.say({ type: "tty-raw", raw: true });
    f.child.say({ type: "tty-write", text: "\rPassphrase: " });
    f.child.say({ type: "tty-read" });
    await new Promise((resolve) => setTimeout(resolve, 10));
    f.child.say({ type: "tty-raw", raw: false });
    f.child.say({ type: "tty-close" });
    f.child.stderr.write("a crash trace\n");
    f.child.say({ type: "ready", pid: 777 });
    assert.deepEqual(await outcome, { ready: true, pid: 777 });
    assert.deepEqual(f.errors, ["Enter the passphrase next", "raw:a crash trace\n"]);
    // The first terminal only probed whether there is one; the second served the prompt.
    assert.deepEqual(f.ttys[0]!.events, ["close"]);
    assert.deepEqual(f.ttys[1]!.events, ["raw true", "write \rPassphrase: ", "read", "raw false", "close"]);
    assert.equal(down.join(""), '{"type":"tty-keys","keys":"typed\\r"}\n');
    assert.equal(f.child.unrefed, true);
  });

  test("no terminal: none is announced to the background process, and its reads get null", async () => {
    const f = foreground({ tty: false });
    const outcome = runInBackground(["/safetunnel"], ["-f", "home"], f.environment);
    assert.equal((f.spawned[0]!.options.env as Record<string, string | undefined>)[BACKGROUND_TTY], undefined);
    const down: string[] = [];
    f.child.stdin.setEncoding("utf8");
    f.child.stdin.on("data", (chunk: string) => down.push(chunk));
    f.child.say({ type: "tty-read" });
    await new Promise((resolve) => setTimeout(resolve, 10));
    f.child.emit("close", 255, null);
    assert.deepEqual(await outcome, { ready: false, status: 255 });
    assert.equal(down.join(""), '{"type":"tty-keys","keys":null}\n');
  });

  test("ending before ready: its status is ours, and a clean exit or a signal is 255 with a line saying so", async () => {
    const failed = foreground();
    const first = runInBackground(["/safetunnel"], ["-f", "home"], failed.environment);
    failed.child.emit("close", 3, null);
    assert.deepEqual(await first, { ready: false, status: 3 });
    assert.deepEqual(failed.errors, []);
    const signalled = foreground();
    const second = runInBackground(["/safetunnel"], ["-f", "home"], signalled.environment);
    signalled.child.emit("close", null, "SIGKILL");
    assert.deepEqual(await second, { ready: false, status: 255 });
    assert.deepEqual(signalled.errors, ["safetunnel: -f: the background process ended by SIGKILL before the tunnel was up."]);
  });

  test("Ctrl-C while waiting sends the background process the same signal", async () => {
    const f = foreground();
    const outcome = runInBackground(["/safetunnel"], ["-f", "home"], f.environment);
    f.stop("SIGINT");
    assert.deepEqual(f.child.killed, ["SIGINT"]);
    f.child.emit("close", 255, null);
    assert.deepEqual(await outcome, { ready: false, status: 255 });
  });
});
