/**
 * The README's recipes for starting at login, held to the code: the systemd
 * unit shown is what --print-unit prints, the launchd plist is a well-formed
 * property list (python3's plistlib) whose command line safetunnel accepts,
 * and the Task Scheduler line's command line is one safetunnel accepts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCommand } from "../helpers/child.ts";
import { repoRoot } from "../helpers/run.ts";
import { systemdUnit } from "../../src/service-unit.ts";
import { parseCommandLine } from "../../src/cli.ts";

const README = readFileSync(join(repoRoot(), "README.md"), "utf8");

/** The indented block that follows the line holding `after`, unindented. */
function blockAfter(after: string): string {
  const start = README.indexOf(after);
  assert.ok(start >= 0, `README has "${after}"`);
  const lines = README.slice(start).split("\n").slice(1);
  while (lines[0] === "") lines.shift();
  const block: string[] = [];
  for (const line of lines) {
    if (line !== "" && !line.startsWith("    ")) break;
    block.push(line.slice(4));
  }
  return `${block.join("\n").trimEnd()}\n`;
}

test("the systemd unit in the README is what --print-unit prints for its command line", () => {
  const shown = blockAfter("which holds (with this program's path):");
  const printed = systemdUnit({ program: ["/home/me/bin/safetunnel"], args: ["-D", "9001", "user@home"] });
  assert.equal(shown, printed.split("\n").filter((line) => !line.startsWith("#")).join("\n"));
  assert.match(README, /safetunnel --print-unit -D 9001 user@home > ~\/\.config\/systemd\/user\/safetunnel\.service/);
});

test("the launchd plist is a well-formed property list whose program arguments safetunnel accepts, restarted only after an error", async () => {
  const plist = blockAfter("then `launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/org.safetunnel.plist`:");
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-plist-"));
  const file = join(dir, "org.safetunnel.plist");
  await writeFile(file, plist);
  const parsed = await runCommand("python3", ["-c", "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))", file], { timeoutMs: 20_000 });
  await rm(dir, { recursive: true, force: true });
  assert.equal(parsed.code, 0, parsed.stderr);
  const agent = JSON.parse(parsed.stdout) as { Label: string; ProgramArguments: string[]; RunAtLoad: boolean; KeepAlive: { SuccessfulExit: boolean } };
  assert.equal(agent.Label, "org.safetunnel");
  assert.equal(agent.RunAtLoad, true);
  assert.deepEqual(agent.KeepAlive, { SuccessfulExit: false });
  const plan = parseCommandLine(agent.ProgramArguments.slice(1));
  assert.equal(plan.command, "tunnel");
  assert.ok(plan.command === "tunnel" && plan.warnings.length === 0 && !plan.background);
  assert.deepEqual(agent.ProgramArguments.slice(1), systemdUnit({ program: [], args: ["-D", "9001", "user@home"] }).match(/^ExecStart=(.*)$/m)![1]!.split(" "));
});

test("the Task Scheduler line runs a command line safetunnel accepts", () => {
  const line = blockAfter("**Windows (Task Scheduler)**, in a Command Prompt:").trim();
  const task = /\/TR "(.*)"$/.exec(line);
  assert.ok(task !== null, line);
  // cmd's \" inside the quoted /TR value is a literal quote: the program's path is quoted, the rest are plain words.
  const words = task[1]!.replace(/\\"/g, '"').match(/"[^"]*"|\S+/g)!.map((word) => word.replace(/^"|"$/g, ""));
  assert.match(words[0]!, /safetunnel-win-x64\.exe$/);
  const plan = parseCommandLine(words.slice(1));
  assert.ok(plan.command === "tunnel", JSON.stringify(plan));
  assert.equal(plan.logFile, "%USERPROFILE%\\safetunnel.log");
  assert.deepEqual(plan.warnings, []);
});
