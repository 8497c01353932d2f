/**
 * SSH_ASKPASS programs for tests of prompts: each records the prompt it was
 * given and answers with a fixed text, as a user typing it would.
 */
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Write `dir/<name>.sh`, an askpass program that appends its prompt (its
 * first argument) and a newline to `dir/<name>.log`, then prints `answer`.
 * The log does not exist until the program has run.
 *
 * @example
 * const askpass = await writeAskpass(scratch, "passphrase", "secret");
 * startCli([...], { env: { SSH_ASKPASS: askpass.path, SSH_ASKPASS_REQUIRE: "force" } });
 * await readFile(askpass.log, "utf8"); // "Enter passphrase for key '...': \n"
 */
export async function writeAskpass(dir: string, name: string, answer: string): Promise<{ path: string; log: string }> {
  const path = join(dir, `${name}.sh`);
  const log = join(dir, `${name}.log`);
  await writeFile(path, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${log}'\necho '${answer}'\n`, { mode: 0o700 });
  await chmod(path, 0o700);
  return { path, log };
}
