import { test } from "node:test";
import assert from "node:assert/strict";
import { matchBlockApplies, type MatchBlock } from "../../src/config/evaluate-match.ts";
import { parseSshConfig } from "../../src/config/parse-ssh-config.ts";
import { TunnelError } from "../../src/errors.ts";

/** The first Match block of `text`. */
function matchBlock(text: string): MatchBlock {
  const block = parseSshConfig(text, "cfg").blocks.find((b) => b.kind === "match");
  assert.ok(block?.kind === "match");
  return block;
}

const ME = { host: "web", localUser: "me" };

test("Match host is judged against the HostName resolved so far, with %h expanded", () => {
  const block = matchBlock("Match host web.example.com\n  Port 1\n");
  assert.deepEqual(matchBlockApplies(block, ME, new Map([["hostname", ["%h.example.com"]]])), { applies: true, warnings: [] });
  assert.deepEqual(matchBlockApplies(block, ME, new Map()), { applies: false, warnings: [] });
});

test("Match user takes -l first, then the User resolved so far, then the local user", () => {
  const block = matchBlock("Match user deploy\n  Port 1\n");
  assert.equal(matchBlockApplies(block, ME, new Map([["user", ["deploy"]]])).applies, true);
  assert.equal(matchBlockApplies(block, { ...ME, user: "root" }, new Map([["user", ["deploy"]]])).applies, false);
  assert.equal(matchBlockApplies(block, { ...ME, localUser: "deploy" }, new Map()).applies, true);
});

test("an unsupported condition returns its warning rather than applying the block", () => {
  const block = matchBlock("Match host web exec true localnetwork 10.0.0.0/8\n  ServerAliveInterval 5\n");
  assert.deepEqual(matchBlockApplies(block, ME, new Map()), {
    applies: false,
    warnings: [
      "cfg line 1: Match exec is not supported; ignoring that block",
      "cfg line 1: Match localnetwork is not supported; ignoring that block",
    ],
  });
});

test("refuses to skip a block that routes the connection, naming its keywords as ssh_config spells them", () => {
  const block = matchBlock("Match exec true\n  HostName 10.0.0.1\n  BindAddress 10.0.0.2\n  HostName again\n");
  assert.throws(
    () => matchBlockApplies(block, ME, new Map()),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "BAD_CONFIG");
      assert.equal(
        err.message,
        "cfg line 1: Match exec is not supported, and that block sets HostName, BindAddress; skipping it could connect another way than you configured. Move those settings into a Host block for this host instead",
      );
      return true;
    },
  );
});
