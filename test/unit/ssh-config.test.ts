import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  expandTilde,
  expandTokens,
  firstValue,
  hostPatternListMatches,
  loadSshConfig,
  parseSshConfig,
  resolveHostConfig,
  type ParsedConfig,
  type ResolveContext,
} from "../../src/config/ssh-config.ts";
import { TunnelError } from "../../src/errors.ts";

const HOME = "/home/me";

/** An in-memory file system: absolute path -> contents; directories are implied by the paths. */
function fakeFs(files: Record<string, string>): {
  readFile: (path: string) => Promise<string>;
  listDir: (path: string) => Promise<string[]>;
  reads: string[];
} {
  const reads: string[] = [];
  const enoent = (path: string): Error => Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
  return {
    reads,
    readFile: async (path) => {
      reads.push(path);
      const text = files[path];
      if (text === undefined) throw enoent(path);
      return text;
    },
    listDir: async (path) => {
      const prefix = path.endsWith("/") ? path : `${path}/`;
      const names = new Set<string>();
      for (const file of Object.keys(files)) {
        if (file.startsWith(prefix)) names.add(file.slice(prefix.length).split("/")[0] as string);
      }
      if (names.size === 0) throw enoent(path);
      // Deliberately in reverse order, so sorting is the code's job.
      return [...names].sort().reverse();
    },
  };
}

function resolveText(text: string, ctx: Partial<ResolveContext> & { host: string }) {
  return resolveHostConfig([parseSshConfig(text, "cfg")], { localUser: "me", ...ctx });
}

function optionsOf(text: string, host: string): Record<string, string[]> {
  return Object.fromEntries(resolveText(text, { host }).options);
}

function assertBadConfig(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TunnelError);
    assert.equal(err.code, "BAD_CONFIG");
    assert.equal(err.message, message);
    return true;
  });
}

async function assertRejectsBadConfig(promise: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof TunnelError);
    assert.equal(err.code, "BAD_CONFIG");
    assert.equal(err.message, message);
    return true;
  });
}

// ------------------------------------------------------------ parsing

test("parses keyword value, keyword=value and keyword = value forms alike", () => {
  const config = parseSshConfig("Port 1\nUser=bob\nHostName = web.example\nProxyJump =j\n", "cfg");
  assert.deepEqual(config.blocks, [
    {
      kind: "global",
      entries: [
        { kind: "option", directive: { keyword: "port", args: ["1"], file: "cfg", line: 1 } },
        { kind: "option", directive: { keyword: "user", args: ["bob"], file: "cfg", line: 2 } },
        { kind: "option", directive: { keyword: "hostname", args: ["web.example"], file: "cfg", line: 3 } },
        { kind: "option", directive: { keyword: "proxyjump", args: ["j"], file: "cfg", line: 4 } },
      ],
    },
  ]);
});

test("lowercases keywords and maps OpenSSH's old spellings to the current name", () => {
  const config = parseSshConfig("HOSTNAME a\nPubkeyAcceptedKeyTypes ssh-ed25519\nKeepAlive no\n", "cfg");
  const keywords = config.blocks[0]?.entries.map((e) => e.directive.keyword);
  assert.deepEqual(keywords, ["hostname", "pubkeyacceptedalgorithms", "tcpkeepalive"]);
});

test("skips blank and comment lines and drops trailing comments that start a word", () => {
  const text = "# top\n\n   # indented\nHost web # trailing\n  Port 22 #c\n  User a#b\n";
  const config = parseSshConfig(text, "cfg");
  assert.deepEqual(config.blocks[1], {
    kind: "host",
    patterns: ["web"],
    file: "cfg",
    line: 4,
    entries: [
      { kind: "option", directive: { keyword: "port", args: ["22"], file: "cfg", line: 5 } },
      { kind: "option", directive: { keyword: "user", args: ["a#b"], file: "cfg", line: 6 } },
    ],
  });
});

test("splits quoted and escaped arguments like OpenSSH's argv_split", () => {
  const config = parseSshConfig(`SendEnv "A B" 'C D' E\\ F "" \\"G x\\y\n`, "cfg");
  assert.deepEqual(config.blocks[0]?.entries[0]?.directive.args, ["A B", "C D", "E F", "", '"G', "x\\y"]);
});

