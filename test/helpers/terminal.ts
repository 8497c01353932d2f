/**
 * Run the built CLI on a real pseudo-terminal (through test/helpers/pty-drive.py,
 * python3's pty module), typing replies when given prompts appear. For tests of
 * what a user at a terminal sees: prompts, and that secrets are not echoed.
 */
import { join } from "node:path";
import process from "node:process";
import { cliPath, repoRoot, startProcess, type Running } from "./run.ts";

/**
 * @example
 * const run = startInTerminal(["-D", "9001", "host"], { home, answers: [["passphrase", "secret\r"]] });
 */
export function startInTerminal(args: string[], options: { home: string; answers: [expected: string, reply: string][]; env?: Record<string, string> }): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: options.home, TERM: "dumb", ...(options.env ?? {}) };
  for (const name of ["SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY", "WAYLAND_DISPLAY"]) {
    if (options.env?.[name] === undefined) delete env[name];
  }
  return startProcess(
    "python3",
    [join(repoRoot(), "test", "helpers", "pty-drive.py"), JSON.stringify(options.answers), "--", process.execPath, cliPath(), ...args],
    { env },
  );
}
