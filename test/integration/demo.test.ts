/**
 * `safetunnel demo` and `npm start`: the main job on one machine with nothing
 * set up. A curl through the port it prints reaches a loopback HTTP server by
 * name; Ctrl-C ends it with status 0 and removes its temporary keys.
 * `npm start` with arguments passes them on.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, test } from "node:test";
import { curlThroughSocks } from "../helpers/curl.ts";
import process from "node:process";
import { makeHome, repoRoot, startProcess, waitForLine, assertNoCrash } from "../helpers/run.ts";
import { HELLO, startHttpTarget, type HttpTarget } from "../helpers/targets.ts";

describe("safetunnel demo", () => {
  let http: HttpTarget | undefined;
  after(async () => {
    await http?.stop();
  });

  test("npm start with no arguments: a SOCKS port through an in-process serve, the set-up printed, cleaned up on Ctrl-C", async () => {
    http = await startHttpTarget();
    // What npm start runs (package.json), without npm in between, so the signal reaches it and it is ended by its own PID.
    const home = await makeHome();
    const demo = startProcess(process.execPath, ["--import", "tsx", "scripts/start.ts"], { cwd: repoRoot(), env: { ...process.env, HOME: home.home } });
    try {
      const folderLine = await waitForLine(demo, /throwaway keys in \S+\)/, "the demo's first line");
      const folder = /throwaway keys in (\S+)\)/.exec(folderLine)![1]!;
      assert.ok(existsSync(folder), folder);
      const tryLine = await waitForLine(demo, /^Try it: curl --socks5-hostname 127\.0\.0\.1:\d+ /, "the try-it line");
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(tryLine)![1]);
      assert.ok(port >= 1080 && port < 1100, `port ${port}`);
      assert.match(demo.stderr(), new RegExp(`SOCKS and HTTP proxy listening on 127\\.0\\.0\\.1:${port}`));
      assert.match(demo.stderr(), /Firefox:/);
      const result = await curlThroughSocks("--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${http.port}/hello`);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString(), HELLO);
      const status = await demo.stop("SIGINT");
      assert.equal(status.code, 0);
      assert.match(demo.stderr(), /^Stopped by SIGINT: 1 connection, /m);
      assert.match(demo.stderr(), /^Demo server: 1 login, 0 failed logins, 1 connection, /m);
      assert.equal(existsSync(folder), false, `${folder} is still there`);
      assertNoCrash(demo.stderr());
    } finally {
      await demo.stop("SIGKILL");
      await home.cleanup();
    }
  });

  test("npm start passes its arguments on to the command line", async () => {
    const npm = startProcess("npm", ["start", "--silent", "--", "--version"], { cwd: repoRoot() });
    const status = await npm.exited;
    assert.equal(status.code, 0, npm.stderr());
    assert.match(npm.stdout(), /^safetunnel \d+\.\d+\.\d+/m);
  });
});
