/**
 * Reading ssh_config files from disk: a missing file, `Include` (relative
 * paths, globs, nesting) and the errors that name the including line. The
 * file system is passed in; parsing is config/parse-ssh-config.ts's job.
 */
import { readFile as fsReadFile, readdir } from "node:fs/promises";
import { Buffer } from "node:buffer";
import { TunnelError, describeError, echoValue, errnoCode } from "../errors.ts";
import { matchPattern } from "./patterns.ts";
import { parseSshConfig, type ConfigBlock, type ConfigDirective, type ConfigEntry, type ParsedConfig } from "./parse-ssh-config.ts";
import { expandTilde } from "./expand-tokens.ts";

export interface LoadOptions {
  /** Used for `~` and for relative Include paths in the user config (`~/.ssh/`). */
  homeDir: string;
  readFile?: (path: string) => Promise<string>;
  /** Names (not paths) of the entries in a directory, for Include globs. */
  listDir?: (path: string) => Promise<string[]>;
  /** Base of relative Include paths in the system config; `/etc/ssh` by default. */
  systemDir?: string;
}

/** readconf.c READCONF_MAX_DEPTH: the top file is depth 0, so 16 nested Includes are allowed. */
export const MAX_INCLUDE_DEPTH = 16;

/**
 * Reads a config file and everything it Includes. A missing file gives an
 * empty config (as ssh does for ~/.ssh/config), unless `required` (for `-F`).
 * Include paths may be globs (`*`, `?`), are expanded in sorted order, are
 * relative to `~/.ssh` (user) or `/etc/ssh` (`system: true`), and may nest at
 * most 16 deep.
 *
 * @example
 * const user = await loadSshConfig(`${home}/.ssh/config`, { homeDir: home });
 * const system = await loadSshConfig("/etc/ssh/ssh_config", { homeDir: home, system: true });
 * const { options } = resolveHostConfig([user, system], { host: "web", localUser: "me" });
 */
export async function loadSshConfig(
  path: string,
  options: LoadOptions & { system?: boolean; required?: boolean },
): Promise<ParsedConfig> {
  const env: LoadEnv = {
    homeDir: options.homeDir,
    readFile: options.readFile ?? ((p) => fsReadFile(p, "utf8")),
    listDir: options.listDir ?? ((p) => readdir(p)),
    includeBase: options.system ? (options.systemDir ?? "/etc/ssh") : expandTilde("~/.ssh", options.homeDir),
    system: options.system ?? false,
  };
  const loaded = await loadFile(path, 0, env, undefined);
  if (loaded !== undefined) return loaded;
  if (options.required) {
    throw new TunnelError("BAD_CONFIG", `cannot read config file ${echoValue(path)}: it does not exist; check the -F path`);
  }
  return { file: path, blocks: [{ kind: "global", entries: [] }] };
}

interface LoadEnv {
  homeDir: string;
  readFile: (path: string) => Promise<string>;
  listDir: (path: string) => Promise<string[]>;
  includeBase: string;
  system: boolean;
}

