import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { loadConfigFiles } from "../../src/config/load-ssh-config.ts";
import {
  commandLineConfig,
  lookupHost,
  unsupportedSettings,
  type ConfigLine,
  type HostLookup,
} from "../../src/config/host-lookup.ts";
import { parseSshConfig } from "../../src/config/parse-ssh-config.ts";
import { TunnelError } from "../../src/errors.ts";

const USER_CONFIG = "/home/me/.ssh/config";

function cli(keyword: string, value: string, source = "-o"): ConfigLine {
  return { keyword, args: value.split(" "), source };
}

/** `alias` looked up with command-line lines first, then an in-memory ~/.ssh/config. */
function lookup(alias: string, lines: ConfigLine[], configText: string, user?: string): HostLookup {
  const configs = [commandLineConfig(lines), parseSshConfig(configText, USER_CONFIG)];
  return lookupHost(alias, configs, { localUser: "me", ...(user !== undefined ? { user } : {}) });
}

function problemsFor(alias: string, lines: ConfigLine[], configText: string): { errors: string[]; warnings: string[] } {
  return unsupportedSettings(alias, lookup(alias, lines, configText));
}

/** A home directory and a system directory under os.tmpdir(), removed afterwards. */
async function withTempDirs(
  files: { userConfig?: string; systemConfig?: string; other?: Record<string, string> },
  run: (dirs: { home: string; etc: string; root: string }) => Promise<void>,
): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "safetunnel-resolve-"));
  const home = join(root, "home");
  const etc = join(root, "etc");
  try {
    await mkdir(join(home, ".ssh"), { recursive: true });
    await mkdir(etc, { recursive: true });
    if (files.userConfig !== undefined) await writeFile(join(home, ".ssh", "config"), files.userConfig);
    if (files.systemConfig !== undefined) await writeFile(join(etc, "ssh_config"), files.systemConfig);
    for (const [name, text] of Object.entries(files.other ?? {})) {
      await mkdir(dirname(join(root, name)), { recursive: true });
      await writeFile(join(root, name), text);
    }
    await run({ home, etc, root });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe("loadConfigFiles", () => {
  test("-F none reads no file at all, whatever its case", async () => {
    await withTempDirs({ userConfig: "Port 1\n" }, async ({ home }) => {
      assert.deepEqual(await loadConfigFiles("none", home), { files: [] });
      assert.deepEqual(await loadConfigFiles("NONE", home), { files: [] });
    });
  });

  test("-F FILE reads that file only, not ~/.ssh/config nor the system file", async () => {
    await withTempDirs(
      { userConfig: "Port 1\n", systemConfig: "Port 2\n", other: { custom: "Port 3\n" } },
      async ({ home, etc, root }) => {
        const custom = join(root, "custom");
        const sources = await loadConfigFiles(custom, home, { systemFile: join(etc, "ssh_config"), systemDir: etc });
        assert.deepEqual(sources.files, [
          {
            file: custom,
            blocks: [{ kind: "global", entries: [{ kind: "option", directive: { keyword: "port", args: ["3"], file: custom, line: 1 } }] }],
          },
        ]);
      },
    );
  });

  test("a missing -F file is BAD_CONFIG naming the path and the -F flag", async () => {
    await withTempDirs({}, async ({ home, root }) => {
      const missing = join(root, "nope");
      await assert.rejects(loadConfigFiles(missing, home), (err: unknown) => {
        assert.ok(err instanceof TunnelError);
        assert.equal(err.code, "BAD_CONFIG");
        assert.equal(err.message, `cannot read config file ${missing}: it does not exist; check the -F path`);
        return true;
      });
    });
  });

  test("without -F it reads ~/.ssh/config, then the system file, so the user's values win", async () => {
    await withTempDirs(
      { userConfig: "Host web\n  Port 2222\n", systemConfig: "Host *\n  Port 22\n  User sys\n" },
      async ({ home, etc }) => {
        const systemFile = join(etc, "ssh_config");
        const sources = await loadConfigFiles(undefined, home, { systemFile, systemDir: etc });
        assert.deepEqual(
          sources.files.map((f) => f.file),
          [join(home, ".ssh", "config"), systemFile],
        );
        const web = lookupHost("web", sources.files, { localUser: "me" });
        assert.deepEqual(web.first("port"), ["2222"]);
        assert.deepEqual(web.first("user"), ["sys"]);
        assert.equal(web.where("user"), `${systemFile} line 3`);
      },
    );
  });

  test("relative Includes in the system file are read from the system directory", async () => {
    await withTempDirs(
      { systemConfig: "Include conf.d/*.conf\n", other: { "etc/conf.d/a.conf": "ConnectTimeout 9\n" } },
      async ({ home, etc }) => {
        const sources = await loadConfigFiles(undefined, home, { systemFile: join(etc, "ssh_config"), systemDir: etc });
        assert.deepEqual(lookupHost("x", sources.files, { localUser: "me" }).first("connecttimeout"), ["9"]);
      },
    );
  });

  test("missing user and system files give two empty configs", async () => {
    await withTempDirs({}, async ({ home, etc }) => {
      const systemFile = join(etc, "ssh_config");
      assert.deepEqual(await loadConfigFiles(undefined, home, { systemFile }), {
        files: [
          { file: join(home, ".ssh", "config"), blocks: [{ kind: "global", entries: [] }] },
          { file: systemFile, blocks: [{ kind: "global", entries: [] }] },
        ],
      });
    });
  });
});

describe("lookupHost", () => {
  test("command-line lines beat the config file, whichever block sets the keyword", () => {
    const host = lookup("web", [cli("port", "2000")], "Port 1\nHost web\n  Port 2\n");
    assert.deepEqual(host.first("port"), ["2000"]);
  });

  test("among command-line lines the first given wins", () => {
    const host = lookup("web", [cli("user", "a", "-l"), cli("user", "b")], "");
    assert.deepEqual(host.first("user"), ["a"]);
    assert.equal(host.where("user"), "command line (-l)");
  });

  test("where() names a command-line setting by its flag and a file setting by file and line", () => {
    const host = lookup("web", [cli("port", "2000")], "# comment\nHost web\n  HostName web.example\n");
    assert.equal(host.where("port"), "command line (-o)");
    assert.equal(host.where("hostname"), `${USER_CONFIG} line 3`);
    assert.equal(host.where("user"), undefined);
  });

  test("first() gives every argument of the first line and undefined when nothing set it", () => {
    const host = lookup("web", [], "UserKnownHostsFile /a /b\nUserKnownHostsFile /c\n");
    assert.deepEqual(host.first("userknownhostsfile"), ["/a", "/b"]);
    assert.equal(host.first("port"), undefined);
  });

  test("all() accumulates a multi-valued keyword from the command line and every matching block, in order", () => {
    const text = "Host web\n  IdentityFile ~/.ssh/web\nHost db\n  IdentityFile ~/.ssh/db\nHost *\n  IdentityFile ~/.ssh/any\n";
    const host = lookup("web", [cli("identityfile", "/tmp/k", "-i")], text);
    assert.deepEqual(host.all("identityfile"), [["/tmp/k"], ["~/.ssh/web"], ["~/.ssh/any"]]);
    assert.deepEqual(host.first("identityfile"), ["/tmp/k"]);
  });

  test("all() gives only the first line for a keyword that is not multi-valued", () => {
    const host = lookup("web", [cli("port", "2000")], "Port 1\nPort 2\n");
    assert.deepEqual(host.all("port"), [["2000"]]);
  });

  test("all() is empty for a keyword nothing set, multi-valued or not", () => {
    const host = lookup("web", [], "Host other\n  LocalForward 1 a:1\n  Port 3\n");
    assert.deepEqual(host.all("localforward"), []);
    assert.deepEqual(host.all("port"), []);
  });

  test("Match user sees the user given on the command line", () => {
    const text = "Match user root\n  Port 1\n";
    assert.deepEqual(lookup("web", [], text, "root").first("port"), ["1"]);
    assert.equal(lookup("web", [], text).first("port"), undefined);
  });

  test("passes on the resolver's warnings about Match blocks it skipped", () => {
    const host = lookup("web", [], "Match exec true\n  ConnectTimeout 3\n");
    assert.deepEqual(host.warnings, [`${USER_CONFIG} line 1: Match exec is not supported; ignoring that block`]);
    assert.equal(host.first("connecttimeout"), undefined);
  });
});

describe("unsupportedSettings", () => {
  test("nothing to say when no refused or warned keyword is set", () => {
    assert.deepEqual(problemsFor("web", [cli("port", "2222")], "Host web\n  ProxyJump bastion\n  Compression yes\n"), {
      errors: [],
      warnings: [],
    });
  });

  test("ProxyCommand is refused: running without it would bypass the proxy", () => {
    assert.deepEqual(problemsFor("web", [], "Host web\n  ProxyCommand nc -X 5 -x 127.0.0.1:9050 %h %p\n"), {
      errors: [
        `ProxyCommand is set for web (${USER_CONFIG} line 2), and safetunnel cannot run it; connecting directly would bypass that proxy. Use ProxyJump instead, or remove ProxyCommand for this host`,
      ],
      warnings: [],
    });
  });

  test("CanonicalizeHostname is refused: the canonical name could select another Host block", () => {
    assert.deepEqual(problemsFor("web", [], "CanonicalizeHostname yes\n").errors, [
      `CanonicalizeHostname is set for web (${USER_CONFIG} line 1), and safetunnel does not canonicalize; give the full host name and remove CanonicalizeHostname for this host`,
    ]);
  });

  test("KnownHostsCommand is refused: skipping it could accept a key the command rejects", () => {
    assert.deepEqual(problemsFor("db", [], "Host db\n\n  KnownHostsCommand /usr/bin/keys %H\n").errors, [
      `KnownHostsCommand is set for db (${USER_CONFIG} line 3), and safetunnel cannot run it; put the host's key in known_hosts instead (ssh-keyscan), or remove the setting for this host`,
    ]);
  });

  test("RevokedHostKeys is refused: skipping it could accept a revoked key", () => {
    assert.deepEqual(problemsFor("db", [cli("revokedhostkeys", "/etc/ssh/revoked")], "").errors, [
      "RevokedHostKeys is set for db (command line (-o)), and safetunnel cannot read it; mark revoked keys with @revoked lines in known_hosts instead, or remove the setting for this host",
    ]);
  });

  test("several refusals come ProxyCommand first, as the caller reports only the first", () => {
    const text = "RevokedHostKeys /r\nKnownHostsCommand /k\nCanonicalizeHostname always\nProxyCommand nc %h %p\n";
    const { errors } = problemsFor("web", [], text);
    assert.deepEqual(
      errors.map((e) => e.slice(0, e.indexOf(" is set"))),
      ["ProxyCommand", "CanonicalizeHostname", "KnownHostsCommand", "RevokedHostKeys"],
    );
  });

  test("each algorithm list earns a warning naming where it was set, and no refusal", () => {
    const text = "Ciphers aes128-ctr\nKexAlgorithms curve25519-sha256\nMACs hmac-sha2-256\nHostKeyAlgorithms ssh-ed25519\n";
    assert.deepEqual(problemsFor("web", [], text), {
      errors: [],
      warnings: [
        `Ciphers (${USER_CONFIG} line 1) is not supported; safetunnel uses its own modern defaults for web.`,
        `KexAlgorithms (${USER_CONFIG} line 2) is not supported; safetunnel uses its own modern defaults for web.`,
        `MACs (${USER_CONFIG} line 3) is not supported; safetunnel uses its own modern defaults for web.`,
        `HostKeyAlgorithms (${USER_CONFIG} line 4) is not supported; safetunnel uses its own modern defaults for web.`,
      ],
    });
  });

  test("a none value is not set, in any case, for the refused commands and files and the algorithm lists", () => {
    const text = "ProxyCommand none\nKnownHostsCommand None\nRevokedHostKeys NONE\nCiphers none\nMACs none\n";
    assert.deepEqual(problemsFor("web", [], text), { errors: [], warnings: [] });
  });

  test("a none on the command line wins over a file's ProxyCommand, as the first value counts", () => {
    assert.deepEqual(problemsFor("web", [cli("proxycommand", "none")], "ProxyCommand nc %h %p\n").errors, []);
  });

  for (const value of ["yes", "always", "YES"]) {
    test(`CanonicalizeHostname ${value} is refused, naming the keyword, the host, the file and its line`, () => {
      const { errors, warnings } = problemsFor("web", [], `Host web\n  HostName web.example.com\n  CanonicalizeHostname ${value}\n`);
      assert.deepEqual(errors, [
        `CanonicalizeHostname is set for web (${USER_CONFIG} line 3), and safetunnel does not canonicalize; give the full host name and remove CanonicalizeHostname for this host`,
      ]);
      assert.deepEqual(warnings, []);
    });
  }

  test("CanonicalizeHostname no (and its synonym false) is accepted without a word", () => {
    for (const value of ["no", "No", "false"]) {
      assert.deepEqual(problemsFor("web", [], `Host web\n  CanonicalizeHostname ${value}\n`), { errors: [], warnings: [] }, value);
    }
  });

  test("only the first value counts: -o CanonicalizeHostname=no overrides a config file's yes, and the reverse is refused naming the command line", () => {
    const config = "Host *\n  CanonicalizeHostname yes\n";
    assert.deepEqual(problemsFor("web", [cli("canonicalizehostname", "no")], config).errors, []);
    const refused = problemsFor("web", [cli("canonicalizehostname", "yes")], "Host *\n  CanonicalizeHostname no\n").errors;
    assert.deepEqual(refused, [
      "CanonicalizeHostname is set for web (command line (-o)), and safetunnel does not canonicalize; give the full host name and remove CanonicalizeHostname for this host",
    ]);
  });

  test("a refused keyword in a Host block for another host does not count", () => {
    assert.deepEqual(problemsFor("web", [], "Host db\n  CanonicalizeHostname yes\n  ProxyCommand nc %h %p\n  Ciphers aes128-ctr\n"), {
      errors: [],
      warnings: [],
    });
  });
});

describe("old keyword spellings", () => {
  test("an IdentityFile2 line is an IdentityFile, as `ssh -G` shows, accumulating with the others in order", () => {
    const host = lookup("web", [cli("identityfile", "/k1", "-i")], "IdentityFile2 /k2\nIdentityFile /k3\n");
    assert.deepEqual(host.all("identityfile"), [["/k1"], ["/k2"], ["/k3"]]);
    assert.equal(host.first("identityfile2"), undefined);
  });
});
