/**
 * `safetunnel --print-unit`: the systemd user unit for a command line, as
 * the built CLI prints it, checked by systemd-analyze verify where this
 * machine has it (a unit systemd would refuse to load fails it).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { runCommand } from "../helpers/child.ts";
import { cliPath, runCli } from "../helpers/run.ts";

const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";

test("--print-unit prints a unit that runs this CLI in the foreground with -N, connects to nothing, and passes systemd-analyze verify", async (t) => {
  // home.invalid resolves nowhere: printing the unit must not try.
  const result = await runCli(["--print-unit", "-f", "-D", "9001", "-E", "/tmp/tunnel 100%.log", "user@home.invalid"], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const execStart = result.stdout.split("\n").find((line) => line.startsWith("ExecStart="));
  assert.equal(execStart, `ExecStart=${process.execPath} ${cliPath()} -o BatchMode=yes -o ExitOnForwardFailure=yes -N -D 9001 -E "/tmp/tunnel 100%%.log" user@home.invalid`);
  assert.match(result.stdout, /^Restart=on-failure$/m);
  if (!existsSync(SYSTEMD_ANALYZE)) {
    t.skip("systemd-analyze is not installed here");
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-unit-"));
  try {
    const unit = join(dir, "safetunnel.service");
    await writeFile(unit, result.stdout);
    const verified = await runCommand(SYSTEMD_ANALYZE, ["verify", unit], { timeoutMs: 30_000 });
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "", "no warning either");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
