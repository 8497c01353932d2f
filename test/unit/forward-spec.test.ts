import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  formatBind,
  forwardLabel,
  isPathSpec,
  listenAddresses,
  parseForwardConfigArgs,
  parseForwardSpec,
  requireTcpForward,
  type ForwardKind,
} from "../../src/config/forward-spec.ts";
import { TunnelError } from "../../src/errors.ts";

function rejects(kind: ForwardKind, spec: string, message: string): void {
  assert.throws(
    () => parseForwardSpec(kind, spec),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "BAD_FORWARD_SPEC");
      assert.equal(err.message, message);
      return true;
    },
  );
}

describe("parseForwardSpec -D", () => {
  test("a bare port leaves the bind address unset", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "9001"), {
      kind: "dynamic",
      listen: { address: null, port: 9001 },
      raw: "9001",
    });
  });

  test("bind_address:port keeps the address as written", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "localhost:9001").listen, { address: "localhost", port: 9001 });
    assert.deepEqual(parseForwardSpec("dynamic", "0.0.0.0:9001").listen, { address: "0.0.0.0", port: 9001 });
  });

  test("a bracketed IPv6 bind address loses its brackets", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "[::1]:9001").listen, { address: "::1", port: 9001 });
  });

  test("'*:port' and ':port' both mean all interfaces and are kept apart", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "*:9001").listen, { address: "*", port: 9001 });
    assert.deepEqual(parseForwardSpec("dynamic", ":9001").listen, { address: "", port: 9001 });
  });

  test("the slash form takes a bare IPv6 bind address", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "::1/9001").listen, { address: "::1", port: 9001 });
  });

  test("port 0 is accepted and means any free port", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "0").listen, { address: null, port: 0 });
  });

  test("surrounding whitespace is ignored but raw keeps the argument", () => {
    assert.deepEqual(parseForwardSpec("dynamic", " 9001 "), {
      kind: "dynamic",
      listen: { address: null, port: 9001 },
      raw: " 9001 ",
    });
  });

  test("a Unix socket path is parsed as a path listener", () => {
    assert.deepEqual(parseForwardSpec("dynamic", "/tmp/socks.sock").listen, { path: "/tmp/socks.sock" });
  });

  test("an empty spec is refused with the expected shape", () => {
    rejects("dynamic", "", "Bad dynamic forwarding specification '': expected [bind_address:]port");
  });

  test("a non-numeric port is refused by name", () => {
    rejects("dynamic", "socks", "Bad dynamic forwarding specification 'socks': port 'socks' is not a number from 0 to 65535");
  });

  test("a port above 65535 is refused", () => {
    rejects("dynamic", "65536", "Bad dynamic forwarding specification '65536': port '65536' is not a number from 0 to 65535");
    rejects("dynamic", "123456", "Bad dynamic forwarding specification '123456': port '123456' is not a number from 0 to 65535");
  });

  test("a negative port is refused", () => {
    rejects("dynamic", "-1", "Bad dynamic forwarding specification '-1': port '-1' is not a number from 0 to 65535");
  });

  test("a trailing separator is a missing port", () => {
    rejects("dynamic", "9001:", "Bad dynamic forwarding specification '9001:': a port is missing");
  });

  test("three fields are too many and hint at IPv6 brackets", () => {
    rejects(
      "dynamic",
      "a:1:2",
      "Bad dynamic forwarding specification 'a:1:2': expected [bind_address:]port; put IPv6 addresses in brackets, like [::1]:8080",
    );
    rejects(
      "dynamic",
      "::1:9001",
      "Bad dynamic forwarding specification '::1:9001': expected [bind_address:]port; put IPv6 addresses in brackets, like [::1]:8080",
    );
  });

  test("a port followed by a path is not a dynamic forward", () => {
    rejects("dynamic", "9001:/tmp/x", "Bad dynamic forwarding specification '9001:/tmp/x': expected [bind_address:]port");
  });

  test("an unclosed bracket is refused", () => {
    rejects("dynamic", "[::1:9001", "Bad dynamic forwarding specification '[::1:9001': unbalanced '[' or ']' in '[::1:9001'");
  });

  test("a closing bracket with no opening one is refused", () => {
    rejects("dynamic", "::1]:9001", "Bad dynamic forwarding specification '::1]:9001': unbalanced '[' or ']' in '1]'");
  });

  test("text right after a closing bracket is refused", () => {
    rejects("dynamic", "[::1]9001", "Bad dynamic forwarding specification '[::1]9001': expected ':' after '[::1]'");
  });

  test("errors are TunnelErrors with exit code 255", () => {
    try {
      parseForwardSpec("dynamic", "x");
      assert.fail("expected a throw");
    } catch (err) {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.exitCode, 255);
    }
  });
});