test("keeps ProxyCommand's rest of line verbatim, quotes and spacing included", () => {
  const config = parseSshConfig(`ProxyCommand = sh -c "nc  %h %p" # note  \n`, "cfg");
  assert.deepEqual(config.blocks[0]?.entries[0]?.directive.args, [`sh -c "nc  %h %p" # note`]);
});

test("accepts CRLF line endings", () => {
  assert.deepEqual(optionsOf("Host web\r\n  Port 2222\r\n", "web"), { port: ["2222"] });
});

test("keeps unknown keywords for the caller to judge", () => {
  assert.deepEqual(optionsOf("UseKeychain yes\n", "web"), { usekeychain: ["yes"] });
});

test("rejects an unterminated quote naming file and line", () => {
  assertBadConfig(
    () => parseSshConfig('Host a\n  User "bob\n', "/u/.ssh/config"),
    '/u/.ssh/config line 2: unbalanced quotes after "User"; close the quote or escape it with a backslash',
  );
});

test("rejects a keyword without a value", () => {
  assertBadConfig(
    () => parseSshConfig("Port\n", "cfg"),
    'cfg line 1: no argument after keyword "Port"; add a value or remove the line',
  );
  assertBadConfig(
    () => parseSshConfig("Port # nothing\n", "cfg"),
    'cfg line 1: missing argument for "Port"; add a value or remove the line',
  );
});

test("rejects Match conditions OpenSSH refuses", () => {
  assertBadConfig(
    () => parseSshConfig("Match host\n", "cfg"),
    "cfg line 1: missing argument for Match host; add a pattern after it",
  );
  assertBadConfig(
    () => parseSshConfig("Match all host x\n", "cfg"),
    `cfg line 1: 'all' cannot be combined with other Match conditions; remove "all" or the conditions after it`,
  );
});

// ------------------------------------------------------------ Host blocks

test("keeps the first value obtained, so a later Host * does not override a specific block", () => {
  const text = "Host web\n  Port 2222\n  User deploy\nHost *\n  Port 22\n  User nobody\n  Compression yes\n";
  assert.deepEqual(optionsOf(text, "web"), { port: ["2222"], user: ["deploy"], compression: ["yes"] });
  assert.deepEqual(optionsOf(text, "db"), { port: ["22"], user: ["nobody"], compression: ["yes"] });
});

test("applies lines before the first Host to every destination", () => {
  assert.deepEqual(optionsOf("User early\nHost web\n  User late\n", "web"), { user: ["early"] });
});

test("lets a matching negated pattern veto the whole Host line", () => {
  const text = "Host *.example.com !bad.example.com\n  Port 1\n";
  assert.deepEqual(optionsOf(text, "good.example.com"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "bad.example.com"), {});
});

test("never applies a Host line that has only negated patterns", () => {
  assert.deepEqual(optionsOf("Host !web\n  Port 1\n", "db"), {});
});

test("matches ? as exactly one character", () => {
  const text = "Host web?\n  Port 1\n";
  assert.deepEqual(optionsOf(text, "web1"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "web"), {});
  assert.deepEqual(optionsOf(text, "web12"), {});
});

test("applies a Host line when any of its patterns matches", () => {
  const text = "Host alpha beta\n  Port 1\n";
  assert.deepEqual(optionsOf(text, "beta"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "gamma"), {});
});

test("matches Host patterns case-sensitively against the host as typed, as OpenSSH does", () => {
  const text = "Host Web\n  Port 1\nHost web.example\n  Port 2\nHost web\n  HostName web.example\n";
  assert.deepEqual(optionsOf(text, "Web"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "web"), { hostname: ["web.example"] });
});

