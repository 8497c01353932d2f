import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { gitSshCommand, proxyEnvironment, PROXY_VARIABLES, shellQuote } from "../../src/clients/proxy-env.ts";
import { parseExecArgs, parseNcArgs } from "../../src/cli/client-args.ts";

const proxy = { host: "127.0.0.1", port: 9001 };

describe("proxyEnvironment", () => {
  test("every proxy variable points at the tunnel, in both cases; NO_PROXY is empty; the rest is inherited", () => {
    const env = proxyEnvironment(proxy, ["/usr/bin/safetunnel"], { PATH: "/bin", NO_PROXY: "localhost,.corp", https_proxy: "http://corp:3128", UNSET: undefined });
    assert.deepEqual(env, {
      PATH: "/bin",
      ALL_PROXY: "socks5h://127.0.0.1:9001",
      all_proxy: "socks5h://127.0.0.1:9001",
      HTTP_PROXY: "http://127.0.0.1:9001",
      http_proxy: "http://127.0.0.1:9001",
      HTTPS_PROXY: "http://127.0.0.1:9001",
      https_proxy: "http://127.0.0.1:9001",
      NO_PROXY: "",
      no_proxy: "",
      GIT_SSH_COMMAND: 'ssh -o "ProxyCommand=/usr/bin/safetunnel nc --proxy 127.0.0.1:9001 %h %p"',
    });
    assert.deepEqual(Object.keys(env).filter((name) => name !== "PATH").sort(), [...PROXY_VARIABLES].sort());
  });

  test("an IPv6 proxy is bracketed in the URLs", () => {
    assert.equal(proxyEnvironment({ host: "::1", port: 1080 }, ["st"], {})["ALL_PROXY"], "socks5h://[::1]:1080");
  });
});

describe("gitSshCommand", () => {
  test("keeps the user's own command first (ssh takes an option's first value)", () => {
    assert.equal(gitSshCommand(proxy, ["st"], "ssh -i ~/.ssh/deploy"), 'ssh -i ~/.ssh/deploy -o "ProxyCommand=st nc --proxy 127.0.0.1:9001 %h %p"');
  });

  test("survives git's shell, ssh's % tokens and ssh's shell for awkward paths", () => {
    const self = ["/opt/my tools/node", "/home/o'brien/100%/$HOME/safetunnel.cjs"];
    const command = gitSshCommand(proxy, self, undefined);
    // git's shell: what ssh is given as its -o argument.
    const argv = JSON.parse(execFileSync("sh", ["-c", `${command.replace(/^ssh/, "node -e 'console.log(JSON.stringify(process.argv.slice(1)))' --")}`], { encoding: "utf8" })) as string[];
    assert.equal(argv[0], "-o");
    const value = argv[1]!.slice("ProxyCommand=".length);
    // ssh's token expansion (%% to %, %h and %p filled in), then ssh's shell.
    const expanded = value.replace(/%%|%h|%p/g, (token) => (token === "%%" ? "%" : token === "%h" ? "far.example" : "22"));
    const words = JSON.parse(execFileSync("sh", ["-c", `node -e 'console.log(JSON.stringify(process.argv.slice(1)))' -- ${expanded}`], { encoding: "utf8" })) as string[];
    assert.deepEqual(words, [...self, "nc", "--proxy", "127.0.0.1:9001", "far.example", "22"]);
  });

  test("shellQuote leaves plain words alone and single-quotes the rest", () => {
    assert.equal(shellQuote("/usr/bin/node"), "/usr/bin/node");
    assert.equal(shellQuote("a b"), "'a b'");
    assert.equal(shellQuote("o'b"), "'o'\\''b'");
  });
});

describe("exec and nc arguments", () => {
  test("exec: options before the command only; everything after is the command's", () => {
    assert.deepEqual(parseExecArgs(["--proxy", "9001", "--", "curl", "--proxy", "x", "-v"]), {
      command: "exec",
      proxy: { host: "127.0.0.1", port: 9001 },
      argv: ["curl", "--proxy", "x", "-v"],
      verbosity: 0,
      json: false,
    });
    assert.deepEqual(parseExecArgs(["curl", "-v"]), { command: "exec", proxy: { host: "127.0.0.1", port: 1080 }, argv: ["curl", "-v"], verbosity: 0, json: false });
  });

  test("exec: no command, an unknown option, a bad --proxy are one-line usage errors", () => {
    assert.throws(() => parseExecArgs([]), /^TunnelError: exec: give the command to run, e\.g\. safetunnel exec -- curl https:\/\/example\.org; see 'safetunnel exec --help'$/);
    assert.throws(() => parseExecArgs(["-v", "curl"]), /exec: unknown option '-v' \(options of the command go after --\)/);
    assert.throws(() => parseExecArgs(["--proxy", "nope", "true"]), /exec: bad --proxy 'nope': expected HOST:PORT/);
    assert.throws(() => parseExecArgs(["--proxy"]), /exec: --proxy needs a value/);
  });

  test("nc: HOST PORT, checked", () => {
    assert.deepEqual(parseNcArgs(["--proxy=[::1]:9001", "example.org", "22"]), { command: "nc", proxy: { host: "::1", port: 9001 }, host: "example.org", port: 22, verbosity: 0, json: false });
    assert.throws(() => parseNcArgs(["example.org"]), /nc: expected HOST PORT, got 'example\.org'/);
    assert.throws(() => parseNcArgs(["example.org", "ssh"]), /nc: bad port 'ssh': expected a number from 1 to 65535/);
  });

  test("nc: a name in another script goes as its IDNA (punycode) form, never as latin1 bytes; one that has none is refused", () => {
    assert.equal((parseNcArgs(["例え.jp", "22"]) as { host: string }).host, "xn--r8jz45g.jp");
    assert.equal((parseNcArgs(["bücher.example", "22"]) as { host: string }).host, "xn--bcher-kva.example");
    for (const bad of ["a\u0000ü.example", "ü/x.example", "ü example", "ü..example", "[ü]"]) assert.throws(() => parseNcArgs([bad, "22"]), /is not a valid host name/, bad);
  });
});