describe("parseForwardSpec -L", () => {
  test("the guide's 9001:wikileaks.org:80 listens on 9001 and targets wikileaks.org:80", () => {
    assert.deepEqual(parseForwardSpec("local", "9001:wikileaks.org:80"), {
      kind: "local",
      listen: { address: null, port: 9001 },
      target: { host: "wikileaks.org", port: 80 },
      raw: "9001:wikileaks.org:80",
    });
  });

  test("the guide's 5900:localhost:5900 keeps localhost as the far-side target", () => {
    assert.deepEqual(parseForwardSpec("local", "5900:localhost:5900"), {
      kind: "local",
      listen: { address: null, port: 5900 },
      target: { host: "localhost", port: 5900 },
      raw: "5900:localhost:5900",
    });
  });

  test("four fields give a bind address", () => {
    assert.deepEqual(parseForwardSpec("local", "127.0.0.1:8080:intranet:80"), {
      kind: "local",
      listen: { address: "127.0.0.1", port: 8080 },
      target: { host: "intranet", port: 80 },
      raw: "127.0.0.1:8080:intranet:80",
    });
  });

  test("bracketed IPv6 literals work on both sides", () => {
    const spec = parseForwardSpec("local", "[::1]:8080:[2001:db8::1]:80");
    assert.deepEqual(spec, {
      kind: "local",
      listen: { address: "::1", port: 8080 },
      target: { host: "2001:db8::1", port: 80 },
      raw: "[::1]:8080:[2001:db8::1]:80",
    });
  });

  test("the slash form takes port/host/hostport", () => {
    assert.deepEqual(parseForwardSpec("local", "8080/intranet/80"), {
      kind: "local",
      listen: { address: null, port: 8080 },
      target: { host: "intranet", port: 80 },
      raw: "8080/intranet/80",
    });
  });

  test("the slash form takes a bare IPv6 target", () => {
    assert.deepEqual(parseForwardSpec("local", "8080/2001:db8::1/80"), {
      kind: "local",
      listen: { address: null, port: 8080 },
      target: { host: "2001:db8::1", port: 80 },
      raw: "8080/2001:db8::1/80",
    });
  });

  test("the slash form takes a bind address and tolerates brackets", () => {
    assert.deepEqual(parseForwardSpec("local", "::1/8080/[2001:db8::1]/80"), {
      kind: "local",
      listen: { address: "::1", port: 8080 },
      target: { host: "2001:db8::1", port: 80 },
      raw: "::1/8080/[2001:db8::1]/80",
    });
  });

  test("a backslash escapes a colon inside a field, as in OpenSSH", () => {
    assert.deepEqual(parseForwardSpec("local", "8080:odd\\:name:80").target, { host: "odd:name", port: 80 });
  });

  test("a Unix socket path can be the listener", () => {
    assert.deepEqual(parseForwardSpec("local", "/tmp/in.sock:intranet:80"), {
      kind: "local",
      listen: { path: "/tmp/in.sock" },
      target: { host: "intranet", port: 80 },
      raw: "/tmp/in.sock:intranet:80",
    });
  });

  test("a Unix socket path can be the target, with or without a bind address", () => {
    assert.deepEqual(parseForwardSpec("local", "8080:/run/app.sock").listen, { address: null, port: 8080 });
    assert.deepEqual(parseForwardSpec("local", "8080:/run/app.sock").target, { path: "/run/app.sock" });
    assert.deepEqual(parseForwardSpec("local", "localhost:8080:/run/app.sock").listen, {
      address: "localhost",
      port: 8080,
    });
  });

  test("both sides can be Unix socket paths", () => {
    assert.deepEqual(parseForwardSpec("local", "/tmp/a.sock:/tmp/b.sock"), {
      kind: "local",
      listen: { path: "/tmp/a.sock" },
      target: { path: "/tmp/b.sock" },
      raw: "/tmp/a.sock:/tmp/b.sock",
    });
  });

  test("a bracketed path may contain a colon", () => {
    assert.deepEqual(parseForwardSpec("local", "[/tmp/a:b.sock]:intranet:80").listen, { path: "/tmp/a:b.sock" });
  });

  test("a port alone is not a local forward", () => {
    rejects("local", "9001", "Bad local forwarding specification '9001': expected [bind_address:]port:host:hostport");
  });

  test("port:host without a hostport is refused with the expected shape", () => {
    rejects("local", "9001:host", "Bad local forwarding specification '9001:host': expected [bind_address:]port:host:hostport");
  });

  test("a service name as the target port is refused", () => {
    rejects(
      "local",
      "9001:host:http",
      "Bad local forwarding specification '9001:host:http': port 'http' is not a number from 1 to 65535",
    );
  });

  test("target port 0 is refused", () => {
    rejects("local", "9001:host:0", "Bad local forwarding specification '9001:host:0': port '0' is not a number from 1 to 65535");
  });

  test("a target port above 65535 is refused", () => {
    rejects(
      "local",
      "9001:host:70000",
      "Bad local forwarding specification '9001:host:70000': port '70000' is not a number from 1 to 65535",
    );
  });

  test("a non-numeric listen port is refused", () => {
    rejects("local", "web:host:80", "Bad local forwarding specification 'web:host:80': port 'web' is not a number from 0 to 65535");
  });

  test("an empty target host is refused", () => {
    rejects("local", "8080::80", "Bad local forwarding specification '8080::80': the target host is empty");
    rejects("local", "8080//80", "Bad local forwarding specification '8080//80': the target host is empty");
  });

  test("five fields are too many and hint at IPv6 brackets", () => {
    rejects(
      "local",
      "8080:2001:db8::1:80",
      "Bad local forwarding specification '8080:2001:db8::1:80': expected [bind_address:]port:host:hostport; put IPv6 addresses in brackets, like [::1]:8080",
    );
  });

  test("five slash-separated fields are too many", () => {
    rejects("local", "a/1/b/2/c", "Bad local forwarding specification 'a/1/b/2/c': expected [bind_address:]port:host:hostport");
  });

  test("an unclosed bracket around the target is refused", () => {
    rejects(
      "local",
      "8080:[2001:db8::1:80",
      "Bad local forwarding specification '8080:[2001:db8::1:80': unbalanced '[' or ']' in '[2001:db8::1:80'",
    );
  });

  test("a stray bracket in the slash form is refused", () => {
    rejects("local", "8080/host]/80", "Bad local forwarding specification '8080/host]/80': unbalanced '[' or ']' in 'host]'");
  });

  test("a path in the host position is refused", () => {
    rejects(
      "local",
      "8080:/tmp/x:80:y",
      "Bad local forwarding specification '8080:/tmp/x:80:y': expected [bind_address:]port:host:hostport",
    );
    rejects(
      "local",
      "/tmp/a:/tmp/b:80",
      "Bad local forwarding specification '/tmp/a:/tmp/b:80': expected [bind_address:]port:host:hostport",
    );
  });

  test("a lone trailing backslash is refused", () => {
    rejects("local", "8080:host:80\\", "Bad local forwarding specification '8080:host:80\\': it ends with a lone backslash");
  });
});

