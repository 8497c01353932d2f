import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { userConfigDir } from "../../src/serve/config-dir.ts";
import { TunnelError } from "../../src/errors.ts";

function refuses(run: () => unknown, message: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof TunnelError);
    assert.equal(err.code, "BAD_CONFIG");
    assert.equal(err.message, message);
    return true;
  });
}

describe("userConfigDir on Linux and other Unix", () => {
  test("is ~/.config/safetunnel without XDG_CONFIG_HOME", () => {
    assert.equal(userConfigDir("linux", {}, "/home/me"), "/home/me/.config/safetunnel");
    assert.equal(userConfigDir("freebsd", {}, "/usr/home/me"), "/usr/home/me/.config/safetunnel");
    assert.equal(userConfigDir("openbsd", { APPDATA: "C:\\x" }, "/home/me"), "/home/me/.config/safetunnel");
  });

  test("is $XDG_CONFIG_HOME/safetunnel when that is absolute", () => {
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "/srv/conf" }, "/home/me"), "/srv/conf/safetunnel");
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "/srv/conf/" }, "/home/me"), "/srv/conf/safetunnel");
    assert.equal(userConfigDir("freebsd", { XDG_CONFIG_HOME: "/x" }, "/home/me"), "/x/safetunnel");
  });

  test("ignores an empty or relative XDG_CONFIG_HOME, as the XDG Base Directory spec says", () => {
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "" }, "/home/me"), "/home/me/.config/safetunnel");
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "conf" }, "/home/me"), "/home/me/.config/safetunnel");
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "~/conf" }, "/home/me"), "/home/me/.config/safetunnel");
  });

  test("needs no home folder when XDG_CONFIG_HOME is set", () => {
    assert.equal(userConfigDir("linux", { XDG_CONFIG_HOME: "/srv/conf" }, ""), "/srv/conf/safetunnel");
  });

  test("an empty or relative home folder is an error that says what to set", () => {
    refuses(
      () => userConfigDir("linux", {}, ""),
      "Cannot find safetunnel's configuration folder: the home folder is unknown; set XDG_CONFIG_HOME or HOME to an absolute path",
    );
    refuses(
      () => userConfigDir("linux", {}, "me"),
      "Cannot find safetunnel's configuration folder: the home folder 'me' is not an absolute path; set XDG_CONFIG_HOME or HOME to an absolute path",
    );
  });
});

describe("userConfigDir on macOS", () => {
  test("is ~/Library/Application Support/safetunnel, XDG_CONFIG_HOME or not", () => {
    assert.equal(userConfigDir("darwin", {}, "/Users/me"), "/Users/me/Library/Application Support/safetunnel");
    assert.equal(userConfigDir("darwin", { XDG_CONFIG_HOME: "/srv/conf" }, "/Users/me"), "/Users/me/Library/Application Support/safetunnel");
  });

  test("an empty home folder is an error that says to set HOME", () => {
    refuses(
      () => userConfigDir("darwin", {}, ""),
      "Cannot find safetunnel's configuration folder: the home folder is unknown; set HOME to an absolute path",
    );
  });
});

describe("userConfigDir on Windows", () => {
  test("is %APPDATA%\\safetunnel, with Windows separators whatever platform runs the code", () => {
    assert.equal(
      userConfigDir("win32", { APPDATA: "C:\\Users\\me\\AppData\\Roaming" }, "C:\\Users\\me"),
      "C:\\Users\\me\\AppData\\Roaming\\safetunnel",
    );
    assert.equal(userConfigDir("win32", { APPDATA: "D:/profiles/me" }, "C:\\Users\\me"), "D:\\profiles\\me\\safetunnel");
  });

  test("finds APPDATA whatever the case of its name, as Windows does", () => {
    assert.equal(userConfigDir("win32", { AppData: "E:\\roam" }, "C:\\Users\\me"), "E:\\roam\\safetunnel");
  });

  test("falls back to HOME\\AppData\\Roaming without an absolute APPDATA", () => {
    assert.equal(userConfigDir("win32", {}, "C:\\Users\\me"), "C:\\Users\\me\\AppData\\Roaming\\safetunnel");
    assert.equal(userConfigDir("win32", { APPDATA: "" }, "C:\\Users\\me"), "C:\\Users\\me\\AppData\\Roaming\\safetunnel");
    assert.equal(userConfigDir("win32", { APPDATA: "roaming" }, "C:\\Users\\me"), "C:\\Users\\me\\AppData\\Roaming\\safetunnel");
  });

  test("ignores XDG_CONFIG_HOME", () => {
    assert.equal(userConfigDir("win32", { XDG_CONFIG_HOME: "/srv/conf", APPDATA: "C:\\r" }, "C:\\Users\\me"), "C:\\r\\safetunnel");
  });

  test("without APPDATA or a home folder it says to set APPDATA", () => {
    refuses(
      () => userConfigDir("win32", {}, ""),
      "Cannot find safetunnel's configuration folder: the home folder is unknown; set APPDATA to an absolute path",
    );
  });
});
