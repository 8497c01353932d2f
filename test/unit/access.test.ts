import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decideAccess, parseAllowUsers, passwdUids } from "../../src/forward/access.ts";

describe("who may use the tunnel's ports", () => {
  const own = { ownUid: 1000, allowed: new Set<number>() };

  test("by default the account that started it and root; anyone else is refused", () => {
    assert.equal(decideAccess(own, 1000), "allow");
    assert.equal(decideAccess(own, 0), "allow");
    assert.equal(decideAccess(own, 1001), "refuse");
    assert.equal(decideAccess(own, 65534), "refuse");
  });

  test("--allow-users lets named accounts in; * lets everyone in", () => {
    assert.equal(decideAccess({ ownUid: 1000, allowed: new Set([1001]) }, 1001), "allow");
    assert.equal(decideAccess({ ownUid: 1000, allowed: new Set([1001]) }, 1002), "refuse");
    assert.equal(decideAccess({ ownUid: 1000, allowed: "all" }, 1002), "allow");
    assert.equal(decideAccess({ ownUid: 1000, allowed: "all" }, undefined), "allow");
  });

  test("when the owner cannot be told, the caller decides (unknown)", () => {
    assert.equal(decideAccess(own, undefined), "unknown");
    assert.equal(decideAccess({ ownUid: undefined, allowed: new Set() }, 1000), "unknown");
  });

  test("parseAllowUsers takes names and uids, comma-separated and repeated", () => {
    const uidOf = (name: string): number | undefined => ({ alice: 1001, bob: 1002 })[name];
    assert.deepEqual([...(parseAllowUsers(["alice,1005", "bob"], uidOf) as Set<number>)], [1001, 1005, 1002]);
    assert.equal(parseAllowUsers(["alice,*"], uidOf), "all");
    assert.throws(() => parseAllowUsers(["carol"], uidOf), { code: "USAGE", message: "--allow-users: no local user named 'carol' (not in /etc/passwd); give an existing user name or a uid" });
    assert.throws(() => parseAllowUsers(["alice,,bob"], uidOf), { code: "USAGE" });
  });

  test("passwdUids reads passwd(5) lines, the first of a name wins", () => {
    const uids = passwdUids("root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1001:1001::/home/alice:/bin/sh\nalice:x:2000:2000::/:/bin/sh\nbroken\n");
    assert.deepEqual([...uids], [
      ["root", 0],
      ["alice", 1001],
    ]);
  });
});

describe("the access gate", () => {
  const silent = { warn: () => {}, debug: () => {} } as unknown as import("../../src/log.ts").Logger;
  const unknownOwner = { ownerOf: async () => undefined, programOf: async () => undefined };
  const policy = { ownUid: 1000, allowed: new Set<number>() };

  test("a client of this machine whose owner /proc does not show is refused, said once per 10 s; another machine (-g) is let in", async () => {
    const { accessGate } = await import("../../src/forward/access-gate.ts");
    const warnings: string[] = [];
    const log = { warn: (line: string) => warnings.push(line), debug: () => {} } as unknown as import("../../src/log.ts").Logger;
    const gate = accessGate({ policy, peers: unknownOwner, log, clock: () => 0 });
    assert.equal(await gate.admit({ address: "127.0.0.1", port: 5000, localAddress: "127.0.0.1", localPort: 9001 }, "-D 9001"), false);
    assert.equal(await gate.admit({ address: "::1", port: 5001, localAddress: "::1", localPort: 9001 }, "-D 9001"), false);
    // A local program that reached a -g port through one of this machine's own addresses.
    assert.equal(await gate.admit({ address: "192.168.1.5", port: 5002, localAddress: "192.168.1.5", localPort: 9001 }, "-D 9001"), false);
    assert.equal(await gate.admit({ address: "192.168.1.7", port: 5000, localAddress: "192.168.1.5", localPort: 9001 }, "-D 9001"), true);
    assert.deepEqual(warnings, [
      "-D 9001: refused a connection from 127.0.0.1:5000: /proc/net/tcp did not say which account it belongs to in time. If this repeats, let every local account in with --allow-users '*'",
    ]);
  });

  test("with quietIfUnknown (-L, decided at accept), an unknown owner is refused at -v only; a known other account is still a warning", async () => {
    const { accessGate } = await import("../../src/forward/access-gate.ts");
    const warnings: string[] = [];
    const debug: string[] = [];
    const log = { warn: (line: string) => warnings.push(line), debug: (_level: number, line: string) => debug.push(line) } as unknown as import("../../src/log.ts").Logger;
    const gate = accessGate({ policy, peers: unknownOwner, log, clock: () => 0 });
    assert.equal(await gate.admit({ address: "127.0.0.1", port: 5000, localAddress: "127.0.0.1", localPort: 8080 }, "-L 8080:web:80", true), false);
    assert.deepEqual(warnings, []);
    assert.match(debug[0]!, /^-L 8080:web:80: refused a connection from 127\.0\.0\.1:5000: \/proc\/net\/tcp did not say/);
    const other = accessGate({ policy, peers: { ownerOf: async () => ({ uid: 1001, inode: "1" }), programOf: async () => undefined }, log, clock: () => 0 });
    assert.equal(await other.admit({ address: "127.0.0.1", port: 5001, localAddress: "127.0.0.1", localPort: 8080 }, "-L 8080:web:80", true), false);
    assert.equal(warnings.length, 1);
  });

  test("--allow-users '*' lets in without asking /proc", async () => {
    const { accessGate } = await import("../../src/forward/access-gate.ts");
    const asked: unknown[] = [];
    const peers = { ownerOf: async (client: unknown) => (asked.push(client), undefined), programOf: async () => undefined };
    const gate = accessGate({ policy: { ownUid: 1000, allowed: "all" }, peers, log: silent });
    assert.equal(await gate.admit({ address: "127.0.0.1", port: 5000, localAddress: "127.0.0.1", localPort: 9001 }, "-D 9001"), true);
    assert.deepEqual(asked, []);
  });

  test("lets the owner in and refuses another account", async () => {
    const { accessGate } = await import("../../src/forward/access-gate.ts");
    const owned = (uid: number) => ({ ownerOf: async () => ({ uid, inode: "1" }), programOf: async () => undefined });
    const client = { address: "127.0.0.1", port: 5000, localAddress: "127.0.0.1", localPort: 9001 };
    assert.equal(await accessGate({ policy, peers: owned(1000) as never, log: silent }).admit(client, "-D 9001"), true);
    assert.equal(await accessGate({ policy, peers: owned(1001) as never, log: silent }).admit(client, "-D 9001"), false);
  });
});
