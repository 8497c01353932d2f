/**
 * A stream reader for packet captures: classic pcap and pcapng, fed in chunks
 * as `tcpdump -w -` writes them, packets out as soon as each record is whole.
 * Pure: bytes in, plain objects out; files and pipes are capture-file.ts's.
 *
 * Formats, as the tcpdump group specifies them (both are Internet-Drafts,
 * neither an RFC yet); sections are cited by title, since drafts renumber:
 * - pcap: libpcap's pcap-savefile(5), written up as draft-ietf-opsawg-pcap-09
 *   ("PCAP Capture File Format"). A 24-byte File Header whose magic number
 *   gives the byte order and the time unit (0xA1B2C3D4 microseconds,
 *   0xA1B23C4D nanoseconds), then Packet Records: a 16-byte header and the
 *   captured bytes, not padded.
 * - pcapng: draft-ietf-opsawg-pcapng-06 ("PCAP Now Generic (pcapng) Capture
 *   File Format"). Blocks of type, total length, body and the length again
 *   ("General Block Structure"); a Section Header Block (0x0A0D0D0A,
 *   palindromic) whose byte-order magic 0x1A2B3C4D sets the byte order of its
 *   section; Interface Description Blocks, numbered from 0 within a section,
 *   with if_name (option 2), if_tsresol (9) and if_tsoffset (14); Enhanced
 *   Packet Blocks, Simple Packet Blocks (always interface 0) and the obsolete
 *   Packet Block of the appendix. Every other block is skipped by its length,
 *   and a section of another major version up to the next Section Header
 *   ("Physical File Layout").
 *
 * Errors: input that cannot be a capture, a length no writer produces, or a
 * capture that ends inside a record is a TunnelError BAD_CAPTURE naming the
 * byte offset and what was wrong (exit code 2: leakcheck could not test).
 * Lengths are checked against hard limits before the reader waits for the
 * bytes they announce, so a corrupt length fails at once instead of buffering
 * gigabytes or waiting forever. After an error the reader stays failed.
 */
import { TunnelError } from "../errors.ts";

/** One captured packet, as the capture stores it (link-layer header included). */
export interface CapturePacket {
  /** LINKTYPE_* value (https://www.tcpdump.org/linktypes.html): 1 Ethernet, 113 Linux SLL... */
  linkType: number;
  /** Milliseconds since 1970-01-01 UTC, fractional; absent for pcapng Simple Packet Blocks. */
  timestampMs?: number;
  /** The captured bytes; may be shorter than `originalLength` (snapshot length). */
  data: Uint8Array;
  /** The packet's length on the wire. */
  originalLength: number;
  /** pcapng if_name of the capturing interface, when the capture says. */
  interfaceName?: string;
  /** pcapng epb_processid_threadid: the process that sent the packet, when the capture says. */
  processId?: number;
}

export type CaptureFormat = "pcap" | "pcapng";

/**
 * The largest record or block accepted: libpcap's own pcapng reader starts
 * with the same 16 MiB limit (INITIAL_MAX_BLOCKSIZE in sf-pcapng.c), and no
 * link type captures packets anywhere near it.
 */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** libpcap's largest snapshot length for ordinary link types (MAXIMUM_SNAPLEN), and tcpdump's default. */
const PCAP_DEFAULT_MAX_SNAPLEN = 262144;

const PCAP_HEADER_BYTES = 24;
const PCAP_RECORD_HEADER_BYTES = 16;
const PCAP_MAGIC_MICRO = 0xa1b2c3d4;
const PCAP_MAGIC_NANO = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/** pcapng block types (draft-ietf-opsawg-pcapng-06, "Block Type Codes"). */
const BlockType = { IDB: 1, PACKET: 2, SPB: 3, EPB: 6 } as const;
/** pcapng option codes used here ("Options", "Interface Description Block", "Enhanced Packet Block"). */
const Option = { END: 0, IF_NAME: 2, IF_TSRESOL: 9, IF_TSOFFSET: 14, EPB_PROCESSID_THREADID: 8 } as const;

/** What the capture tells about one interface of a pcapng section. */
interface PcapngInterface {
  linkType: number;
  snapLen: number;
  name?: string;
  /** Timestamp units per second (if_tsresol; 10^6 when absent). */
  unitsPerSecond: bigint;
  /** if_tsoffset: seconds added to every timestamp. */
  offsetSeconds: bigint;
}

interface PcapngSection {
  littleEndian: boolean;
  interfaces: PcapngInterface[];
  /** A section of a major version we cannot read is skipped to the next SHB ("Physical File Layout"). */
  skipping: boolean;
}

