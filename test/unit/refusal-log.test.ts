import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { droppedClientLine, farSideRefusalLine, REFUSAL_WINDOW_MS, RefusalLog, refusalLine, type RefusalLogOptions } from "../../src/forward/refusal-log.ts";
import { createLogger } from "../../src/log.ts";
import type { SocksRequest } from "../../src/socks/codec.ts";
import type { SocksClient } from "../../src/socks/server.ts";

const client = (address = "127.0.0.1", port = 51234): SocksClient => ({ address, port, localAddress: "127.0.0.1", localPort: 9001 });

function request(version: 4 | 5, host = "192.0.2.7", kind: "name" | "ipv4" | "ipv6" = "ipv4", socks4a?: boolean): SocksRequest {
  return {
    version,
    command: "connect",
    commandCode: 1,
    destination: { kind, host, port: 443 },
    ...(socks4a !== undefined ? { socks4a } : {}),
  };
}

/** A RefusalLog on a clock the test moves, writing to `lines` (at -v unless told otherwise). */
function refusalLog(options: Partial<RefusalLogOptions> & { json?: boolean; verbosity?: number } = {}) {
  const lines: string[] = [];
  const clock = { now: 1_000_000 };
  const log = createLogger({ verbosity: options.verbosity ?? 1, json: options.json ?? false, write: (line) => lines.push(line), now: () => new Date(0) });
  const refusals = new RefusalLog({ clock: () => clock.now, ...options, log });
  return { refusals, lines, clock };
}

const FULL = /^Warning: Refused /;
const FOLDED = /^debug1: Refused /;

/** Each line as "full" (a warning) or "folded" (a -v line). */
function kinds(lines: string[]): string[] {
  return lines.map((line) => (FULL.test(line) ? "full" : FOLDED.test(line) ? "folded" : `neither: ${line}`));
}

describe("RefusalLog: one full line per program and SOCKS version in 10 s", () => {
  test("the first refusal is a warning; repeats within the window are -v lines; the next full line counts them", async () => {
    const { refusals, lines, clock } = refusalLog({ nameProgram: async () => "firefox" });
    await refusals.report(request(5), client("127.0.0.1", 1));
    clock.now += 1_000;
    await refusals.report(request(5), client("127.0.0.1", 2));
    clock.now += REFUSAL_WINDOW_MS - 1_001;
    await refusals.report(request(5), client("127.0.0.1", 3));
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.match(lines[0]!, /^Warning: Refused SOCKS5 CONNECT to 192\.0\.2\.7:443 from 127\.0\.0\.1:1 \(firefox\): .*--allow-ip 192\.0\.2\.7$/);
    assert.equal(lines[1], "debug1: Refused SOCKS5 CONNECT to 192.0.2.7:443 from 127.0.0.1:2 (firefox) (IP address).");
    assert.equal(lines[2], "debug1: Refused SOCKS5 CONNECT to 192.0.2.7:443 from 127.0.0.1:3 (firefox) (IP address).");
    // 10 s after the last full line, not after the last refusal.
    clock.now += 1;
    await refusals.report(request(5), client("127.0.0.1", 4));
    assert.match(lines[3]!, /^Warning: Refused SOCKS5 CONNECT .* from 127\.0\.0\.1:4 \(firefox\): .* \(2 more refused since the last such line\)$/);
    // The count starts again from that line.
    clock.now += REFUSAL_WINDOW_MS;
    await refusals.report(request(5), client("127.0.0.1", 5));
    assert.match(lines[4]!, FULL);
    assert.doesNotMatch(lines[4]!, /more refused/);
  });

  test("onNamed hears the program before the line is written; undefined when it could not be named", async () => {
    const { refusals, lines } = refusalLog({ nameProgram: async (who) => (who.port === 1 ? "firefox" : undefined) });
    const heard: string[] = [];
    await refusals.report(request(5), client("127.0.0.1", 1), (program) => heard.push(`${program} with ${lines.length} lines`));
    await refusals.report(request(5), client("127.0.0.9", 2), (program) => heard.push(`${program} with ${lines.length} lines`));
    assert.deepEqual(heard, ["firefox with 0 lines", "undefined with 1 lines"]);
  });

  test("at the default verbosity only the full lines are written", async () => {
    const { refusals, lines, clock } = refusalLog({ verbosity: 0, nameProgram: async () => "curl" });
    for (let i = 0; i < 5; i++) {
      await refusals.report(request(5), client("127.0.0.1", i));
      clock.now += 100;
    }
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, /^Warning: Refused SOCKS5 CONNECT .* \(curl\): .*Fix: use curl --socks5-hostname 127\.0\.0\.1:9001/);
  });

  test("another program on the same address gets its own full line at once: it needs its own fix", async () => {
    let program = "firefox";
    const { refusals, lines } = refusalLog({ nameProgram: async () => program });
    await refusals.report(request(5), client());
    program = "chromium";
    await refusals.report(request(5), client());
    program = "firefox";
    await refusals.report(request(5), client());
    assert.deepEqual(kinds(lines), ["full", "full", "folded"]);
    assert.match(lines[1]!, /\(chromium\): .*Fix: start Chromium with --proxy-server=socks5:\/\/127\.0\.0\.1:9001/);
  });

  test("SOCKS4 and SOCKS5 from one program are counted apart: the fixes differ", async () => {
    const { refusals, lines } = refusalLog({ nameProgram: async () => "firefox" });
    await refusals.report(request(5), client());
    await refusals.report(request(4, "192.0.2.7", "ipv4", false), client());
    await refusals.report(request(4, "192.0.2.7", "ipv4", false), client());
    assert.deepEqual(kinds(lines), ["full", "full", "folded"]);
    assert.match(lines[1]!, /^Warning: Refused SOCKS4 CONNECT .*network\.proxy\.socks_remote_dns = true/);
  });

  test("without a program name, lines are counted per client address", async () => {
    const { refusals, lines } = refusalLog();
    await refusals.report(request(5), client("127.0.0.1", 1));
    await refusals.report(request(5), client("127.0.0.1", 2));
    await refusals.report(request(5), client("192.168.1.20", 3));
    assert.deepEqual(kinds(lines), ["full", "folded", "full"]);
    assert.match(lines[2]!, /from 192\.168\.1\.20:3: /);
  });
});

