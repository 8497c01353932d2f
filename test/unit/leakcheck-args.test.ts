import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LEAKCHECK_HELP, parseLeakcheckArgs } from "../../src/cli/leakcheck-args.ts";
import { parseCommandLine } from "../../src/cli.ts";
import { TunnelError } from "../../src/errors.ts";

function usage(argv: string[], message: string): void {
  assert.throws(
    () => parseLeakcheckArgs(argv),
    (err: unknown) => err instanceof TunnelError && err.code === "USAGE" && err.exitCode === 255 && err.message === message,
  );
}

describe("parseLeakcheckArgs", () => {
  test("defaults: 127.0.0.1:1080, 60 s, nothing opened, no watch, no capture, human output", () => {
    assert.deepEqual(parseLeakcheckArgs([]), {
      command: "leakcheck",
      proxy: { host: "127.0.0.1", port: 1080 },
      waitMs: 60_000,
      open: false,
      watch: false,
      pcap: undefined,
      json: false,
    });
  });

  test("reads every option, in either spelling of a value", () => {
    assert.deepEqual(parseLeakcheckArgs(["--proxy=[::1]:9001", "--wait", "120", "--open", "--pcap", "/tmp/x.pcapng", "--json"]), {
      command: "leakcheck",
      proxy: { host: "::1", port: 9001 },
      waitMs: 120_000,
      open: true,
      watch: false,
      pcap: "/tmp/x.pcapng",
      json: true,
    });
  });

  test("a bare --proxy port means 127.0.0.1", () => {
    assert.deepEqual(parseLeakcheckArgs(["--proxy", "9001"]), { ...parseLeakcheckArgs([]), proxy: { host: "127.0.0.1", port: 9001 } });
  });

  test("bad values are one-line USAGE errors naming the fix", () => {
    usage(["--proxy", "::1:9001"], "leakcheck: bad --proxy '::1:9001': expected HOST:PORT of the tunnel's SOCKS port, e.g. --proxy 127.0.0.1:9001; see 'safetunnel leakcheck --help'");
    usage(["--proxy", "127.0.0.1:70000"], "leakcheck: bad --proxy '127.0.0.1:70000': expected HOST:PORT of the tunnel's SOCKS port, e.g. --proxy 127.0.0.1:9001; see 'safetunnel leakcheck --help'");
    usage(["--wait", "0"], "leakcheck: bad --wait '0': expected whole seconds from 1 to 86400, e.g. --wait 120; see 'safetunnel leakcheck --help'");
    usage(["--wait", "1.5"], "leakcheck: bad --wait '1.5': expected whole seconds from 1 to 86400, e.g. --wait 120; see 'safetunnel leakcheck --help'");
    usage(["--wait", "5", "--wait", "6"], "leakcheck: --wait given more than once; give it once; see 'safetunnel leakcheck --help'");
    usage(["--pcap"], "leakcheck: --pcap needs a value; see 'safetunnel leakcheck --help'");
    usage(["--bogus"], "leakcheck: unknown option '--bogus'; see 'safetunnel leakcheck --help'");
    usage(["home"], "leakcheck: leakcheck takes no host ('home'); it tests the tunnel at --proxy; see 'safetunnel leakcheck --help'");
    usage(["--watch", "--wait", "5"], "leakcheck: --watch runs until Ctrl-C, so --wait does not apply; give one of them; see 'safetunnel leakcheck --help'");
  });

  test("--help and -h give the leakcheck help", () => {
    assert.deepEqual(parseLeakcheckArgs(["--help"]), { command: "help", text: LEAKCHECK_HELP });
    assert.deepEqual(parseLeakcheckArgs(["--proxy", "9001", "-h"]), { command: "help", text: LEAKCHECK_HELP });
  });
});

describe("safetunnel leakcheck on the command line", () => {
  test("the first word leakcheck runs the subcommand; user@leakcheck and ssh://leakcheck stay hosts", () => {
    assert.equal(parseCommandLine(["leakcheck", "--proxy", "9001"]).command, "leakcheck");
    for (const argv of [["-D", "9001", "user@leakcheck"], ["-D", "9001", "ssh://leakcheck"]]) {
      const plan = parseCommandLine(argv);
      assert.equal(plan.command, "tunnel");
      assert.equal(plan.command === "tunnel" ? plan.host : undefined, "leakcheck");
    }
  });
});