type ReaderState =
  | { kind: "start" }
  | { kind: "pcap"; littleEndian: boolean; nanoseconds: boolean; linkType: number; maxRecord: number }
  | { kind: "pcapng"; section: PcapngSection | undefined }
  | { kind: "failed"; error: TunnelError };

/**
 * Reads a pcap or pcapng capture incrementally. `push` takes the next chunk
 * (any size, one byte is fine) and returns the packets it completed; `end`
 * says the input is over and throws if it stopped inside a record.
 *
 * @example
 * const reader = new CaptureReader();
 * for await (const chunk of tcpdump.stdout) {
 *   for (const packet of reader.push(chunk)) handle(packet);
 * }
 * reader.end();
 */
export class CaptureReader {
  readonly #queue = new ByteQueue();
  #state: ReaderState = { kind: "start" };
  /** Absolute offset of the first byte still queued. */
  #offset = 0;

  /** "pcap" or "pcapng" once the first 4 bytes are in. */
  get format(): CaptureFormat | undefined {
    const kind = this.#state.kind;
    return kind === "pcap" || kind === "pcapng" ? kind : undefined;
  }

  /** Bytes read and fully decoded so far. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Adds `chunk` and returns every packet it completed, in capture order.
   * Throws TunnelError BAD_CAPTURE when the bytes cannot be a capture; the
   * reader then rejects everything after.
   */
  push(chunk: Uint8Array): CapturePacket[] {
    this.#throwIfFailed();
    this.#queue.push(chunk);
    const packets: CapturePacket[] = [];
    try {
      while (this.#step(packets));
    } catch (err) {
      if (err instanceof TunnelError) this.#state = { kind: "failed", error: err };
      throw err;
    }
    return packets;
  }

  /**
   * The input is over. Throws TunnelError BAD_CAPTURE when it was empty or
   * stopped inside a header, record or block (a capture cut off mid-write).
   */
  end(): void {
    this.#throwIfFailed();
    const state = this.#state;
    const have = this.#queue.length;
    if (state.kind === "start") {
      const error =
        have === 0
          ? captureError("The capture is empty: no pcap or pcapng header (was tcpdump stopped before it wrote anything?)")
          : have < 4
            ? this.#cutOff("pcap or pcapng magic number", 4)
            : this.#cutOff("pcap file header", PCAP_HEADER_BYTES);
      this.#state = { kind: "failed", error };
      throw error;
    }
    if (have === 0) return;
    const error = this.#cutOff(...this.#pendingRecord());
    this.#state = { kind: "failed", error };
    throw error;
  }

  #throwIfFailed(): void {
    if (this.#state.kind === "failed") throw this.#state.error;
  }

  /** What the queued bytes begin and how long it would be, for the end-of-input message. */
  #pendingRecord(): [what: string, need: number] {
    const state = this.#state;
    const have = this.#queue.length;
    if (state.kind === "pcap") {
      if (have < PCAP_RECORD_HEADER_BYTES) return ["pcap record header", PCAP_RECORD_HEADER_BYTES];
      const view = dataView(this.#queue.peek(PCAP_RECORD_HEADER_BYTES));
      return ["pcap packet record", PCAP_RECORD_HEADER_BYTES + view.getUint32(8, state.littleEndian)];
    }
    if (state.kind === "pcapng") {
      const header = have >= 12 ? this.#queue.peek(12) : have >= 8 ? this.#queue.peek(8) : undefined;
      if (header === undefined) return ["pcapng block header", 8];
      const view = dataView(header);
      const isShb = view.getUint32(0) === PCAPNG_SHB;
      if (isShb && header.length < 12) return ["pcapng Section Header Block", 12];
      const littleEndian = isShb ? view.getUint32(8, true) === PCAPNG_BYTE_ORDER_MAGIC : state.section?.littleEndian ?? true;
      const type = view.getUint32(0, littleEndian);
      return [`pcapng ${blockName(type)}`, view.getUint32(4, littleEndian)];
    }
    return ["capture", 0];
  }

  #cutOff(what: string, need: number): TunnelError {
    const have = this.#queue.length;
    return captureError(
      `The capture is cut off at byte ${this.#offset + have}: the ${what} at byte ${this.#offset} needs ${need} bytes, ` +
        `only ${have} are there (was the capture stopped in the middle of a write?)`,
    );
  }

