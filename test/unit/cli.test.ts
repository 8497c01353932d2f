import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { HELP_TEXT, parseCommandLine, SUBCOMMANDS, VERSION, type Plan, type Subcommand, type TunnelPlan } from "../../src/cli.ts";
import { socksCredentials } from "../../src/cli/tunnel-args.ts";
import type { ConfigLine } from "../../src/config/host-lookup.ts";
import { commandLineConfig, lookupHost } from "../../src/config/host-lookup.ts";
import { resolveDestination, type LocalEnvironment } from "../../src/config/settings.ts";
import { TunnelError } from "../../src/errors.ts";
import { clientSetupHelp } from "../../src/client-setup.ts";
import { runCli } from "../helpers/run.ts";

const LOCAL: LocalEnvironment = { homeDir: "/home/me", localUser: "me", agentSocket: undefined, platform: "linux" };

function tunnel(argv: string[]): TunnelPlan {
  const plan: Plan = parseCommandLine(argv);
  assert.equal(plan.command, "tunnel", `expected a tunnel plan for ${JSON.stringify(argv)}`);
  return plan as TunnelPlan;
}

function line(keyword: string, args: string[], source: string): ConfigLine {
  return { keyword, args, source };
}

/** Asserts a USAGE error (exit 255) whose message contains every fragment. */
function assertUsage(argv: string[], ...fragments: string[]): void {
  assert.throws(
    () => parseCommandLine(argv),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${String(err)}`);
      assert.equal(err.code, "USAGE");
      assert.equal(err.exitCode, 255);
      for (const fragment of fragments) assert.ok(err.message.includes(fragment), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
      assert.ok(!err.message.includes("\n"), "a usage error is one line");
      return true;
    },
  );
}

/** What the command line alone resolves to, as OpenSSH's `ssh -G -F none` would show it. */
function resolved(argv: string[]) {
  const plan = tunnel(argv);
  const lookup = lookupHost(plan.host, [commandLineConfig(plan.configLines)], { localUser: LOCAL.localUser });
  return resolveDestination(plan.host, lookup, LOCAL);
}

describe("parseCommandLine: flags to config lines", () => {
  test("turns every supported flag into its ssh_config line with the flag as source, in precedence order", () => {
    // -4/-6 and -g are assigned outright by ssh (they beat any -o), so they come
    // first; the rest keep argv order, where the first value wins as in ssh.
    const plan = tunnel([
      "-p", "2222", "-l", "bob", "-i", "k1", "-i", "k2", "-J", "jump", "-D", "9001", "-D", "127.0.0.1:9002",
      "-L", "8080:web:80", "-R", "9000:localhost:22", "-g", "-4", "-F", "/cfg", "-N", "host",
    ]);
    assert.deepEqual(plan.configLines, [
      line("addressfamily", ["inet"], "-4"),
      line("gatewayports", ["yes"], "-g"),
      line("port", ["2222"], "-p"),
      line("user", ["bob"], "-l"),
      line("identityfile", ["k1"], "-i"),
      line("identityfile", ["k2"], "-i"),
      line("proxyjump", ["jump"], "-J"),
      line("dynamicforward", ["9001"], "-D"),
      line("dynamicforward", ["127.0.0.1:9002"], "-D"),
      line("localforward", ["8080:web:80"], "-L"),
      line("remoteforward", ["9000:localhost:22"], "-R"),
    ]);
    assert.equal(plan.configFile, "/cfg");
    assert.equal(plan.destination, "host");
    assert.equal(plan.verbosity, 0);
    assert.equal(plan.json, false);
    assert.equal(plan.reconnect, true);
    assert.deepEqual(plan.allowIp, []);
    assert.deepEqual(plan.warnings, []);
  });

  test("--max-connections takes a whole number from 1 to 1000000", () => {
    assert.equal(tunnel(["--max-connections", "512", "-D", "9001", "host"]).maxConnections, 512);
    assert.equal(tunnel(["-D", "9001", "host"]).maxConnections, undefined);
    assert.throws(() => parseCommandLine(["--max-connections", "0", "-D", "9001", "host"]), { code: "USAGE", message: /--max-connections needs a whole number from 1 to 1000000/ });
    assert.throws(() => parseCommandLine(["--max-connections", "-D", "9001", "host"]), { code: "USAGE" });
  });

  test("--no-reconnect asks for ssh's behaviour when the connection drops", () => {
    assert.equal(tunnel(["--no-reconnect", "-D", "9001", "host"]).reconnect, false);
    assert.equal(tunnel(["-D", "9001", "host", "--no-reconnect"]).reconnect, false);
  });

  test("-6 becomes AddressFamily inet6", () => {
    assert.deepEqual(tunnel(["-6", "host"]).configLines, [line("addressfamily", ["inet6"], "-6")]);
  });

  test("reads clustered flags with the value in the next word: -NvD 9001", () => {
    const plan = tunnel(["-NvD", "9001", "user@home"]);
    assert.deepEqual(plan.configLines, [line("dynamicforward", ["9001"], "-D"), line("user", ["user"], "user@host")]);
    assert.equal(plan.verbosity, 1);
    assert.equal(plan.destination, "user@home");
    assert.equal(plan.host, "home");
    assert.equal(plan.user, "user");
  });

  test("takes user@host where it stands in argv, as ssh does: a -l before it wins, a -l after it does not", () => {
    assert.equal(resolved(["-D", "1", "alice@host", "-l", "bob"]).user, "alice");
    assert.equal(resolved(["-D", "1", "-l", "bob", "alice@host"]).user, "bob");
    assert.equal(resolved(["-D", "1", "ssh://carol@host:2200", "-p", "22"]).port, 2200);
  });

  test("the last of -q and -v decides the verbosity, as in ssh", () => {
    assert.equal(tunnel(["-q", "-v", "host"]).verbosity, 1);
    assert.equal(tunnel(["-vv", "-q", "host"]).verbosity, -1);
  });

  test("a second -J is USAGE: several jump hosts go in one comma list", () => {
    assert.throws(() => tunnel(["-J", "a", "-J", "b", "host"]), /only a single -J option is permitted/);
  });

  test("reads a value attached to its flag: -D9001 and -NvD9001", () => {
    assert.deepEqual(tunnel(["-D9001", "host"]).configLines, [line("dynamicforward", ["9001"], "-D")]);
    assert.deepEqual(tunnel(["-NvD9001", "host"]).configLines, [line("dynamicforward", ["9001"], "-D")]);
    assert.deepEqual(tunnel(["-p2222", "host"]).configLines, [line("port", ["2222"], "-p")]);
  });

  test("-vvv is verbosity 3 and -v -v is 2", () => {
    assert.equal(tunnel(["-vvv", "host"]).verbosity, 3);
    assert.equal(tunnel(["-v", "-v", "host"]).verbosity, 2);
  });

  test("-q is verbosity -1", () => {
    assert.equal(tunnel(["-q", "host"]).verbosity, -1);
  });

  test("takes options after the destination, as ssh does: host -p 2222", () => {
    const plan = tunnel(["host", "-p", "2222", "-D", "9001"]);
    assert.equal(plan.destination, "host");
    assert.deepEqual(plan.configLines, [line("port", ["2222"], "-p"), line("dynamicforward", ["9001"], "-D")]);
  });

  test("-- ends the options: the next word is the destination even if it starts a new argv", () => {
    const plan = tunnel(["-D", "9001", "--", "host"]);
    assert.equal(plan.destination, "host");
    assert.deepEqual(plan.configLines, [line("dynamicforward", ["9001"], "-D")]);
  });

  test("after --, words that look like options are a remote command and refused", () => {
    assertUsage(["--", "host", "-p", "2"], "remote command", "-p 2");
  });

  test("keeps numeric-looking values as typed strings: -i 007, -p 0022, -D 09001", () => {
    assert.deepEqual(tunnel(["-i", "007", "-p", "0022", "-D", "09001", "host"]).configLines, [
      line("identityfile", ["007"], "-i"),
      line("port", ["0022"], "-p"),
      line("dynamicforward", ["09001"], "-D"),
    ]);
  });

  test("takes the word after a value flag as its value even if it starts with a dash", () => {
    // getopt(3) semantics, as in ssh: `-l -x` logs in as "-x".
    assert.deepEqual(tunnel(["-l", "-x", "host"]).configLines, [line("user", ["-x"], "-l")]);
  });

  test("-F sets the config file without adding a config line", () => {
    const plan = tunnel(["-F", "none", "host"]);
    assert.equal(plan.configFile, "none");
    assert.deepEqual(plan.configLines, []);
  });
});

describe("parseCommandLine: -o", () => {
  test("reads -o Keyword=value with a lower-case keyword and -o as source", () => {
    assert.deepEqual(tunnel(["-o", "Port=2222", "host"]).configLines, [line("port", ["2222"], "-o")]);
  });

  test("reads -o \"Keyword value\" and spaces around =", () => {
    assert.deepEqual(tunnel(["-o", "Port 2222", "host"]).configLines, [line("port", ["2222"], "-o")]);
    assert.deepEqual(tunnel(["-o", "  Port  =  2222  ", "host"]).configLines, [line("port", ["2222"], "-o")]);
    assert.deepEqual(tunnel(["-oPort=2222", "host"]).configLines, [line("port", ["2222"], "-o")]);
  });

  test("splits a multi-word value into arguments: -o \"UserKnownHostsFile /a /b\" is two files", () => {
    assert.deepEqual(tunnel(["-o", "UserKnownHostsFile /a /b", "host"]).configLines, [line("userknownhostsfile", ["/a", "/b"], "-o")]);
    assert.deepEqual(tunnel(["-o", "DynamicForward=127.0.0.1:9001", "host"]).configLines, [
      line("dynamicforward", ["127.0.0.1:9001"], "-o"),
    ]);
    assert.deepEqual(tunnel(["-o", "LocalForward 8080 web:80", "host"]).configLines, [line("localforward", ["8080", "web:80"], "-o")]);
  });

  test("keeps a quoted word whole, as ssh's argv_split does: UserKnownHostsFile=\"/a /b\" is one file", () => {
    // `ssh -G -o 'IdentityFile="/a /b"'` prints one identityfile "/a /b", while
    // `-o 'IdentityFile=/a /b'` is "extra arguments at end of line".
    assert.deepEqual(tunnel(["-o", 'UserKnownHostsFile="/a /b"', "host"]).configLines, [line("userknownhostsfile", ["/a /b"], "-o")]);
    assert.deepEqual(tunnel(["-o", 'UserKnownHostsFile="/a b" /c', "host"]).configLines, [line("userknownhostsfile", ["/a b", "/c"], "-o")]);
    assert.deepEqual(tunnel(["-o", 'IdentityFile="/home/me/my keys/id"', "host"]).configLines, [
      line("identityfile", ["/home/me/my keys/id"], "-o"),
    ]);
  });

  test("refuses an unknown -o keyword with USAGE, exit 255, naming it", () => {
    assertUsage(["-o", "Prot=2222", "host"], "Prot");
    assertUsage(["-o", "Bogus yes", "host"], "Bogus");
  });

  test("refuses -o Host, Match and Include, which only work in a config file, as ssh does", () => {
    assertUsage(["-o", "Host=x", "host"], "-o Host=x: Host is not supported as a command-line option");
    assertUsage(["-o", "match all", "host"], "-o match all: match is not supported as a command-line option");
    assertUsage(["-o", "Include /etc/x", "host"], "Include is not supported as a command-line option", "use -F");
  });

  test("refuses -o without a value", () => {
    assertUsage(["-o", "Port=", "host"], "Port=");
    assertUsage(["-o", "Port", "host"], "Port");
  });

  test("accepts an ssh_config keyword safetunnel does not act on, with a warning naming it", () => {
    const plan = tunnel(["-o", "Compression=yes", "host"]);
    assert.equal(plan.warnings.length, 1, `warnings: ${JSON.stringify(plan.warnings)}`);
    assert.match(plan.warnings[0]!, /Compression/i);
  });
});

describe("parseCommandLine: precedence as OpenSSH resolves it", () => {
  test("-p beats -o Port given after it, and -o Port beats -p given after it (first value wins)", () => {
    // ssh -G -F none -p 3000 -o Port=2000 host -> port 3000; -o Port=2000 -p 3000 -> port 2000.
    assert.equal(resolved(["-p", "3000", "-o", "Port=2000", "host"]).port, 3000);
    assert.equal(resolved(["-o", "Port=2000", "-p", "3000", "host"]).port, 2000);
  });

  test("-l and -o User: the first one given wins", () => {
    assert.equal(resolved(["-l", "y", "-o", "User=x", "host"]).user, "y");
    assert.equal(resolved(["-o", "User=x", "-l", "y", "host"]).user, "x");
  });

  test("the first -p wins over a later -p", () => {
    assert.equal(resolved(["-p", "1", "-p", "2", "host"]).port, 1);
  });

  test("-4 and -6 override -o AddressFamily, and the last of them wins", () => {
    // ssh.c sets options.address_family directly for -4/-6: `-4 -6` is inet6.
    assert.equal(resolved(["-4", "-6", "host"]).addressFamily, "inet6");
    assert.equal(resolved(["-6", "-4", "host"]).addressFamily, "inet");
    assert.equal(resolved(["-o", "AddressFamily=inet6", "-4", "host"]).addressFamily, "inet");
    assert.equal(resolved(["-4", "-o", "AddressFamily=inet6", "host"]).addressFamily, "inet");
  });

  test("-g turns GatewayPorts on whatever -o GatewayPorts says", () => {
    assert.equal(resolved(["-g", "-o", "GatewayPorts=no", "host"]).gatewayPorts, true);
    assert.equal(resolved(["-o", "GatewayPorts=no", "-g", "host"]).gatewayPorts, true);
  });

  test("-D and -o DynamicForward accumulate in the order given", () => {
    assert.deepEqual(resolved(["-D", "1", "-o", "DynamicForward=2", "-D", "3", "host"]).dynamicForwards, [["1"], ["2"], ["3"]]);
  });
});

describe("parseCommandLine: -f, -E, -y and --pid-file", () => {
  test("none given: a foreground run logging to stderr, no PID file", () => {
    const plan = tunnel(["-D", "9001", "host"]);
    assert.deepEqual([plan.background, plan.logFile, plan.syslog, plan.pidFile], [false, undefined, false, undefined]);
  });

  test("-f, -E FILE, -y and --pid-file FILE are read, clustered or not, before or after the destination, without warnings", () => {
    const plan = tunnel(["-fND", "9001", "-E", "/tmp/t.log", "host", "-y", "--pid-file", "/tmp/t.pid"]);
    assert.deepEqual([plan.background, plan.logFile, plan.syslog, plan.pidFile], [true, "/tmp/t.log", true, "/tmp/t.pid"]);
    assert.deepEqual(plan.warnings, []);
    assert.equal(tunnel(["-E/tmp/a", "-E", "/tmp/b", "--pid-file=/tmp/p", "host"]).logFile, "/tmp/b", "the last -E wins, as in ssh");
    assert.equal(tunnel(["--pid-file=/tmp/p", "host"]).pidFile, "/tmp/p");
  });

  test("-E and --pid-file without a file are usage errors naming the fix", () => {
    assert.throws(() => parseCommandLine(["host", "-E"]), { code: "USAGE", message: /option requires an argument -- E/ });
    assert.throws(() => parseCommandLine(["--pid-file", "", "host"]), { code: "USAGE", message: /option --pid-file needs a file name, e\.g\. --pid-file/ });
    assert.throws(() => parseCommandLine(["host", "--pid-file"]), { code: "USAGE", message: /option --pid-file needs a file name/ });
  });
});

describe("parseCommandLine: ssh flags safetunnel does not support", () => {
  test("accepts -A, -X, -C, -c aes and -b addr with one warning each naming the flag", () => {
    const plan = tunnel(["-A", "-X", "-C", "-c", "aes128-ctr", "-b", "192.0.2.1", "-D", "9001", "host"]);
    assert.deepEqual(plan.configLines, [line("dynamicforward", ["9001"], "-D")]);
    assert.equal(plan.destination, "host");
    assert.equal(plan.warnings.length, 5);
    for (const [index, flag] of ["-A", "-X", "-C", "-c", "-b"].entries()) {
      assert.ok(plan.warnings[index]!.startsWith(`${flag} `), `warning ${index} is ${JSON.stringify(plan.warnings[index])}`);
      assert.match(plan.warnings[index]!, /not support/);
    }
  });

  test("an unsupported flag's value is consumed, not taken for the destination", () => {
    const plan = tunnel(["-c", "aes128-ctr", "host"]);
    assert.equal(plan.destination, "host");
  });

  test("an unsupported flag inside a cluster is warned about and the rest still applies: -NCD 9001", () => {
    const plan = tunnel(["-NCD", "9001", "host"]);
    assert.deepEqual(plan.configLines, [line("dynamicforward", ["9001"], "-D")]);
    assert.equal(plan.warnings.length, 1);
    assert.ok(plan.warnings[0]!.startsWith("-C "));
  });
});

describe("parseCommandLine: errors", () => {
  test("an unknown flag is USAGE, exit 255, in getopt's words", () => {
    assertUsage(["-Z", "host"], "unknown option -- Z");
    assertUsage(["-NZ", "host"], "unknown option -- Z");
  });

  test("a value flag at the end is USAGE: option requires an argument -- p", () => {
    assertUsage(["host", "-p"], "option requires an argument -- p");
    assertUsage(["-D"], "option requires an argument -- D");
  });

  test("an unknown long option is USAGE naming it", () => {
    assertUsage(["--bogus", "host"], "unknown option '--bogus'");
    assertUsage(["host", "--allowip", "10.0.0.1"], "unknown option '--allowip'");
    assertUsage(["--json", "--bogus=1", "host"], "unknown option '--bogus'");
  });

  test("--json, --help and --version take no value: --json=no is USAGE, not JSON on", () => {
    assertUsage(["--json=no", "host"], "option '--json' takes no value; give --json alone");
    assertUsage(["--help=no"], "option '--help' takes no value");
    assertUsage(["--version=x"], "option '--version' takes no value");
    assertUsage([...Array.from({ length: 30_000 }, (_, i) => `--json=${i}`), "host"], "option '--json' takes no value");
  });

  test("the first unknown long option is the error, before help, version or anything else is read", () => {
    assertUsage(["--help", "--nope", "--version"], "unknown option '--nope'");
    assertUsage(["-D", "9001", "--first", "--second", "host"], "unknown option '--first'");
  });

  test("100,000 unknown long options give the same one error at once", () => {
    const argv = Array.from({ length: 100_000 }, (_, i) => `--unknown-${i}`);
    assertUsage([...argv, "host"], "unknown option '--unknown-0'");
  });

  test("a long option repeated 100,000 times is read once", () => {
    assert.equal(tunnel([...Array.from({ length: 100_000 }, () => "--json"), "host"]).json, true);
  });

  test("no destination is USAGE with an example", () => {
    assertUsage([], "destination", "safetunnel -D 9001");
    assertUsage(["-D", "9001"], "destination");
  });

  test("a remote command after the host is USAGE naming the command", () => {
    assertUsage(["host", "uptime"], "uptime");
    assertUsage(["-D", "9001", "host", "ls", "-l"], "ls -l");
  });

  test("--allow-ip without a value is USAGE naming the option", () => {
    assertUsage(["host", "--allow-ip"], "--allow-ip");
  });
});

describe("parseCommandLine: long options and plans", () => {
  test("--allow-ip may repeat and each comma list becomes networks in canonical form", () => {
    const plan = tunnel(["--allow-ip", "10.1.2.3/8", "--allow-ip", "192.168.1.5, 2001:DB8::/32", "--allow-ip=::1", "host"]);
    assert.deepEqual(plan.allowIp.map((cidr) => cidr.text), ["10.0.0.0/8", "192.168.1.5/32", "2001:db8::/32", "::1/128"]);
  });

  test("a bad --allow-ip value is USAGE naming it, before anything connects", () => {
    assertUsage(["--allow-ip", "010", "-D", "9001", "host"], "Bad --allow-ip value '010'");
    assertUsage(["--allow-ip=10.0.0.0/33", "host"], "Bad --allow-ip value '10.0.0.0/33'", "0 to 32");
    assertUsage(["--allow-ip=example.org", "host"], "example.org");
  });

  test("--allow-ip and --json may follow the destination", () => {
    const plan = tunnel(["host", "--json", "--allow-ip", "10.0.0.1"]);
    assert.equal(plan.destination, "host");
    assert.equal(plan.json, true);
    assert.deepEqual(plan.allowIp.map((cidr) => cidr.text), ["10.0.0.1/32"]);
  });

  test("--json sets JSON logging", () => {
    assert.equal(tunnel(["--json", "host"]).json, true);
  });

  test("--help and -h give the help plan without needing a destination", () => {
    assert.deepEqual(parseCommandLine(["--help"]), { command: "help", text: HELP_TEXT });
    assert.deepEqual(parseCommandLine(["-h"]), { command: "help", text: HELP_TEXT });
    assert.equal(parseCommandLine(["-D", "9001", "host", "-h"]).command, "help");
  });

  test("--version and -V give the version plan", () => {
    assert.deepEqual(parseCommandLine(["--version"]), { command: "version", text: `safetunnel ${VERSION}`, stream: "stdout" });
    assert.deepEqual(parseCommandLine(["-V"]), { command: "version", text: "safetunnel 0.1.0", stream: "stderr" });
  });

  test("the help text carries the client set-up from client-setup.ts, for both Firefox SOCKS versions", () => {
    assert.ok(HELP_TEXT.endsWith(`${clientSetupHelp()}\n`), HELP_TEXT);
    assert.match(HELP_TEXT, /network\.proxy\.socks5_remote_dns = true/);
    assert.match(HELP_TEXT, /network\.proxy\.socks_remote_dns = true/);
    assert.match(HELP_TEXT, /--proxy-server=socks5:\/\/127\.0\.0\.1:N/);
  });

  test("the help text's usage names every subcommand", () => {
    assert.ok(SUBCOMMANDS.size >= 6);
    for (const name of SUBCOMMANDS.keys()) assert.match(HELP_TEXT, new RegExp(`^\\s+safetunnel ${name} `, "m"), `help lacks safetunnel ${name}`);
  });

  test("the help text names every flag safetunnel takes", () => {
    for (const flag of HELP_FLAGS) assert.match(HELP_TEXT, flagPattern(flag), `help lacks ${flag}`);
  });
});

const HELP_FLAGS = ["-D", "-N", "-f", "-E", "-y", "--pid-file", "--print-unit", "-p", "-l", "-i", "-F", "-J", "-o", "-v", "-q", "-4", "-6", "-g", "-V", "-h", "--version", "--help", "--allow-ip", "--socks-auth", "--json"];

function flagPattern(flag: string): RegExp {
  return new RegExp(`(^|[\\s\\[,/])${flag}(?![\\w-])`, "m");
}

describe("parseCommandLine: --socks-auth", () => {
  test("splits USER:PASS on the first ':', so the password may hold more, and keeps digits as text", () => {
    assert.deepEqual(tunnel(["--socks-auth", "alice:s3:cr:et", "-D", "9001", "host"]).socksAuth, { user: "alice", password: "s3:cr:et" });
    assert.deepEqual(tunnel(["-D", "9001", "host", "--socks-auth=bob:007"]).socksAuth, { user: "bob", password: "007" });
    assert.deepEqual(tunnel(["--socks-auth", "bob::", "host"]).socksAuth, { user: "bob", password: ":" });
  });

  test("USER:@FILE names the password file instead, as typed", () => {
    assert.deepEqual(tunnel(["--socks-auth", "alice:@/run/secrets/socks", "host"]).socksAuth, { user: "alice", passwordFile: "/run/secrets/socks" });
    assert.deepEqual(tunnel(["--socks-auth", "alice:@~/.socks:pw", "host"]).socksAuth, { user: "alice", passwordFile: "~/.socks:pw" });
  });

  test("without it the plan has no socksAuth", () => {
    assert.equal(tunnel(["-D", "9001", "host"]).socksAuth, undefined);
  });

  test("bad values are one-line USAGE errors naming the fix, and never repeat the value", () => {
    const secret = "hunter2secret";
    assertUsage(["--socks-auth", secret, "host"], "no ':'", "USER:PASS", "USER:@FILE");
    assertUsage(["--socks-auth", `:${secret}`, "host"], "empty username");
    assertUsage(["--socks-auth", "alice:", "host"], "empty password");
    assertUsage(["--socks-auth", "alice:@", "host"], "no file name");
    assertUsage(["--socks-auth", `${"é".repeat(128)}:${secret}`, "host"], "username is 256 bytes", "at most 255", "shorter");
    assertUsage(["--socks-auth", `alice:${secret}${"x".repeat(243)}`, "host"], "password is 256 bytes", "at most 255");
    assertUsage(["host", "--socks-auth"], "--socks-auth needs a value");
    assertUsage(["--socks-auth=", "host"], "--socks-auth needs a value");
    assertUsage(["--socks-auth", `alice:${secret}`, "--socks-auth", `bob:${secret}`, "host"], "given twice", "once");
    for (const argv of [[secret], [`:${secret}`], [`alice:${secret}${"x".repeat(243)}`], [`alice:${secret}`, "--socks-auth", `bob:${secret}`]]) {
      assert.throws(() => parseCommandLine(["--socks-auth", ...argv, "host"]), (err: Error) => !err.message.includes(secret));
    }
  });

  test("255-byte usernames and passwords are accepted", () => {
    const user = "u".repeat(255);
    const password = "p".repeat(254) + ":";
    assert.deepEqual(tunnel(["--socks-auth", `${user}:${password}`, "host"]).socksAuth, { user, password });
  });
});

describe("socksCredentials: --socks-auth to the bytes a client must send", () => {
  /** A reader over an in-memory folder; any other path fails as a missing file does. */
  function files(tree: Record<string, string | Uint8Array>, homeDir = "/home/alice") {
    const reads: string[] = [];
    return {
      reads,
      homeDir,
      readFile(path: string): Uint8Array {
        reads.push(path);
        const content = tree[path];
        if (content === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
        return typeof content === "string" ? Buffer.from(content) : content;
      },
    };
  }

  function assertUsageError(run: () => unknown, ...fragments: string[]): void {
    assert.throws(run, (err: unknown) => {
      assert.ok(err instanceof TunnelError && err.code === "USAGE", String(err));
      for (const fragment of fragments) assert.ok(err.message.includes(fragment), `${err.message} lacks ${fragment}`);
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  }

  test("a password given on the command line becomes UTF-8 bytes and reads no file", () => {
    const tree = files({});
    const credentials = socksCredentials({ user: "josé", password: "pä:ss" }, tree);
    assert.equal(Buffer.from(credentials.username).toString("hex"), Buffer.from("josé", "utf8").toString("hex"));
    assert.equal(Buffer.from(credentials.password).toString("hex"), Buffer.from("pä:ss", "utf8").toString("hex"));
    assert.deepEqual(tree.reads, []);
  });

  test("@FILE gives the file's first line as bytes, without its LF or CRLF, the rest ignored", () => {
    const tree = files({ "/s/lf": "pw one\nsecond line\n", "/s/crlf": "pw two\r\n", "/s/bare": "pw three", "/s/bytes": Uint8Array.of(0xff, 0x3a, 0x0a) });
    const password = (file: string) => Buffer.from(socksCredentials({ user: "alice", passwordFile: file }, tree).password).toString("latin1");
    assert.equal(password("/s/lf"), "pw one");
    assert.equal(password("/s/crlf"), "pw two");
    assert.equal(password("/s/bare"), "pw three");
    assert.equal(password("/s/bytes"), "\xff:");
  });

  test("~/ at the start of FILE is the home folder (the shell does not expand it after 'user:@')", () => {
    const tree = files({ "/home/alice/.socks-password": "pw\n" });
    assert.equal(Buffer.from(socksCredentials({ user: "alice", passwordFile: "~/.socks-password" }, tree).password).toString(), "pw");
    assert.deepEqual(tree.reads, ["/home/alice/.socks-password"]);
  });

  test("an unreadable file, an empty first line or one over 255 bytes is USAGE naming the file and the fix, never the content", () => {
    const tree = files({ "/s/empty": "", "/s/blank": "\nsecret below\n", "/s/long": `${"k".repeat(256)}\n` });
    assertUsageError(() => socksCredentials({ user: "alice", passwordFile: "/s/missing" }, tree), "cannot read the password file '/s/missing'", "ENOENT", "first line");
    assertUsageError(() => socksCredentials({ user: "alice", passwordFile: "/s/empty" }, tree), "first line of the password file '/s/empty' is empty");
    assertUsageError(() => socksCredentials({ user: "alice", passwordFile: "/s/blank" }, tree), "is empty");
    assert.throws(() => socksCredentials({ user: "alice", passwordFile: "/s/blank" }, tree), (err: Error) => !err.message.includes("secret below"));
    assertUsageError(() => socksCredentials({ user: "alice", passwordFile: "/s/long" }, tree), "password (first line of '/s/long') is 256 bytes", "at most 255");
    assert.throws(() => socksCredentials({ user: "alice", passwordFile: "/s/long" }, tree), (err: Error) => !err.message.includes("kkkk"));
  });
});

describe("the built binary (node dist/safetunnel.cjs)", () => {
  test("--version prints exactly 'safetunnel 0.1.0' and exits 0", async () => {
    const result = await runCli(["--version"]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, "safetunnel 0.1.0\n");
    assert.equal(result.stderr, "");
  });

  test("-V prints the same version on stderr, as ssh -V does", async () => {
    const result = await runCli(["-V"]);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, "safetunnel 0.1.0\n");
    assert.equal(result.stdout, "");
  });

  test("--help exits 0 and mentions every flag safetunnel takes", async () => {
    const result = await runCli(["--help"]);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, "");
    for (const flag of HELP_FLAGS) assert.match(result.stdout, flagPattern(flag), `--help output lacks ${flag}`);
    assert.match(result.stdout, /socks5_remote_dns/);
    assert.match(result.stdout, /--proxy-server=socks5:\/\//);
    assert.match(result.stdout, /--socks5-hostname/);
  });

  test("-Z host exits 255 with one line on stderr naming the option", async () => {
    const result = await runCli(["-Z", "host"]);
    assert.equal(result.code, 255);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, "safetunnel: unknown option -- Z; see 'safetunnel --help'\n");
  });

  test("--bogus host exits 255 with one line on stderr naming the option", async () => {
    const result = await runCli(["--bogus", "host"]);
    assert.equal(result.code, 255);
    assert.equal(result.stdout, "");
    const lines = result.stderr.split("\n");
    assert.equal(lines.length, 2, `stderr: ${JSON.stringify(result.stderr)}`);
    assert.equal(lines[1], "");
    assert.match(lines[0]!, /^safetunnel: .*--bogus/);
  });

  test("--socks-auth with an unreadable @FILE exits 255 with one line naming the file, before connecting", async () => {
    const result = await runCli(["--socks-auth", "alice:@/nonexistent/socks-password", "-D", "9001", "-o", "ConnectTimeout=1", "192.0.2.1"]);
    assert.equal(result.code, 255);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr.split("\n").length, 2, `stderr: ${JSON.stringify(result.stderr)}`);
    assert.match(result.stderr, /^safetunnel: --socks-auth: cannot read the password file '\/nonexistent\/socks-password' \(ENOENT/);
  });

  test("--socks-auth without a ':' exits 255 with one line that does not repeat the value", async () => {
    const result = await runCli(["--socks-auth", "hunter2secret", "-D", "9001", "host"]);
    assert.equal(result.code, 255);
    assert.equal(result.stderr.split("\n").length, 2, `stderr: ${JSON.stringify(result.stderr)}`);
    assert.match(result.stderr, /^safetunnel: --socks-auth has no ':'/);
    assert.ok(!result.stderr.includes("hunter2secret"), result.stderr);
  });

  test("an unknown -o keyword exits 255 with one line naming it", async () => {
    const result = await runCli(["-o", "Prot=22", "-D", "9001", "host"]);
    assert.equal(result.code, 255);
    assert.equal(result.stderr.split("\n").length, 2, `stderr: ${JSON.stringify(result.stderr)}`);
    assert.match(result.stderr, /^safetunnel: .*Prot/);
  });
});

describe("parseCommandLine: subcommands", () => {
  const probe: Subcommand = { name: "probe", parse: (argv) => ({ command: "help", text: `probe ${argv.join(" ")}` }) };
  const registry = new Map([["probe", probe]]);

  test("a first word naming a subcommand hands the rest of argv to its parser", () => {
    assert.deepEqual(parseCommandLine(["probe", "-D", "--whatever"], registry), { command: "help", text: "probe -D --whatever" });
  });

  test("the same word anywhere else, or as user@word, is the tunnel's destination", () => {
    assert.equal(tunnel(["-D", "9001", "probe"]).host, "probe");
    const plan = parseCommandLine(["me@probe", "-D", "9001"], registry);
    assert.equal(plan.command, "tunnel");
    assert.equal((plan as TunnelPlan).host, "probe");
  });
});
