/**
 * `safetunnel browser [firefox|chromium] [--proxy HOST:PORT] [--profile DIR]
 * [--no-webrtc] [-- browser args]`: an installed browser started with a
 * profile set up for the tunnel (browser-profile.ts), whose first page is
 * leakcheck's canary, so every launch checks itself: the verdict is printed
 * here while the browser stays open for use. A fresh profile is removed when
 * the browser closes; `--profile DIR` is kept.
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, lstatSync, rmSync } from "node:fs";
import process from "node:process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, delimiter, join } from "node:path";
import { TunnelError, describeError } from "../errors.ts";
import { hostPort } from "../address.ts";
import type { LeakcheckEnvironment } from "../leakcheck/run.ts";
import type { LeakcheckPlan } from "../cli/leakcheck-args.ts";
import {
  browserCandidates,
  chromiumArgs,
  chromiumLocalState,
  chromiumPreferences,
  firefoxPrefs,
  firefoxUserJs,
  type BrowserKind,
  type JsonObject,
  snapOf,
} from "./browser-profile.ts";
import type { ProxyAddress } from "./socks-connect.ts";

export interface BrowserPlan {
  command: "browser";
  /** Which browser; undefined: Firefox if installed, else Chromium. */
  browser: BrowserKind | undefined;
  proxy: ProxyAddress;
  /** --profile DIR: use (and keep) this profile folder. */
  profile: string | undefined;
  webrtc: boolean;
  /** After --: given to the browser as they are (a URL opens as another tab). */
  browserArgs: string[];
  verbosity: number;
  json: boolean;
}

export interface BrowserEnvironment extends Omit<LeakcheckEnvironment, "openUrl"> {
  /** @default node:child_process spawn */
  spawn?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
  /** Runs the check; the browser starts when it calls openUrl. @default leakcheck/run.ts runLeakcheck */
  leakcheck?: (plan: LeakcheckPlan, env: LeakcheckEnvironment) => Promise<number>;
}

/** How long a browser asked to close may take before it is killed. */
const CLOSE_WAIT_MS = 10_000;
/** How long leakcheck waits for the canary page: a cold browser start included. */
const CHECK_WAIT_MS = 90_000;

/**
 * Resolves, once the browser has closed, with leakcheck's status: 0 PASS,
 * 1 LEAK, 2 could not test (then no browser was started when the proxy was
 * not a safetunnel front end).
 *
 * @example
 * process.exitCode = await runBrowser({ command: "browser", browser: "firefox", proxy: { host: "127.0.0.1", port: 9001 }, profile: undefined, webrtc: true, browserArgs: [], verbosity: 0, json: false }, env);
 */
export async function runBrowser(plan: BrowserPlan, env: BrowserEnvironment): Promise<number> {
  const { kind, path } = findBrowser(plan.browser, env.platform, env.env);
  const fresh = plan.profile === undefined;
  // A snap browser has a /tmp of its own: its fresh profile goes where the snap can see it.
  const snap = env.platform === "linux" ? snapOf(path, await scriptHead(path)) : undefined;
  const parent = snap === undefined ? tmpdir() : join(env.home, "snap", snap, "common");
  if (fresh) await mkdir(parent, { recursive: true });
  const profile = plan.profile ?? (await mkdtemp(join(parent, `safetunnel-${kind}-`)));
  const spawn = env.spawn ?? nodeSpawn;
  let child: ChildProcess | undefined;
  let closed: Promise<void> = Promise.resolve();
  let stopCheck: ((signal: string) => void) | undefined;
  let stopping: string | undefined;
  // A second Ctrl-C exits at once (main.ts): the fresh profile (cookies, history) still goes.
  const removeProfile = (): void => {
    if (fresh) rmSync(profile, { recursive: true, force: true });
  };
  process.once("exit", removeProfile);
  const stopBrowser = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child?.kill("SIGKILL"), CLOSE_WAIT_MS);
    await closed;
    clearTimeout(timer);
  };
  env.onStopSignal((signal) => {
    stopping = signal;
    stopCheck?.(signal);
    void stopBrowser();
  });
  try {
    if (!fresh) refuseProfileInUse(kind, profile);
    await prepareProfile(kind, profile, plan);
    const launch = (url: string): void => {
      if (stopping) return;
      // -wait-for-browser: on Windows firefox.exe hands over to the real browser and exits at once without it.
      const args =
        kind === "firefox" ? ["--no-remote", "-wait-for-browser", "--profile", profile, ...plan.browserArgs, url] : [...chromiumArgs(plan.proxy, profile), ...plan.browserArgs, url];
      const which = fresh ? `a fresh profile (${profile}, removed when it closes)` : `the profile ${profile}`;
      env.note(`Starting ${path} with ${which}, set up for ${hostPort(plan.proxy.host, plan.proxy.port)}; its first page is the leak check.`);
      const started = spawn(path, args, { stdio: "ignore", windowsHide: false });
      child = started;
      closed = new Promise<void>((resolve) => {
        started.once("exit", () => resolve());
        started.once("error", (err) => {
          env.note(`safetunnel browser: cannot start ${path}: ${describeError(err)}`);
          resolve();
        });
      });
      // A browser closed before the verdict ends the check: nothing more will arrive.
      void closed.then(() => stopCheck?.("browser closed"));
    };
    const leakcheck = env.leakcheck ?? (await import("../leakcheck/run.ts")).runLeakcheck;
    const status = await leakcheck(
      { command: "leakcheck", proxy: plan.proxy, waitMs: CHECK_WAIT_MS, open: true, watch: false, pcap: undefined, json: plan.json, settings: false, openedIn: basename(path) },
      {
        ...env,
        openUrl: launch,
        onStopSignal: (handler) => {
          stopCheck = handler;
          // Ctrl-C while the profile was being written: the check ends at once instead of waiting for a browser never started.
          if (stopping !== undefined) handler(stopping);
        },
      },
    );
    stopCheck = undefined;
    if (child !== undefined && stopping === undefined && child.exitCode === null && child.signalCode === null) {
      env.note(status === 0 ? "Nothing leaked: browse on. Close the browser (or press Ctrl-C) to end." : "Close the browser (or press Ctrl-C) to end.");
    }
    await closed;
    return status;
  } finally {
    await stopBrowser();
    if (fresh) await rm(profile, { recursive: true, force: true }).catch(() => {});
    process.removeListener("exit", removeProfile);
  }
}