describe("RefusalLog: naming the program", () => {
  test("a name lookup slower than nameWaitMs does not hold the refusal: the line names no program", async () => {
    const { refusals, lines } = refusalLog({ nameProgram: () => new Promise(() => {}), nameWaitMs: 20 });
    await refusals.report(request(5), client());
    assert.match(lines[0]!, /^Warning: Refused SOCKS5 CONNECT to 192\.0\.2\.7:443 from 127\.0\.0\.1:51234: .*Fix: make the app send names: /);
  });

  test("a name lookup that fails gives the generic fix", async () => {
    const { refusals, lines } = refusalLog({ nameProgram: () => Promise.reject(new Error("EACCES")) });
    await refusals.report(request(5), client());
    for (const fix of ["socks5_remote_dns", "--socks5-hostname", "socks5://"]) assert.ok(lines[0]!.includes(fix), fix);
  });

  test("the lookup is asked for every refusal, with the refused client", async () => {
    const asked: SocksClient[] = [];
    const { refusals } = refusalLog({ nameProgram: async (c) => (asked.push(c), "curl") });
    await refusals.report(request(5), client("127.0.0.1", 1));
    await refusals.report(request(5), client("127.0.0.1", 2));
    assert.deepEqual(asked.map((c) => c.port), [1, 2]);
  });
});

