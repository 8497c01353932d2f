import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  parsePermitListenPattern,
  parsePermitOpenList,
  parsePermitOpenPattern,
  permitsListen,
  permitsOpen,
} from "../../src/serve/permit-open.ts";
import { TunnelError } from "../../src/errors.ts";

const FORMS = "expected host:port, [IPv6]:port, * for any host or port, any, or none";

function refuses(values: string[], message: string): void {
  assert.throws(
    () => parsePermitOpenList(values),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "USAGE");
      assert.equal(err.message, message);
      return true;
    },
  );
}

describe("parsePermitOpenList", () => {
  test("no --permit-open means no limit", () => {
    assert.equal(parsePermitOpenList([]), null);
  });

  test("any means no limit, none allows nothing, in any case", () => {
    assert.equal(parsePermitOpenList(["any"]), null);
    assert.equal(parsePermitOpenList(["ANY"]), null);
    assert.deepEqual(parsePermitOpenList(["none"]), []);
    assert.deepEqual(parsePermitOpenList([" None "]), []);
  });

  test("reads host:port, [IPv6]:port and * for host or port, in order", () => {
    assert.deepEqual(parsePermitOpenList(["localhost:80", "[2001:db8::1]:443", "*:22", "db.internal:*", "*:*"]), [
      { host: "localhost", port: 80 },
      { host: "2001:db8::1", port: 443 },
      { host: "*", port: 22 },
      { host: "db.internal", port: "*" },
      { host: "*", port: "*" },
    ]);
  });

  test("one value may hold several patterns separated by blanks, as a PermitOpen line does", () => {
    assert.deepEqual(parsePermitOpenList(["localhost:80  localhost:443", "\t10.0.0.1:5432 "]), [
      { host: "localhost", port: 80 },
      { host: "localhost", port: 443 },
      { host: "10.0.0.1", port: 5432 },
    ]);
  });

  test("the host keeps its case; ports are 1 to 65535", () => {
    assert.deepEqual(parsePermitOpenList(["Web.Example.ORG:1", "a:65535"]), [
      { host: "Web.Example.ORG", port: 1 },
      { host: "a", port: 65535 },
    ]);
  });

  test("a value without a port, or with a bad one, names the value and the forms that work", () => {
    refuses(["localhost"], `Bad --permit-open value 'localhost': it has no :port; ${FORMS}`);
    refuses(["localhost:0"], `Bad --permit-open value 'localhost:0': the port must be a number from 1 to 65535, or *; ${FORMS}`);
    refuses(["localhost:65536"], `Bad --permit-open value 'localhost:65536': the port must be a number from 1 to 65535, or *; ${FORMS}`);
    refuses(["localhost:http"], `Bad --permit-open value 'localhost:http': the port must be a number from 1 to 65535, or *; ${FORMS}`);
    refuses(["localhost:"], `Bad --permit-open value 'localhost:': the port must be a number from 1 to 65535, or *; ${FORMS}`);
  });

  test("IPv6 addresses need brackets, and brackets need a port", () => {
    refuses(["::1:80"], `Bad --permit-open value '::1:80': an IPv6 address must be in brackets, like [::1]:8080; ${FORMS}`);
    refuses(["[::1]"], `Bad --permit-open value '[::1]': an address in brackets must be followed by :port, like [::1]:8080; ${FORMS}`);
    refuses(["[::1]80"], `Bad --permit-open value '[::1]80': an address in brackets must be followed by :port, like [::1]:8080; ${FORMS}`);
    refuses(["[]:80"], `Bad --permit-open value '[]:80': the host is empty; ${FORMS}`);
  });

  test("an empty host or an empty value is refused", () => {
    refuses([":80"], `Bad --permit-open value ':80': the host is empty; ${FORMS}`);
    refuses([""], `Bad --permit-open value '': it is empty; ${FORMS}`);
    refuses(["localhost:80", "  "], `Bad --permit-open value '  ': it is empty; ${FORMS}`);
  });

  test("a host pattern other than a lone * is refused: OpenSSH compares hosts as text, so it would match nothing", () => {
    refuses(
      ["*.example.com:443"],
      `Bad --permit-open value '*.example.com:443': the host "*.example.com" is a pattern, but only a lone * matches more than one host; ${FORMS}`,
    );
    refuses(["web?:80"], `Bad --permit-open value 'web?:80': the host "web?" is a pattern, but only a lone * matches more than one host; ${FORMS}`);
  });

  test("any and none must stand alone, as sshd_config(5) requires", () => {
    refuses(["any", "localhost:80"], `Bad --permit-open value 'any': 'any' must be the only --permit-open value, as sshd_config(5) has it for PermitOpen; ${FORMS}`);
    refuses(["localhost:80 NONE"], `Bad --permit-open value 'localhost:80 NONE': 'none' must be the only --permit-open value, as sshd_config(5) has it for PermitOpen; ${FORMS}`);
  });

  test("control characters in a value are escaped in the message", () => {
    refuses(["a\u001b[2J:80"], `Bad --permit-open value 'a\\x1b[2J:80': the host contains a blank or a control character; ${FORMS}`);
  });
});