test("accumulates IdentityFile lines from every matching block in order", () => {
  const text = "Host web\n  IdentityFile ~/.ssh/web\nHost *\n  IdentityFile ~/.ssh/default\n";
  const system = parseSshConfig("IdentityFile /etc/ssh/shared\nUserKnownHostsFile /b\n", "/etc/ssh/ssh_config");
  const user = parseSshConfig(text + "UserKnownHostsFile /a1 /a2\n", "cfg");
  const result = resolveHostConfig([user, system], { host: "web", localUser: "me" });
  assert.deepEqual(result.multi.get("identityfile"), [["~/.ssh/web"], ["~/.ssh/default"], ["/etc/ssh/shared"]]);
  assert.deepEqual(result.options.get("identityfile"), ["~/.ssh/web"]);
  assert.deepEqual(result.options.get("userknownhostsfile"), ["/a1", "/a2"]);
  assert.equal(result.multi.has("userknownhostsfile"), false);
  assert.deepEqual(result.sources.get("userknownhostsfile"), {
    keyword: "userknownhostsfile",
    args: ["/a1", "/a2"],
    file: "cfg",
    line: 5,
  });
});

test("accumulates forwards and SendEnv but not single-valued keywords", () => {
  const text = "LocalForward 1 a:1\nHost *\n  LocalForward 2 b:2\n  DynamicForward 3\n  SendEnv A\n  SendEnv B\n";
  const { multi } = resolveText(text, { host: "web" });
  assert.deepEqual(Object.fromEntries(multi), {
    localforward: [["1", "a:1"], ["2", "b:2"]],
    dynamicforward: [["3"]],
    sendenv: [["A"], ["B"]],
  });
});

test("firstValue returns the first argument regardless of keyword case", () => {
  const { options } = resolveText("Host web\n  HostName 192.0.2.7\n", { host: "web" });
  assert.equal(firstValue(options, "HostName"), "192.0.2.7");
  assert.equal(firstValue(options, "port"), undefined);
});

// ------------------------------------------------------------ Match blocks

test("Match host sees the HostName set earlier, Match originalhost the typed name", () => {
  const text = [
    "Host short",
    "  HostName %h.example.com",
    "Match host short.example.com",
    "  Port 1",
    "Match host short",
    "  User wrong",
    "Match originalhost short",
    "  Compression yes",
  ].join("\n");
  assert.deepEqual(optionsOf(text, "short"), { hostname: ["%h.example.com"], port: ["1"], compression: ["yes"] });
});

test("Match host is case-insensitive and takes comma-separated pattern lists", () => {
  const text = "Match host DB,web*\n  Port 1\n";
  assert.deepEqual(optionsOf(text, "db"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "WEB3"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "mail"), {});
});

test("Match user uses -l/user@ first, then a User set earlier, then the local user", () => {
  const text = "Host web\n  User deploy\nMatch user deploy\n  Port 1\nMatch user me\n  Port 2\n";
  assert.deepEqual(optionsOf(text, "web"), { user: ["deploy"], port: ["1"] });
  assert.deepEqual(optionsOf(text, "db"), { port: ["2"] });
  assert.deepEqual(Object.fromEntries(resolveText(text, { host: "web", user: "root" }).options), {
    user: ["deploy"],
  });
});

test("Match localuser compares the local account name", () => {
  const text = "Match localuser alice\n  Port 1\n";
  assert.deepEqual(Object.fromEntries(resolveText(text, { host: "x", localUser: "alice" }).options), { port: ["1"] });
  assert.deepEqual(Object.fromEntries(resolveText(text, { host: "x", localUser: "bob" }).options), {});
});

test("Match all always applies and Match !all never does", () => {
  assert.deepEqual(optionsOf("Match all\n  Port 1\n", "x"), { port: ["1"] });
  assert.deepEqual(optionsOf("Match !all\n  Port 1\n", "x"), {});
});

test("Match negates a condition with ! and requires every condition to hold", () => {
  const text = "Match !host web* originalhost *.example\n  Port 1\n";
  assert.deepEqual(optionsOf(text, "db.example"), { port: ["1"] });
  assert.deepEqual(optionsOf(text, "web.example"), {});
  assert.deepEqual(optionsOf(text, "db.other"), {});
});

test("accepts Match attribute=value as OpenSSH 9 does", () => {
  assert.deepEqual(optionsOf("Match host=web\n  Port 1\n", "web"), { port: ["1"] });
});

