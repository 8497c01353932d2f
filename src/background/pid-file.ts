/**
 * `--pid-file FILE`: the running tunnel's PID, for scripts (`kill "$(cat FILE)"`).
 * Written once every forward listens, so its presence means the tunnel is up;
 * removed when the tunnel stops, but only while it still holds our PID (a
 * second tunnel may have taken the file over).
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { TunnelError, describeError, echoValue } from "../errors.ts";

/**
 * Writes `pid` and a newline. It is written before the tunnel reports itself
 * up (and before -f's foreground exits), so a script that waits for that
 * never reads the file half-written.
 *
 * @example
 * writePidFile("/run/user/1000/safetunnel.pid", 4242);
 */
export function writePidFile(path: string, pid: number): void {
  try {
    writeFileSync(path, `${pid}\n`, { mode: 0o644 });
  } catch (err) {
    throw new TunnelError("PID_FILE", `--pid-file: cannot write ${echoValue(path, "'")} (${describeError(err)}); give a file in a folder this account can write`);
  }
}

/**
 * Removes the file if it still holds `pid`; anything else is left alone.
 *
 * @example
 * removePidFile("/run/user/1000/safetunnel.pid", 4242);
 */
export function removePidFile(path: string, pid: number): void {
  try {
    if (readFileSync(path, "utf8").trim() === String(pid)) rmSync(path, { force: true });
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}