describe("parsePermitOpenPattern and parsePermitListenPattern", () => {
  test("permitopen patterns come back as rules or as the problem", () => {
    assert.deepEqual(parsePermitOpenPattern("[::1]:8080"), { rule: { host: "::1", port: 8080 } });
    assert.deepEqual(parsePermitOpenPattern("web"), { problem: "it has no :port" });
  });

  test("permitlisten takes a bare port (host null), host:port, [IPv6]:port, and wildcard hosts", () => {
    assert.deepEqual(parsePermitListenPattern("8080"), { rule: { host: null, port: 8080 } });
    assert.deepEqual(parsePermitListenPattern("*"), { rule: { host: null, port: "*" } });
    assert.deepEqual(parsePermitListenPattern("localhost:9000"), { rule: { host: "localhost", port: 9000 } });
    assert.deepEqual(parsePermitListenPattern("[::1]:9000"), { rule: { host: "::1", port: 9000 } });
    assert.deepEqual(parsePermitListenPattern("127.0.0.*:9000"), { rule: { host: "127.0.0.*", port: 9000 } });
    assert.deepEqual(parsePermitListenPattern("0"), { problem: "the port must be a number from 1 to 65535, or *" });
    assert.deepEqual(parsePermitListenPattern("host:"), { problem: "the port must be a number from 1 to 65535, or *" });
  });
});

describe("permitsOpen", () => {
  test("null allows everything and [] nothing", () => {
    assert.equal(permitsOpen(null, "example.org", 22), true);
    assert.equal(permitsOpen([], "example.org", 22), false);
  });

  test("host and port must both match; the host ignores case", () => {
    const rules = [{ host: "LocalHost", port: 80 }];
    assert.equal(permitsOpen(rules, "localhost", 80), true);
    assert.equal(permitsOpen(rules, "LOCALHOST", 80), true);
    assert.equal(permitsOpen(rules, "localhost", 81), false);
    assert.equal(permitsOpen(rules, "localhost.", 80), false);
  });

  test("hosts are compared as text, without resolving: localhost is not 127.0.0.1, ::1 is not 0:0:0:0:0:0:0:1", () => {
    assert.equal(permitsOpen([{ host: "localhost", port: 80 }], "127.0.0.1", 80), false);
    assert.equal(permitsOpen([{ host: "::1", port: 80 }], "::1", 80), true);
    assert.equal(permitsOpen([{ host: "::1", port: 80 }], "0:0:0:0:0:0:0:1", 80), false);
  });

  test("* matches any host or any port", () => {
    assert.equal(permitsOpen([{ host: "*", port: 443 }], "anything.example", 443), true);
    assert.equal(permitsOpen([{ host: "*", port: 443 }], "anything.example", 80), false);
    assert.equal(permitsOpen([{ host: "db", port: "*" }], "db", 5432), true);
    assert.equal(permitsOpen([{ host: "db", port: "*" }], "web", 5432), false);
  });

  test("a * in the requested host is not a wildcard", () => {
    assert.equal(permitsOpen([{ host: "db", port: 1 }], "*", 1), false);
  });

  test("any one rule is enough", () => {
    const rules = parsePermitOpenList(["db:5432", "web:80"]);
    assert.equal(permitsOpen(rules, "web", 80), true);
    assert.equal(permitsOpen(rules, "db", 80), false);
  });
});

describe("permitsListen", () => {
  test("null allows everything and [] nothing", () => {
    assert.equal(permitsListen(null, "0.0.0.0", 8080), true);
    assert.equal(permitsListen([], "localhost", 8080), false);
  });

  test("a rule without a host, or with *, allows any listen address on its port", () => {
    assert.equal(permitsListen([{ host: null, port: 8080 }], "", 8080), true);
    assert.equal(permitsListen([{ host: null, port: 8080 }], "0.0.0.0", 8080), true);
    assert.equal(permitsListen([{ host: "*", port: 8080 }], "localhost", 8080), true);
    assert.equal(permitsListen([{ host: null, port: 8080 }], "localhost", 8081), false);
  });

  test("a host is a wildcard pattern compared without regard to case", () => {
    assert.equal(permitsListen([{ host: "LocalHost", port: 8080 }], "localhost", 8080), true);
    assert.equal(permitsListen([{ host: "localhost", port: 8080 }], "0.0.0.0", 8080), false);
    assert.equal(permitsListen([{ host: "127.0.0.*", port: "*" }], "127.0.0.1", 9000), true);
    assert.equal(permitsListen([{ host: "127.0.0.*", port: "*" }], "127.0.1.1", 9000), false);
  });

  test("port 0 (the server picks) is allowed only by a * port", () => {
    assert.equal(permitsListen([{ host: null, port: 8080 }], "localhost", 0), false);
    assert.equal(permitsListen([{ host: null, port: "*" }], "localhost", 0), true);
  });
});