  #corrupt(at: number, problem: string): TunnelError {
    return captureError(`Corrupt capture at byte ${at}: ${problem}`);
  }

  /** Decodes one header, record or block if it is all queued; false when more bytes are needed. */
  #step(out: CapturePacket[]): boolean {
    switch (this.#state.kind) {
      case "start":
        return this.#readMagic();
      case "pcap":
        return this.#readPcapRecord(this.#state, out);
      case "pcapng":
        return this.#readPcapngBlock(this.#state, out);
      case "failed":
        return false;
    }
  }

  #consume(bytes: number): void {
    this.#queue.skip(bytes);
    this.#offset += bytes;
  }

  #readMagic(): boolean {
    if (this.#queue.length < 4) return false;
    const view = dataView(this.#queue.peek(4));
    const big = view.getUint32(0, false);
    const little = view.getUint32(0, true);
    if (big === PCAPNG_SHB) {
      this.#state = { kind: "pcapng", section: undefined };
      return true;
    }
    for (const [magic, nanoseconds] of [
      [PCAP_MAGIC_MICRO, false],
      [PCAP_MAGIC_NANO, true],
    ] as const) {
      if (big === magic || little === magic) {
        if (this.#queue.length < PCAP_HEADER_BYTES) return false;
        return this.#readPcapHeader(little === magic, nanoseconds);
      }
    }
    throw captureError(
      `Not a pcap or pcapng capture: it starts with ${hex(big)} at byte 0 ` +
        `(expected a1b2c3d4 or a1b23c4d in either byte order, or 0a0d0d0a)`,
    );
  }

  #readPcapHeader(littleEndian: boolean, nanoseconds: boolean): boolean {
    const view = dataView(this.#queue.peek(PCAP_HEADER_BYTES));
    const major = view.getUint16(4, littleEndian);
    const minor = view.getUint16(6, littleEndian);
    if (major !== 2) {
      throw this.#corrupt(4, `pcap version ${major}.${minor} is not 2.x, the only version libpcap writes`);
    }
    const snapLen = view.getUint32(16, littleEndian);
    // draft-ietf-opsawg-pcap "File Header": the link-layer type is the low 16
    // bits; the high bits carry FCS information we do not need.
    const linkType = view.getUint32(20, littleEndian) & 0xffff;
    const maxRecord = Math.min(Math.max(snapLen, PCAP_DEFAULT_MAX_SNAPLEN), MAX_RECORD_BYTES);
    this.#consume(PCAP_HEADER_BYTES);
    this.#state = { kind: "pcap", littleEndian, nanoseconds, linkType, maxRecord };
    return true;
  }

  #readPcapRecord(state: Extract<ReaderState, { kind: "pcap" }>, out: CapturePacket[]): boolean {
    if (this.#queue.length < PCAP_RECORD_HEADER_BYTES) return false;
    const view = dataView(this.#queue.peek(PCAP_RECORD_HEADER_BYTES));
    const le = state.littleEndian;
    const captured = view.getUint32(8, le);
    if (captured > state.maxRecord) {
      throw this.#corrupt(
        this.#offset,
        `pcap record header gives a captured length of ${captured} bytes, more than the ${state.maxRecord} any packet in this file can have`,
      );
    }
    const total = PCAP_RECORD_HEADER_BYTES + captured;
    if (this.#queue.length < total) return false;
    const record = this.#queue.peek(total);
    const seconds = view.getUint32(0, le);
    const fraction = view.getUint32(4, le);
    out.push({
      linkType: state.linkType,
      timestampMs: seconds * 1000 + fraction / (state.nanoseconds ? 1e6 : 1e3),
      data: record.slice(PCAP_RECORD_HEADER_BYTES),
      originalLength: view.getUint32(12, le),
    });
    this.#consume(total);
    return true;
  }

  #readPcapngBlock(state: Extract<ReaderState, { kind: "pcapng" }>, out: CapturePacket[]): boolean {
    if (this.#queue.length < 8) return false;
    const at = this.#offset;
    const isShb = dataView(this.#queue.peek(8)).getUint32(0) === PCAPNG_SHB;
    let littleEndian: boolean;
    if (isShb) {
      // The SHB's own length is in its section's byte order, which only the
      // byte-order magic after it tells ("Section Header Block").
      if (this.#queue.length < 12) return false;
      const magic = dataView(this.#queue.peek(12)).getUint32(8, false);
      if (magic === PCAPNG_BYTE_ORDER_MAGIC) littleEndian = false;
      else if (magic === 0x4d3c2b1a) littleEndian = true;
      else throw this.#corrupt(at + 8, `pcapng Section Header Block has byte-order magic ${hex(magic)}, not 1a2b3c4d in either byte order`);
    } else {
      if (state.section === undefined) throw this.#corrupt(at, "pcapng capture does not start with a Section Header Block");
      littleEndian = state.section.littleEndian;
    }
    const head = dataView(this.#queue.peek(8));
    const type = head.getUint32(0, littleEndian);
    const length = head.getUint32(4, littleEndian);
    const name = blockName(type);
    const minimum = minimumBlockLength(type);
    if (length % 4 !== 0) throw this.#corrupt(at, `pcapng ${name} length ${length} is not a multiple of 4`);
    if (length < minimum) throw this.#corrupt(at, `pcapng ${name} length ${length} is less than the ${minimum} bytes such a block takes`);
    if (length > MAX_RECORD_BYTES) throw this.#corrupt(at, `pcapng ${name} length ${length} is more than the ${MAX_RECORD_BYTES} bytes any block may have`);
    if (this.#queue.length < length) return false;
    const block = this.#queue.peek(length);
    const view = dataView(block);
    const trailer = view.getUint32(length - 4, littleEndian);
    if (trailer !== length) {
      throw this.#corrupt(at, `pcapng ${name} length ${length} at its start and ${trailer} at its end differ`);
    }
    if (isShb) {
      state.section = readSectionHeader(view, littleEndian);
    } else if (state.section !== undefined && !state.section.skipping) {
      const packet = this.#readPcapngContent(state.section, type, block, view, at);
      if (packet !== undefined) out.push(packet);
    }
    this.#consume(length);
    return true;
  }

  #readPcapngContent(section: PcapngSection, type: number, block: Uint8Array, view: DataView, at: number): CapturePacket | undefined {
    const le = section.littleEndian;
    const end = block.length - 4;
    switch (type) {
      case BlockType.IDB: {
        section.interfaces.push(readInterface(view, le, end));
        return undefined;
      }
      case BlockType.EPB:
      case BlockType.PACKET: {
        const enhanced = type === BlockType.EPB;
        const id = enhanced ? view.getUint32(8, le) : view.getUint16(8, le);
        const iface = this.#interface(section, id, type, at);
        const captured = view.getUint32(20, le);
        const dataStart = 28;
        if (captured > end - dataStart) {
          throw this.#corrupt(at, `pcapng ${blockName(type)} captured length ${captured} runs past the end of its ${block.length}-byte block`);
        }
        const packet = makePacket(iface, block.slice(dataStart, dataStart + captured), view.getUint32(24, le));
        packet.timestampMs = timestampMs(iface, (BigInt(view.getUint32(12, le)) << 32n) | BigInt(view.getUint32(16, le)));
        if (enhanced) {
          forEachOption(view, le, dataStart + pad4(captured), end, (code, start, length) => {
            if (code === Option.EPB_PROCESSID_THREADID && length === 8) {
              const pid = view.getUint32(start, le);
              if (pid !== 0) packet.processId = pid;
            }
          });
        }
        return packet;
      }
      case BlockType.SPB: {
        const iface = this.#interface(section, 0, type, at);
        const original = view.getUint32(8, le);
        // "Simple Packet Block": the data length is the smaller of the original
        // length and the snapshot length; the block length bounds both.
        const limit = iface.snapLen === 0 ? Infinity : iface.snapLen;
        const captured = Math.min(original, limit, end - 12);
        return makePacket(iface, block.slice(12, 12 + captured), original);
      }
      default:
        return undefined;
    }
  }

  #interface(section: PcapngSection, id: number, type: number, at: number): PcapngInterface {
    const iface = section.interfaces[id];
    if (iface === undefined) {
      throw this.#corrupt(
        at,
        `pcapng ${blockName(type)} refers to interface ${id}, but its section describes ${section.interfaces.length} ` +
          `(no Interface Description Block for it)`,
      );
    }
    return iface;
  }
}

/**
 * Every packet of a whole capture held in memory.
 *
 * @example
 * const packets = readCapture(await readFile("dns.pcap"));
 */
export function readCapture(bytes: Uint8Array): CapturePacket[] {
  const reader = new CaptureReader();
  const packets = reader.push(bytes);
  reader.end();
  return packets;
}

function captureError(message: string): TunnelError {
  return new TunnelError("BAD_CAPTURE", message, { exitCode: 2 });
}

function readSectionHeader(view: DataView, littleEndian: boolean): PcapngSection {
  const major = view.getUint16(12, littleEndian);
  // "Section Header Block": readers must take minor version 2 as 0; a major
  // version other than 1 is a format we cannot read, so the section is skipped.
  return { littleEndian, interfaces: [], skipping: major !== 1 };
}

function readInterface(view: DataView, le: boolean, end: number): PcapngInterface {
  const iface: PcapngInterface = {
    linkType: view.getUint16(8, le),
    snapLen: view.getUint32(12, le),
    unitsPerSecond: 1_000_000n,
    offsetSeconds: 0n,
  };
  forEachOption(view, le, 16, end, (code, start, length) => {
    if (code === Option.IF_NAME) {
      const bytes = new Uint8Array(view.buffer, view.byteOffset + start, length);
      // "Options": strings need not be NUL-terminated, and a NUL ends one.
      const nul = bytes.indexOf(0);
      iface.name = new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul));
    } else if (code === Option.IF_TSRESOL && length >= 1) {
      const resolution = view.getUint8(start);
      const exponent = BigInt(resolution & 0x7f);
      iface.unitsPerSecond = resolution & 0x80 ? 2n ** exponent : 10n ** exponent;
    } else if (code === Option.IF_TSOFFSET && length === 8) {
      iface.offsetSeconds = view.getBigInt64(start, le);
    }
  });
  return iface;
}

/**
 * Calls `visit` for each option in [start, end). Options only describe; a
 * malformed one ends the list instead of failing the block, as "Options"
 * lets readers do, because the packet itself is still sound.
 */
function forEachOption(
  view: DataView,
  le: boolean,
  start: number,
  end: number,
  visit: (code: number, valueStart: number, length: number) => void,
): void {
  let at = start;
  while (at + 4 <= end) {
    const code = view.getUint16(at, le);
    const length = view.getUint16(at + 2, le);
    if (code === Option.END || at + 4 + length > end) return;
    visit(code, at + 4, length);
    at += 4 + pad4(length);
  }
}

function makePacket(iface: PcapngInterface, data: Uint8Array, originalLength: number): CapturePacket {
  const packet: CapturePacket = { linkType: iface.linkType, data, originalLength };
  if (iface.name !== undefined) packet.interfaceName = iface.name;
  return packet;
}

/** A 64-bit pcapng timestamp in milliseconds; BigInt keeps nanosecond counts (above 2^53) exact until the division. */
function timestampMs(iface: PcapngInterface, units: bigint): number {
  const perSecond = iface.unitsPerSecond;
  const seconds = units / perSecond + iface.offsetSeconds;
  const fraction = units % perSecond;
  return Number(seconds) * 1000 + Number((fraction * 1_000_000n) / perSecond) / 1000;
}

function minimumBlockLength(type: number): number {
  switch (type) {
    case PCAPNG_SHB:
      return 28;
    case BlockType.IDB:
      return 20;
    case BlockType.SPB:
      return 16;
    case BlockType.EPB:
    case BlockType.PACKET:
      return 32;
    default:
      return 12;
  }
}

function blockName(type: number): string {
  switch (type) {
    case PCAPNG_SHB:
      return "Section Header Block";
    case BlockType.IDB:
      return "Interface Description Block";
    case BlockType.EPB:
      return "Enhanced Packet Block";
    case BlockType.SPB:
      return "Simple Packet Block";
    case BlockType.PACKET:
      return "Packet Block";
    default:
      return `block of type 0x${type.toString(16)}`;
  }
}

function pad4(length: number): number {
  return (length + 3) & ~3;
}

function hex(value: number): string {
  return value.toString(16).padStart(8, "0");
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Chunks waiting to be decoded. `peek` joins chunks only when a header or
 * record spans them, and the reader peeks a record only once all of it is
 * queued, so feeding one byte at a time stays linear.
 */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Bytes of #chunks[0] already consumed. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The first `count` queued bytes as one array (count <= length). Not a copy: do not keep it. */
  peek(count: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length - this.#head >= count) return first.subarray(this.#head, this.#head + count);
    const joined = new Uint8Array(count);
    let filled = 0;
    let used = 0;
    let at = this.#head;
    while (filled < count) {
      const chunk = this.#chunks[used]!;
      const take = Math.min(chunk.length - at, count - filled);
      joined.set(chunk.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (at === chunk.length) {
        used++;
        at = 0;
      }
    }
    // Put the joined bytes back in place of the chunks they came from.
    const rest = used < this.#chunks.length && at > 0 ? [this.#chunks[used]!.subarray(at), ...this.#chunks.slice(used + 1)] : this.#chunks.slice(used);
    this.#chunks = [joined, ...rest];
    this.#head = 0;
    return joined;
  }

  skip(count: number): void {
    this.#length -= count;
    let left = count;
    while (left > 0) {
      const first = this.#chunks[0]!;
      const available = first.length - this.#head;
      if (available > left) {
        this.#head += left;
        return;
      }
      left -= available;
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}
