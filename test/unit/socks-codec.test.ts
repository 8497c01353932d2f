import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  AddressType,
  AuthMethod,
  describeSocks5Reply,
  encodeReply,
  encodeSocks4Reply,
  encodeSocks5ConnectName,
  encodeSocks5Greeting,
  encodeSocks5MethodChoice,
  encodeSocks5Reply,
  encodeSocks5UserPass,
  encodeSocks5UserPassStatus,
  parseSocks5MethodChoice,
  parseSocks5UserPass,
  USERPASS_MAX_FIELD,
  parseSocks5Reply,
  formatReplyCode,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  SOCKS4_MAX_FIELD,
  Socks4Reply,
  Socks5Reply,
  replyCodeFor,
  socks4ReplyFor,
  type ParseResult,
  type Socks5ReplyCode,
  type SocksRequest,
} from "../../src/socks/codec.ts";
import { formatAddress } from "../../src/address.ts";

/** Bytes from hex text; blanks are ignored so tests can group fields ("05 01 00"). */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

function ascii(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

function okValue<T>(result: ParseResult<T>, consumed: number): T {
  assert.equal(result.status, "ok", `expected ok, got ${JSON.stringify(result)}`);
  if (result.status !== "ok") throw new Error("unreachable");
  assert.equal(result.consumed, consumed);
  return result.value;
}

function invalidWith<T>(result: ParseResult<T>, reply: string | undefined, reason: RegExp): void {
  assert.equal(result.status, "invalid", `expected invalid, got ${JSON.stringify(result)}`);
  if (result.status !== "invalid") throw new Error("unreachable");
  assert.match(result.reason, reason);
  if (reply === undefined) assert.equal(result.reply, undefined);
  else assert.equal(result.reply?.toString("hex"), hex(reply).toString("hex"));
}

/** Every strict prefix of a complete message must ask for more bytes, never fail or read past the end. */
function everyPrefixIncomplete<T>(parse: (buf: Uint8Array) => ParseResult<T>, whole: Buffer): void {
  for (let length = 0; length < whole.length; length++) {
    assert.deepEqual(parse(whole.subarray(0, length)), { status: "incomplete" }, `prefix of ${length} bytes of ${whole.toString("hex")}`);
  }
}

const V5_REFUSAL_BODY = "00 01 00000000 0000";
const V4_REJECTED = "00 5b 0000 00000000";

function socks5Request(command: number, atyp: number, address: Buffer, port: number): Buffer {
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, command, 0, atyp]), address, portBytes]);
}

function socks5NameRequest(name: string, port: number, command = 0x01): Buffer {
  return socks5Request(command, AddressType.DOMAIN, Buffer.concat([Buffer.from([name.length]), ascii(name)]), port);
}

function socks4Request(command: number, port: number, ip: number[], userId: string, host?: string): Buffer {
  const head = Buffer.alloc(8);
  head[0] = 4;
  head[1] = command;
  head.writeUInt16BE(port, 2);
  head.set(ip, 4);
  const parts = [head, ascii(userId), Buffer.from([0])];
  if (host !== undefined) parts.push(ascii(host), Buffer.from([0]));
  return Buffer.concat(parts);
}

describe("parseSocks5Greeting", () => {
  test("reads a greeting offering one method", () => {
    assert.deepEqual(parseSocks5Greeting(hex("05 01 00")), { status: "ok", value: { methods: [0x00] }, consumed: 3 });
  });

  test("reads a greeting offering several methods in the order sent", () => {
    assert.deepEqual(parseSocks5Greeting(hex("05 03 02 00 01")), {
      status: "ok",
      value: { methods: [0x02, 0x00, 0x01] },
      consumed: 5,
    });
  });

  test("reads a greeting offering all 255 methods", () => {
    const methods = Array.from({ length: 255 }, (_, i) => i);
    const result = parseSocks5Greeting(Buffer.from([5, 255, ...methods]));
    assert.deepEqual(okValue(result, 257), { methods });
  });

  test("consumes only the greeting when a request follows in the same chunk", () => {
    const bytes = Buffer.concat([hex("05 02 00 02"), socks5NameRequest("example.org", 443)]);
    assert.deepEqual(okValue(parseSocks5Greeting(bytes), 4), { methods: [0x00, 0x02] });
  });

  test("a greeting with zero methods is invalid and answered with 05 FF", () => {
    invalidWith(parseSocks5Greeting(hex("05 00")), "05 ff", /no methods/);
    invalidWith(parseSocks5Greeting(hex("05 00 00 01")), "05 ff", /no methods/);
  });

  test("every truncation of a greeting is incomplete", () => {
    everyPrefixIncomplete(parseSocks5Greeting, hex("05 01 00"));
    everyPrefixIncomplete(parseSocks5Greeting, hex("05 03 00 01 02"));
  });

  test("a wrong version byte is invalid with no reply", () => {
    invalidWith(parseSocks5Greeting(hex("04 01 00")), undefined, /0x04/);
    invalidWith(parseSocks5Greeting(hex("47")), undefined, /0x47/);
  });
});

