import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TunnelError } from "../../src/errors.ts";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  chooseChannel,
  DEFAULT_ASKPASS_PROGRAM,
  promptUser,
  resolveAskpassProgram,
  type PromptChannel,
  type PromptEnvironment,
  type PromptRequest,
  type TtyLike,
} from "../../src/ssh/prompt.ts";

type Env = Record<string, string | undefined>;

interface ChannelCase {
  name: string;
  env: Env;
  hasTty: boolean;
  batchMode?: boolean;
  expected: PromptChannel;
}

const channelCases: ChannelCase[] = [
  { name: "uses the terminal when there is one and no graphical session", env: {}, hasTty: true, expected: "tty" },
  { name: "cannot ask without a terminal or a graphical session", env: {}, hasTty: false, expected: "none" },
  { name: "keeps the terminal over askpass when only DISPLAY is set", env: { DISPLAY: ":0" }, hasTty: true, expected: "tty" },
  { name: "falls back to askpass without a terminal when DISPLAY is set", env: { DISPLAY: ":0" }, hasTty: false, expected: "askpass" },
  { name: "treats a non-empty WAYLAND_DISPLAY like DISPLAY", env: { WAYLAND_DISPLAY: "wayland-0" }, hasTty: false, expected: "askpass" },
  { name: "treats an empty DISPLAY as no graphical session", env: { DISPLAY: "" }, hasTty: false, expected: "none" },
  { name: "treats an empty WAYLAND_DISPLAY as no graphical session", env: { DISPLAY: "", WAYLAND_DISPLAY: "" }, hasTty: false, expected: "none" },
  { name: "does not use askpass just because SSH_ASKPASS is set", env: { SSH_ASKPASS: "/bin/askpass" }, hasTty: false, expected: "none" },
  { name: "force uses askpass even with a terminal and no display", env: { SSH_ASKPASS_REQUIRE: "force" }, hasTty: true, expected: "askpass" },
  { name: "force uses askpass without a terminal or a display", env: { SSH_ASKPASS_REQUIRE: "force" }, hasTty: false, expected: "askpass" },
  { name: "reads SSH_ASKPASS_REQUIRE case-insensitively", env: { SSH_ASKPASS_REQUIRE: "FoRcE" }, hasTty: true, expected: "askpass" },
  { name: "prefer uses askpass over the terminal when DISPLAY is set", env: { SSH_ASKPASS_REQUIRE: "prefer", DISPLAY: ":0" }, hasTty: true, expected: "askpass" },
  { name: "prefer uses askpass over the terminal when WAYLAND_DISPLAY is set", env: { SSH_ASKPASS_REQUIRE: "prefer", WAYLAND_DISPLAY: "wayland-0" }, hasTty: true, expected: "askpass" },
  { name: "prefer without a display keeps the terminal", env: { SSH_ASKPASS_REQUIRE: "prefer" }, hasTty: true, expected: "tty" },
  { name: "prefer without a display or a terminal cannot ask", env: { SSH_ASKPASS_REQUIRE: "prefer" }, hasTty: false, expected: "none" },
  { name: "never keeps the terminal although DISPLAY is set", env: { SSH_ASKPASS_REQUIRE: "never", DISPLAY: ":0" }, hasTty: true, expected: "tty" },
  { name: "never without a terminal cannot ask although DISPLAY is set", env: { SSH_ASKPASS_REQUIRE: "Never", DISPLAY: ":0" }, hasTty: false, expected: "none" },
  { name: "ignores an unknown SSH_ASKPASS_REQUIRE value with a terminal", env: { SSH_ASKPASS_REQUIRE: "always", DISPLAY: ":0" }, hasTty: true, expected: "tty" },
  { name: "ignores an unknown SSH_ASKPASS_REQUIRE value without a terminal", env: { SSH_ASKPASS_REQUIRE: "always", DISPLAY: ":0" }, hasTty: false, expected: "askpass" },
  { name: "ignores an empty SSH_ASKPASS_REQUIRE", env: { SSH_ASKPASS_REQUIRE: "", DISPLAY: ":0" }, hasTty: false, expected: "askpass" },
  { name: "BatchMode never uses the terminal", env: {}, hasTty: true, batchMode: true, expected: "none" },
  { name: "BatchMode never uses askpass, not even when forced", env: { SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" }, hasTty: true, batchMode: true, expected: "none" },
  { name: "BatchMode never falls back to askpass without a terminal", env: { DISPLAY: ":0" }, hasTty: false, batchMode: true, expected: "none" },
];

describe("chooseChannel", () => {
  for (const c of channelCases) {
    test(c.name, () => {
      assert.equal(chooseChannel(c.env, c.hasTty, c.batchMode ?? false), c.expected);
    });
  }
});

describe("resolveAskpassProgram", () => {
  test("uses SSH_ASKPASS when set", () => {
    assert.equal(resolveAskpassProgram({ SSH_ASKPASS: "/opt/bin/my-askpass" }), "/opt/bin/my-askpass");
  });
  test("falls back to Debian's default path when SSH_ASKPASS is unset", () => {
    assert.equal(resolveAskpassProgram({}), "/usr/bin/ssh-askpass");
    assert.equal(DEFAULT_ASKPASS_PROGRAM, "/usr/bin/ssh-askpass");
  });
  test("keeps an empty SSH_ASKPASS empty instead of using the default", () => {
    assert.equal(resolveAskpassProgram({ SSH_ASKPASS: "" }), "");
  });
});

/** A terminal whose keystrokes are scripted; records what promptUser does to it. */
function fakeTty(script: Array<string | null | Error>): { tty: TtyLike; events: string[]; output: () => string } {
  const events: string[] = [];
  let output = "";
  const tty: TtyLike = {
    write: (text) => {
      output += text;
    },
    setRawMode: (raw) => {
      events.push(raw ? "raw on" : "raw off");
    },
    read: async () => {
      const next = script.shift();
      if (next instanceof Error) throw next;
      return next ?? null;
    },
    close: () => {
      events.push("close");
    },
  };
  return { tty, events, output: () => output };
}

const secret: PromptRequest = { message: "Enter passphrase for key '/tmp/id': ", echo: false, kind: "secret" };
const hostKeyQuestion: PromptRequest = {
  message: "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
  echo: true,
  kind: "confirm",
};

function neverAskpass(calls: string[]): PromptEnvironment["runAskpass"] {
  return async (program) => {
    calls.push(program);
    return "from askpass";
  };
}

describe("promptUser on the terminal", () => {
  test("returns the typed passphrase, echoes nothing and leaves the terminal as it found it", async () => {
    const { tty, events, output } = fakeTty(["cor", "rect", "\r"]);
    const answer = await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty });
    assert.equal(answer, "correct");
    assert.equal(output(), "\rEnter passphrase for key '/tmp/id': \r\n");
    assert.deepEqual(events, ["raw on", "raw off", "close"]);
  });

  test("accepts a line feed as Enter and ignores keys typed after it", async () => {
    const { tty } = fakeTty(["one\ntwo\r"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), "one");
  });

  test("erases the last character on DEL and on Backspace", async () => {
    const { tty } = fakeTty(["hunter3\x7f2", "xx\b\b\r"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), "hunter2");
  });

  test("ignores backspace on an empty line", async () => {
    const { tty, output } = fakeTty(["\x7f\b", "ok\r"]);
    assert.equal(await promptUser(hostKeyQuestion, { env: {}, batchMode: false, openTty: () => tty }), "ok");
    assert.equal(output(), "\r" + hostKeyQuestion.message + "ok\r\n");
  });

  test("erases a whole emoji, not half of it, on backspace", async () => {
    const { tty } = fakeTty(["pässwörd🔑\x7f\r"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), "pässwörd");
  });

  test("clears the line on Ctrl-U", async () => {
    const { tty } = fakeTty(["wrong\x15", "right\r"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), "right");
  });

  test("drops arrow and function keys, also when their bytes arrive in separate reads", async () => {
    const { tty } = fakeTty(["pa\x1b[D", "s", "\x1b", "OA", "s\x1b[", "1;5C", "\x1bx!\r"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), "pass!");
  });

  test("echoes typed characters and erases them visibly when echo is requested", async () => {
    const { tty, output } = fakeTty(["yess", "\x7f\r"]);
    assert.equal(await promptUser(hostKeyQuestion, { env: {}, batchMode: false, openTty: () => tty }), "yes");
    assert.equal(output(), "\r" + hostKeyQuestion.message + "yess\b \b\r\n");
  });

  test("rejects with CANCELLED on Ctrl-C (the user wants out, as in ssh), discarding what was typed, and restores the terminal", async () => {
    const { tty, events, output } = fakeTty(["secr", "et\x03more\r"]);
    await assert.rejects(promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "CANCELLED");
      assert.match(err.message, /Ctrl-C/);
      return true;
    });
    assert.equal(output(), "\r" + secret.message + "\r\n");
    assert.deepEqual(events, ["raw on", "raw off", "close"]);
  });

  test("returns null on Ctrl-D", async () => {
    const { tty, events } = fakeTty(["abc\x04"]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), null);
    assert.deepEqual(events, ["raw on", "raw off", "close"]);
  });

  test("returns null when the terminal goes away mid-line", async () => {
    const { tty, events } = fakeTty(["half", null]);
    assert.equal(await promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), null);
    assert.deepEqual(events, ["raw on", "raw off", "close"]);
  });

  test("restores and closes the terminal when reading from it fails", async () => {
    const failure = new Error("EIO: i/o error, read");
    const { tty, events } = fakeTty(["abc", failure]);
    await assert.rejects(promptUser(secret, { env: {}, batchMode: false, openTty: () => tty }), failure);
    assert.deepEqual(events, ["raw on", "raw off", "close"]);
  });

  test("asks on the terminal, not askpass, when DISPLAY is set without SSH_ASKPASS_REQUIRE", async () => {
    const { tty } = fakeTty(["typed\r"]);
    const askpassCalls: string[] = [];
    const answer = await promptUser(secret, {
      env: { DISPLAY: ":0", SSH_ASKPASS: "/bin/false" },
      batchMode: false,
      openTty: () => tty,
      runAskpass: neverAskpass(askpassCalls),
    });
    assert.equal(answer, "typed");
    assert.deepEqual(askpassCalls, []);
  });
});

