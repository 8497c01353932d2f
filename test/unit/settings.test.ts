import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ConfigLine } from "../../src/config/host-lookup.ts";
import { commandLineConfig, lookupHost } from "../../src/config/host-lookup.ts";
import {
  parseDestination,
  parseJumpList,
  parseTimeSpec,
  resolveDestination,
  resolveHop,
  type DestinationSettings,
  type LocalEnvironment,
} from "../../src/config/settings.ts";
import { parseSshConfig } from "../../src/config/ssh-config.ts";
import { TunnelError } from "../../src/errors.ts";

const LOCAL: LocalEnvironment = { homeDir: "/home/me", localUser: "me", agentSocket: "/tmp/ssh-agent.sock", platform: "linux" };

function cli(keyword: string, value: string, source = "-o"): ConfigLine {
  return { keyword, args: value.split(" "), source };
}

/** Resolve `alias` with command-line lines first, then an in-memory ~/.ssh/config. */
function settingsFor(alias: string, lines: ConfigLine[] = [], configText = "", local: LocalEnvironment = LOCAL): DestinationSettings {
  const configs = [commandLineConfig(lines), parseSshConfig(configText, "/home/me/.ssh/config")];
  return resolveDestination(alias, lookupHost(alias, configs, { localUser: local.localUser }), local);
}