/**
 * A kept profile a browser has open would not be ours: Chromium hands the
 * URL to the running instance (its own settings, not these), Firefox says it
 * is already running. Their lock files: Chromium's SingletonLock, Firefox's
 * `lock` symlink (Linux, macOS), both present only while it runs.
 */
function refuseProfileInUse(kind: BrowserKind, profile: string): void {
  const lock = join(profile, kind === "chromium" ? "SingletonLock" : "lock");
  let present = false;
  try {
    lstatSync(lock);
    present = true;
  } catch {
    // No lock: not in use.
  }
  if (present) {
    throw new TunnelError(
      "BROWSER_PROFILE_IN_USE",
      `browser: the profile ${profile} is open in a running ${kind === "chromium" ? "Chromium" : "Firefox"} (${lock} exists): close that browser first (if none runs, it crashed: remove that file), or leave out --profile for a fresh one`,
      { exitCode: 2 },
    );
  }
}

/** The browser to start: the one asked for, or Firefox, else Chromium; a clear error when none is installed. */
export function findBrowser(asked: BrowserKind | undefined, platform: string, env: Readonly<Record<string, string | undefined>>): { kind: BrowserKind; path: string } {
  const kinds: BrowserKind[] = asked === undefined ? ["firefox", "chromium"] : [asked];
  const looked: string[] = [];
  for (const kind of kinds) {
    const { names, paths } = browserCandidates(kind, platform, env);
    // Windows allows a PATH entry in double quotes (a folder with a semicolon in its name).
    const dirs = (env["PATH"] ?? "")
      .split(platform === "win32" ? ";" : delimiter)
      .map((dir) => (platform === "win32" ? dir.replace(/^"(.*)"$/, "$1") : dir))
      .filter((dir) => dir !== "");
    for (const name of names) {
      for (const dir of dirs) {
        const path = join(dir, name);
        if (existsSync(path)) return { kind, path };
      }
    }
    for (const path of paths) if (existsSync(path)) return { kind, path };
    looked.push(...names, ...paths);
  }
  const which = asked === undefined ? "Firefox or Chromium" : asked === "firefox" ? "Firefox" : "Chromium (or Chrome, Brave, Edge)";
  return fail(`browser: no ${which} found (looked for ${looked.join(", ")} on PATH and in the usual install folders): install one, or add its folder to PATH`);
}

function fail(message: string): never {
  throw new TunnelError("BROWSER_NOT_FOUND", message, { exitCode: 2 });
}

/** Write the profile's settings, keeping what a kept profile had besides them. */
async function prepareProfile(kind: BrowserKind, profile: string, plan: BrowserPlan): Promise<void> {
  await mkdir(profile, { recursive: true });
  if (kind === "firefox") {
    const userJs = join(profile, "user.js");
    await writeFile(userJs, firefoxUserJs(firefoxPrefs(plan.proxy, { webrtc: plan.webrtc }), await readText(userJs)));
    return;
  }
  await mkdir(join(profile, "Default"), { recursive: true });
  const preferences = join(profile, "Default", "Preferences");
  await writeFile(preferences, JSON.stringify(chromiumPreferences(await readJson(preferences))));
  const localState = join(profile, "Local State");
  await writeFile(localState, JSON.stringify(chromiumLocalState(await readJson(localState))));
}

/** The start of a small file (a wrapper script), or undefined for a program or an unreadable file. */
async function scriptHead(path: string): Promise<string | undefined> {
  try {
    if ((await stat(path)).size > 4096) return undefined;
    return await readFile(path, "latin1");
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return "";
  }
}

/** A kept profile's JSON file; a missing or unreadable one starts empty (Chromium rewrites it anyway). */
async function readJson(path: string): Promise<JsonObject> {
  const text = await readText(path);
  if (text === "") return {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as JsonObject;
  } catch {
    // fall through
  }
  throw new TunnelError("BAD_CONFIG", `browser: ${path} is not a JSON object: is --profile a Chromium profile folder (the user data folder)?`, { exitCode: 2 });
}