describe("parseForwardSpec -R", () => {
  test("the guide's 9001:internalsite.org:80 is a remote forward to internalsite.org:80", () => {
    assert.deepEqual(parseForwardSpec("remote", "9001:internalsite.org:80"), {
      kind: "remote",
      listen: { address: null, port: 9001 },
      target: { host: "internalsite.org", port: 80 },
      raw: "9001:internalsite.org:80",
    });
  });

  test("a port alone is a remote dynamic forward with no target", () => {
    assert.deepEqual(parseForwardSpec("remote", "9001"), {
      kind: "remote",
      listen: { address: null, port: 9001 },
      target: null,
      raw: "9001",
    });
  });

  test("bind_address:port alone is a remote dynamic forward", () => {
    assert.deepEqual(parseForwardSpec("remote", "[::]:9001"), {
      kind: "remote",
      listen: { address: "::", port: 9001 },
      target: null,
      raw: "[::]:9001",
    });
  });

  test("port 0 asks the server to allocate one", () => {
    assert.deepEqual(parseForwardSpec("remote", "0:localhost:22").listen, { address: null, port: 0 });
  });

  test("the slash form works for -R", () => {
    assert.deepEqual(parseForwardSpec("remote", "*/9001/2001:db8::5/22"), {
      kind: "remote",
      listen: { address: "*", port: 9001 },
      target: { host: "2001:db8::5", port: 22 },
      raw: "*/9001/2001:db8::5/22",
    });
  });

  test("Unix socket paths parse on either side", () => {
    assert.deepEqual(parseForwardSpec("remote", "/run/user/1000/x.sock:localhost:80").listen, {
      path: "/run/user/1000/x.sock",
    });
    assert.deepEqual(parseForwardSpec("remote", "8080:/var/run/docker.sock").target, { path: "/var/run/docker.sock" });
  });

  test("port:host is refused as a mistyped forward, not read as a bind address", () => {
    rejects(
      "remote",
      "9001:intranet",
      "Bad remote forwarding specification '9001:intranet': expected [bind_address:]port:host:hostport or [bind_address:]port",
    );
  });

  test("an empty -R spec is refused with both accepted shapes", () => {
    rejects(
      "remote",
      "",
      "Bad remote forwarding specification '': expected [bind_address:]port:host:hostport or [bind_address:]port",
    );
  });
});

