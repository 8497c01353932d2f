import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  findAuthorizedKey,
  fromAllows,
  parseAuthorizedKeys,
  type AuthorizedKey,
  type AuthorizedKeysFile,
} from "../../src/serve/authorized-keys.ts";

// Made once with `ssh-keygen -q -t TYPE -N '' -C COMMENT -f FILE`; public halves only.
const ED_A = "AAAAC3NzaC1lZDI1NTE5AAAAIJutvyrJceTbStbm+HVICQzZtO9zlsbLEFYOtsnN/7Bl";
const ED_B = "AAAAC3NzaC1lZDI1NTE5AAAAINKJI4goGOYVTYCAlMa6UsF7MLwzMAGcqThLLtzCi54o";
const ECDSA =
  "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAqf0eQvMf21U6/ZxNOf7bsYW01cyUdCJ/NPjEn0KCBwyPVcdQX/SqMxN1Wj9gCtZZ/DnmMz2jwPdgKn8VTmUO0=";
const RSA =
  "AAAAB3NzaC1yc2EAAAADAQABAAABAQC3iKstf+ZBHuqrW/HtgKSkgM05o25ap4scGG63hv6C2Ek7rQsUerheQ7V/L24AkOpjkpJ3+bfGY9XrQ50NNA21WH0U4HRuJTFGo6keqPWbBDzSG2rg6W7KNv6VwZwgxF1hSeBvkbnHm5VTPKsoFPEksyMMpmD4kgF5NLEuBcnQFAz1qERRtLWZZP85NTXrBX4GOARuJUW32f6r6yyKxqo0TyFVaGrrZQraogXfmqjvyDF437O0MXQ9Kz6SlcSKb+Y4++Z8Qus9znjjkDbZhnX2Zc2BD02SwH54+vQc2ikWka88hYTevdwESvGxbb5qdml00G6el1L4LaIxuqkC9VCp";
const DSA =
  "AAAAB3NzaC1kc3MAAACBAJ0FXKQ3ub6qr+pWKFZeHaRZ3W/dtyEeQ4P2wTDtdIlU/tOrHjkuNyLYjFvzSv9ju9QxgFisopKKUk4zx9Bk7ycP/6hepigPoOAL1QcAnXOQt7Txcx7grt2L7C4J9KOmAf+wwKqvZWhpMf4bOHBwm47mw/bcER8wned9Cx1yv7bZAAAAFQCu5/5WCHyYTq1WKR4EpuMJdN6gMwAAAIBdFcE101eDHtI52RiMvySgD9Y6pyYr44T2BfLFMgNjN3M4nrQAC3BP0K5zkn4q8aviwYvN18UHOV7D5A7jQFgHf43fawx0FUnt5V3dKcYxYuclH3NNqSLEgP++I+YP4gfU5nYV10oit8I9dJ96XE4YO4p7ktZ+VMeJfdh9exUyrwAAAIEAksnxFV42lCso9BY7ngZUnx1SCCaUMirJfr0AwaEucmPgDoPd0q+vQNHjIiH34Ikkx6WUEEqUs/3F9ryms8Y6r58t+pkGiEY1Dl5JAldZVZeF0P2LUMETPyr1UaX7qX09bTSQUP0dhS6wYguvfTxzufd+M6Tv0QpQu8DTWGPQaoY=";

const FILE = "~/.ssh/authorized_keys";
const ED = `ssh-ed25519 ${ED_A}`;

