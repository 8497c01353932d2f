import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cutLongWords, describeError, echoValue, MAX_ECHO_CHARS, TunnelError } from "../../src/errors.ts";
import { parseForwardSpec } from "../../src/config/forward-spec.ts";
import { parseSshConfig } from "../../src/config/parse-ssh-config.ts";
import { parseCommandLine } from "../../src/cli.ts";

const MiB = 1_048_576;

describe("echoValue", () => {
  test("a value of up to 200 characters is repeated whole, in the quotes given", () => {
    assert.equal(MAX_ECHO_CHARS, 200);
    assert.equal(echoValue("home.example.org"), "home.example.org");
    assert.equal(echoValue("home.example.org", "'"), "'home.example.org'");
    assert.equal(echoValue("b".repeat(200), '"'), `"${"b".repeat(200)}"`);
    assert.equal(echoValue(""), "");
  });

  test("a longer one is cut to 200 characters with an ellipsis, and its length follows the quotes", () => {
    assert.equal(echoValue("a".repeat(MiB), '"'), `"${"a".repeat(199)}…" (1048576 characters)`);
    assert.equal(echoValue("c".repeat(201)), `${"c".repeat(199)}… (201 characters)`);
  });

  test("a cut never splits a surrogate pair", () => {
    const shown = echoValue("x" + "😀".repeat(150));
    // 1 + 2 * 99 code units, then the ellipsis: the 100th emoji would have been split.
    assert.equal(shown, `x${"😀".repeat(99)}… (301 characters)`);
    assert.doesNotMatch(shown, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/, "no lone high surrogate");
  });

  test("a bound of its own", () => {
    assert.equal(echoValue("abcdef", "", 4), "abc… (6 characters)");
  });
});

describe("cutLongWords", () => {
  test("leaves ordinary text alone, however long", () => {
    const text = Array.from({ length: 300 }, (_, i) => `word${i}`).join(" ");
    assert.equal(cutLongWords(text), text);
  });

  test("cuts a word of more than 400 characters as echoValue does, and leaves one cut already", () => {
    assert.equal(cutLongWords(`getaddrinfo EINVAL ${"a".repeat(5000)}`), `getaddrinfo EINVAL ${"a".repeat(199)}… (5000 characters)`);
    const once = `Bad spec ${echoValue("z".repeat(MiB), "'")}: port ${echoValue("z".repeat(MiB), "'")} is wrong`;
    assert.equal(cutLongWords(once), once);
    assert.equal(cutLongWords("q".repeat(400)), "q".repeat(400));
  });

  test("every TunnelError message and every describeError goes through it", () => {
    const huge = "h".repeat(MiB);
    const err = new TunnelError("BAD_CONFIG", `Bad port '${huge}' for Port: expected a number from 1 to 65535`);
    assert.ok(err.message.length < 300, err.message);
    assert.match(err.message, /^Bad port 'h{198}… \(1048578 characters\) for Port: expected a number from 1 to 65535$/);
    assert.ok(describeError(new Error(`getaddrinfo EINVAL ${huge}`)).length < 300);
    assert.ok(describeError(huge).length < 300);
  });
});

describe("user values in errors are cut where they are echoed", () => {
  const huge = "a".repeat(MiB);

  /** The message a call throws. */
  function messageOf(run: () => unknown): string {
    try {
      run();
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail("it did not throw");
  }

  test("a 1 MiB -D spec: the spec and its port each shown cut, the message under 1 KB", () => {
    const message = messageOf(() => parseForwardSpec("dynamic", huge));
    assert.ok(message.length < 1024, `${message.length} characters`);
    assert.equal(message, `Bad dynamic forwarding specification '${"a".repeat(199)}…' (1048576 characters): port '${"a".repeat(199)}…' (1048576 characters) is not a number from 0 to 65535`);
  });

  test("a 1 MiB keyword with no argument in a config file", () => {
    const message = messageOf(() => parseSshConfig(`${huge}\n`, "big.conf"));
    assert.equal(message, `big.conf line 1: no argument after keyword "${"a".repeat(199)}…" (1048576 characters); add a value or remove the line`);
  });

  test("a 1 MiB -o option that is no keyword, and a 1 MiB unknown long option", () => {
    const dashO = messageOf(() => parseCommandLine(["-o", huge, "-D", "1", "host"]));
    assert.ok(dashO.startsWith(`bad -o option '${"a".repeat(199)}…' (1048576 characters): expected -o Keyword=value`), dashO.slice(0, 400));
    const long = messageOf(() => parseCommandLine([`--${huge}`, "-D", "1", "host"]));
    assert.ok(long.length < 400, long.slice(0, 400));
  });
});