describe("parseForwardConfigArgs", () => {
  test("LocalForward joins its two arguments with ':'", () => {
    assert.deepEqual(parseForwardConfigArgs("local", ["9001", "wikileaks.org:80"]), {
      kind: "local",
      listen: { address: null, port: 9001 },
      target: { host: "wikileaks.org", port: 80 },
      raw: "9001:wikileaks.org:80",
    });
  });

  test("LocalForward in the slash form is joined with '/'", () => {
    assert.deepEqual(parseForwardConfigArgs("local", ["8080", "2001:db8::1/80"]).target, {
      host: "2001:db8::1",
      port: 80,
    });
    assert.equal(parseForwardConfigArgs("local", ["8080", "2001:db8::1/80"]).raw, "8080/2001:db8::1/80");
  });

  test("LocalForward with bracketed IPv6 on both sides", () => {
    assert.deepEqual(parseForwardConfigArgs("local", ["[::1]:8080", "[2001:db8::1]:80"]).listen, {
      address: "::1",
      port: 8080,
    });
  });

  test("DynamicForward takes one argument", () => {
    assert.deepEqual(parseForwardConfigArgs("dynamic", ["localhost:9001"]).listen, { address: "localhost", port: 9001 });
  });

  test("RemoteForward with one argument is a remote dynamic forward", () => {
    assert.deepEqual(parseForwardConfigArgs("remote", ["9001"]).target, null);
  });

  test("RemoteForward with two arguments has a target", () => {
    assert.deepEqual(parseForwardConfigArgs("remote", ["9001", "localhost:22"]).target, { host: "localhost", port: 22 });
  });

  test("LocalForward without a target is refused", () => {
    assert.throws(() => parseForwardConfigArgs("local", ["9001"]), {
      code: "BAD_FORWARD_SPEC",
      message: "LocalForward '9001' is missing its target argument; expected LocalForward [bind_address:]port host:hostport",
    });
  });

  test("a forward keyword with no arguments is refused", () => {
    assert.throws(() => parseForwardConfigArgs("dynamic", []), {
      code: "BAD_FORWARD_SPEC",
      message: "DynamicForward is missing its argument; expected DynamicForward [bind_address:]port",
    });
  });

  test("extra arguments are refused", () => {
    assert.throws(() => parseForwardConfigArgs("dynamic", ["9001", "9002"]), {
      code: "BAD_FORWARD_SPEC",
      message: "DynamicForward '9001 9002' has too many arguments; expected DynamicForward [bind_address:]port",
    });
    assert.throws(() => parseForwardConfigArgs("remote", ["1", "h:2", "x"]), {
      code: "BAD_FORWARD_SPEC",
      message: "RemoteForward '1 h:2 x' has too many arguments; expected RemoteForward [bind_address:]port [host:hostport]",
    });
  });

  test("a bad joined spec reports the joined text", () => {
    assert.throws(() => parseForwardConfigArgs("local", ["9001", "host:http"]), {
      code: "BAD_FORWARD_SPEC",
      message: "Bad local forwarding specification '9001:host:http': port 'http' is not a number from 1 to 65535",
    });
  });
});