/** An SSH wire string (RFC 4251 section 5): uint32 length, then the bytes. */
function sshString(data: Uint8Array | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A security-key ed25519 public key (PROTOCOL.u2f): type, 32-byte key, application. */
const SK_ED = Buffer.concat([sshString("sk-ssh-ed25519@openssh.com"), sshString(new Uint8Array(32).fill(7)), sshString("ssh:")]).toString("base64");

const decoded = (base64: string): Uint8Array => new Uint8Array(Buffer.from(base64, "base64"));

function key(fields: Partial<AuthorizedKey>): AuthorizedKey {
  return {
    line: 1,
    algorithm: "ssh-ed25519",
    blob: decoded(ED_A),
    comment: "",
    restrict: false,
    portForwarding: true,
    permitOpen: null,
    permitListen: null,
    from: null,
    ...fields,
  };
}

/** The single key a one-line file yields, with no warnings. */
function one(line: string): AuthorizedKey {
  const file = parseAuthorizedKeys(line, FILE);
  assert.deepEqual(file.warnings, [], `warnings for ${JSON.stringify(line)}`);
  assert.equal(file.keys.length, 1, `keys from ${JSON.stringify(line)}`);
  return file.keys[0]!;
}

/** The warning a refused one-line file yields (and that it yields no key). */
function refused(line: string): string {
  const file = parseAuthorizedKeys(line, FILE);
  assert.deepEqual(file.keys, [], `keys from ${JSON.stringify(line)}`);
  assert.equal(file.warnings.length, 1, `warnings for ${JSON.stringify(line)}: ${file.warnings.join(" | ")}`);
  return file.warnings[0]!;
}

describe("parseAuthorizedKeys: keys", () => {
  test("reads a plain line as ssh-keygen writes it", () => {
    assert.deepEqual(parseAuthorizedKeys(`${ED} alice@laptop\n`, FILE), {
      keys: [key({ comment: "alice@laptop" })],
      warnings: [],
    });
  });

  test("the blob is a plain Uint8Array holding the decoded base64 field", () => {
    const { blob } = one(ED);
    assert.equal(Object.getPrototypeOf(blob), Uint8Array.prototype);
    assert.deepEqual(blob, decoded(ED_A));
    assert.equal(blob.length, 51);
  });

  test("a comment may hold blanks; a line without one has an empty comment", () => {
    assert.equal(one(`${ED}   Alice  (work laptop)  `).comment, "Alice  (work laptop)");
    assert.equal(one(ED).comment, "");
    assert.equal(one(`${ED}\t`).comment, "");
  });

  test("reads ECDSA and RSA keys", () => {
    assert.deepEqual(one(`ecdsa-sha2-nistp256 ${ECDSA} carol`), key({ algorithm: "ecdsa-sha2-nistp256", blob: decoded(ECDSA), comment: "carol" }));
    assert.deepEqual(one(`ssh-rsa ${RSA} dave`), key({ algorithm: "ssh-rsa", blob: decoded(RSA), comment: "dave" }));
  });

  test("skips blank lines and comments and counts lines from 1", () => {
    const text = ["# clients", "", "   ", "\t# indented comment", `${ED} a`, `  \tssh-ed25519 ${ED_B} b`, ""].join("\n");
    const file = parseAuthorizedKeys(text, FILE);
    assert.deepEqual(file.warnings, []);
    assert.deepEqual(
      file.keys.map((k) => [k.line, k.comment]),
      [
        [5, "a"],
        [6, "b"],
      ],
    );
    assert.deepEqual(file.keys[1]!.blob, decoded(ED_B));
  });

  test("an empty file has no keys and no warnings", () => {
    assert.deepEqual(parseAuthorizedKeys("", FILE), { keys: [], warnings: [] });
  });

  test("CRLF line ends and a leading byte order mark are tolerated", () => {
    const file = parseAuthorizedKeys(`\uFEFF${ED} a\r\nrestrict ssh-ed25519 ${ED_B} b\r\n`, FILE);
    assert.deepEqual(file.warnings, []);
    assert.deepEqual(
      file.keys.map((k) => [k.line, k.comment, k.restrict]),
      [
        [1, "a", false],
        [2, "b", true],
      ],
    );
  });

  test("a refused line leaves the lines around it in place", () => {
    const file = parseAuthorizedKeys(`${ED} a\ncommand="uptime" ${ED} b\nssh-ed25519 ${ED_B} c\n`, FILE);
    assert.deepEqual(
      file.keys.map((k) => k.comment),
      ["a", "c"],
    );
    assert.equal(file.warnings.length, 1);
    assert.ok(file.warnings[0]!.startsWith(`${FILE}:2: `), file.warnings[0]);
  });
});

describe("parseAuthorizedKeys: options", () => {
  test("restrict turns port forwarding off", () => {
    assert.deepEqual(one(`restrict ${ED}`), key({ restrict: true, portForwarding: false }));
  });

  test("options apply in order: port-forwarding after restrict turns it back on, before it does not", () => {
    assert.deepEqual(one(`restrict,port-forwarding ${ED}`), key({ restrict: true, portForwarding: true }));
    assert.deepEqual(one(`port-forwarding,restrict ${ED}`), key({ restrict: true, portForwarding: false }));
    assert.equal(one(`no-port-forwarding ${ED}`).portForwarding, false);
    assert.equal(one(`no-port-forwarding,port-forwarding ${ED}`).portForwarding, true);
    assert.equal(one(`port-forwarding,no-port-forwarding ${ED}`).portForwarding, false);
  });

  test("option names ignore case, as auth-options.c compares them", () => {
    assert.deepEqual(one(`Restrict,PORT-Forwarding ${ED}`), key({ restrict: true, portForwarding: true }));
    assert.deepEqual(one(`PermitOpen="db:5432" ${ED}`).permitOpen, [{ host: "db", port: 5432 }]);
  });

  test("options about sessions, agents, X11, rc files and security keys are accepted and change nothing", () => {
    const flags = [
      "no-pty",
      "pty",
      "no-agent-forwarding",
      "agent-forwarding",
      "no-X11-forwarding",
      "X11-forwarding",
      "no-user-rc",
      "user-rc",
      "no-touch-required",
      "touch-required",
      "verify-required",
      "no-verify-required",
    ];
    for (const flag of flags) assert.deepEqual(one(`${flag} ${ED}`), key({}), flag);
    assert.deepEqual(one(`${flags.join(",")} ${ED}`), key({}));
  });

  test("permitopen= may repeat; IPv6 hosts come without their brackets; * means any host or port", () => {
    assert.deepEqual(one(`restrict,port-forwarding,permitopen="localhost:80",permitopen="[::1]:8080",permitopen="*:443",permitopen="db.internal:*" ${ED}`), {
      ...key({ restrict: true }),
      permitOpen: [
        { host: "localhost", port: 80 },
        { host: "::1", port: 8080 },
        { host: "*", port: 443 },
        { host: "db.internal", port: "*" },
      ],
    });
  });

  test("permitlisten= takes [host:]port; a bare port has no host", () => {
    assert.deepEqual(one(`permitlisten="8080",permitlisten="localhost:9000",permitlisten="[::1]:*",permitlisten="*:7000" ${ED}`).permitListen, [
      { host: null, port: 8080 },
      { host: "localhost", port: 9000 },
      { host: "::1", port: "*" },
      { host: "*", port: 7000 },
    ]);
  });

  test("from= is split on commas, kept as written, negations included", () => {
    assert.deepEqual(one(`from="192.0.2.0/24,!192.0.2.13,2001:db8::/32,10.1.*" ${ED}`).from, ["192.0.2.0/24", "!192.0.2.13", "2001:db8::/32", "10.1.*"]);
  });

  test('a quoted value may hold blanks and commas, and \\" stands for a quote; other backslashes stay', () => {
    assert.deepEqual(one(`permitopen="a\\"b:80",permitopen="c\\d:81" ${ED}`).permitOpen, [
      { host: 'a"b', port: 80 },
      { host: "c\\d", port: 81 },
    ]);
    assert.deepEqual(one(`from="10.0.0.1,10.0.0.2",no-pty ${ED}`).from, ["10.0.0.1", "10.0.0.2"]);
  });

  test("options can be followed by several blanks or a tab", () => {
    assert.equal(one(`restrict \t  ${ED}`).restrict, true);
  });
});

describe("parseAuthorizedKeys: refused lines", () => {
  test("command= is refused with the reason and the fix", () => {
    const file = parseAuthorizedKeys(`# one\n${ED} ok\ncommand="/usr/bin/uptime",no-pty ${ED} bad\n`, FILE);
    assert.deepEqual(file.keys.map((k) => k.comment), ["ok"]);
    assert.deepEqual(file.warnings, [
      '~/.ssh/authorized_keys:3: option "command" is not supported by safetunnel serve, which runs no commands; that key is refused (remove the option to allow the key for forwarding only)',
    ]);
  });

  test("options that grant or run something safetunnel serve never does are refused, each with its reason", () => {
    assert.equal(
      refused(`environment="A=b" ${ED}`),
      `${FILE}:1: option "environment" is not supported by safetunnel serve, which starts no sessions; that key is refused (remove the option to allow the key for forwarding only)`,
    );
    assert.equal(
      refused(`tunnel="0" ${ED}`),
      `${FILE}:1: option "tunnel" is not supported by safetunnel serve, which forwards TCP ports, not tun devices; that key is refused (remove the option to allow the key for forwarding only)`,
    );
    assert.equal(
      refused(`cert-authority ${ED}`),
      `${FILE}:1: option "cert-authority" is not supported by safetunnel serve, which accepts no certificates; that key is refused (list the user's own public key instead)`,
    );
    assert.equal(
      refused(`principals="alice" ${ED}`),
      `${FILE}:1: option "principals" is not supported by safetunnel serve, which accepts no certificates; that key is refused (list the user's own public key instead)`,
    );
    assert.equal(
      refused(`expiry-time="20300101" ${ED}`),
      `${FILE}:1: option "expiry-time" is not supported by safetunnel serve, which cannot enforce it; that key is refused (remove the option, and remove the key when it should expire)`,
    );
  });

  test("the option is named as written, and a refusal anywhere in the list refuses the line", () => {
    assert.equal(
      refused(`restrict,port-forwarding,Command="ls" ${ED}`),
      `${FILE}:1: option "Command" is not supported by safetunnel serve, which runs no commands; that key is refused (remove the option to allow the key for forwarding only)`,
    );
  });

  test("an unknown option is refused and points at sshd(8)", () => {
    assert.equal(
      refused(`no-port-forwardin ${ED}`),
      `${FILE}:1: unknown option "no-port-forwardin"; that key is refused (check its spelling against sshd(8) "AUTHORIZED_KEYS FILE FORMAT", or remove it)`,
    );
    assert.equal(
      refused(`no-restrict ${ED}`),
      `${FILE}:1: unknown option "no-restrict"; that key is refused (check its spelling against sshd(8) "AUTHORIZED_KEYS FILE FORMAT", or remove it)`,
    );
  });

  test("option syntax errors are refused: value missing, unquoted, unterminated, unexpected, or given to a flag", () => {
    assert.equal(
      refused(`permitopen ${ED}`),
      `${FILE}:1: option "permitopen" needs a value in double quotes; that key is refused (write it like permitopen="localhost:8080")`,
    );
    assert.equal(
      refused(`from=192.0.2.1 ${ED}`),
      `${FILE}:1: option "from" needs a value in double quotes; that key is refused (write it like from="192.0.2.0/24")`,
    );
    assert.equal(
      refused(`permitlisten="8080 ${ED}`),
      `${FILE}:1: the value of option "permitlisten" has no closing double quote; that key is refused (write it like permitlisten="localhost:8080")`,
    );
    assert.equal(
      refused(`from="192.0.2.1"x ${ED}`),
      `${FILE}:1: unexpected text after option "from"; that key is refused (separate options with commas only, and put the key after a blank)`,
    );
    assert.equal(refused(`restrict="yes" ${ED}`), `${FILE}:1: option "restrict" takes no value; that key is refused (write restrict alone)`);
    assert.equal(refused(`restrict,,no-pty ${ED}`), `${FILE}:1: the option list has an empty option; that key is refused (remove the extra comma)`);
    assert.equal(refused(`restrict, ${ED}`), `${FILE}:1: the option list has an empty option; that key is refused (remove the extra comma)`);
  });

  test("from= given twice is refused, as auth-options.c refuses it", () => {
    assert.equal(
      refused(`from="10.0.0.1",from="10.0.0.2" ${ED}`),
      `${FILE}:1: option from is given twice; that key is refused (merge the patterns into one from="..." list)`,
    );
  });

  test("bad permitopen= values are refused with what is wrong", () => {
    const fix = "that key is refused (write host:port, [IPv6]:port, with * alone for any host or any port)";
    assert.equal(refused(`permitopen="localhost" ${ED}`), `${FILE}:1: option permitopen="localhost": it has no :port; ${fix}`);
    assert.equal(refused(`permitopen="localhost:0" ${ED}`), `${FILE}:1: option permitopen="localhost:0": the port must be a number from 1 to 65535, or *; ${fix}`);
    assert.equal(refused(`permitopen="localhost:http" ${ED}`), `${FILE}:1: option permitopen="localhost:http": the port must be a number from 1 to 65535, or *; ${fix}`);
    assert.equal(refused(`permitopen="::1:80" ${ED}`), `${FILE}:1: option permitopen="::1:80": an IPv6 address must be in brackets, like [::1]:8080; ${fix}`);
    assert.equal(
      refused(`permitopen="*.example.com:443" ${ED}`),
      `${FILE}:1: option permitopen="*.example.com:443": the host "*.example.com" is a pattern, but only a lone * matches more than one host; ${fix}`,
    );
  });

  test("bad permitlisten= values are refused with what is wrong", () => {
    const fix = "that key is refused (write port, host:port or [IPv6]:port, with * for any port)";
    assert.equal(refused(`permitlisten="0" ${ED}`), `${FILE}:1: option permitlisten="0": the port must be a number from 1 to 65535, or *; ${fix}`);
    assert.equal(refused(`permitlisten=":80" ${ED}`), `${FILE}:1: option permitlisten=":80": the host is empty; ${fix}`);
  });

  test("from= lists that sshd would reject at login are refused when read", () => {
    assert.equal(refused(`from="10.0.0.1,,10.0.0.2" ${ED}`), `${FILE}:1: option from="10.0.0.1,,10.0.0.2": it has an empty entry; that key is refused (remove the extra comma)`);
    assert.equal(refused(`from="!" ${ED}`), `${FILE}:1: option from="!": it has an empty entry; that key is refused (remove the extra comma)`);
    assert.equal(
      refused(`from="192.0.2.1/24" ${ED}`),
      `${FILE}:1: option from="192.0.2.1/24": the entry "192.0.2.1/24" has bits set past its prefix; that key is refused (write 192.0.2.0/24)`,
    );
    assert.equal(
      refused(`from="!2001:db8::1/32" ${ED}`),
      `${FILE}:1: option from="!2001:db8::1/32": the entry "!2001:db8::1/32" has bits set past its prefix; that key is refused (write !2001:db8::/32)`,
    );
    assert.equal(
      refused(`from="10.0.0.0/33" ${ED}`),
      `${FILE}:1: option from="10.0.0.0/33": the entry "10.0.0.0/33" has a bad prefix length; that key is refused (use a prefix length from 0 to 32)`,
    );
    assert.equal(
      refused(`from="10.0.0.0/" ${ED}`),
      `${FILE}:1: option from="10.0.0.0/": the entry "10.0.0.0/" has a bad prefix length; that key is refused (use a prefix length from 0 to 32)`,
    );
    assert.equal(
      refused(`from="10.0.*/8" ${ED}`),
      `${FILE}:1: option from="10.0.*/8": the entry "10.0.*/8" is not an address/prefix; that key is refused (write a network like 192.0.2.0/24 or 2001:db8::/32)`,
    );
    assert.equal(
      refused(`from="10.0.0.1, 10.0.0.2" ${ED}`),
      `${FILE}:1: option from="10.0.0.1, 10.0.0.2": the entry " 10.0.0.2" contains a blank; that key is refused (separate entries with commas only, without blanks)`,
    );
  });

  test("a negated host name in from= is refused: without DNS it would exclude nobody", () => {
    assert.equal(
      refused(`from="*,!evil.example.com" ${ED}`),
      `${FILE}:1: option from="*,!evil.example.com": "!evil.example.com" excludes a host name, but safetunnel serve matches only the client's IP address (as sshd with UseDNS no), so it would exclude nobody; that key is refused (exclude addresses or networks such as !192.0.2.0/24 instead)`,
    );
  });

  test("a host name in from= keeps the key but warns that it never matches", () => {
    const file = parseAuthorizedKeys(`from="192.0.2.7,*.example.com" ${ED}`, FILE);
    assert.deepEqual(file.keys, [key({ from: ["192.0.2.7", "*.example.com"] })]);
    assert.deepEqual(file.warnings, [
      `${FILE}:1: option from="192.0.2.7,*.example.com": "*.example.com" is a host name, but safetunnel serve matches only the client's IP address (as sshd with UseDNS no), so it never matches (write addresses or networks such as 192.0.2.0/24 instead)`,
    ]);
  });

  test("key data that is not base64, not a key, or not of the named type is refused", () => {
    const fix = "that key is refused (copy the whole line again from the client's .pub file)";
    assert.equal(refused(`ssh-ed25519 ${ED_A.slice(0, -1)}`), `${FILE}:1: the key data is not valid base64; ${fix}`);
    assert.equal(refused(`ssh-ed25519 ${ED_A}!`), `${FILE}:1: the key data is not valid base64; ${fix}`);
    assert.equal(refused(`ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJutvyrJceTbStbm`), `${FILE}:1: the key data is not a well-formed ssh-ed25519 public key; ${fix}`);
    assert.equal(refused(`ssh-rsa ${ED_A} mislabelled`), `${FILE}:1: the key type ssh-rsa does not match the key data, which holds a ssh-ed25519 key; ${fix}`);
    assert.equal(refused("ssh-ed25519"), `${FILE}:1: the key type ssh-ed25519 is not followed by the key data; ${fix}`);
    assert.equal(refused("restrict ssh-ed25519   "), `${FILE}:1: the key type ssh-ed25519 is not followed by the key data; ${fix}`);
  });

  test("a line with options but no key, or no key type after them, is refused", () => {
    const fix = "that key is refused (write the options, a blank, then the key line from the client's .pub file)";
    assert.equal(refused("restrict"), `${FILE}:1: there is no key after the options; ${fix}`);
    assert.equal(refused(`restrict ${ED_A}`), `${FILE}:1: expected a key type such as ssh-ed25519 after the options, found "${ED_A}"; ${fix}`);
  });

  test("DSA keys, security keys, certificates and unknown key types are refused", () => {
    assert.equal(
      refused(`sk-ssh-ed25519@openssh.com ${SK_ED}`),
      `${FILE}:1: security-key (sk-ssh-ed25519@openssh.com) logins are not supported by safetunnel serve, which cannot check their signatures; that key is refused (give the client an ordinary key too: ssh-keygen -t ed25519)`,
    );
    assert.equal(
      refused(`ssh-dss ${DSA} eve`),
      `${FILE}:1: ssh-dss (DSA) keys are refused, as OpenSSH has done by default since 7.0; that key is refused (give the client an ed25519 key: ssh-keygen -t ed25519)`,
    );
    assert.equal(
      refused(`ssh-ed25519-cert-v01@openssh.com ${ED_A}`),
      `${FILE}:1: the certificate type "ssh-ed25519-cert-v01@openssh.com" is not supported by safetunnel serve, which accepts no certificates; that key is refused (list the user's own public key instead)`,
    );
    assert.equal(
      refused(`ssh-xmss@openssh.com ${ED_A}`),
      `${FILE}:1: the key type "ssh-xmss@openssh.com" is not supported by safetunnel serve; that key is refused (use an ed25519, ECDSA or RSA key)`,
    );
  });

  test("warnings carry no control characters from the file or its name", () => {
    const warning = refused(`no-\u001b[31mpty\u0007,\t ${ED}`);
    assert.equal(
      warning,
      `${FILE}:1: unknown option "no-\\x1b[31mpty\\x07"; that key is refused (check its spelling against sshd(8) "AUTHORIZED_KEYS FILE FORMAT", or remove it)`,
    );
    const named = parseAuthorizedKeys(`bogus ${ED}`, "keys\nforged: line\u2028x").warnings[0]!;
    assert.equal(named.startsWith("keys\\nforged: line\\u2028x:1: unknown option"), true, named);
    for (const text of [warning, named]) assert.doesNotMatch(text, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
  });

  test("long values are cut short in warnings", () => {
    const long = "x".repeat(300);
    assert.equal(
      refused(`${long} ${ED}`),
      `${FILE}:1: unknown option "${"x".repeat(100)}..."; that key is refused (check its spelling against sshd(8) "AUTHORIZED_KEYS FILE FORMAT", or remove it)`,
    );
  });
});

describe("findAuthorizedKey", () => {
  const text = [
    `from="192.0.2.0/24" ${ED} office`,
    `restrict ${ED} anywhere`,
    `ssh-ed25519 ${ED_B} bob`,
    `ssh-rsa ${RSA} dave`,
  ].join("\n");
  const file: AuthorizedKeysFile = parseAuthorizedKeys(text, FILE);

  test("finds the first line with the same type and blob", () => {
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(ED_A))?.comment, "office");
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(ED_B))?.line, 3);
  });

  test("a blob that is not listed, or listed under another type, finds nothing", () => {
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(SK_ED)), undefined);
    assert.equal(findAuthorizedKey(file, "ecdsa-sha2-nistp256", decoded(ED_A)), undefined);
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(ED_A).subarray(0, 50)), undefined);
    assert.equal(findAuthorizedKey(parseAuthorizedKeys("", FILE), "ssh-ed25519", decoded(ED_A)), undefined);
  });

  test("rsa-sha2-256 and rsa-sha2-512 find the ssh-rsa key (RFC 8332)", () => {
    for (const algorithm of ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"]) {
      assert.equal(findAuthorizedKey(file, algorithm, decoded(RSA))?.comment, "dave", algorithm);
    }
  });

  test("with an address, a line whose from= refuses it is passed over, as sshd goes on to the next line", () => {
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(ED_A), "192.0.2.9")?.comment, "office");
    assert.equal(findAuthorizedKey(file, "ssh-ed25519", decoded(ED_A), "198.51.100.1")?.comment, "anywhere");
    const only = parseAuthorizedKeys(`from="192.0.2.0/24" ${ED} office`, FILE);
    assert.equal(findAuthorizedKey(only, "ssh-ed25519", decoded(ED_A), "198.51.100.1"), undefined);
  });
});