describe("RefusalLog: --json", () => {
  test("a full refusal is one warn-level object with the code, destination, client and program", async () => {
    const { refusals, lines } = refusalLog({ json: true, verbosity: 0, nameProgram: async () => "curl" });
    await refusals.report(request(5, "1.2.3.4"), client());
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(
      { ...record, msg: undefined },
      {
        time: "1970-01-01T00:00:00.000Z",
        level: "warn",
        msg: undefined,
        event: "refused",
        code: "SOCKS_IP_REFUSED",
        destination: "1.2.3.4:443",
        client: "127.0.0.1:51234",
        program: "curl",
      },
    );
    assert.match(String(record["msg"]), /^Refused SOCKS5 CONNECT to 1\.2\.3\.4:443 from 127\.0\.0\.1:51234 \(curl\): /);
  });

  test("an unnamed client has program null; a folded refusal is a debug1 object", async () => {
    const { refusals, lines } = refusalLog({ json: true });
    await refusals.report(request(5, "1.2.3.4"), client());
    await refusals.report(request(5, "1.2.3.4"), client());
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records.map((r) => [r["level"], r["program"]]), [["warn", null], ["debug1", undefined]]);
  });
});

describe("RefusalLog: bounded bookkeeping", () => {
  test("when full, keys whose window has passed are forgotten first", async () => {
    const { refusals, lines, clock } = refusalLog({ maxKeys: 2 });
    await refusals.report(request(5), client("10.0.0.1"));
    clock.now += REFUSAL_WINDOW_MS;
    await refusals.report(request(5), client("10.0.0.2"));
    await refusals.report(request(5), client("10.0.0.3")); // full: 10.0.0.1 has expired and goes
    await refusals.report(request(5), client("10.0.0.2")); // still remembered: folded
    assert.deepEqual(kinds(lines), ["full", "full", "full", "folded"]);
  });

  test("when full of live keys, all are forgotten: at worst a line comes early", async () => {
    const { refusals, lines } = refusalLog({ maxKeys: 2 });
    await refusals.report(request(5), client("10.0.0.1"));
    await refusals.report(request(5), client("10.0.0.2"));
    await refusals.report(request(5), client("10.0.0.3"));
    await refusals.report(request(5), client("10.0.0.1")); // forgotten: a full line again
    await refusals.report(request(5), client("10.0.0.3")); // kept after the clearing: folded
    assert.deepEqual(kinds(lines), ["full", "full", "full", "full", "folded"]);
  });
});