describe("requireTcpForward", () => {
  const refusedAs = (spec: Parameters<typeof requireTcpForward>[0], message: string): void => {
    assert.throws(() => requireTcpForward(spec), (err: unknown) => {
      assert.ok(err instanceof TunnelError);
      assert.equal(err.code, "BAD_FORWARD_SPEC");
      assert.equal(err.message, message);
      return true;
    });
  };

  test("-R with a port alone runs as a remote dynamic forward: a remote spec with no target", () => {
    assert.deepEqual(requireTcpForward(parseForwardSpec("remote", "1080")), {
      kind: "remote",
      listen: { address: null, port: 1080 },
      target: null,
      raw: "1080",
    });
  });

  test("-R bind_address:port alone keeps its bind address, and RemoteForward with one argument is the same forward", () => {
    assert.deepEqual(requireTcpForward(parseForwardSpec("remote", "127.0.0.1:1080")), {
      kind: "remote",
      listen: { address: "127.0.0.1", port: 1080 },
      target: null,
      raw: "127.0.0.1:1080",
    });
    assert.deepEqual(requireTcpForward(parseForwardConfigArgs("remote", ["[::1]:0"])), {
      kind: "remote",
      listen: { address: "::1", port: 0 },
      target: null,
      raw: "[::1]:0",
    });
  });

  test("-D, -L and -R with a target pass through unchanged", () => {
    assert.deepEqual(requireTcpForward(parseForwardSpec("dynamic", "9001")), { kind: "dynamic", listen: { address: null, port: 9001 }, raw: "9001" });
    assert.deepEqual(requireTcpForward(parseForwardSpec("local", "9001:example.org:80")), {
      kind: "local",
      listen: { address: null, port: 9001 },
      target: { host: "example.org", port: 80 },
      raw: "9001:example.org:80",
    });
    assert.deepEqual(requireTcpForward(parseForwardSpec("remote", "9001:internal:80")), {
      kind: "remote",
      listen: { address: null, port: 9001 },
      target: { host: "internal", port: 80 },
      raw: "9001:internal:80",
    });
  });

  test("Unix sockets on either side are still refused naming the form to use", () => {
    refusedAs(parseForwardSpec("remote", "/tmp/socks.sock"), "-R /tmp/socks.sock: listening on a Unix socket is not supported; give [bind_address:]port");
    refusedAs(parseForwardSpec("remote", "9001:/run/app.sock"), "-R 9001:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport");
    refusedAs(parseForwardSpec("local", "8080:/run/app.sock"), "-L 8080:/run/app.sock: forwarding to a Unix socket is not supported; give [bind_address:]port:host:hostport");
  });
});