describe("fromAllows", () => {
  test("null allows every address", () => {
    assert.equal(fromAllows(null, "198.51.100.1"), true);
  });

  test("an address matches a single address or a network", () => {
    assert.equal(fromAllows(["192.0.2.7"], "192.0.2.7"), true);
    assert.equal(fromAllows(["192.0.2.7"], "192.0.2.8"), false);
    assert.equal(fromAllows(["192.0.2.0/24"], "192.0.2.255"), true);
    assert.equal(fromAllows(["192.0.2.0/24"], "192.0.3.0"), false);
    assert.equal(fromAllows(["0.0.0.0/0"], "203.0.113.5"), true);
  });

  test("IPv6 networks compare addresses, not spellings", () => {
    assert.equal(fromAllows(["2001:DB8::/32"], "2001:0db8:0:0::5"), true);
    assert.equal(fromAllows(["2001:db8::1"], "2001:db8:0:0:0:0:0:1"), true);
    assert.equal(fromAllows(["2001:db8::/32"], "2001:db9::1"), false);
  });

  test("an IPv4-mapped IPv6 address counts as the IPv4 address", () => {
    assert.equal(fromAllows(["192.0.2.0/24"], "::ffff:192.0.2.7"), true);
    assert.equal(fromAllows(["192.0.2.*"], "::ffff:192.0.2.7"), true);
    assert.equal(fromAllows(["!192.0.2.7", "*"], "::ffff:192.0.2.7"), false);
  });

  test("* and ? match the address as text, IPv6 in RFC 5952 form and regardless of case", () => {
    assert.equal(fromAllows(["10.1.*"], "10.1.2.3"), true);
    assert.equal(fromAllows(["10.1.*"], "10.10.2.3"), false);
    assert.equal(fromAllows(["10.0.0.?"], "10.0.0.7"), true);
    assert.equal(fromAllows(["10.0.0.?"], "10.0.0.17"), false);
    assert.equal(fromAllows(["2001:DB8::*"], "2001:0DB8:0000::00AB"), true);
    assert.equal(fromAllows(["*"], "::1"), true);
  });

  test("a matching negated entry refuses even when another entry matches, before or after it", () => {
    assert.equal(fromAllows(["192.0.2.0/24", "!192.0.2.13"], "192.0.2.13"), false);
    assert.equal(fromAllows(["!192.0.2.13", "192.0.2.0/24"], "192.0.2.13"), false);
    assert.equal(fromAllows(["192.0.2.0/24", "!192.0.2.13"], "192.0.2.14"), true);
    assert.equal(fromAllows(["*", "!10.*"], "10.9.9.9"), false);
  });

  test("negated entries alone allow nothing: something must match", () => {
    assert.equal(fromAllows(["!192.0.2.13"], "198.51.100.1"), false);
    assert.equal(fromAllows([], "198.51.100.1"), false);
  });

  test("brackets and an IPv6 zone around the address are ignored", () => {
    assert.equal(fromAllows(["fe80::/10"], "fe80::1%eth0"), true);
    assert.equal(fromAllows(["2001:db8::/32"], "[2001:db8::1]"), true);
  });

  test("an address that is not an IP address, or a malformed list, allows nothing", () => {
    assert.equal(fromAllows(["*"], "example.com"), false);
    assert.equal(fromAllows(["*"], ""), false);
    assert.equal(fromAllows(["192.0.2.0/24", ""], "192.0.2.1"), false);
    assert.equal(fromAllows(["192.0.2.1/24"], "192.0.2.1"), false);
  });

  test("host names never match an address (no DNS, as sshd with UseDNS no)", () => {
    assert.equal(fromAllows(["localhost"], "127.0.0.1"), false);
    assert.equal(fromAllows(["*.example.com"], "192.0.2.1"), false);
  });
});
