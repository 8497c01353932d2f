/**
 * Where safetunnel keeps its own files (the serve host key, for one): the
 * per-user configuration folder each platform expects. Pure: platform,
 * environment and home folder are passed in.
 */
import { posix, win32 } from "node:path";
import { TunnelError } from "../errors.ts";

const APP = "safetunnel";

/**
 * The per-user configuration folder for `platform` (a `process.platform`
 * value), joined with that platform's separators whatever the running one is:
 *
 * - win32: `%APPDATA%\safetunnel`, else `HOME\AppData\Roaming\safetunnel`
 *   (APPDATA's usual value; the variable's name is matched ignoring case, as
 *   Windows does).
 * - darwin: `~/Library/Application Support/safetunnel`.
 * - Linux and other Unix: `$XDG_CONFIG_HOME/safetunnel`, else
 *   `~/.config/safetunnel`. The XDG Base Directory Specification says a
 *   relative XDG_CONFIG_HOME is invalid and must be ignored, so it is.
 *
 * An empty or relative APPDATA is ignored the same way.
 *
 * @throws TunnelError("BAD_CONFIG") when the answer needs the home folder and it is empty or relative.
 * @example
 * userConfigDir("linux", { XDG_CONFIG_HOME: "/srv/conf" }, "/home/me"); // "/srv/conf/safetunnel"
 * userConfigDir("linux", {}, "/home/me"); // "/home/me/.config/safetunnel"
 * userConfigDir("win32", { APPDATA: "C:\\Users\\me\\AppData\\Roaming" }, "C:\\Users\\me"); // "C:\\Users\\me\\AppData\\Roaming\\safetunnel"
 */
export function userConfigDir(platform: string, env: Readonly<Record<string, string | undefined>>, home: string): string {
  if (platform === "win32") {
    const appData = windowsVariable(env, "APPDATA");
    if (appData !== undefined && win32.isAbsolute(appData)) return win32.join(appData, APP);
    return win32.join(checkedHome(home, win32.isAbsolute, "APPDATA"), "AppData", "Roaming", APP);
  }
  if (platform === "darwin") {
    return posix.join(checkedHome(home, posix.isAbsolute, "HOME"), "Library", "Application Support", APP);
  }
  const xdg = env["XDG_CONFIG_HOME"];
  if (xdg !== undefined && posix.isAbsolute(xdg)) return posix.join(xdg, APP);
  return posix.join(checkedHome(home, posix.isAbsolute, "XDG_CONFIG_HOME or HOME"), ".config", APP);
}

function windowsVariable(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  if (env[name] !== undefined) return env[name];
  const key = Object.keys(env).find((candidate) => candidate.toUpperCase() === name);
  return key === undefined ? undefined : env[key];
}

function checkedHome(home: string, isAbsolute: (path: string) => boolean, variable: string): string {
  if (home === "" || !isAbsolute(home)) {
    throw new TunnelError(
      "BAD_CONFIG",
      `Cannot find safetunnel's configuration folder: the home folder ${home === "" ? "is unknown" : `'${home}' is not an absolute path`}; set ${variable} to an absolute path`,
    );
  }
  return home;
}