describe("refusalLine", () => {
  test("an unknown program gets the whole line with every common fix", () => {
    assert.equal(
      refusalLine(request(5, "93.184.215.14"), client(), undefined),
      "Refused SOCKS5 CONNECT to 93.184.215.14:443 from 127.0.0.1:51234: it carries an IP address, so the name was resolved " +
        "locally and your network saw the DNS lookup. Fix: make the app send names: Firefox: network.proxy.socks5_remote_dns = true; " +
        "Chromium: --proxy-server=socks5://127.0.0.1:9001; curl: --socks5-hostname 127.0.0.1:9001 or socks5h://. " +
        "To allow this address on purpose: --allow-ip 93.184.215.14",
    );
  });

  test("Firefox over SOCKS5 is told about socks5_remote_dns and the port", () => {
    assert.equal(
      refusalLine(request(5, "1.2.3.4"), client(), "firefox"),
      "Refused SOCKS5 CONNECT to 1.2.3.4:443 from 127.0.0.1:51234 (firefox): it carries an IP address, so the name was resolved " +
        "locally and your network saw the DNS lookup. Fix: in Firefox set network.proxy.socks5_remote_dns = true " +
        '("Proxy DNS when using SOCKS v5") with SOCKS v5 host 127.0.0.1 port 9001. To allow this address on purpose: --allow-ip 1.2.3.4',
    );
  });

  test("Firefox over plain SOCKS4 is told to use SOCKS v5 with socks5_remote_dns, or socks_remote_dns for v4", () => {
    assert.equal(
      refusalLine(request(4, "1.2.3.4", "ipv4", false), client(), "firefox-esr"),
      "Refused SOCKS4 CONNECT to 1.2.3.4:443 from 127.0.0.1:51234 (firefox-esr): it used plain SOCKS4, which carries only IP " +
        "addresses, so the name was resolved locally and your network saw the DNS lookup. Fix: in Firefox use SOCKS v5 host " +
        '127.0.0.1 port 9001 with network.proxy.socks5_remote_dns = true ("Proxy DNS when using SOCKS v5"), or keep SOCKS v4 and ' +
        'set network.proxy.socks_remote_dns = true ("Proxy DNS when using SOCKS v4"). To allow this address on purpose: --allow-ip 1.2.3.4',
    );
  });

  test("Chromium (and Chrome) are told to use socks5://", () => {
    for (const program of ["chromium", "chrome", "Chromium-browse"]) {
      const line = refusalLine(request(4, "1.2.3.4", "ipv4", false), client(), program);
      assert.match(line, /Fix: start Chromium with --proxy-server=socks5:\/\/127\.0\.0\.1:9001 \(socks5, not socks4\)\./, program);
    }
  });

  test("curl is told about --socks5-hostname and socks5h://, on the port it used", () => {
    const line = refusalLine(request(5, "1.2.3.4"), { ...client(), localPort: 1080 }, "curl");
    assert.match(line, /Fix: use curl --socks5-hostname 127\.0\.0\.1:1080 \(or -x socks5h:\/\/127\.0\.0\.1:1080\)\./);
  });

  test("the fix names the address the client reached us on: IPv6 in brackets, a mapped IPv4 address as IPv4", () => {
    const v6 = refusalLine(request(5, "1.2.3.4"), { ...client(), localAddress: "::1", localPort: 1081 }, "curl");
    assert.match(v6, /Fix: use curl --socks5-hostname \[::1\]:1081 \(or -x socks5h:\/\/\[::1\]:1081\)\./);
    const mapped = refusalLine(request(5, "1.2.3.4"), { ...client(), localAddress: "::ffff:127.0.0.1" }, "firefox");
    assert.match(mapped, /with SOCKS v5 host 127\.0\.0\.1 port 9001\./);
  });

  test("an unrecognised program name gets the generic fix", () => {
    const line = refusalLine(request(5, "1.2.3.4"), client(), "wget");
    assert.match(line, /\(wget\)/);
    for (const fix of ["socks5_remote_dns", "--socks5-hostname", "socks5://127.0.0.1:9001"]) assert.ok(line.includes(fix), fix);
  });

  test("plain SOCKS4 is explained as carrying only IP addresses; SOCKS4a and SOCKS5 as carrying one", () => {
    assert.match(refusalLine(request(4, "1.2.3.4", "ipv4", false), client(), undefined), /^Refused SOCKS4 CONNECT .*it used plain SOCKS4, which carries only IP addresses/);
    const fourA = refusalLine(request(4, "1.2.3.4", "name", true), client(), undefined);
    assert.match(fourA, /^Refused SOCKS4 CONNECT .*it carries an IP address/);
    assert.doesNotMatch(fourA, /plain SOCKS4/);
    assert.match(refusalLine(request(5, "1.2.3.4"), client(), undefined), /^Refused SOCKS5 CONNECT .*it carries an IP address/);
  });

  test("an IPv6 destination is bracketed with its port and unbracketed in the --allow-ip hint", () => {
    const line = refusalLine(request(5, "2001:db8::1", "ipv6"), client(), undefined);
    assert.match(line, /CONNECT to \[2001:db8::1\]:443 from/);
    assert.match(line, /--allow-ip 2001:db8::1$/);
  });
});