describe("parseSocks5Request", () => {
  test("reads an IPv4 CONNECT", () => {
    const bytes = hex("05 01 00 01 7f000001 0050");
    assert.deepEqual(okValue(parseSocks5Request(bytes), 10), {
      version: 5,
      command: "connect",
      commandCode: 0x01,
      destination: { kind: "ipv4", host: "127.0.0.1", port: 80 },
    });
  });

  test("reads a domain-name CONNECT", () => {
    const bytes = hex(`05 01 00 03 0b ${ascii("example.org").toString("hex")} 01bb`);
    assert.deepEqual(okValue(parseSocks5Request(bytes), 18), {
      version: 5,
      command: "connect",
      commandCode: 0x01,
      destination: { kind: "name", host: "example.org", port: 443 },
    });
  });

  test("keeps a name exactly as sent, case and trailing dot included", () => {
    const value = okValue(parseSocks5Request(socks5NameRequest("WWW.Example.ORG.", 80)), 4 + 1 + 16 + 2);
    assert.deepEqual(value.destination, { kind: "name", host: "WWW.Example.ORG.", port: 80 });
  });

  test("reads a 255-byte name", () => {
    const name = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}`;
    assert.equal(name.length, 255);
    const value = okValue(parseSocks5Request(socks5NameRequest(name, 8080)), 4 + 1 + 255 + 2);
    assert.deepEqual(value.destination, { kind: "name", host: name, port: 8080 });
  });

  test("reads an IPv6 CONNECT and writes the address in RFC 5952 form", () => {
    const cases: Array<[string, string]> = [
      ["20010db8000000000000000000000001", "2001:db8::1"],
      ["00000000000000000000000000000001", "::1"],
      ["00000000000000000000000000000000", "::"],
      ["00000000000000000000ffff01020304", "::ffff:1.2.3.4"],
      ["fe800000000000000000000000000000", "fe80::"],
      ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"],
      ["20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1"],
      ["20010DB8ABCDEF0000000000000000FF", "2001:db8:abcd:ef00::ff"],
      ["20010db8000000000001000000000000", "2001:db8:0:0:1::"],
      ["00010002000300040005000600070008", "1:2:3:4:5:6:7:8"],
    ];
    for (const [address, text] of cases) {
      const value = okValue(parseSocks5Request(hex(`05 01 00 04 ${address} 0016`)), 22);
      assert.deepEqual(value, {
        version: 5,
        command: "connect",
        commandCode: 0x01,
        destination: { kind: "ipv6", host: text, port: 22 },
      }, address);
    }
  });

  test("reads ports big-endian across the whole range", () => {
    for (const [bytes, port] of [["0000", 0], ["0001", 1], ["01bb", 443], ["1f90", 8080], ["ffff", 65535]] as const) {
      const value = okValue(parseSocks5Request(hex(`05 01 00 01 0a000001 ${bytes}`)), 10);
      assert.equal(value.destination.port, port);
    }
  });

  test("maps every command byte and keeps the byte as received", () => {
    const cases: Array<[number, SocksRequest["command"]]> = [
      [0x01, "connect"],
      [0x02, "bind"],
      [0x03, "udp-associate"],
      [0x00, "unknown"],
      [0x04, "unknown"],
      [0x80, "unknown"],
      [0xff, "unknown"],
    ];
    for (const [code, command] of cases) {
      const value = okValue(parseSocks5Request(socks5NameRequest("example.org", 80, code)), 18);
      assert.equal(value.command, command, `command byte 0x${code.toString(16)}`);
      assert.equal(value.commandCode, code);
    }
  });

  test("an unknown address type is invalid and answered with 05 08 00 01 00000000 0000", () => {
    for (const atyp of [0x00, 0x02, 0x05, 0xff]) {
      invalidWith(parseSocks5Request(Buffer.from([5, 1, 0, atyp])), "05 08 00 01 00000000 0000", new RegExp(`address type 0x${atyp.toString(16).padStart(2, "0")}`));
    }
  });

  test("an empty host name is invalid and answered with 0x01", () => {
    invalidWith(parseSocks5Request(hex("05 01 00 03 00")), `05 01 ${V5_REFUSAL_BODY}`, /empty host name/);
    invalidWith(parseSocks5Request(hex("05 01 00 03 00 0050")), `05 01 ${V5_REFUSAL_BODY}`, /empty host name/);
  });

  test("a host name with non-printable bytes is invalid and answered with 0x01", () => {
    for (const name of ["exa mple.org", "example.org\0", "\0", "a\tb", "example\x7f.org", "ex\x80ample.org", "caf\xe9.example", "example.org\n"]) {
      invalidWith(parseSocks5Request(socks5NameRequest(name, 80)), `05 01 ${V5_REFUSAL_BODY}`, /non-printable/);
    }
  });

  test("every printable ASCII byte is accepted in a name", () => {
    let name = "";
    for (let b = 0x21; b <= 0x7e; b++) name += String.fromCharCode(b);
    const value = okValue(parseSocks5Request(socks5NameRequest(name, 80)), 4 + 1 + name.length + 2);
    assert.equal(value.destination.host, name);
  });

  test("every truncation of a request is incomplete, for each address type", () => {
    everyPrefixIncomplete(parseSocks5Request, hex("05 01 00 01 7f000001 0050"));
    everyPrefixIncomplete(parseSocks5Request, socks5NameRequest("example.org", 443));
    everyPrefixIncomplete(parseSocks5Request, socks5NameRequest("a", 443));
    everyPrefixIncomplete(parseSocks5Request, hex("05 01 00 04 20010db8000000000000000000000001 01bb"));
  });

  test("consumed counts only the request when more bytes follow", () => {
    const payload = ascii("GET / HTTP/1.1\r\n\r\n");
    const cases: Array<[Buffer, number]> = [
      [hex("05 01 00 01 7f000001 0050"), 10],
      [socks5NameRequest("example.org", 443), 18],
      [hex("05 01 00 04 00000000000000000000000000000001 0050"), 22],
    ];
    for (const [request, length] of cases) {
      const value = okValue(parseSocks5Request(Buffer.concat([request, payload])), length);
      assert.equal(value.command, "connect");
    }
  });

  test("a wrong version byte is invalid with no reply", () => {
    invalidWith(parseSocks5Request(hex("04 01 00 01 7f000001 0050")), undefined, /version byte 0x04/);
  });

  test("never reads past the buffer it is given", () => {
    const whole = socks5NameRequest("example.org", 443);
    const backing = Buffer.concat([whole, hex("ff ff ff ff")]);
    assert.deepEqual(parseSocks5Request(backing.subarray(0, whole.length - 1)), { status: "incomplete" });
  });
});

describe("parseSocks4Request", () => {
  test("reads a SOCKS4 CONNECT to an IPv4 address with an empty USERID", () => {
    assert.deepEqual(parseSocks4Request(hex("04 01 0050 7f000001 00")), {
      status: "ok",
      value: {
        version: 4,
        command: "connect",
        commandCode: 0x01,
        destination: { kind: "ipv4", host: "127.0.0.1", port: 80 },
        userId: "",
        socks4a: false,
      },
      consumed: 9,
    });
  });

  test("reads the USERID", () => {
    const value = okValue(parseSocks4Request(socks4Request(1, 8080, [10, 1, 2, 3], "alice")), 14);
    assert.deepEqual(value, {
      version: 4,
      command: "connect",
      commandCode: 0x01,
      destination: { kind: "ipv4", host: "10.1.2.3", port: 8080 },
      userId: "alice",
      socks4a: false,
    });
  });

  test("reads a SOCKS4a request: 0.0.0.x followed by a name after the USERID", () => {
    const bytes = hex(`04 01 01bb 00000001 ${ascii("bob").toString("hex")} 00 ${ascii("example.org").toString("hex")} 00`);
    assert.deepEqual(parseSocks4Request(bytes), {
      status: "ok",
      value: {
        version: 4,
        command: "connect",
        commandCode: 0x01,
        destination: { kind: "name", host: "example.org", port: 443 },
        userId: "bob",
        socks4a: true,
      },
      consumed: 8 + 4 + 12,
    });
  });

  test("any 0.0.0.x with x from 1 to 255 marks SOCKS4a", () => {
    for (const x of [1, 2, 127, 255]) {
      const value = okValue(parseSocks4Request(socks4Request(1, 80, [0, 0, 0, x], "", "example.org")), 8 + 1 + 12);
      assert.equal(value.socks4a, true);
      assert.deepEqual(value.destination, { kind: "name", host: "example.org", port: 80 });
    }
  });

  test("0.0.0.0 is an IPv4 destination, not SOCKS4a", () => {
    const value = okValue(parseSocks4Request(socks4Request(1, 80, [0, 0, 0, 0], "")), 9);
    assert.deepEqual(value.destination, { kind: "ipv4", host: "0.0.0.0", port: 80 });
    assert.equal(value.socks4a, false);
  });

  test("addresses that merely start with zeros are not SOCKS4a", () => {
    const value = okValue(parseSocks4Request(socks4Request(1, 80, [0, 0, 1, 1], "")), 9);
    assert.deepEqual(value.destination, { kind: "ipv4", host: "0.0.1.1", port: 80 });
    assert.equal(value.socks4a, false);
  });

  test("maps CONNECT and BIND; every other command byte is unknown (SOCKS4 defines only 1 and 2)", () => {
    const cases: Array<[number, SocksRequest["command"]]> = [
      [0x01, "connect"],
      [0x02, "bind"],
      [0x00, "unknown"],
      [0x03, "unknown"],
      [0xff, "unknown"],
    ];
    for (const [code, command] of cases) {
      const value = okValue(parseSocks4Request(socks4Request(code, 80, [10, 0, 0, 1], "")), 9);
      assert.equal(value.command, command, `command byte 0x${code.toString(16)}`);
      assert.equal(value.commandCode, code);
    }
  });

  test("every truncation of a SOCKS4 or SOCKS4a request is incomplete", () => {
    everyPrefixIncomplete(parseSocks4Request, socks4Request(1, 80, [127, 0, 0, 1], ""));
    everyPrefixIncomplete(parseSocks4Request, socks4Request(1, 80, [127, 0, 0, 1], "alice"));
    everyPrefixIncomplete(parseSocks4Request, socks4Request(1, 443, [0, 0, 0, 1], "", "example.org"));
    everyPrefixIncomplete(parseSocks4Request, socks4Request(1, 443, [0, 0, 0, 9], "alice", "example.org"));
  });

  test("consumed counts only the request when more bytes follow", () => {
    const payload = ascii("\x16\x03\x01 hello");
    okValue(parseSocks4Request(Buffer.concat([socks4Request(1, 80, [127, 0, 0, 1], "u"), payload])), 10);
    okValue(parseSocks4Request(Buffer.concat([socks4Request(1, 80, [0, 0, 0, 1], "u", "example.org"), payload])), 22);
  });

  test(`accepts a USERID of exactly ${SOCKS4_MAX_FIELD} bytes and a SOCKS4a name of exactly ${SOCKS4_MAX_FIELD} bytes`, () => {
    assert.equal(SOCKS4_MAX_FIELD, 255);
    const user = "u".repeat(255);
    const name = `${"h".repeat(251)}.org`;
    const value = okValue(parseSocks4Request(socks4Request(1, 80, [0, 0, 0, 1], user, name)), 8 + 256 + 256);
    assert.equal(value.userId, user);
    assert.equal(value.destination.host, name);
  });

  test("a USERID of 255 bytes with its NUL still to come is incomplete", () => {
    const bytes = Buffer.concat([hex("04 01 0050 7f000001"), Buffer.alloc(255, 0x75)]);
    assert.deepEqual(parseSocks4Request(bytes), { status: "incomplete" });
  });

  test("a USERID longer than 255 bytes without a NUL is invalid and answered with 00 5B", () => {
    const bytes = Buffer.concat([hex("04 01 0050 7f000001"), Buffer.alloc(256, 0x75)]);
    invalidWith(parseSocks4Request(bytes), V4_REJECTED, /USERID is too long/);
    invalidWith(parseSocks4Request(Buffer.concat([bytes, Buffer.alloc(2000, 0x75)])), V4_REJECTED, /USERID is too long/);
    // A NUL that comes only after the limit does not make it acceptable.
    invalidWith(parseSocks4Request(Buffer.concat([bytes, Buffer.from([0])])), V4_REJECTED, /USERID is too long/);
  });

  test("a SOCKS4a name longer than 255 bytes without a NUL is invalid and answered with 00 5B", () => {
    const bytes = Buffer.concat([hex("04 01 0050 00000001 00"), Buffer.alloc(256, 0x68)]);
    invalidWith(parseSocks4Request(bytes), V4_REJECTED, /host name is too long/);
    const partial = Buffer.concat([hex("04 01 0050 00000001 00"), Buffer.alloc(255, 0x68)]);
    assert.deepEqual(parseSocks4Request(partial), { status: "incomplete" });
  });

  test("an empty or non-printable SOCKS4a name is invalid and answered with 00 5B", () => {
    invalidWith(parseSocks4Request(socks4Request(1, 80, [0, 0, 0, 1], "", "")), V4_REJECTED, /empty or has non-printable/);
    for (const name of ["exa mple.org", "a\tb", "ex\x80ample.org", "x\x7f"]) {
      invalidWith(parseSocks4Request(socks4Request(1, 80, [0, 0, 0, 1], "", name)), V4_REJECTED, /empty or has non-printable/);
    }
  });

  test("a wrong version byte is invalid with no reply", () => {
    invalidWith(parseSocks4Request(hex("05 01 0050 7f000001 00")), undefined, /0x05/);
  });
});

describe("parseSocks5UserPass (RFC 1929 section 2)", () => {
  test("reads VER 01, ULEN, UNAME, PLEN, PASSWD as bytes", () => {
    const bytes = hex(`01 05 ${ascii("alice").toString("hex")} 03 ${ascii("pw!").toString("hex")}`);
    const value = okValue(parseSocks5UserPass(bytes), 11);
    assert.equal(value.username.toString("hex"), ascii("alice").toString("hex"));
    assert.equal(value.password.toString("hex"), ascii("pw!").toString("hex"));
  });

  test("keeps bytes that are not ASCII as sent, and a ':' in the password", () => {
    const bytes = hex("01 02 c3a9 04 3a 00 ff 3a");
    const value = okValue(parseSocks5UserPass(bytes), 9);
    assert.equal(value.username.toString("hex"), "c3a9");
    assert.equal(value.password.toString("hex"), "3a00ff3a");
  });

  test(`reads ${USERPASS_MAX_FIELD}-byte fields: 513 bytes in all`, () => {
    const user = Buffer.alloc(255, 0x75);
    const pass = Buffer.alloc(255, 0x70);
    const bytes = Buffer.concat([hex("01 ff"), user, hex("ff"), pass]);
    assert.equal(bytes.length, 513);
    const value = okValue(parseSocks5UserPass(bytes), 513);
    assert.deepEqual([value.username, value.password], [user, pass]);
  });

  test("reads empty fields (they then match no account) rather than dropping the client", () => {
    const value = okValue(parseSocks5UserPass(hex("01 00 00")), 3);
    assert.deepEqual([value.username.length, value.password.length], [0, 0]);
  });

  test("consumes only the subnegotiation when the SOCKS5 request follows in the same chunk", () => {
    const bytes = Buffer.concat([hex("01 01 61 01 62"), socks5NameRequest("example.org", 443)]);
    okValue(parseSocks5UserPass(bytes), 5);
  });

  test("the values are copies: reusing the input buffer does not change them", () => {
    const bytes = hex("01 01 61 01 62");
    const value = okValue(parseSocks5UserPass(bytes), 5);
    bytes.fill(0);
    assert.equal(value.username.toString("hex"), "61");
    assert.equal(value.password.toString("hex"), "62");
  });

  test("every truncation is incomplete", () => {
    everyPrefixIncomplete(parseSocks5UserPass, hex(`01 05 ${ascii("alice").toString("hex")} 03 ${ascii("pw!").toString("hex")}`));
    everyPrefixIncomplete(parseSocks5UserPass, hex("01 00 00"));
    everyPrefixIncomplete(parseSocks5UserPass, Buffer.concat([hex("01 ff"), Buffer.alloc(255, 1), hex("ff"), Buffer.alloc(255, 2)]));
  });

  test("a version byte other than 01 is invalid and answered with the failure status 01 01", () => {
    invalidWith(parseSocks5UserPass(hex("05 01 61 01 62")), "01 01", /version byte 0x05.*0x01/);
    invalidWith(parseSocks5UserPass(hex("00")), "01 01", /0x00/);
    invalidWith(parseSocks5UserPass(hex("02 01 61")), "01 01", /0x02/);
  });

  test("round-trips what encodeSocks5UserPass writes", () => {
    const bytes = encodeSocks5UserPass("bob", "a:b@c");
    const value = okValue(parseSocks5UserPass(bytes), bytes.length);
    assert.equal(value.username.toString(), "bob");
    assert.equal(value.password.toString(), "a:b@c");
  });
});

describe("encodeSocks5UserPassStatus (RFC 1929 section 2)", () => {
  test("writes 01 00 for success and 01 01 for failure", () => {
    assert.equal(encodeSocks5UserPassStatus(true).toString("hex"), "0100");
    assert.equal(encodeSocks5UserPassStatus(false).toString("hex"), "0101");
  });
});

describe("encodeSocks5MethodChoice", () => {
  test("writes VER METHOD", () => {
    assert.equal(encodeSocks5MethodChoice(AuthMethod.NO_AUTH).toString("hex"), "0500");
    assert.equal(encodeSocks5MethodChoice(AuthMethod.NO_ACCEPTABLE).toString("hex"), "05ff");
  });
});

describe("encodeSocks5Reply", () => {
  const codes: Array<[Socks5ReplyCode, string]> = [
    [Socks5Reply.SUCCEEDED, "00"],
    [Socks5Reply.GENERAL_FAILURE, "01"],
    [Socks5Reply.NOT_ALLOWED, "02"],
    [Socks5Reply.NETWORK_UNREACHABLE, "03"],
    [Socks5Reply.HOST_UNREACHABLE, "04"],
    [Socks5Reply.CONNECTION_REFUSED, "05"],
    [Socks5Reply.TTL_EXPIRED, "06"],
    [Socks5Reply.COMMAND_NOT_SUPPORTED, "07"],
    [Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED, "08"],
  ];

  test("every REP value from 0x00 to 0x08 is 10 bytes with BND 0.0.0.0:0", () => {
    for (const [code, byte] of codes) {
      const reply = encodeSocks5Reply(code);
      assert.equal(reply.length, 10);
      assert.equal(reply.toString("hex"), `05${byte}0001000000000000`);
    }
  });

  test("carries a bound IPv4 address and port", () => {
    const reply = encodeSocks5Reply(Socks5Reply.SUCCEEDED, { kind: "ipv4", address: Uint8Array.from([127, 0, 0, 1]), port: 1080 });
    assert.equal(reply.toString("hex"), "050000017f0000010438");
  });

  test("carries a bound IPv6 address in 22 bytes", () => {
    const address = hex("20010db8000000000000000000000001");
    const reply = encodeSocks5Reply(Socks5Reply.SUCCEEDED, { kind: "ipv6", address, port: 65535 });
    assert.equal(reply.length, 22);
    assert.equal(reply.toString("hex"), "0500000420010db8000000000000000000000001ffff");
  });
});

describe("encodeSocks4Reply", () => {
  test("writes VN=0 CD DSTPORT DSTIP in 8 bytes", () => {
    assert.equal(encodeSocks4Reply(Socks4Reply.GRANTED).toString("hex"), "005a000000000000");
    assert.equal(encodeSocks4Reply(Socks4Reply.REJECTED).toString("hex"), "005b000000000000");
    assert.equal(encodeSocks4Reply(Socks4Reply.NO_IDENTD).toString("hex"), "005c000000000000");
    assert.equal(encodeSocks4Reply(Socks4Reply.IDENTD_MISMATCH).toString("hex"), "005d000000000000");
  });

  test("carries a port and address when given", () => {
    const reply = encodeSocks4Reply(Socks4Reply.GRANTED, 443, Uint8Array.from([192, 0, 2, 7]));
    assert.equal(reply.toString("hex"), "005a01bbc0000207");
  });
});

describe("socks4ReplyFor and encodeReply", () => {
  const failures: Socks5ReplyCode[] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

  test("success maps to 0x5A and every failure to 0x5B", () => {
    assert.equal(socks4ReplyFor(Socks5Reply.SUCCEEDED), 0x5a);
    for (const code of failures) assert.equal(socks4ReplyFor(code), 0x5b, `REP 0x0${code}`);
  });

  test("answers in the client's own version", () => {
    assert.equal(encodeReply(5, Socks5Reply.SUCCEEDED).toString("hex"), "05000001000000000000");
    assert.equal(encodeReply(4, Socks5Reply.SUCCEEDED).toString("hex"), "005a000000000000");
    for (const code of failures) {
      assert.equal(encodeReply(5, code).toString("hex"), `050${code}0001000000000000`);
      assert.equal(encodeReply(4, code).toString("hex"), "005b000000000000");
    }
  });

  test("replyCodeFor names the byte encodeReply puts on the wire, for every outcome and version", () => {
    for (const code of [Socks5Reply.SUCCEEDED, ...failures]) {
      assert.equal(replyCodeFor(5, code), encodeReply(5, code)[1], `SOCKS5 REP for 0x0${code}`);
      assert.equal(replyCodeFor(4, code), encodeReply(4, code)[1], `SOCKS4 CD for 0x0${code}`);
    }
  });

  test("formatReplyCode writes that byte as log lines do: 0x05 for SOCKS5, 0x5b for SOCKS4", () => {
    assert.equal(formatReplyCode(5, Socks5Reply.CONNECTION_REFUSED), "0x05");
    assert.equal(formatReplyCode(5, Socks5Reply.SUCCEEDED), "0x00");
    assert.equal(formatReplyCode(4, Socks5Reply.CONNECTION_REFUSED), "0x5b");
    assert.equal(formatReplyCode(4, Socks5Reply.SUCCEEDED), "0x5a");
  });
});

describe("describeSocks5Reply", () => {
  test("uses RFC 1928's wording for each assigned REP value", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map(describeSocks5Reply),
      [
        "succeeded",
        "general SOCKS server failure",
        "connection not allowed by ruleset",
        "network unreachable",
        "host unreachable",
        "connection refused",
        "TTL expired",
        "command not supported",
        "address type not supported",
      ],
    );
  });

  test("names unassigned values in hex", () => {
    assert.equal(describeSocks5Reply(0x09), "unassigned reply 0x09");
    assert.equal(describeSocks5Reply(0xff), "unassigned reply 0xff");
  });
});

describe("addresses in requests are spelled by formatAddress", () => {
  test("formatIPv4 writes dotted decimal", () => {
    assert.equal(formatAddress(Uint8Array.from([0, 0, 0, 0])), "0.0.0.0");
    assert.equal(formatAddress(Uint8Array.from([255, 255, 255, 255])), "255.255.255.255");
    assert.equal(formatAddress(Uint8Array.from([10, 0, 20, 3])), "10.0.20.3");
  });

  test("formatIPv6 compresses the first of two equally long zero runs (RFC 5952 section 4.2.3)", () => {
    assert.equal(formatAddress(hex("20010db8000000000001000000000001")), "2001:db8::1:0:0:1");
    assert.equal(formatAddress(hex("00010000000000010000000000010001")), "1::1:0:0:1:1");
  });

  test("formatIPv6 prefers the longer zero run wherever it is", () => {
    assert.equal(formatAddress(hex("20010000000000010000000000000001")), "2001:0:0:1::1");
    assert.equal(formatAddress(hex("00010000000000010000000000000001")), "1:0:0:1::1");
  });

  test("formatIPv6 never uses :: for a single zero group (RFC 5952 section 4.2.2)", () => {
    assert.equal(formatAddress(hex("20010db8000000010001000100010001")), "2001:db8:0:1:1:1:1:1");
  });
});

describe("client side: what leakcheck sends to a proxy and reads back", () => {
  test("encodes a greeting offering no authentication: 05 01 00", () => {
    assert.deepEqual(encodeSocks5Greeting([AuthMethod.NO_AUTH]), Buffer.from([0x05, 0x01, 0x00]));
  });

  test("encodes a CONNECT to a name as ATYP 03 with its length and the port big-endian", () => {
    assert.deepEqual(
      encodeSocks5ConnectName("a.invalid", 443),
      Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, 9]), Buffer.from("a.invalid"), Buffer.from([0x01, 0xbb])]),
    );
    // What we encode, our own server reads back as the same name and port.
    const parsed = parseSocks5Request(encodeSocks5ConnectName("control.safetunnel.invalid", 1));
    assert.equal(parsed.status, "ok");
    assert.deepEqual(parsed.status === "ok" ? parsed.value.destination : undefined, { kind: "name", host: "control.safetunnel.invalid", port: 1 });
  });

  test("refuses to encode an empty name or one longer than 255 bytes", () => {
    assert.throws(() => encodeSocks5ConnectName("", 80), RangeError);
    assert.throws(() => encodeSocks5ConnectName("a".repeat(256), 80), RangeError);
    assert.equal(encodeSocks5ConnectName("a".repeat(255), 80).length, 262);
  });

  test("encodes a username/password request: 01 ULEN UNAME PLEN PASSWD, text as UTF-8", () => {
    assert.equal(encodeSocks5UserPass("alice", "pw!").toString("hex"), hex(`01 05 ${ascii("alice").toString("hex")} 03 ${ascii("pw!").toString("hex")}`).toString("hex"));
    assert.equal(encodeSocks5UserPass("é", Uint8Array.of(0, 0xff)).toString("hex"), "0102c3a90200ff");
  });

  test("refuses to encode a username or password longer than 255 bytes", () => {
    assert.equal(encodeSocks5UserPass("u".repeat(255), "p".repeat(255)).length, 513);
    assert.throws(() => encodeSocks5UserPass("u".repeat(256), "p"), /username is at most 255 bytes, got 256/);
    assert.throws(() => encodeSocks5UserPass("u", "é".repeat(128)), /password is at most 255 bytes, got 256/);
  });

  test("reads a method choice, waiting for both bytes", () => {
    assert.deepEqual(parseSocks5MethodChoice(Uint8Array.of(5)), { status: "incomplete" });
    assert.deepEqual(parseSocks5MethodChoice(Uint8Array.of(5, 0xff, 9)), { status: "ok", value: { method: 0xff }, consumed: 2 });
    assert.deepEqual(parseSocks5MethodChoice(Uint8Array.of(0x48, 0x54)), { status: "invalid", reason: "not a SOCKS5 method choice (first byte 0x48)" });
  });

  test("reads replies of every address type, whole or not at all", () => {
    const v4 = encodeSocks5Reply(Socks5Reply.HOST_UNREACHABLE);
    assert.deepEqual(parseSocks5Reply(v4), { status: "ok", value: { reply: 0x04 }, consumed: 10 });
    assert.deepEqual(parseSocks5Reply(v4.subarray(0, 9)), { status: "incomplete" });
    const v6 = encodeSocks5Reply(Socks5Reply.SUCCEEDED, { kind: "ipv6", address: new Uint8Array(16), port: 1 });
    assert.deepEqual(parseSocks5Reply(Buffer.concat([v6, Buffer.from("HTTP")])), { status: "ok", value: { reply: 0 }, consumed: 22 });
    const named = Buffer.from([0x05, 0x00, 0x00, 0x03, 0x03, 0x61, 0x62, 0x63, 0x00, 0x50]);
    assert.deepEqual(parseSocks5Reply(named), { status: "ok", value: { reply: 0 }, consumed: 10 });
    assert.deepEqual(parseSocks5Reply(Buffer.from([0x05, 0x00, 0x00, 0x09, 0, 0])), { status: "invalid", reason: "SOCKS5 reply with unknown address type 0x09" });
    assert.deepEqual(parseSocks5Reply(Buffer.from([0x00, 0x5a, 0, 0, 0, 0, 0, 0])), { status: "invalid", reason: "not a SOCKS5 reply (first byte 0x00)" });
  });
});
