/**
 * The set-up every single-executable test shares: the built file copied
 * alone into an empty folder (so it can read nothing next to itself), an
 * empty folder to be its PATH (so no node is anywhere it looks), a private
 * loopback sshd with a HOME that logs in to it, and an HTTP target. Whatever
 * the test starts is tracked and killed by PID on cleanup.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { within } from "./child.ts";
import type { Home, Running } from "./run.ts";
import type { Sshd } from "./sshd.ts";
import { startHttpTarget, type HttpTarget } from "./targets.ts";
import { startSshdWithHome } from "./tunnel.ts";

export interface LoneBinary {
  /** A folder of the test's own, removed on cleanup. */
  scratch: string;
  /** The folder holding the copy, and nothing else. */
  app: string;
  /** The copy. */
  binary: string;
  /** An empty folder, for PATH. */
  emptyPath: string;
  home: Home;
  sshd: Sshd;
  http: HttpTarget;
  /** Registers a child to be killed (SIGKILL, by PID) on cleanup; returns it. */
  track<T extends Running>(child: T): T;
  cleanup(): Promise<void>;
}

/**
 * @example
 * const rig = await loneBinary(join(repoRoot(), "dist", "safetunnel-linux-x64"), "safetunnel");
 * const child = rig.track(startProcess(rig.binary, ["--version"], { env: { PATH: rig.emptyPath, HOME: rig.home.home } }));
 * await rig.cleanup();
 */
export async function loneBinary(source: string, name: string): Promise<LoneBinary> {
  assert.ok(existsSync(source), `${source} is missing: npm test builds it (npm run build:binaries)`);
  const scratch = await mkdtemp(join(tmpdir(), "safetunnel-binary-"));
  const app = join(scratch, "app");
  const emptyPath = join(scratch, "bin");
  const running: Running[] = [];
  let logIn: { home: Home; sshd: Sshd } | undefined;
  let http: HttpTarget | undefined;
  const cleanup = async (): Promise<void> => {
    for (const child of running) await within(child.stop("SIGKILL"), 15_000);
    await logIn?.sshd.stop();
    await http?.stop();
    await logIn?.home.cleanup();
    await rm(scratch, { recursive: true, force: true });
  };
  try {
    await mkdir(app);
    await copyFile(source, join(app, name));
    await mkdir(emptyPath);
    logIn = await startSshdWithHome();
    http = await startHttpTarget();
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    scratch,
    app,
    binary: join(app, name),
    emptyPath,
    home: logIn.home,
    sshd: logIn.sshd,
    http,
    track(child) {
      running.push(child);
      return child;
    },
    cleanup,
  };
}
