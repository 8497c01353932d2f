import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { resolveTunnelSettings, type TunnelRequest } from "../../src/config/tunnel-settings.ts";
import { parseSshConfig } from "../../src/config/ssh-config.ts";
import type { ConfigLine } from "../../src/config/host-lookup.ts";
import type { LocalEnvironment } from "../../src/config/settings.ts";
import { TunnelError } from "../../src/errors.ts";

const LOCAL: LocalEnvironment = { homeDir: "/home/me", localUser: "me", agentSocket: undefined, platform: "linux" };

function line(keyword: string, value: string, source = `-${keyword[0]!.toUpperCase()}`): ConfigLine {
  return { keyword, args: [value], source };
}

function resolve(lines: ConfigLine[], configText = "", host = "home") {
  const request: TunnelRequest = { host, user: undefined, configLines: lines };
  const warnings: string[] = [];
  const settings = resolveTunnelSettings(request, [parseSshConfig(configText, "/home/me/.ssh/config")], LOCAL, (message) => warnings.push(message));
  return { settings, warnings };
}

function refusal(lines: ConfigLine[], configText = ""): TunnelError {
  try {
    resolve(lines, configText);
  } catch (err) {
    assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the settings to be refused");
}

describe("resolveTunnelSettings: forwards", () => {
  test("collects -D, then -L, then -R, each in the order given, from flags and from the config file", () => {
    const { settings } = resolve(
      [line("remoteforward", "9003:internal:80", "-R"), line("localforward", "9002:web:80", "-L"), line("dynamicforward", "9001", "-D")],
      "Host home\n  DynamicForward 127.0.0.1:9004\n  LocalForward 9005 db:5432\n",
    );
    assert.deepEqual(settings.forwards, [
      { kind: "dynamic", listen: { address: null, port: 9001 }, raw: "9001" },
      { kind: "dynamic", listen: { address: "127.0.0.1", port: 9004 }, raw: "127.0.0.1:9004" },
      { kind: "local", listen: { address: null, port: 9002 }, target: { host: "web", port: 80 }, raw: "9002:web:80" },
      { kind: "local", listen: { address: null, port: 9005 }, target: { host: "db", port: 5432 }, raw: "9005:db:5432" },
      { kind: "remote", listen: { address: null, port: 9003 }, target: { host: "internal", port: 80 }, raw: "9003:internal:80" },
    ]);
  });

  test("nothing to forward is USAGE with an example", () => {
    const err = refusal([]);
    assert.equal(err.code, "USAGE");
    assert.equal(
      err.message,
      "nothing to forward: give -D [bind_address:]port (e.g. safetunnel -D 9001 user@home), or -L/-R, or DynamicForward in ssh_config",
    );
  });

  test("Unix-socket forwards are refused naming the form to use", () => {
    const cases: [ConfigLine, string][] = [
      [line("localforward", "8080:/run/app.sock", "-L"), "-L 8080:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport"],
      [line("localforward", "/tmp/in.sock:web:80", "-L"), "-L /tmp/in.sock:web:80: listening on a Unix socket is not supported; give [bind_address:]port"],
      [line("dynamicforward", "/tmp/socks.sock", "-D"), "-D /tmp/socks.sock: listening on a Unix socket is not supported; give [bind_address:]port"],
      [line("remoteforward", "9001:/run/app.sock", "-R"), "-R 9001:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport"],
    ];
    for (const [forward, message] of cases) {
      const err = refusal([line("dynamicforward", "9000", "-D"), forward]);
      assert.equal(err.code, "BAD_FORWARD_SPEC");
      assert.equal(err.message, message);
    }
  });

  test("an unsupported forward in the config file is refused too", () => {
    const err = refusal([], "Host home\n  RemoteForward 9001 /run/app.sock\n");
    assert.equal(err.code, "BAD_FORWARD_SPEC");
    assert.match(err.message, /^-R 9001:\/run\/app\.sock: forwarding to a Unix socket is not supported/);
  });

  test("-R with a port alone and RemoteForward with one argument are remote dynamic forwards, with no target", () => {
    const { settings } = resolve([line("remoteforward", "1080", "-R")], "Host home\n  RemoteForward 127.0.0.1:1081\n");
    assert.deepEqual(settings.forwards, [
      { kind: "remote", listen: { address: null, port: 1080 }, target: null, raw: "1080" },
      { kind: "remote", listen: { address: "127.0.0.1", port: 1081 }, target: null, raw: "127.0.0.1:1081" },
    ]);
  });
});

describe("resolveTunnelSettings: hosts", () => {
  test("each jump host is resolved from its own Host block and keeps only -4/-6 from the command line", () => {
    const { settings } = resolve(
      [line("addressfamily", "inet", "-4"), line("port", "2222", "-p"), line("user", "alice", "-l"), line("proxyjump", "bob@bastion:2200,inner", "-J"), line("dynamicforward", "9001", "-D")],
      "Host bastion\n  HostName bastion.example.org\nHost inner\n  Port 2022\n  User carol\n",
    );
    assert.deepEqual(
      settings.jumps.map((hop) => [hop.alias, hop.hostname, hop.port, hop.user, hop.addressFamily]),
      [
        ["bastion", "bastion.example.org", 2200, "bob", "inet"],
        ["inner", "inner", 2022, "carol", "inet"],
      ],
    );
    assert.deepEqual([settings.destination.port, settings.destination.user], [2222, "alice"]);
  });

  test("a refused setting for a jump host names that host", () => {
    const err = refusal([line("proxyjump", "bastion", "-J"), line("dynamicforward", "9001", "-D")], "Host bastion\n  ProxyCommand nc %h %p\n");
    assert.equal(err.code, "BAD_CONFIG");
    assert.match(err.message, /^ProxyCommand is set for bastion \(\/home\/me\/\.ssh\/config line 2\)/);
  });

  test("warnings reach the callback as they are found, destination first", () => {
    const { warnings } = resolve(
      [line("proxyjump", "bastion", "-J"), line("dynamicforward", "9001", "-D")],
      "Host home\n  Ciphers aes128-ctr\nHost bastion\n  MACs hmac-sha2-256\n",
    );
    assert.deepEqual(warnings, [
      "Ciphers (/home/me/.ssh/config line 2) is not supported; safetunnel uses its own modern defaults for home.",
      "MACs (/home/me/.ssh/config line 4) is not supported; safetunnel uses its own modern defaults for bastion.",
    ]);
  });
});