function assertBadConfig(fn: () => unknown, keyword: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${String(err)}`);
    assert.equal(err.code, "BAD_CONFIG");
    assert.equal(err.exitCode, 255);
    assert.match(err.message, keyword);
    return true;
  });
}

describe("lookupHost and commandLineConfig", () => {
  test("the command line comes before the config file: first value wins", () => {
    const s = settingsFor("web", [cli("user", "alice", "-l")], "Host web\n  User bob\n  Port 2200\n");
    assert.equal(s.user, "alice");
    assert.equal(s.port, 2200);
  });

  test("-p beats the config file's Port", () => {
    assert.equal(settingsFor("web", [cli("port", "2222", "-p")], "Host web\n  Port 2200\nHost *\n  Port 2300\n").port, 2222);
  });

  test("within the file, the first matching block's value wins", () => {
    assert.equal(settingsFor("web", [], "Host web\n  Port 2200\nHost *\n  Port 2300\n").port, 2200);
    assert.equal(settingsFor("other", [], "Host web\n  Port 2200\nHost *\n  Port 2300\n").port, 2300);
  });

  test("first() gives the first line's arguments and all() every DynamicForward line in order", () => {
    const lines = [cli("dynamicforward", "9001", "-D"), cli("port", "2222", "-p")];
    const file = parseSshConfig("Host web\n  DynamicForward 9002\n  Port 2200\nHost *\n  DynamicForward 127.0.0.1:9003\n", "cfg");
    const lookup = lookupHost("web", [commandLineConfig(lines), file], { localUser: "me" });
    assert.deepEqual(lookup.first("port"), ["2222"]);
    assert.deepEqual(lookup.all("dynamicforward"), [["9001"], ["9002"], ["127.0.0.1:9003"]]);
    assert.deepEqual(lookup.all("port"), [["2222"]]);
    assert.deepEqual(lookup.all("localforward"), []);
    assert.equal(lookup.first("hostname"), undefined);
    assert.deepEqual(lookup.warnings, []);
  });

  test("commandLineConfig keeps each line's keyword, arguments and source in a global block", () => {
    const parsed = commandLineConfig([cli("port", "2222", "-p"), cli("userknownhostsfile", "/a /b")]);
    assert.equal(parsed.file, "command line");
    assert.equal(parsed.blocks.length, 1);
    const block = parsed.blocks[0]!;
    assert.equal(block.kind, "global");
    assert.deepEqual(
      block.entries.map((e) => (e.kind === "option" ? e.directive : undefined)),
      [
        { keyword: "port", args: ["2222"], file: "command line (-p)", line: 1 },
        { keyword: "userknownhostsfile", args: ["/a", "/b"], file: "command line (-o)", line: 2 },
      ],
    );
  });

  test("resolveDestination accumulates DynamicForward from the command line and every matching block", () => {
    const s = settingsFor("web", [cli("dynamicforward", "9001", "-D")], "Host web\n  DynamicForward 9002\nHost *\n  DynamicForward 127.0.0.1:9003\n  LocalForward 8080 web:80\n");
    assert.deepEqual(s.dynamicForwards, [["9001"], ["9002"], ["127.0.0.1:9003"]]);
    assert.deepEqual(s.localForwards, [["8080", "web:80"]]);
    assert.deepEqual(s.remoteForwards, []);
  });
});

describe("resolveDestination defaults", () => {
  test("port 22, the local user, the alias as host name, no jumps, forwarding options off", () => {
    const s = settingsFor("example.org");
    assert.equal(s.alias, "example.org");
    assert.equal(s.hostname, "example.org");
    assert.equal(s.port, 22);
    assert.equal(s.user, "me");
    assert.equal(s.addressFamily, "any");
    assert.equal(s.connectTimeoutMs, undefined);
    // On by default, unlike OpenSSH: a tunnel must notice a dead server to reconnect.
    assert.equal(s.serverAliveIntervalMs, 15_000);
    assert.equal(s.serverAliveCountMax, 3);
    assert.deepEqual(s.jumps, []);
    assert.equal(s.gatewayPorts, false);
    assert.equal(s.exitOnForwardFailure, false);
    assert.deepEqual(s.dynamicForwards, []);
  });

  test("identity defaults are ~/.ssh/id_ed25519, id_ecdsa, id_rsa, not explicit", () => {
    assert.deepEqual(settingsFor("h").auth.identityFiles, [
      { path: "/home/me/.ssh/id_ed25519", explicit: false },
      { path: "/home/me/.ssh/id_ecdsa", explicit: false },
      { path: "/home/me/.ssh/id_rsa", explicit: false },
    ]);
  });

  test("known_hosts defaults are OpenSSH's four files; StrictHostKeyChecking is ask", () => {
    const { hostKey } = settingsFor("Example.ORG");
    assert.deepEqual(hostKey.userKnownHostsFiles, ["/home/me/.ssh/known_hosts", "/home/me/.ssh/known_hosts2"]);
    assert.deepEqual(hostKey.globalKnownHostsFiles, ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]);
    assert.equal(hostKey.strict, "ask");
    assert.equal(hostKey.host, "example.org");
    assert.equal(hostKey.port, 22);
    assert.equal(hostKey.batchMode, false);
    assert.equal(hostKey.hashKnownHosts, undefined);
  });

  test("the agent is SSH_AUTH_SOCK; authentication defaults match OpenSSH", () => {
    const { auth } = settingsFor("h");
    assert.equal(auth.agent, "/tmp/ssh-agent.sock");
    assert.equal(auth.identitiesOnly, false);
    assert.equal(auth.batchMode, false);
    assert.equal(auth.passwordPrompts, 3);
    assert.equal(auth.preferredAuthentications, undefined);
  });

  test("without SSH_AUTH_SOCK there is no agent on Linux and Pageant on Windows", () => {
    assert.equal(settingsFor("h", [], "", { ...LOCAL, agentSocket: undefined }).auth.agent, undefined);
    assert.equal(settingsFor("h", [], "", { ...LOCAL, agentSocket: undefined, platform: "win32" }).auth.agent, "pageant");
  });
});

describe("resolveDestination: identity files", () => {
  test("expands %h %p %r %u %d and ~ in IdentityFile, with %h the HostName", () => {
    const s = settingsFor(
      "web",
      [],
      "Host web\n  HostName web.example.org\n  User deploy\n  Port 2201\n  IdentityFile ~/.ssh/%h-%p-%r-%u\n  IdentityFile %d/keys/%r%%\n",
    );
    assert.deepEqual(s.auth.identityFiles, [
      { path: "/home/me/.ssh/web.example.org-2201-deploy-me", explicit: true },
      { path: "/home/me/keys/deploy%", explicit: true },
    ]);
  });

  test("-i comes first, config IdentityFile lines follow, duplicates are dropped, and no defaults are added", () => {
    const s = settingsFor("web", [cli("identityfile", "~/k1", "-i")], "Host web\n  IdentityFile ~/k2\n  IdentityFile ~/k1\n");
    assert.deepEqual(s.auth.identityFiles, [
      { path: "/home/me/k1", explicit: true },
      { path: "/home/me/k2", explicit: true },
    ]);
  });

  test("a relative -i path is kept as given (relative to the working directory, as ssh does)", () => {
    assert.deepEqual(settingsFor("h", [cli("identityfile", "007", "-i")]).auth.identityFiles, [{ path: "007", explicit: true }]);
  });

  test("IdentitiesOnly yes", () => {
    assert.equal(settingsFor("h", [cli("identitiesonly", "yes")]).auth.identitiesOnly, true);
  });

  test("an unknown % token in IdentityFile is BAD_CONFIG naming the token", () => {
    assertBadConfig(() => settingsFor("h", [], "IdentityFile ~/.ssh/%z\n"), /%z/);
  });
});

describe("resolveDestination: IdentityAgent", () => {
  test("none disables the agent even when SSH_AUTH_SOCK is set", () => {
    assert.equal(settingsFor("h", [cli("identityagent", "none")]).auth.agent, undefined);
  });

  test("SSH_AUTH_SOCK means the environment's socket", () => {
    assert.equal(settingsFor("h", [], "IdentityAgent SSH_AUTH_SOCK\n").auth.agent, "/tmp/ssh-agent.sock");
  });

  test("a path is expanded for ~ and tokens", () => {
    assert.equal(settingsFor("h", [], "IdentityAgent ~/.ssh/agent-%r.sock\n").auth.agent, "/home/me/.ssh/agent-me.sock");
    assert.equal(settingsFor("h", [], "IdentityAgent /run/agent.sock\n").auth.agent, "/run/agent.sock");
  });

  test("%l %L %i and %C expand like OpenSSH 9.2 (%C is SHA-1 of %l%h%p%r, checked against ssh -G)", () => {
    const local = { ...LOCAL, localHostname: "vm", uid: 1000 };
    const s = settingsFor("somehost", [cli("port", "2222"), cli("user", "bob"), cli("identityfile", "~/.ssh/%C-%l-%L-%i")], "", local);
    assert.deepEqual(s.auth.identityFiles.map((f) => f.path), ["/home/me/.ssh/40ab4146d6a1a7ccc04d44b2dc0549c89123a42f-vm-vm-1000"]);
    assert.throws(() => settingsFor("h", [cli("identityfile", "~/.ssh/%l")]), /unknown token %l/);
  });

  test("${VAR} and a bare $VAR come from the environment; an unset one is BAD_CONFIG naming it", () => {
    const local = { ...LOCAL, env: { XDG_RUNTIME_DIR: "/run/user/1000", MY_AGENT: "/tmp/a.sock" } };
    assert.equal(settingsFor("h", [], "IdentityAgent ${XDG_RUNTIME_DIR}/ssh-agent.socket\n", local).auth.agent, "/run/user/1000/ssh-agent.socket");
    assert.equal(settingsFor("h", [], "IdentityAgent $MY_AGENT\n", local).auth.agent, "/tmp/a.sock");
    assert.throws(() => settingsFor("h", [], "IdentityAgent ${NOPE}/sock\n", local), (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "BAD_CONFIG");
      assert.match(err.message, /NOPE is not set/);
      return true;
    });
  });
});

describe("resolveDestination: timeouts, batch mode, forwarding options", () => {
  test("ConnectTimeout and ServerAliveInterval are seconds, ServerAliveCountMax a count", () => {
    const s = settingsFor("h", [cli("connecttimeout", "10"), cli("serveraliveinterval", "7"), cli("serveralivecountmax", "5")]);
    assert.equal(s.connectTimeoutMs, 10_000);
    assert.equal(s.serverAliveIntervalMs, 7_000);
    assert.equal(s.serverAliveCountMax, 5);
    // 0 turns keepalives off, as in OpenSSH.
    assert.equal(settingsFor("h", [cli("serveraliveinterval", "0")]).serverAliveIntervalMs, 0);
  });

  test("time values take OpenSSH's units: 30s, 2m, 1h30m, 1w", () => {
    assert.equal(settingsFor("h", [cli("connecttimeout", "30s")]).connectTimeoutMs, 30_000);
    assert.equal(settingsFor("h", [cli("serveraliveinterval", "2m")]).serverAliveIntervalMs, 120_000);
    assert.equal(settingsFor("h", [cli("serveraliveinterval", "1h30m")]).serverAliveIntervalMs, 5_400_000);
    assert.equal(parseTimeSpec("1w"), 604_800);
    assert.equal(parseTimeSpec("10x"), undefined);
    assert.equal(parseTimeSpec("m"), undefined);
    assert.throws(() => settingsFor("h", [cli("connecttimeout", "soon")]), /Bad value 'soon' for connecttimeout/);
  });

  test("ConnectTimeout 0 and none wait as long as the OS does", () => {
    assert.equal(settingsFor("h", [cli("connecttimeout", "0")]).connectTimeoutMs, undefined);
    assert.equal(settingsFor("h", [cli("connecttimeout", "none")]).connectTimeoutMs, undefined);
  });

  test("BatchMode yes reaches both host-key checking and authentication", () => {
    const s = settingsFor("h", [], "BatchMode yes\n");
    assert.equal(s.hostKey.batchMode, true);
    assert.equal(s.auth.batchMode, true);
  });

  test("ExitOnForwardFailure and GatewayPorts yes", () => {
    const s = settingsFor("h", [cli("exitonforwardfailure", "yes"), cli("gatewayports", "yes", "-g")]);
    assert.equal(s.exitOnForwardFailure, true);
    assert.equal(s.gatewayPorts, true);
  });

  test("yes/no values are case-insensitive", () => {
    assert.equal(settingsFor("h", [cli("exitonforwardfailure", "YES")]).exitOnForwardFailure, true);
    assert.equal(settingsFor("h", [cli("gatewayports", "No")]).gatewayPorts, false);
  });

  test("StrictHostKeyChecking yes, accept-new, no and off", () => {
    assert.equal(settingsFor("h", [cli("stricthostkeychecking", "yes")]).hostKey.strict, "yes");
    assert.equal(settingsFor("h", [cli("stricthostkeychecking", "accept-new")]).hostKey.strict, "accept-new");
    assert.equal(settingsFor("h", [cli("stricthostkeychecking", "no")]).hostKey.strict, "no");
    assert.equal(settingsFor("h", [cli("stricthostkeychecking", "off")]).hostKey.strict, "no");
  });

  test("UserKnownHostsFile takes several files on one line, with ~ expanded; none means no file", () => {
    const s = settingsFor("h", [cli("userknownhostsfile", "~/kh1 /etc/kh2"), cli("globalknownhostsfile", "none")]);
    assert.deepEqual(s.hostKey.userKnownHostsFiles, ["/home/me/kh1", "/etc/kh2"]);
    assert.deepEqual(s.hostKey.globalKnownHostsFiles, []);
  });

  test("known_hosts is searched for HostName and a non-22 port", () => {
    const { hostKey } = settingsFor("web", [cli("port", "2222", "-p")], "Host web\n  HostName Web.Example.org\n");
    assert.equal(hostKey.host, "web.example.org");
    assert.equal(hostKey.port, 2222);
  });

  test("HostKeyAlias replaces the name and the port becomes 22 (no [host]:port form)", () => {
    const s = settingsFor("web", [cli("port", "2222", "-p")], "Host web\n  HostName 192.0.2.7\n  HostKeyAlias webalias\n");
    assert.equal(s.hostname, "192.0.2.7");
    assert.equal(s.port, 2222);
    assert.equal(s.hostKey.host, "webalias");
    assert.equal(s.hostKey.port, 22);
  });

  test("HostName expands %h to the alias", () => {
    assert.equal(settingsFor("web", [], "Host web\n  HostName %h.example.org\n").hostname, "web.example.org");
  });

  test("AddressFamily inet and inet6", () => {
    assert.equal(settingsFor("h", [cli("addressfamily", "inet", "-4")]).addressFamily, "inet");
    assert.equal(settingsFor("h", [cli("addressfamily", "inet6", "-6")]).addressFamily, "inet6");
  });
});

describe("resolveDestination: ProxyJump", () => {
  test("a,b:2222,u@c becomes three hops, outermost first", () => {
    assert.deepEqual(settingsFor("h", [cli("proxyjump", "a,b:2222,u@c", "-J")]).jumps, [
      { host: "a" },
      { host: "b", port: 2222 },
      { user: "u", host: "c" },
    ]);
  });

  test("ProxyJump from the config file applies when the command line has none", () => {
    assert.deepEqual(settingsFor("h", [], "Host h\n  ProxyJump ssh://u@bastion:2\n").jumps, [{ user: "u", host: "bastion", port: 2 }]);
  });

  test("ProxyJump none means no jump, and -J none overrides the config", () => {
    assert.deepEqual(settingsFor("h", [], "ProxyJump none\n").jumps, []);
    assert.deepEqual(settingsFor("h", [cli("proxyjump", "none", "-J")], "ProxyJump bastion\n").jumps, []);
  });
});

describe("resolveDestination: bad values are BAD_CONFIG naming the keyword", () => {
  test("Port", () => {
    assertBadConfig(() => settingsFor("h", [cli("port", "abc", "-p")]), /'abc'.*Port/);
    assertBadConfig(() => settingsFor("h", [cli("port", "0", "-p")]), /Port/);
    assertBadConfig(() => settingsFor("h", [cli("port", "65536", "-p")]), /Port/);
  });

  test("yes/no keywords", () => {
    assertBadConfig(() => settingsFor("h", [cli("batchmode", "maybe")]), /'maybe'.*batchmode/i);
    assertBadConfig(() => settingsFor("h", [cli("exitonforwardfailure", "1")]), /exitonforwardfailure/i);
    assertBadConfig(() => settingsFor("h", [cli("gatewayports", "sometimes")]), /gatewayports/i);
    assertBadConfig(() => settingsFor("h", [cli("identitiesonly", "y")]), /identitiesonly/i);
  });

  test("time and count keywords", () => {
    assertBadConfig(() => settingsFor("h", [cli("connecttimeout", "ten")]), /'ten'.*connecttimeout/i);
    assertBadConfig(() => settingsFor("h", [cli("serveraliveinterval", "-1")]), /serveraliveinterval/i);
    assertBadConfig(() => settingsFor("h", [cli("serveralivecountmax", "x")]), /serveralivecountmax/i);
  });

  test("StrictHostKeyChecking and AddressFamily", () => {
    assertBadConfig(() => settingsFor("h", [cli("stricthostkeychecking", "sometimes")]), /StrictHostKeyChecking/);
    assertBadConfig(() => settingsFor("h", [cli("addressfamily", "ipx")]), /AddressFamily/);
  });

  test("a bad ProxyJump port", () => {
    assertBadConfig(() => settingsFor("h", [cli("proxyjump", "bastion:99999", "-J")]), /ProxyJump/);
  });
});

describe("resolveHop", () => {
  test("resolves a jump host on its own, with its own config block", () => {
    const file = parseSshConfig("Host bastion\n  User jumper\n  Port 2022\n  IdentityFile ~/.ssh/bastion_%r\n", "cfg");
    const lookup = lookupHost("bastion", [commandLineConfig([]), file], { localUser: "me" });
    const hop = resolveHop("bastion", lookup, LOCAL);
    assert.equal(hop.alias, "bastion");
    assert.equal(hop.hostname, "bastion");
    assert.equal(hop.user, "jumper");
    assert.equal(hop.port, 2022);
    assert.deepEqual(hop.auth.identityFiles, [{ path: "/home/me/.ssh/bastion_jumper", explicit: true }]);
  });
});

describe("parseDestination", () => {
  test("host and user@host", () => {
    assert.deepEqual(parseDestination("host"), { host: "host" });
    assert.deepEqual(parseDestination("me@host"), { user: "me", host: "host" });
  });

  test("the last @ separates the user, so a user may contain @", () => {
    assert.deepEqual(parseDestination("me@corp@host"), { user: "me@corp", host: "host" });
  });

  test("ssh://user@host:port and ssh://host/", () => {
    assert.deepEqual(parseDestination("ssh://u@h:2"), { user: "u", host: "h", port: 2 });
    assert.deepEqual(parseDestination("ssh://h/"), { host: "h" });
  });

  test("a bracketed IPv6 address", () => {
    assert.deepEqual(parseDestination("me@[2001:db8::1]"), { user: "me", host: "2001:db8::1" });
    assert.deepEqual(parseDestination("ssh://[::1]:2222"), { host: "::1", port: 2222 });
  });

  test("an empty host or user is USAGE", () => {
    for (const text of ["", "me@", "@host"]) {
      assert.throws(() => parseDestination(text), (err: unknown) => err instanceof TunnelError && err.code === "USAGE" && err.exitCode === 255);
    }
  });
});

describe("parseJumpList", () => {
  test("a,b:2222,u@c", () => {
    assert.deepEqual(parseJumpList("a,b:2222,u@c"), [{ host: "a" }, { host: "b", port: 2222 }, { user: "u", host: "c" }]);
  });

  test("ssh://u@h:2 and [v6]:port entries", () => {
    assert.deepEqual(parseJumpList("ssh://u@h:2"), [{ user: "u", host: "h", port: 2 }]);
    assert.deepEqual(parseJumpList("u@[::1]:2222, inner"), [{ user: "u", host: "::1", port: 2222 }, { host: "inner" }]);
  });

  test("an empty hop names ProxyJump and exits 255", () => {
    for (const text of ["a,,b", "u@", "a,"]) {
      assert.throws(
        () => parseJumpList(text),
        (err: unknown) => err instanceof TunnelError && err.exitCode === 255 && /ProxyJump/.test(err.message),
        `parseJumpList(${JSON.stringify(text)})`,
      );
    }
  });

  test("a port out of range is BAD_CONFIG naming ProxyJump", () => {
    assertBadConfig(() => parseJumpList("b:0"), /ProxyJump/);
    assertBadConfig(() => parseJumpList("ssh://h:70000"), /ProxyJump/);
  });
});