describe("farSideRefusalLine: a client of -R with a port alone, on the SSH server's side", () => {
  const far = (localAddress = "localhost", localPort = 1080): SocksClient => ({ address: "127.0.0.1", port: 51234, localAddress, localPort });

  test("says the request came through the -R port on the server and tells that app to send names, with the proxy address to use there", () => {
    assert.equal(
      farSideRefusalLine(request(5), far(), "-R 1080"),
      "Refused SOCKS5 CONNECT to 192.0.2.7:443 from 127.0.0.1:51234 on the far side (through -R 1080 on the SSH server): " +
        "it carries an IP address, so the app resolved the name itself, over there, and that network saw the DNS lookup. " +
        "Fix: make that app send names, e.g. curl --socks5-hostname localhost:1080 or -x socks5h://localhost:1080. " +
        "To allow this address on purpose: --allow-ip 192.0.2.7",
    );
  });

  test("tells a plain SOCKS4 client to use SOCKS5 or SOCKS4a, and writes the address canonically for --allow-ip", () => {
    const line = farSideRefusalLine(request(4, "0x7f.1", "name", false), far(), "-R 1080");
    assert.match(line, /^Refused SOCKS4 CONNECT to 0x7f\.1:443 from 127\.0\.0\.1:51234 on the far side \(through -R 1080 on the SSH server\): it used plain SOCKS4, /);
    assert.match(line, /Fix: make that app use SOCKS5 \(or SOCKS4a\) with names, e\.g\. curl --socks5-hostname localhost:1080 /);
    assert.match(line, /--allow-ip 127\.0\.0\.1$/);
  });

  test("a wildcard bind is reached as localhost on the server; an explicit one as itself, IPv6 in brackets", () => {
    for (const wildcard of ["", "*", "0.0.0.0", "::"]) {
      assert.match(farSideRefusalLine(request(5), far(wildcard, 40000), "-R *:0"), /curl --socks5-hostname localhost:40000 /);
    }
    assert.match(farSideRefusalLine(request(5), far("::1"), "-R [::1]:1080"), /curl --socks5-hostname \[::1\]:1080 or -x socks5h:\/\/\[::1\]:1080\./);
  });

  test("RefusalLog writes it through `line`, keeps the window, and names no program", async () => {
    const { refusals, lines } = refusalLog({ json: true, line: (req, c) => farSideRefusalLine(req, c, "-R 1080") });
    await refusals.report(request(5), far());
    await refusals.report(request(5), far());
    assert.equal(lines.length, 2, lines.join("\n"));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(first["level"], "warn");
    assert.match(String(first["msg"]), /^Refused SOCKS5 CONNECT to 192\.0\.2\.7:443 from 127\.0\.0\.1:51234 on the far side \(through -R 1080 on the SSH server\)/);
    assert.equal(first["code"], "SOCKS_IP_REFUSED");
    assert.equal(first["program"], null);
    assert.equal(JSON.parse(lines[1]!)["level"], "debug1");
  });
});

