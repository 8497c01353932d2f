/**
 * Where the deno executable the npm package `deno` installed is.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { repoRoot } from "./run.ts";

/**
 * The deno executable itself, never node_modules/.bin/deno: without the
 * package's postinstall that is a Node wrapper that does not pass signals on,
 * so SIGINT would end the wrapper and orphan the real deno and its tunnel.
 * Throws when none is installed (run npm ci).
 */
export function denoExecutable(): string {
  const name = process.platform === "win32" ? "deno.exe" : "deno";
  const installed = join(repoRoot(), "node_modules", "deno", name);
  if (existsSync(installed)) return installed;
  const platformPackages = join(repoRoot(), "node_modules", "@deno");
  for (const entry of existsSync(platformPackages) ? readdirSync(platformPackages) : []) {
    const candidate = join(platformPackages, entry, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("no deno executable under node_modules: run npm ci");
}