describe("formatBind, forwardLabel and isPathSpec", () => {
  test("formatBind writes binds the way a user types them", () => {
    assert.equal(formatBind({ address: null, port: 9001 }), "9001");
    assert.equal(formatBind({ address: "", port: 9001 }), ":9001");
    assert.equal(formatBind({ address: "*", port: 9001 }), "*:9001");
    assert.equal(formatBind({ address: "127.0.0.1", port: 9001 }), "127.0.0.1:9001");
    assert.equal(formatBind({ address: "::1", port: 9001 }), "[::1]:9001");
  });

  test("forwardLabel names the option and the spec as given", () => {
    assert.equal(forwardLabel(parseForwardSpec("dynamic", "0.0.0.0:9001")), "-D 0.0.0.0:9001");
    assert.equal(forwardLabel(parseForwardSpec("local", "9001:wikileaks.org:80")), "-L 9001:wikileaks.org:80");
    assert.equal(forwardLabel(parseForwardSpec("remote", "9001")), "-R 9001");
  });

  test("isPathSpec tells a Unix socket side from a network one", () => {
    const spec = parseForwardSpec("local", "8080:/run/app.sock");
    assert.equal(isPathSpec(spec.listen), false);
    assert.equal(isPathSpec(spec.target), true);
    assert.equal(isPathSpec(null), false);
  });
});