test("treats Match canonical and final as unsupported: skipped with a warning, or refused when they would route us", () => {
  // OpenSSH applies these blocks in its final pass; we have none.
  const text = "Match canonical\n  ServerAliveInterval 1\nMatch !canonical host x\n  User u\n";
  const canonical = resolveText(text, { host: "x" });
  assert.deepEqual(Object.fromEntries(canonical.options), { user: ["u"] });
  assert.deepEqual(canonical.warnings, ["cfg line 1: Match canonical is not supported; ignoring that block"]);
  const final = resolveText("Match final host x\n  ServerAliveInterval 1\n", { host: "x" });
  assert.deepEqual(Object.fromEntries(final.options), {});
  assert.deepEqual(final.warnings, ["cfg line 1: Match final is not supported; ignoring that block"]);
  assert.throws(() => resolveText("Match canonical\n  ProxyJump bastion\n", { host: "x" }), /Match canonical is not supported, and that block sets ProxyJump;/);
});

test("skips an unsupported Match block that sets nothing safetunnel uses, without a word (a distribution's crypto-policy block)", () => {
  const result = resolveText("Match final all\n  GSSAPIAuthentication yes\n  SendEnv LANG\n", { host: "x" });
  assert.deepEqual(result.warnings, []);
});

test("skips Match exec blocks with a warning, but only when the rest of the block matched", () => {
  const text = 'Match host web exec "test -f /x"\n  ServerAliveInterval 1\nMatch host db exec true\n  ServerAliveInterval 2\n';
  const result = resolveText(text, { host: "web" });
  assert.deepEqual(Object.fromEntries(result.options), {});
  assert.deepEqual(result.warnings, ["cfg line 1: Match exec is not supported; ignoring that block"]);
});

test("skips Match blocks with other unknown conditions with a warning", () => {
  const result = resolveText("Match localnetwork 10.0.0.0/8\n  ServerAliveInterval 1\n", { host: "x" });
  assert.deepEqual(Object.fromEntries(result.options), {});
  assert.deepEqual(result.warnings, ["cfg line 1: Match localnetwork is not supported; ignoring that block"]);
});

test("refuses an unsupported Match block that would route the connection or vouch for keys, instead of skipping it", () => {
  for (const line of ["ProxyCommand nc -x 127.0.0.1:9050 %h %p", "HostName 10.1.2.3", "ProxyJump bastion", "UserKnownHostsFile /dev/null", "CanonicalizeHostname yes"]) {
    assert.throws(
      () => resolveText(`Match exec true\n  ${line}\n`, { host: "x" }),
      (err: unknown) => {
        assert.ok(err instanceof TunnelError);
        assert.equal(err.code, "BAD_CONFIG");
        assert.match(err.message, /^cfg line 1: Match exec is not supported, and that block sets /);
        assert.ok(err.message.includes(`sets ${line.split(" ")[0]!};`), err.message);
        return true;
      },
    );
  }
  // Not when the supported part of the block does not hold: then it never applied.
  assert.deepEqual(resolveText("Match host other exec true\n  ProxyCommand nc %h %p\n", { host: "x" }).warnings, []);
});

// ------------------------------------------------------------ Include

test("reads a relative Include from ~/.ssh in the user config", async () => {
  const fs = fakeFs({
    [`${HOME}/.ssh/config`]: "Include extra\nHost *\n  Port 22\n",
    [`${HOME}/.ssh/extra`]: "Host web\n  Port 2222\n",
  });
  const config = await loadSshConfig(`${HOME}/.ssh/config`, { homeDir: HOME, ...fs });
  assert.deepEqual(Object.fromEntries(resolveHostConfig([config], { host: "web", localUser: "me" }).options), {
    port: ["2222"],
  });
});

test("reads a relative Include from the system directory in the system config", async () => {
  const fs = fakeFs({
    "/etc/ssh/ssh_config": "Include ssh_config.d/*.conf\n",
    "/etc/ssh/ssh_config.d/a.conf": "SendEnv LANG\n",
  });
  const config = await loadSshConfig("/etc/ssh/ssh_config", { homeDir: HOME, system: true, ...fs });
  assert.deepEqual(resolveHostConfig([config], { host: "x", localUser: "me" }).multi.get("sendenv"), [["LANG"]]);
});

