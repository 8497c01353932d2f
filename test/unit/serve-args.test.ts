import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseCommandLine } from "../../src/cli.ts";
import { parseServeArgs } from "../../src/cli/serve-args.ts";
import { parseDemoArgs } from "../../src/cli/demo-args.ts";
import { connectFailureText, remoteBindHosts } from "../../src/serve/server.ts";
import { knownHostsLine } from "../../src/serve/host-key.ts";
import { Buffer } from "node:buffer";

describe("safetunnel serve's command line", () => {
  test("defaults: both wildcard addresses on 2222, ~/.ssh/authorized_keys, the kept host key", () => {
    assert.deepEqual(parseCommandLine(["serve"]), {
      command: "serve",
      listen: [
        { host: "0.0.0.0", port: 2222 },
        { host: "::", port: 2222 },
      ],
      authorizedKeys: undefined,
      hostKey: undefined,
      permitOpen: [],
      gatewayPorts: false,
      loginGraceSeconds: 120,
      json: false,
      verbosity: 0,
    });
  });

  test("--listen takes ADDR:PORT, [IPv6]:PORT, *:PORT or a port, and repeats", () => {
    const plan = parseServeArgs(["--listen", "127.0.0.1:2200", "--listen", "[::1]:2201", "--listen", "2202", "--listen", "*:2203", "-vv", "--json"]);
    assert.equal(plan.command, "serve");
    if (plan.command !== "serve") return;
    assert.deepEqual(plan.listen, [
      { host: "127.0.0.1", port: 2200 },
      { host: "::1", port: 2201 },
      { host: "0.0.0.0", port: 2202 },
      { host: "::", port: 2202 },
      { host: "0.0.0.0", port: 2203 },
      { host: "::", port: 2203 },
    ]);
    assert.equal(plan.verbosity, 2);
    assert.equal(plan.json, true);
  });

  test("bad input is one USAGE line naming the fix", () => {
    assert.throws(() => parseServeArgs(["--listen", "home:"]), { code: "USAGE", message: "serve: bad --listen 'home:': expected ADDR:PORT, [IPv6]:PORT or a port, e.g. --listen 0.0.0.0:2222; see 'safetunnel serve --help'" });
    assert.throws(() => parseServeArgs(["--listen", "::1:22"]), { code: "USAGE" });
    assert.throws(() => parseServeArgs(["--password"]), { code: "USAGE", message: "serve: unknown option '--password'; see 'safetunnel serve --help'" });
    assert.throws(() => parseServeArgs(["user@home"]), { code: "USAGE", message: "serve: serve takes no host ('user@home'); it listens with --listen; see 'safetunnel serve --help'" });
    assert.throws(() => parseServeArgs(["--host-key", "a", "--host-key", "b"]), { code: "USAGE", message: "serve: --host-key given more than once; give it once; see 'safetunnel serve --help'" });
    assert.throws(() => parseServeArgs(["--permit-open", "nocolon"]), { code: "USAGE" });
    assert.throws(() => parseServeArgs(["--login-grace-time", "0"]), { code: "USAGE", message: "serve: bad --login-grace-time '0': expected whole seconds from 1 to 3600, e.g. --login-grace-time 60; see 'safetunnel serve --help'" });
  });

  test("--help", () => {
    const plan = parseServeArgs(["--help"]);
    assert.equal(plan.command, "help");
    assert.match((plan as { text: string }).text, /^usage: safetunnel serve /);
  });
});

describe("safetunnel demo's command line", () => {
  test("no arguments, -v and --json only", () => {
    assert.deepEqual(parseCommandLine(["demo"]), { command: "demo", json: false, verbosity: 0 });
    assert.deepEqual(parseDemoArgs(["-v", "--json"]), { command: "demo", json: true, verbosity: 1 });
    assert.throws(() => parseDemoArgs(["-D", "9001"]), { code: "USAGE", message: "demo: unknown argument '-D'; it takes only -v and --json (see 'safetunnel demo --help'); for a real tunnel run safetunnel -D 9001 user@home" });
  });
});

describe("serve's answers", () => {
  test("a failed connect goes back in the words OpenSSH's sshd uses, which clients classify", () => {
    const failure = (code: string): Error => Object.assign(new Error(`connect ${code}`), { code });
    assert.equal(connectFailureText(failure("ECONNREFUSED")), "Connection refused");
    assert.equal(connectFailureText(failure("ENOTFOUND")), "Name or service not known");
    assert.equal(connectFailureText(failure("EAI_AGAIN")), "Temporary failure in name resolution");
    assert.equal(connectFailureText(failure("ETIMEDOUT")), "Connection timed out");
    assert.equal(connectFailureText(failure("EHOSTUNREACH")), "No route to host");
    assert.equal(connectFailureText(failure("ENETUNREACH")), "Network is unreachable");
    assert.equal(connectFailureText(failure("EWHATEVER")), "connect EWHATEVER");
  });

  test("-R binds loopback unless --gateway-ports, as sshd's GatewayPorts no", () => {
    assert.deepEqual(remoteBindHosts("", false), ["127.0.0.1", "::1"]);
    assert.deepEqual(remoteBindHosts("0.0.0.0", false), ["127.0.0.1", "::1"]);
    assert.deepEqual(remoteBindHosts("", true), ["0.0.0.0", "::"]);
    assert.deepEqual(remoteBindHosts("localhost", true), ["127.0.0.1", "::1"]);
    assert.deepEqual(remoteBindHosts("192.0.2.7", true), ["192.0.2.7"]);
  });

  test("the known_hosts line names every host in OpenSSH's [host]:port form", () => {
    const key = { type: "ssh-ed25519", publicBlob: Buffer.from([0, 0, 0, 11, ...Buffer.from("ssh-ed25519"), 0, 0, 0, 1, 7]) };
    assert.equal(knownHostsLine(["home", "192.0.2.7"], 2222, key), "[home]:2222,[192.0.2.7]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQc=");
    assert.equal(knownHostsLine(["home"], 22, key), "home ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQc=");
  });
});
