import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTunnelError } from "../../src/errors.ts";
import { CaptureReader, MAX_RECORD_BYTES, readCapture, type CapturePacket } from "../../src/leakcheck/pcap.ts";
import {
  concat,
  enhancedPacketBlock,
  hex,
  interfaceDescriptionBlock,
  LinkType,
  pcapFile,
  pcapHeader,
  pcapngBlock,
  pcapRecord,
  sectionHeaderBlock,
  simplePacketBlock,
  type Endian,
} from "../helpers/capture-fixtures.ts";
import { deterministicBytes } from "../helpers/targets.ts";

const DEADBEEF = hex("de ad be ef");
/** 2023-11-14T22:13:20Z, a timestamp whose parts are easy to check. */
const SECONDS = 1_700_000_000;

/** Feeds `bytes` in pieces of `size` (the last may be shorter) and returns every packet. */
function readInPieces(bytes: Uint8Array, size: number): CapturePacket[] {
  const reader = new CaptureReader();
  const packets: CapturePacket[] = [];
  for (let at = 0; at < bytes.length; at += size) packets.push(...reader.push(bytes.subarray(at, at + size)));
  reader.end();
  return packets;
}

/** Asserts that `run` throws TunnelError BAD_CAPTURE with exactly `message`. */
function throwsCapture(run: () => unknown, message: string | RegExp): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(isTunnelError(err, "BAD_CAPTURE"), `expected BAD_CAPTURE, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

function near(actual: number | undefined, expected: number): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-6, `timestamp ${actual} is not ${expected}`);
}

describe("classic pcap", () => {
  test("reads a little-endian microsecond file written out byte for byte", () => {
    const file = hex(`
      d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000
      00f15365 40e20100 04000000 3c000000 deadbeef`);
    assert.deepEqual(readCapture(file), [{ linkType: 1, timestampMs: 1_700_000_000_123.456, data: DEADBEEF, originalLength: 60 }]);
  });

  test("reads the same records from a big-endian file", () => {
    const records = [
      { seconds: SECONDS, fraction: 123456, data: DEADBEEF, originalLength: 60 },
      { seconds: SECONDS + 1, fraction: 999999, data: hex("0102") },
    ];
    const little = readCapture(pcapFile({ endian: "little", linkType: LinkType.ETHERNET }, records));
    const big = readCapture(pcapFile({ endian: "big", linkType: LinkType.ETHERNET }, records));
    assert.deepEqual(big, little);
    assert.equal(big.length, 2);
    assert.equal(big[1]!.timestampMs, 1_700_000_001_999.999);
  });

  test("reads nanosecond timestamps (magic a1b23c4d) in both byte orders", () => {
    for (const endian of ["little", "big"] as const) {
      const file = pcapFile({ endian, nanoseconds: true, linkType: LinkType.RAW }, [{ seconds: SECONDS, fraction: 123_456_789, data: DEADBEEF }]);
      assert.equal(hex(endian === "big" ? "a1b23c4d" : "4d3cb2a1").toString(), file.subarray(0, 4).toString());
      const [packet] = readCapture(file);
      assert.equal(packet!.linkType, 101);
      near(packet!.timestampMs, 1_700_000_000_123.456789);
    }
  });

  test("takes the link type from the low 16 bits, ignoring the FCS bits above", () => {
    const file = pcapFile({ endian: "little", linkType: 0x1400_0001 }, [{ seconds: 0, fraction: 0, data: DEADBEEF }]);
    assert.equal(readCapture(file)[0]!.linkType, 1);
  });

  test("a header with no records is an empty capture, not an error", () => {
    const reader = new CaptureReader();
    assert.deepEqual(reader.push(pcapHeader({ endian: "little", linkType: 1 })), []);
    assert.equal(reader.format, "pcap");
    reader.end();
  });
});

describe("pcapng", () => {
  test("reads a little-endian section written out byte for byte (if_name, nanosecond if_tsresol)", () => {
    const file = hex(`
      0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000
      01000000 28000000 7100 0000 00000400 0200 0200 6c6f0000 0900 0100 09000000 00000000 28000000
      06000000 24000000 00000000 fe9c9717 15cd853d 04000000 04000000 deadbeef 24000000`);
    assert.deepEqual(readCapture(file), [
      { linkType: 113, timestampMs: 1_700_000_000_123.456, data: DEADBEEF, originalLength: 4, interfaceName: "lo" },
    ]);
  });

  test("reads a big-endian section the same way", () => {
    const blocks = (endian: Endian): Uint8Array =>
      concat(
        sectionHeaderBlock(endian),
        interfaceDescriptionBlock(endian, { linkType: LinkType.ETHERNET, name: "eth0" }),
        enhancedPacketBlock(endian, { interfaceId: 0, timestamp: 1_700_000_000_123_456n, data: DEADBEEF, originalLength: 1514 }),
      );
    assert.equal(blocks("big").subarray(8, 12).toString(), hex("1a2b3c4d").toString());
    const expected = [{ linkType: 1, timestampMs: 1_700_000_000_123.456, data: DEADBEEF, originalLength: 1514, interfaceName: "eth0" }];
    assert.deepEqual(readCapture(blocks("big")), expected);
    assert.deepEqual(readCapture(blocks("little")), expected);
  });

  test("keeps two interfaces of different link types apart, each with its own name and clock", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET, name: "eth0" }),
      interfaceDescriptionBlock("little", { linkType: LinkType.LINUX_SLL2, name: "any", tsresol: 9 }),
      enhancedPacketBlock("little", { interfaceId: 1, timestamp: 1_700_000_000_000_000_001n, data: hex("01") }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 1_700_000_000_000_001n, data: hex("0202") }),
    );
    const packets = readCapture(file);
    assert.deepEqual(
      packets.map(({ linkType, interfaceName, data }) => ({ linkType, interfaceName, data })),
      [
        { linkType: 276, interfaceName: "any", data: hex("01") },
        { linkType: 1, interfaceName: "eth0", data: hex("0202") },
      ],
    );
    near(packets[0]!.timestampMs, 1_700_000_000_000.000001);
    near(packets[1]!.timestampMs, 1_700_000_000_000.001);
  });

  test("applies a power-of-two if_tsresol and if_tsoffset", () => {
    const file = concat(
      sectionHeaderBlock("big"),
      interfaceDescriptionBlock("big", { linkType: LinkType.RAW, tsresol: 0x80 | 10, tsoffset: 1_000n }),
      enhancedPacketBlock("big", { interfaceId: 0, timestamp: 5n * 1024n + 512n, data: DEADBEEF }),
    );
    assert.equal(readCapture(file)[0]!.timestampMs, 1_005_500);
  });

  test("reads Simple Packet Blocks as interface 0, cut to its snapshot length, without a timestamp", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.RAW, snapLen: 3, name: "tun0" }),
      simplePacketBlock("little", { data: hex("010203"), originalLength: 1400 }),
    );
    assert.deepEqual(readCapture(file), [{ linkType: 101, data: hex("010203"), originalLength: 1400, interfaceName: "tun0" }]);
  });

  test("reports the process an Enhanced Packet Block names (epb_processid_threadid)", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.RAW }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: hex("45"), processId: 4242 }),
    );
    assert.equal(readCapture(file)[0]!.processId, 4242);
  });

  test("skips blocks it does not know (name resolution, statistics, custom) by their length", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      pcapngBlock("little", 4, hex("0000 0000")),
      interfaceDescriptionBlock("little", { linkType: LinkType.RAW }),
      pcapngBlock("little", 5, hex("00000000 00000000 00000000")),
      pcapngBlock("little", 0x80000bad, hex("ffffffff ffffffff")),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: DEADBEEF }),
    );
    assert.deepEqual(readCapture(file).map((packet) => packet.data), [DEADBEEF]);
  });

  test("starts over at each Section Header Block: new byte order, new interface numbers", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET, name: "eth0" }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: hex("01") }),
      sectionHeaderBlock("big"),
      interfaceDescriptionBlock("big", { linkType: LinkType.NULL, name: "lo0" }),
      enhancedPacketBlock("big", { interfaceId: 0, timestamp: 0n, data: hex("02") }),
    );
    assert.deepEqual(
      readCapture(file).map(({ linkType, interfaceName }) => `${linkType} ${interfaceName}`),
      ["1 eth0", "0 lo0"],
    );
  });

  test("skips a section of another major version up to the next Section Header Block", () => {
    const file = concat(
      sectionHeaderBlock("little", { major: 2 }),
      interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: hex("01") }),
      sectionHeaderBlock("little", { minor: 2 }),
      interfaceDescriptionBlock("little", { linkType: LinkType.RAW }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: hex("02") }),
    );
    assert.deepEqual(readCapture(file).map((packet) => packet.data), [hex("02")]);
  });
});

describe("chunked input", () => {
  const pcap = pcapFile({ endian: "big", nanoseconds: true, linkType: LinkType.LINUX_SLL }, [
    { seconds: SECONDS, fraction: 1, data: hex("0011223344556677") },
    { seconds: SECONDS, fraction: 2, data: new Uint8Array(1500).fill(7) },
    { seconds: SECONDS, fraction: 3, data: DEADBEEF },
  ]);
  const pcapng = concat(
    sectionHeaderBlock("little"),
    interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET, name: "eth0" }),
    enhancedPacketBlock("little", { interfaceId: 0, timestamp: 1n, data: new Uint8Array(1001).fill(9) }),
    sectionHeaderBlock("big"),
    interfaceDescriptionBlock("big", { linkType: LinkType.RAW, name: "tun0" }),
    simplePacketBlock("big", { data: DEADBEEF }),
  );

  for (const [name, file] of [
    ["pcap", pcap],
    ["pcapng", pcapng],
  ] as const) {
    test(`one byte at a time gives the same ${name} packets as the whole file at once`, () => {
      const whole = readCapture(file);
      assert.equal(whole.length, 3 - (name === "pcapng" ? 1 : 0));
      assert.deepEqual(readInPieces(file, 1), whole);
      for (const size of [2, 3, 7, 24, 100, 1000]) assert.deepEqual(readInPieces(file, size), whole, `pieces of ${size}`);
    });
  }

  test("packets come out as soon as their record is complete", () => {
    const reader = new CaptureReader();
    const first = pcapRecord("big", { seconds: SECONDS, fraction: 1, data: hex("0011223344556677") });
    const header = pcap.subarray(0, 24);
    assert.deepEqual(reader.push(header), []);
    assert.deepEqual(reader.push(first.subarray(0, first.length - 1)), []);
    assert.equal(reader.push(first.subarray(first.length - 1)).length, 1);
    assert.equal(reader.offset, 24 + first.length);
  });

  test("packet data stays intact when the caller reuses its chunk buffer", () => {
    const reader = new CaptureReader();
    const buffer = new Uint8Array(pcap.length);
    buffer.set(pcap);
    const packets = reader.push(buffer);
    buffer.fill(0);
    assert.deepEqual(packets[0]!.data, hex("0011223344556677"));
  });
});

describe("bad input", () => {
  test("a truncated last pcap record is an error at end of input naming its offset, after the whole records", () => {
    const file = pcapFile({ endian: "little", linkType: 1 }, [
      { seconds: 1, fraction: 0, data: DEADBEEF },
      { seconds: 2, fraction: 0, data: new Uint8Array(42) },
    ]);
    const reader = new CaptureReader();
    assert.equal(reader.push(file.subarray(0, file.length - 10)).length, 1);
    throwsCapture(
      () => reader.end(),
      "The capture is cut off at byte 92: the pcap packet record at byte 44 needs 58 bytes, only 48 are there (was the capture stopped in the middle of a write?)",
    );
  });

  test("a capture cut inside its header or a record header says which", () => {
    throwsCapture(() => readCapture(hex("d4c3b2a1 0200")), /^The capture is cut off at byte 6: the pcap file header at byte 0 needs 24 bytes, only 6 are there/);
    throwsCapture(() => readCapture(hex("0a0d")), /^The capture is cut off at byte 2: the pcap or pcapng magic number at byte 0 needs 4 bytes, only 2 are there/);
    const header = pcapHeader({ endian: "big", linkType: 1 });
    throwsCapture(() => readCapture(concat(header, hex("00000001"))), /^The capture is cut off at byte 28: the pcap record header at byte 24 needs 16 bytes, only 4 are there/);
  });

  test("a truncated last pcapng block is an error at end of input naming the block", () => {
    const file = concat(
      sectionHeaderBlock("big"),
      interfaceDescriptionBlock("big", { linkType: 1 }),
      enhancedPacketBlock("big", { interfaceId: 0, timestamp: 0n, data: DEADBEEF }),
    );
    throwsCapture(
      () => readCapture(file.subarray(0, file.length - 1)),
      "The capture is cut off at byte 83: the pcapng Enhanced Packet Block at byte 48 needs 36 bytes, only 35 are there (was the capture stopped in the middle of a write?)",
    );
  });

  test("an absurd pcap captured length fails at once instead of waiting for gigabytes", () => {
    const reader = new CaptureReader();
    reader.push(pcapHeader({ endian: "little", linkType: 1 }));
    const record = pcapRecord("little", { seconds: 0, fraction: 0, data: new Uint8Array(0), capturedLength: 0xfffffff0 });
    throwsCapture(
      () => reader.push(record),
      "Corrupt capture at byte 24: pcap record header gives a captured length of 4294967280 bytes, more than the 262144 any packet in this file can have",
    );
    // It stays failed rather than reading on from a wrong place.
    throwsCapture(() => reader.push(DEADBEEF), /^Corrupt capture at byte 24/);
    throwsCapture(() => reader.end(), /^Corrupt capture at byte 24/);
  });

  test("corrupt pcapng block lengths fail at once, each with its reason", () => {
    const start = concat(sectionHeaderBlock("little"), interfaceDescriptionBlock("little", { linkType: 1 }));
    const at = start.length;
    const cases: [Uint8Array, string][] = [
      [pcapngBlock("little", 6, new Uint8Array(24), { leading: 38 }), `Corrupt capture at byte ${at}: pcapng Enhanced Packet Block length 38 is not a multiple of 4`],
      [pcapngBlock("little", 6, new Uint8Array(24), { leading: 16 }), `Corrupt capture at byte ${at}: pcapng Enhanced Packet Block length 16 is less than the 32 bytes such a block takes`],
      [pcapngBlock("little", 9, new Uint8Array(0), { leading: 8 }), `Corrupt capture at byte ${at}: pcapng block of type 0x9 length 8 is less than the 12 bytes such a block takes`],
      [
        pcapngBlock("little", 6, new Uint8Array(24), { leading: 0xfffffffc }),
        `Corrupt capture at byte ${at}: pcapng Enhanced Packet Block length 4294967292 is more than the ${MAX_RECORD_BYTES} bytes any block may have`,
      ],
      [pcapngBlock("little", 6, new Uint8Array(24), { trailing: 40 }), `Corrupt capture at byte ${at}: pcapng Enhanced Packet Block length 36 at its start and 40 at its end differ`],
    ];
    for (const [block, message] of cases) {
      throwsCapture(() => readCapture(concat(start, block)), message);
      // Fed byte by byte, the error comes as soon as the length is in, not at the end.
      const reader = new CaptureReader();
      reader.push(start);
      let failedAfter = -1;
      for (let i = 0; i < block.length && failedAfter < 0; i++) {
        try {
          reader.push(block.subarray(i, i + 1));
        } catch {
          failedAfter = i + 1;
        }
      }
      assert.ok(failedAfter > 0 && failedAfter <= block.length, message);
      if (!message.includes("at its end")) assert.equal(failedAfter, 8, message);
    }
  });

  test("a packet for an interface the section never described is an error", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: 1 }),
      enhancedPacketBlock("little", { interfaceId: 3, timestamp: 0n, data: DEADBEEF }),
    );
    throwsCapture(
      () => readCapture(file),
      "Corrupt capture at byte 48: pcapng Enhanced Packet Block refers to interface 3, but its section describes 1 (no Interface Description Block for it)",
    );
    throwsCapture(() => readCapture(concat(sectionHeaderBlock("big"), simplePacketBlock("big", { data: DEADBEEF }))), /Simple Packet Block refers to interface 0, but its section describes 0/);
  });

  test("an Enhanced Packet Block whose captured length runs past the block is an error", () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: 1 }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 0n, data: DEADBEEF, capturedLength: 400 }),
    );
    throwsCapture(() => readCapture(file), "Corrupt capture at byte 48: pcapng Enhanced Packet Block captured length 400 runs past the end of its 36-byte block");
  });

  test("a bad Section Header byte-order magic is an error", () => {
    const block = sectionHeaderBlock("little");
    block.set(hex("01020304"), 8);
    throwsCapture(() => readCapture(block), "Corrupt capture at byte 8: pcapng Section Header Block has byte-order magic 01020304, not 1a2b3c4d in either byte order");
  });

  test("something that is not a capture is refused by its first bytes", () => {
    throwsCapture(
      () => readCapture(new TextEncoder().encode("<html>hello</html>")),
      "Not a pcap or pcapng capture: it starts with 3c68746d at byte 0 (expected a1b2c3d4 or a1b23c4d in either byte order, or 0a0d0d0a)",
    );
  });

  test("an empty input is an error at end, not an empty capture", () => {
    throwsCapture(() => readCapture(new Uint8Array(0)), "The capture is empty: no pcap or pcapng header (was tcpdump stopped before it wrote anything?)");
  });

  test("a pcap file of another major version is refused", () => {
    const header = pcapHeader({ endian: "little", linkType: 1 });
    header.set(hex("0100"), 4);
    throwsCapture(() => readCapture(header), "Corrupt capture at byte 4: pcap version 1.4 is not 2.x, the only version libpcap writes");
  });

  test("random bytes after a valid header end in an error or packets, never a hang or another exception", () => {
    for (const start of [pcapHeader({ endian: "little", linkType: 1 }), concat(sectionHeaderBlock("big"), interfaceDescriptionBlock("big", { linkType: 1 }))]) {
      for (let round = 0; round < 200; round++) {
        const noise = new Uint8Array(deterministicBytes(64 + (round % 50), round + 1));
        try {
          readCapture(concat(start, noise));
        } catch (err) {
          assert.ok(isTunnelError(err, "BAD_CAPTURE"), String(err));
        }
      }
    }
  });
});