test("expands Include globs in sorted order, skipping dot-files, with several arguments", async () => {
  const fs = fakeFs({
    [`${HOME}/.ssh/config`]: "Include conf.d/*.conf ~/.ssh/last\n",
    [`${HOME}/.ssh/conf.d/20-b.conf`]: "IdentityFile b\n",
    [`${HOME}/.ssh/conf.d/10-a.conf`]: "IdentityFile a\n",
    [`${HOME}/.ssh/conf.d/.hidden.conf`]: "IdentityFile hidden\n",
    [`${HOME}/.ssh/conf.d/notes.txt`]: "IdentityFile txt\n",
    [`${HOME}/.ssh/last`]: "IdentityFile last\n",
  });
  const config = await loadSshConfig(`${HOME}/.ssh/config`, { homeDir: HOME, ...fs });
  assert.deepEqual(resolveHostConfig([config], { host: "x", localUser: "me" }).multi.get("identityfile"), [
    ["a"],
    ["b"],
    ["last"],
  ]);
});

test("expands an Include glob against a real directory in sorted order", async () => {
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-ssh-config-"));
  try {
    await mkdir(join(dir, "conf.d"));
    await writeFile(join(dir, "conf.d", "b.conf"), "IdentityFile b\n");
    await writeFile(join(dir, "conf.d", "a.conf"), "IdentityFile a\n");
    await writeFile(join(dir, "conf.d", "c.conf"), "IdentityFile c\n");
    await writeFile(join(dir, "conf.d", "a.txt"), "IdentityFile txt\n");
    await writeFile(join(dir, "config"), `Include ${dir}/conf.d/?.conf\n`);
    const config = await loadSshConfig(join(dir, "config"), { homeDir: dir });
    assert.deepEqual(resolveHostConfig([config], { host: "x", localUser: "me" }).multi.get("identityfile"), [
      ["a"],
      ["b"],
      ["c"],
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("applies an Include inside a Host block only for that host, then restores the block", async () => {
  const fs = fakeFs({
    [`${HOME}/.ssh/config`]: "Host alpha\n  Include inc\n  ConnectTimeout 7\nHost *\n  Port 22\n",
    [`${HOME}/.ssh/inc`]: "User fromInc\nHost other\n  Port 9\nHost *\n  Compression yes\n",
  });
  const config = await loadSshConfig(`${HOME}/.ssh/config`, { homeDir: HOME, ...fs });
  const resolve = (host: string) => Object.fromEntries(resolveHostConfig([config], { host, localUser: "me" }).options);
  assert.deepEqual(resolve("alpha"), {
    user: ["fromInc"],
    compression: ["yes"],
    connecttimeout: ["7"],
    port: ["22"],
  });
  // Included from an inactive block, "Host other" must not match even for "other" (SSHCONF_NEVERMATCH).
  assert.deepEqual(resolve("other"), { port: ["22"] });
});

test("skips an Include that matches no file", async () => {
  const fs = fakeFs({ [`${HOME}/.ssh/config`]: "Include missing nothing/*.conf\nPort 1\n" });
  const config = await loadSshConfig(`${HOME}/.ssh/config`, { homeDir: HOME, ...fs });
  assert.deepEqual(Object.fromEntries(resolveHostConfig([config], { host: "x", localUser: "me" }).options), {
    port: ["1"],
  });
});

test("allows 16 nested Includes and refuses the 17th like OpenSSH", async () => {
  const chain = (length: number): Record<string, string> => {
    const files: Record<string, string> = {};
    for (let i = 0; i < length; i++) files[`/c/${i}`] = `Include /c/${i + 1}\n`;
    files[`/c/${length}`] = "Port 4242\n";
    return files;
  };
  const ok = await loadSshConfig("/c/0", { homeDir: HOME, ...fakeFs(chain(16)) });
  assert.equal(firstValue(resolveHostConfig([ok], { host: "x", localUser: "me" }).options, "port"), "4242");
  await assertRejectsBadConfig(
    loadSshConfig("/c/0", { homeDir: HOME, ...fakeFs(chain(17)) }),
    "/c/16 line 1: Include nested more than 16 levels deep (at /c/17); remove the Include loop",
  );
});

test("stops an Include loop with the depth error", async () => {
  const fs = fakeFs({ [`${HOME}/.ssh/config`]: "Include config\n" });
  await assertRejectsBadConfig(
    loadSshConfig(`${HOME}/.ssh/config`, { homeDir: HOME, ...fs }),
    `${HOME}/.ssh/config line 1: Include nested more than 16 levels deep (at ${HOME}/.ssh/config); remove the Include loop`,
  );
});

test("refuses a ~ Include path in the system config as OpenSSH does", async () => {
  const fs = fakeFs({ "/etc/ssh/ssh_config": "Include ~/x\n" });
  await assertRejectsBadConfig(
    loadSshConfig("/etc/ssh/ssh_config", { homeDir: HOME, system: true, ...fs }),
    "/etc/ssh/ssh_config line 1: Include path ~/x may not start with ~ in the system config; use an absolute path",
  );
});

test("returns an empty config for a missing file unless it is required", async () => {
  const fs = fakeFs({});
  assert.deepEqual(await loadSshConfig("/nope", { homeDir: HOME, ...fs }), {
    file: "/nope",
    blocks: [{ kind: "global", entries: [] }],
  });
  await assertRejectsBadConfig(
    loadSshConfig("/nope", { homeDir: HOME, required: true, ...fs }),
    "cannot read config file /nope: it does not exist; check the -F path",
  );
});

test("processes configs in order so the user config wins over the system one", () => {
  const user: ParsedConfig = parseSshConfig("Host web\n  Port 2222\n", "user");
  const system: ParsedConfig = parseSshConfig("Host *\n  Port 22\n  User sys\n", "system");
  assert.deepEqual(Object.fromEntries(resolveHostConfig([user, system], { host: "web", localUser: "me" }).options), {
    port: ["2222"],
    user: ["sys"],
  });
});

// ------------------------------------------------------------ helpers

test("hostPatternListMatches handles wildcards, negation and case", () => {
  assert.equal(hostPatternListMatches(["*"], "anything"), true);
  assert.equal(hostPatternListMatches(["a*c"], "abbbc"), true);
  assert.equal(hostPatternListMatches(["a*c"], "abbbd"), false);
  assert.equal(hostPatternListMatches(["*.EXAMPLE.com"], "Web.example.COM"), true);
  assert.equal(hostPatternListMatches(["*.EXAMPLE.com"], "web.example.com", { ignoreCase: false }), false);
  assert.equal(hostPatternListMatches(["!x", "*"], "x"), false);
  assert.equal(hostPatternListMatches(["!x"], "y"), false);
  assert.equal(hostPatternListMatches([], "y"), false);
});

test("expands %h %p %r %u %d %n %l %L %i %C and %%", () => {
  const tokens = { h: "web.example", p: "22", r: "deploy", u: "me", d: "/home/me", n: "web", l: "laptop.lan", L: "laptop", i: "1000", C: "abc123" };
  assert.equal(
    expandTokens("%h|%p|%r|%u|%d|%n|%l|%L|%i|%C|100%%|%%h", tokens),
    "web.example|22|deploy|me|/home/me|web|laptop.lan|laptop|1000|abc123|100%|%h",
  );
});

test("rejects an unknown or unavailable %token, naming it", () => {
  const tokens = { h: "web", p: "22", r: "deploy", u: "me", d: "/home/me" };
  assertBadConfig(
    () => expandTokens("~/.ssh/%x", tokens),
    'unknown token %x in "~/.ssh/%x"; use one of %h %p %r %u %d or write %% for a literal percent sign',
  );
  assertBadConfig(
    () => expandTokens("%n", tokens),
    'unknown token %n in "%n"; use one of %h %p %r %u %d or write %% for a literal percent sign',
  );
  assertBadConfig(() => expandTokens("50%", tokens), '"50%" ends with a lone %; write %% for a literal percent sign');
});

test("expands ~ and ~/ to the home directory and leaves other paths alone", () => {
  assert.equal(expandTilde("~", "/home/me"), "/home/me");
  assert.equal(expandTilde("~/.ssh/id", "/home/me/"), "/home/me/.ssh/id");
  assert.equal(expandTilde("~/.ssh/id", "/"), "/.ssh/id");
  assert.equal(expandTilde("/etc/~x", "/home/me"), "/etc/~x");
  assert.equal(expandTilde("rel/~", "/home/me"), "rel/~");
  assertBadConfig(
    () => expandTilde("~bob/.ssh/id", "/home/me"),
    'cannot expand "~bob" in ~bob/.ssh/id: only ~ and ~/ are supported; write the full path instead',
  );
});
