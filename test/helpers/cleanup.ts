/**
 * Last-resort cleanup for helpers that start processes or make temp dirs: a
 * failing test that never reaches its `stop()` must still leave no sshd, agent
 * or CLI behind. Only synchronous work is possible in a process 'exit' handler,
 * so each entry kills by PID with SIGKILL and removes dirs with rmSync.
 */
import { rmSync } from "node:fs";
import process from "node:process";

const pids = new Set<number>();
const dirs = new Set<string>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.once("exit", () => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort at exit.
      }
    }
  });
}

/**
 * Kill this PID when the test process exits, unless `forgetPid` ran first.
 *
 * @example
 * const child = spawn("/usr/sbin/sshd", args);
 * killOnExit(child.pid!);
 */
export function killOnExit(pid: number): void {
  install();
  pids.add(pid);
}

/**
 * The PID ended normally: do not signal it at exit (the number may be reused).
 *
 * @example
 * child.once("exit", () => forgetPid(child.pid!));
 */
export function forgetPid(pid: number): void {
  pids.delete(pid);
}

/**
 * Remove this directory when the test process exits, unless `forgetDir` ran first.
 *
 * @example
 * const dir = await mkdtemp(join(tmpdir(), "sshd-"));
 * removeOnExit(dir);
 */
export function removeOnExit(dir: string): void {
  install();
  dirs.add(dir);
}

/**
 * The directory was removed by its owner; nothing to do at exit.
 *
 * @example
 * await rm(dir, { recursive: true, force: true });
 * forgetDir(dir);
 */
export function forgetDir(dir: string): void {
  dirs.delete(dir);
}
