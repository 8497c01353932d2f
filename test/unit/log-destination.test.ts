import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { logTarget, openLogFile, syslogProblem, syslogSocket } from "../../src/log-destination.ts";

describe("syslog's socket and whether it is there", () => {
  test("each system's _PATH_LOG; none on Windows", () => {
    assert.deepEqual(["linux", "openbsd", "darwin", "freebsd", "win32"].map(syslogSocket), ["/dev/log", "/dev/log", "/var/run/syslog", "/var/run/log", undefined]);
  });

  test("a missing socket, or no syslog at all, is a message naming -E; not being allowed to look is left to logger", () => {
    assert.equal(syslogProblem("linux", () => true), undefined);
    assert.equal(syslogProblem("linux", () => false), "no syslog daemon here (/dev/log does not exist) for the log of -f or -y; give -E FILE to log to a file instead");
    assert.equal(syslogProblem("win32", () => true), "this system has no syslog for the log of -f or -y; give -E FILE to log to a file instead");
    assert.equal(
      syslogProblem("linux", () => {
        throw new Error("NotCapable");
      }),
      undefined,
    );
  });
});

describe("-E: the log file", () => {
  test("lines are appended to what is there; a new file is made 0600", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safetunnel-logfile-"));
    try {
      const kept = join(dir, "kept.log");
      await writeFile(kept, "earlier\n");
      const file = openLogFile(kept);
      file.write("first");
      file.write("second");
      await file.close();
      file.write("after close");
      assert.equal(await readFile(kept, "utf8"), "earlier\nfirst\nsecond\n");
      const fresh = join(dir, "fresh.log");
      await openLogFile(fresh).close();
      assert.equal((await stat(fresh)).mode & 0o777, 0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a file that cannot be opened is LOG_FILE, naming the file and the fix", () => {
    assert.throws(() => openLogFile("/nonexistent-dir/t.log"), { code: "LOG_FILE", message: /^-E: cannot open the log file '\/nonexistent-dir\/t\.log' \(.*\); give a file this account can write$/ });
  });
});

describe("logTarget: where a run's log goes, as ssh decides", () => {
  test("-y wins over -E; -E is its file; -f alone is syslog; otherwise stderr", () => {
    assert.deepEqual(logTarget({ syslog: true, logFile: "/tmp/t.log" }, false), { kind: "syslog" });
    assert.deepEqual(logTarget({ syslog: false, logFile: "/tmp/t.log" }, true), { kind: "file", path: "/tmp/t.log" });
    assert.deepEqual(logTarget({ syslog: false, logFile: undefined }, true), { kind: "syslog" });
    assert.deepEqual(logTarget({ syslog: false, logFile: undefined }, false), { kind: "stderr" });
  });
});
