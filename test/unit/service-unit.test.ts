import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { execWord, systemdUnit, unitArgs } from "../../src/service-unit.ts";

describe("execWord: systemd.service(5) command-line quoting", () => {
  test("plain words as they are; % and $ doubled; spaces, quotes and backslashes in double quotes with C escapes", () => {
    assert.equal(execWord("/usr/local/bin/safetunnel"), "/usr/local/bin/safetunnel");
    assert.equal(execWord("user@home.example:2222"), "user@home.example:2222");
    assert.equal(execWord("50%"), "50%%");
    assert.equal(execWord("$HOME"), '"$$HOME"');
    assert.equal(execWord("/home/me/My Tunnels/t.cjs"), '"/home/me/My Tunnels/t.cjs"');
    assert.equal(execWord('say "hi"\\now'), '"say \\"hi\\"\\\\now"');
    assert.equal(execWord(""), '""');
  });
});

describe("unitArgs", () => {
  test("-f goes wherever it stands, -N is added once, BatchMode and ExitOnForwardFailure come first", () => {
    assert.deepEqual(unitArgs(["-f", "-D", "9001", "home"]), ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-D", "9001", "home"]);
    assert.deepEqual(unitArgs(["-fND", "9001", "home"]), ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-D", "9001", "home"]);
    assert.deepEqual(unitArgs(["-vfN", "-L8080:web:80", "home"]), ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-vN", "-L", "8080:web:80", "home"]);
  });

  test("file names typed relative to here are made absolute (a user unit runs in the home folder); absolute, ~ and none stay", () => {
    const absolute = (path: string): string => `/work/${path}`;
    assert.deepEqual(
      unitArgs(["-i", "keys/id", "-Ekeys/t.log", "-F", "none", "-i", "~/.ssh/id", "--pid-file=t.pid", "--socks-auth", "me:@pw.txt", "-D", "9001", "home"], absolute),
      ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-i", "/work/keys/id", "-E", "/work/keys/t.log", "-F", "none", "-i", "~/.ssh/id", "--pid-file", "/work/t.pid", "--socks-auth", "me:@/work/pw.txt", "-D", "9001", "home"],
    );
  });

  test("--socks-auth with the password itself is refused: it would be in the unit file and the journal", () => {
    assert.throws(() => unitArgs(["--socks-auth", "me:secret", "home"]), { code: "USAGE", message: /give it as USER:@FILE/ });
    assert.throws(() => unitArgs(["--socks-auth=me:secret", "home"]), { code: "USAGE" });
  });

  test("values are never read as flags: an -E file, an -o value and long options' values stay as they are", () => {
    assert.deepEqual(unitArgs(["-E", "-f.log", "-o", "User=f", "--pid-file", "-f", "home"]), ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-E", "-f.log", "-o", "User=f", "--pid-file", "-f", "home"]);
  });
});

describe("systemdUnit", () => {
  test("the whole unit, byte for byte", () => {
    assert.equal(
      systemdUnit({ program: ["/usr/bin/node", "/opt/safetunnel/safetunnel.cjs"], args: ["-f", "-D", "9001", "-p", "2222", "user@home"] }),
      [
        "# A systemd user unit for this tunnel. Save it as",
        "#   ~/.config/systemd/user/safetunnel.service",
        "# then: systemctl --user daemon-reload && systemctl --user enable --now safetunnel",
        "# It runs with nobody at a terminal: the server's host key must already be in",
        "# known_hosts and the key must need no passphrase, or be in an agent the unit",
        "# can reach (systemctl --user import-environment SSH_AUTH_SOCK).",
        "# Its log: journalctl --user -u safetunnel",
        "[Unit]",
        "Description=safetunnel -N -D 9001 -p 2222 user@home",
        "",
        "[Service]",
        "ExecStart=/usr/bin/node /opt/safetunnel/safetunnel.cjs -o BatchMode=yes -o ExitOnForwardFailure=yes -N -D 9001 -p 2222 user@home",
        "Restart=on-failure",
        "RestartSec=30",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
      ].join("\n"),
    );
  });
});