describe("listenAddresses", () => {
  const loopback = ["127.0.0.1", "::1"];
  const everywhere = ["0.0.0.0", "::"];
  const ignored = (address: string, suffix: string, label: string): string =>
    `Ignoring bind address '${address}'${suffix} for ${label}: GatewayPorts is off, ` +
    "so listening on loopback only; pass -g (or -o GatewayPorts=yes) to listen on it.";

  test("without GatewayPorts a bare port listens on both loopbacks", () => {
    assert.deepEqual(listenAddresses({ address: null, port: 9001 }, false), { hosts: loopback, warning: null });
  });

  test("without GatewayPorts localhost means both loopbacks", () => {
    assert.deepEqual(listenAddresses({ address: "localhost", port: 9001 }, false), { hosts: loopback, warning: null });
  });

  test("without GatewayPorts an explicit loopback address is honoured", () => {
    assert.deepEqual(listenAddresses({ address: "127.0.0.1", port: 9001 }, false), { hosts: ["127.0.0.1"], warning: null });
    assert.deepEqual(listenAddresses({ address: "127.3.4.5", port: 9001 }, false), { hosts: ["127.3.4.5"], warning: null });
    assert.deepEqual(listenAddresses({ address: "::1", port: 9001 }, false), { hosts: ["::1"], warning: null });
    assert.deepEqual(listenAddresses({ address: "[::1]", port: 9001 }, false), { hosts: ["::1"], warning: null });
    assert.deepEqual(listenAddresses({ address: "0:0:0:0:0:0:0:1", port: 9001 }, false), {
      hosts: ["0:0:0:0:0:0:0:1"],
      warning: null,
    });
  });

  test("an IPv4-mapped bind address is bound as the IPv4 address it maps, with or without GatewayPorts", () => {
    assert.deepEqual(listenAddresses({ address: "[::ffff:127.0.0.1]", port: 9001 }, false), { hosts: ["127.0.0.1"], warning: null });
    assert.deepEqual(listenAddresses({ address: "::ffff:7f00:2", port: 9001 }, false), { hosts: ["127.0.0.2"], warning: null });
    assert.deepEqual(listenAddresses({ address: "::ffff:192.0.2.7", port: 9001 }, true), { hosts: ["192.0.2.7"], warning: null });
  });

  test("without GatewayPorts 0.0.0.0 falls back to loopback with a warning naming spec and fix", () => {
    const spec = parseForwardSpec("dynamic", "0.0.0.0:9001");
    assert.ok(!isPathSpec(spec.listen));
    assert.deepEqual(listenAddresses(spec.listen, false, forwardLabel(spec)), {
      hosts: loopback,
      warning:
        "Ignoring bind address '0.0.0.0' (all interfaces) for -D 0.0.0.0:9001: GatewayPorts is off, " +
        "so listening on loopback only; pass -g (or -o GatewayPorts=yes) to listen on it.",
    });
  });

  test("without GatewayPorts the empty and '*' addresses fall back to loopback with a warning", () => {
    assert.deepEqual(listenAddresses({ address: "", port: 9001 }, false, "-D :9001"), {
      hosts: loopback,
      warning: ignored("", " (all interfaces)", "-D :9001"),
    });
    assert.deepEqual(listenAddresses({ address: "*", port: 9001 }, false, "-D *:9001"), {
      hosts: loopback,
      warning: ignored("*", " (all interfaces)", "-D *:9001"),
    });
  });

  test("without GatewayPorts '::' and a LAN address fall back to loopback with a warning", () => {
    assert.deepEqual(listenAddresses({ address: "::", port: 9001 }, false, "-D [::]:9001"), {
      hosts: loopback,
      warning: ignored("::", " (all interfaces)", "-D [::]:9001"),
    });
    assert.deepEqual(listenAddresses({ address: "192.168.1.20", port: 8080 }, false, "-L 192.168.1.20:8080:h:80"), {
      hosts: loopback,
      warning: ignored("192.168.1.20", "", "-L 192.168.1.20:8080:h:80"),
    });
  });

  test("the warning falls back to the bind itself when no label is given", () => {
    assert.equal(listenAddresses({ address: "10.0.0.1", port: 9001 }, false).warning, ignored("10.0.0.1", "", "10.0.0.1:9001"));
  });

  test("a loopback-looking name or numeric form is not honoured as loopback", () => {
    assert.deepEqual(listenAddresses({ address: "127.1", port: 9001 }, false, "-D 127.1:9001"), {
      hosts: loopback,
      warning: ignored("127.1", "", "-D 127.1:9001"),
    });
  });

  test("with GatewayPorts a bare port, '' and '*' listen on all interfaces", () => {
    for (const address of [null, "", "*"]) {
      assert.deepEqual(listenAddresses({ address, port: 9001 }, true), { hosts: everywhere, warning: null });
    }
  });

  test("with GatewayPorts an explicit address is used as given", () => {
    assert.deepEqual(listenAddresses({ address: "0.0.0.0", port: 9001 }, true), { hosts: ["0.0.0.0"], warning: null });
    assert.deepEqual(listenAddresses({ address: "192.168.1.20", port: 9001 }, true), {
      hosts: ["192.168.1.20"],
      warning: null,
    });
    assert.deepEqual(listenAddresses({ address: "[2001:db8::1]", port: 9001 }, true), {
      hosts: ["2001:db8::1"],
      warning: null,
    });
  });

  test("with GatewayPorts localhost still means both loopbacks", () => {
    assert.deepEqual(listenAddresses({ address: "localhost", port: 9001 }, true), { hosts: loopback, warning: null });
  });

  test("returned host lists are fresh arrays the caller may change", () => {
    const first = listenAddresses({ address: null, port: 1 }, false);
    first.hosts.push("x");
    assert.deepEqual(listenAddresses({ address: null, port: 1 }, false).hosts, loopback);
  });
});