describe("RefusalLog.dropped: clients dropped for protocol errors fold like refusals", () => {
  const GARBAGE = "not a SOCKS request (first byte 0x00)";
  const dropLine: Pick<RefusalLogOptions, "droppedLine"> = { droppedLine: (c, reason, program) => droppedClientLine("-D 9001", c, reason, program) };

  test("the first drop is a full line; drops within 10 s are -v lines; the next full line counts them", async () => {
    const { refusals, lines, clock } = refusalLog({ ...dropLine, nameProgram: async () => "fuzzer" });
    await refusals.dropped(client("127.0.0.1", 1), GARBAGE);
    clock.now += 1_000;
    await refusals.dropped(client("127.0.0.1", 2), "the client spoke HTTP");
    clock.now += REFUSAL_WINDOW_MS - 1_001;
    await refusals.dropped(client("127.0.0.1", 3), GARBAGE);
    clock.now += 1;
    await refusals.dropped(client("127.0.0.1", 4), GARBAGE);
    assert.deepEqual(lines, [
      "-D 9001: dropped client 127.0.0.1:1 (fuzzer): not a SOCKS request (first byte 0x00).",
      "debug1: -D 9001: dropped client 127.0.0.1:2 (fuzzer): the client spoke HTTP.",
      "debug1: -D 9001: dropped client 127.0.0.1:3 (fuzzer): not a SOCKS request (first byte 0x00).",
      "-D 9001: dropped client 127.0.0.1:4 (fuzzer): not a SOCKS request (first byte 0x00) (2 more dropped since the last such line).",
    ]);
  });

  test("a flood of 10,000 drops in 10 s writes one line at the default verbosity, and each one at -v", async () => {
    for (const verbosity of [0, 1]) {
      const { refusals, lines, clock } = refusalLog({ ...dropLine, verbosity });
      for (let i = 0; i < 10_000; i++) {
        await refusals.dropped(client("127.0.0.1", 1024 + (i % 60_000)), GARBAGE);
        clock.now += 0.9;
      }
      assert.equal(lines.length, verbosity === 0 ? 1 : 10_000, `at verbosity ${verbosity}`);
      assert.equal(lines.filter((line) => !line.startsWith("debug1: ")).length, 1);
      clock.now += REFUSAL_WINDOW_MS;
      await refusals.dropped(client("127.0.0.1", 7), GARBAGE);
      assert.equal(lines.at(-1), "-D 9001: dropped client 127.0.0.1:7: not a SOCKS request (first byte 0x00) (9999 more dropped since the last such line).");
    }
  });

  test("each program gets its own line; without a program name, each address", async () => {
    let program: string | undefined = "curl";
    const { refusals, lines } = refusalLog({ ...dropLine, verbosity: 0, nameProgram: async () => program });
    await refusals.dropped(client("127.0.0.1", 1), GARBAGE);
    program = "firefox";
    await refusals.dropped(client("127.0.0.1", 2), GARBAGE);
    program = undefined;
    await refusals.dropped(client("127.0.0.1", 3), GARBAGE);
    await refusals.dropped(client("192.168.1.20", 4), GARBAGE);
    await refusals.dropped(client("127.0.0.1", 5), GARBAGE);
    program = "curl";
    await refusals.dropped(client("127.0.0.1", 6), GARBAGE);
    assert.deepEqual(lines.map((line) => line.replace(/: not a SOCKS.*/, "")), [
      "-D 9001: dropped client 127.0.0.1:1 (curl)",
      "-D 9001: dropped client 127.0.0.1:2 (firefox)",
      "-D 9001: dropped client 127.0.0.1:3",
      "-D 9001: dropped client 192.168.1.20:4",
    ]);
  });

  test("drops and refusals of one program are folded apart: a refusal still gets its line and fix", async () => {
    const { refusals, lines } = refusalLog({ ...dropLine, verbosity: 0, nameProgram: async () => "curl" });
    await refusals.dropped(client(), GARBAGE);
    await refusals.report(request(5), client());
    await refusals.dropped(client(), GARBAGE);
    await refusals.report(request(5), client());
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[0]!, /^-D 9001: dropped client /);
    assert.match(lines[1]!, /^Warning: Refused SOCKS5 CONNECT .*\(curl\): .*Fix: use curl --socks5-hostname/);
  });

  test("--json: a full drop is an info object with the client and program; a folded one is debug1", async () => {
    const { refusals, lines } = refusalLog({ ...dropLine, json: true, nameProgram: async () => "curl" });
    await refusals.dropped(client(), GARBAGE);
    await refusals.dropped(client(), GARBAGE);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records[0], {
      time: "1970-01-01T00:00:00.000Z",
      level: "info",
      msg: "-D 9001: dropped client 127.0.0.1:51234 (curl): not a SOCKS request (first byte 0x00).",
      event: "protocol-error",
      client: "127.0.0.1:51234",
      program: "curl",
    });
    assert.equal(records[1]!["level"], "debug1");
  });

  test("a name lookup that never answers does not hold the line past nameWaitMs", async () => {
    const { refusals, lines } = refusalLog({ ...dropLine, verbosity: 0, nameProgram: () => new Promise(() => {}), nameWaitMs: 20 });
    await refusals.dropped(client(), GARBAGE);
    assert.deepEqual(lines, ["-D 9001: dropped client 127.0.0.1:51234: not a SOCKS request (first byte 0x00)."]);
  });
});

describe("droppedClientLine", () => {
  test("names the forward, the client and its program, without the closing full stop", () => {
    assert.equal(droppedClientLine("-D 9001", client(), "the client spoke HTTP", "curl"), "-D 9001: dropped client 127.0.0.1:51234 (curl): the client spoke HTTP");
    assert.equal(droppedClientLine("-D 9001", client(), "the client spoke HTTP", undefined), "-D 9001: dropped client 127.0.0.1:51234: the client spoke HTTP");
  });

  test("a client of -R with a port alone is on the far side", () => {
    assert.equal(droppedClientLine("-R 1080", client(), "the client spoke TLS", undefined, true), "-R 1080: dropped client 127.0.0.1:51234 on the far side: the client spoke TLS");
  });
});