/** Undefined when the file does not exist. */
async function loadFile(
  path: string,
  depth: number,
  env: LoadEnv,
  includedFrom: ConfigDirective | undefined,
): Promise<ParsedConfig | undefined> {
  let text: string;
  try {
    text = await env.readFile(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    // glob() also returns directories; OpenSSH opens them and reads nothing.
    if (code === "EISDIR") text = "";
    else {
      const where = includedFrom ? `${includedFrom.file} line ${includedFrom.line}: ` : "";
      const reason = describeError(err);
      throw new TunnelError("BAD_CONFIG", `${where}cannot read config file ${echoValue(path)} (${reason}); fix its permissions`, {
        cause: err,
      });
    }
  }
  if (depth > MAX_INCLUDE_DEPTH && includedFrom !== undefined) {
    throw new TunnelError(
      "BAD_CONFIG",
      `${includedFrom.file} line ${includedFrom.line}: Include nested more than ${MAX_INCLUDE_DEPTH} levels deep (at ${path}); remove the Include loop`,
    );
  }
  return expandIncludes(parseSshConfig(text, path), depth, env);
}

async function expandIncludes(config: ParsedConfig, depth: number, env: LoadEnv): Promise<ParsedConfig> {
  const blocks: ConfigBlock[] = [];
  for (const block of config.blocks) {
    const entries: ConfigEntry[] = [];
    for (const entry of block.entries) {
      if (entry.kind === "option") {
        entries.push(entry);
        continue;
      }
      const configs: ParsedConfig[] = [];
      for (const arg of entry.directive.args) {
        for (const path of await expandGlob(includePath(arg, entry.directive, env), env.listDir)) {
          const child = await loadFile(path, depth + 1, env, entry.directive);
          if (child !== undefined) configs.push(child);
        }
      }
      entries.push({ kind: "include", directive: entry.directive, configs });
    }
    blocks.push({ ...block, entries });
  }
  return { file: config.file, blocks };
}

/** readconf.c anchors relative paths in ~/.ssh or /etc/ssh and refuses `~` in system files. */
function includePath(arg: string, directive: ConfigDirective, env: LoadEnv): string {
  if (arg.startsWith("~")) {
    if (env.system) {
      throw new TunnelError(
        "BAD_CONFIG",
        `${directive.file} line ${directive.line}: Include path ${echoValue(arg)} may not start with ~ in the system config; use an absolute path`,
      );
    }
    return expandTilde(arg, env.homeDir);
  }
  return arg.startsWith("/") ? arg : `${env.includeBase}/${arg}`;
}

/**
 * A small glob(3): `*` and `?` in any path component, no dot-files unless the
 * component starts with `.`, results sorted bytewise as glob sorts them. A
 * path without wildcards is returned as is (a missing file is skipped later).
 */
async function expandGlob(pattern: string, listDir: (path: string) => Promise<string[]>): Promise<string[]> {
  if (!/[*?]/.test(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  const parts = pattern.split("/").filter((part) => part !== "");
  let prefixes = [absolute ? "" : "."];
  for (const part of parts) {
    const next: string[] = [];
    if (!/[*?]/.test(part)) {
      for (const prefix of prefixes) next.push(`${prefix}/${part}`);
    } else {
      for (const prefix of prefixes) {
        let names: string[];
        try {
          names = await listDir(prefix === "" ? "/" : prefix);
        } catch {
          // glob(3) without GLOB_ERR skips directories it cannot read.
          continue;
        }
        for (const name of names) {
          if (name.startsWith(".") && !part.startsWith(".")) continue;
          if (matchPattern(name, part)) next.push(`${prefix}/${name}`);
        }
      }
    }
    prefixes = next;
  }
  const paths = absolute ? prefixes : prefixes.map((p) => p.slice(2));
  return paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

export interface ConfigSources {
  files: ParsedConfig[];
}

/** Where the system-wide config lives; tests point these at a temporary directory. */
export interface SystemConfigLocation {
  /** @default "/etc/ssh/ssh_config" */
  systemFile?: string;
  /** Base of the system file's relative Include paths (OpenSSH's SSHDIR). @default "/etc/ssh" */
  systemDir?: string;
}

/**
 * The config files for this run, in the order they apply: `-F FILE` alone
 * (it must exist), nothing for `-F none`, else ~/.ssh/config then the system
 * file (either may be missing), as ssh.c reads them.
 *
 * @example
 * const sources = await loadConfigFiles(undefined, "/home/me");
 * sources.files.map((f) => f.file); // ["/home/me/.ssh/config", "/etc/ssh/ssh_config"]
 */
export async function loadConfigFiles(
  configFile: string | undefined,
  homeDir: string,
  location: SystemConfigLocation = {},
): Promise<ConfigSources> {
  if (configFile !== undefined) {
    // ssh -F: that file only, no system-wide file; "-F none" reads nothing.
    if (configFile.toLowerCase() === "none") return { files: [] };
    return { files: [await loadSshConfig(configFile, { homeDir, required: true })] };
  }
  const user = await loadSshConfig(`${homeDir}/.ssh/config`, { homeDir });
  const system = await loadSshConfig(location.systemFile ?? "/etc/ssh/ssh_config", {
    homeDir,
    system: true,
    ...(location.systemDir !== undefined ? { systemDir: location.systemDir } : {}),
  });
  return { files: [user, system] };
}