describe("promptUser through askpass", () => {
  let dir = "";
  const scripts = {
    passphrase: "",
    argument: "",
    multiline: "",
    fails: "",
    hint: "",
    marker: "",
  };
  let markerFile = "";

  async function writeScript(name: string, body: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, "#!/bin/sh\n" + body + "\n");
    await chmod(path, 0o755);
    return path;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "safetunnel-prompt-"));
    markerFile = join(dir, "askpass-ran");
    scripts.passphrase = await writeScript("passphrase", "echo 'correct horse battery staple'");
    scripts.argument = await writeScript("argument", "printf '%s\\n' \"$1\"");
    scripts.multiline = await writeScript("multiline", "printf 'first\\r\\nsecond\\n'");
    scripts.fails = await writeScript("fails", "echo 'not this'\nexit 1");
    scripts.hint = await writeScript("hint", "printf '%s\\n' \"${SSH_ASKPASS_PROMPT-unset}\"");
    scripts.marker = await writeScript("marker", `touch '${markerFile}'\necho ran`);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const graphical = (askpass: string): Env => ({ DISPLAY: ":0", SSH_ASKPASS: askpass, PATH: process.env.PATH });

  test("returns what the askpass program prints, without the newline, when there is no terminal", async () => {
    const answer = await promptUser(secret, { env: graphical(scripts.passphrase), batchMode: false, openTty: () => null });
    assert.equal(answer, "correct horse battery staple");
  });

  test("passes the prompt to the askpass program as its only argument, verbatim", async () => {
    const answer = await promptUser(secret, { env: graphical(scripts.argument), batchMode: false, openTty: () => null });
    assert.equal(answer, "Enter passphrase for key '/tmp/id': ");
  });

  test("keeps only the first line of the askpass output, cut at CR or LF as OpenSSH does", async () => {
    const answer = await promptUser(secret, { env: graphical(scripts.multiline), batchMode: false, openTty: () => null });
    assert.equal(answer, "first");
  });

  test("returns null when the askpass program exits non-zero, ignoring what it printed", async () => {
    const answer = await promptUser(secret, { env: graphical(scripts.fails), batchMode: false, openTty: () => null });
    assert.equal(answer, null);
  });

  test("returns null when the askpass program does not exist", async () => {
    const answer = await promptUser(secret, {
      env: graphical(join(dir, "no-such-askpass")),
      batchMode: false,
      openTty: () => null,
    });
    assert.equal(answer, null);
  });

  test("sets SSH_ASKPASS_PROMPT=confirm for a confirmation", async () => {
    const answer = await promptUser(hostKeyQuestion, { env: graphical(scripts.hint), batchMode: false, openTty: () => null });
    assert.equal(answer, "confirm");
  });

  test("does not set SSH_ASKPASS_PROMPT for a secret", async () => {
    const answer = await promptUser(secret, { env: graphical(scripts.hint), batchMode: false, openTty: () => null });
    assert.equal(answer, "unset");
  });

  test("SSH_ASKPASS_REQUIRE=force uses askpass without opening the terminal", async () => {
    let opened = 0;
    const answer = await promptUser(secret, {
      env: { SSH_ASKPASS_REQUIRE: "force", SSH_ASKPASS: scripts.passphrase },
      batchMode: false,
      openTty: () => {
        opened++;
        return fakeTty(["typed\r"]).tty;
      },
    });
    assert.equal(answer, "correct horse battery staple");
    assert.equal(opened, 0);
  });

  test("BatchMode returns null without opening the terminal or running askpass", async () => {
    let opened = 0;
    const environment: PromptEnvironment = {
      env: { ...graphical(scripts.marker), SSH_ASKPASS_REQUIRE: "force" },
      batchMode: true,
      openTty: () => {
        opened++;
        return null;
      },
    };
    assert.equal(await promptUser(secret, environment), null);
    assert.equal(opened, 0);
    await assert.rejects(stat(markerFile), { code: "ENOENT" });

    // The same environment without BatchMode does run the script, so the check above can fail.
    assert.equal(await promptUser(secret, { ...environment, batchMode: false }), "ran");
    assert.equal((await stat(markerFile)).isFile(), true);
  });

  test("returns null without running askpass when there is neither a terminal nor a display", async () => {
    const calls: string[] = [];
    const answer = await promptUser(secret, {
      env: { SSH_ASKPASS: scripts.passphrase },
      batchMode: false,
      openTty: () => null,
      runAskpass: neverAskpass(calls),
    });
    assert.equal(answer, null);
    assert.deepEqual(calls, []);
  });

  test("runs the default program with the caller's environment when SSH_ASKPASS is unset", async () => {
    const seen: Array<{ program: string; prompt: string; env: Env }> = [];
    const answer = await promptUser(hostKeyQuestion, {
      env: { WAYLAND_DISPLAY: "wayland-0", HOME: "/home/me" },
      batchMode: false,
      openTty: () => null,
      runAskpass: async (program, prompt, env) => {
        seen.push({ program, prompt, env });
        return "yes";
      },
    });
    assert.equal(answer, "yes");
    assert.deepEqual(seen, [
      {
        program: "/usr/bin/ssh-askpass",
        prompt: hostKeyQuestion.message,
        env: { WAYLAND_DISPLAY: "wayland-0", HOME: "/home/me", SSH_ASKPASS_PROMPT: "confirm" },
      },
    ]);
  });

  test("returns null without running anything when SSH_ASKPASS is empty", async () => {
    const calls: string[] = [];
    const answer = await promptUser(secret, {
      env: { DISPLAY: ":0", SSH_ASKPASS: "" },
      batchMode: false,
      openTty: () => null,
      runAskpass: neverAskpass(calls),
    });
    assert.equal(answer, null);
    assert.deepEqual(calls, []);
  });
});
