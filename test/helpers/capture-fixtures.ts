/**
 * Capture fixtures built in code: pcap and pcapng files (draft-ietf-opsawg-pcap,
 * draft-ietf-opsawg-pcapng), link-layer frames, IPv4/IPv6, UDP/TCP and DNS
 * messages (dns-packet's encoder). Writers only; the readers under test must
 * agree with them byte for byte, and pcap.test.ts also pins hand-written hex.
 */
import { Buffer } from "node:buffer";
import dnsPacket, { type Packet, type RecordType } from "dns-packet";
import { parseIPv4, parseIPv6 } from "../../src/address.ts";

export type Endian = "little" | "big";

/** Bytes from hex text; blanks are ignored so fixtures can group fields. */
export function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\s+/g, ""), "hex"));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A little writer of fixed-width fields in one byte order. */
class Fields {
  readonly #bytes: number[] = [];
  constructor(readonly endian: Endian) {}

  u8(value: number): this {
    this.#bytes.push(value & 0xff);
    return this;
  }

  u16(value: number): this {
    const b = [(value >> 8) & 0xff, value & 0xff];
    this.#bytes.push(...(this.endian === "big" ? b : b.reverse()));
    return this;
  }

  u32(value: number): this {
    const b = [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
    this.#bytes.push(...(this.endian === "big" ? b : b.reverse()));
    return this;
  }

  u64(value: bigint): this {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, BigInt.asUintN(64, value), this.endian === "little");
    this.#bytes.push(...new Uint8Array(view.buffer));
    return this;
  }

  bytes(data: Uint8Array): this {
    this.#bytes.push(...data);
    return this;
  }

  /** Zero bytes up to the next multiple of 4. */
  pad4(): this {
    while (this.#bytes.length % 4 !== 0) this.#bytes.push(0);
    return this;
  }

  done(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

// ---------------------------------------------------------------------------
// pcap (draft-ietf-opsawg-pcap: "File Header", "Packet Record")

export interface PcapRecord {
  seconds: number;
  /** Microseconds, or nanoseconds in a nanosecond file. */
  fraction: number;
  data: Uint8Array;
  /** @default data.length */
  originalLength?: number;
  /** Overrides the captured length field (for corrupt records). */
  capturedLength?: number;
}

export interface PcapOptions {
  endian: Endian;
  nanoseconds?: boolean;
  linkType: number;
  /** @default 262144 */
  snapLen?: number;
}

export function pcapHeader(options: PcapOptions): Uint8Array {
  return new Fields(options.endian)
    .u32(options.nanoseconds === true ? 0xa1b23c4d : 0xa1b2c3d4)
    .u16(2)
    .u16(4)
    .u32(0)
    .u32(0)
    .u32(options.snapLen ?? 262144)
    .u32(options.linkType)
    .done();
}

export function pcapRecord(endian: Endian, record: PcapRecord): Uint8Array {
  return new Fields(endian)
    .u32(record.seconds)
    .u32(record.fraction)
    .u32(record.capturedLength ?? record.data.length)
    .u32(record.originalLength ?? record.data.length)
    .bytes(record.data)
    .done();
}

export function pcapFile(options: PcapOptions, records: PcapRecord[]): Uint8Array {
  return concat(pcapHeader(options), ...records.map((record) => pcapRecord(options.endian, record)));
}

// ---------------------------------------------------------------------------
// pcapng (draft-ietf-opsawg-pcapng: "General Block Structure", "Block Definition")

/** One option: code, length, value padded to 32 bits ("Options"). */
export function pcapngOption(endian: Endian, code: number, value: Uint8Array): Uint8Array {
  return new Fields(endian).u16(code).u16(value.length).bytes(value).pad4().done();
}

function optionList(endian: Endian, options: Uint8Array[]): Uint8Array {
  return options.length === 0 ? new Uint8Array(0) : concat(...options, new Fields(endian).u16(0).u16(0).done());
}

/** Any block: type, total length, body padded to 32 bits, total length again ("General Block Structure"). */
export function pcapngBlock(endian: Endian, type: number, body: Uint8Array, lengths: { leading?: number; trailing?: number } = {}): Uint8Array {
  const padded = new Fields(endian).bytes(body).pad4().done();
  const total = 12 + padded.length;
  return new Fields(endian)
    .u32(type)
    .u32(lengths.leading ?? total)
    .bytes(padded)
    .u32(lengths.trailing ?? total)
    .done();
}

export function sectionHeaderBlock(endian: Endian, options: { major?: number; minor?: number } = {}): Uint8Array {
  const body = new Fields(endian)
    .u32(0x1a2b3c4d)
    .u16(options.major ?? 1)
    .u16(options.minor ?? 0)
    .u64(-1n)
    .done();
  return pcapngBlock(endian, 0x0a0d0d0a, body);
}

export interface InterfaceOptions {
  linkType: number;
  /** @default 0 (no limit) */
  snapLen?: number;
  name?: string;
  /** The if_tsresol byte: 6 microseconds, 9 nanoseconds, 0x80|n for 2^-n. */
  tsresol?: number;
  /** if_tsoffset, seconds. */
  tsoffset?: bigint;
}

export function interfaceDescriptionBlock(endian: Endian, options: InterfaceOptions): Uint8Array {
  const list: Uint8Array[] = [];
  if (options.name !== undefined) list.push(pcapngOption(endian, 2, new TextEncoder().encode(options.name)));
  if (options.tsresol !== undefined) list.push(pcapngOption(endian, 9, Uint8Array.of(options.tsresol)));
  if (options.tsoffset !== undefined) list.push(pcapngOption(endian, 14, new Fields(endian).u64(options.tsoffset).done()));
  const body = new Fields(endian)
    .u16(options.linkType)
    .u16(0)
    .u32(options.snapLen ?? 0)
    .bytes(optionList(endian, list))
    .done();
  return pcapngBlock(endian, 1, body);
}

export interface EnhancedPacketOptions {
  interfaceId: number;
  /** In the interface's units (if_tsresol). */
  timestamp: bigint;
  data: Uint8Array;
  originalLength?: number;
  capturedLength?: number;
  processId?: number;
}

export function enhancedPacketBlock(endian: Endian, options: EnhancedPacketOptions): Uint8Array {
  const list: Uint8Array[] = [];
  if (options.processId !== undefined) list.push(pcapngOption(endian, 8, new Fields(endian).u32(options.processId).u32(0).done()));
  const body = new Fields(endian)
    .u32(options.interfaceId)
    .u32(Number(options.timestamp >> 32n))
    .u32(Number(options.timestamp & 0xffffffffn))
    .u32(options.capturedLength ?? options.data.length)
    .u32(options.originalLength ?? options.data.length)
    .bytes(options.data)
    .pad4()
    .bytes(optionList(endian, list))
    .done();
  return pcapngBlock(endian, 6, body);
}

export function simplePacketBlock(endian: Endian, options: { data: Uint8Array; originalLength?: number }): Uint8Array {
  const body = new Fields(endian)
    .u32(options.originalLength ?? options.data.length)
    .bytes(options.data)
    .done();
  return pcapngBlock(endian, 3, body);
}

// ---------------------------------------------------------------------------
// Link layers (https://www.tcpdump.org/linktypes.html)

export const LinkType = { NULL: 0, ETHERNET: 1, RAW_BSD: 12, RAW_OPENBSD: 14, RAW: 101, LOOP: 108, LINUX_SLL: 113, IPV4: 228, IPV6: 229, LINUX_SLL2: 276 } as const;
export const EtherType = { IPV4: 0x0800, IPV6: 0x86dd, ARP: 0x0806, VLAN: 0x8100 } as const;

export function ethernet(etherType: number, payload: Uint8Array, vlanId?: number): Uint8Array {
  const fields = new Fields("big").bytes(hex("02 00 00 00 00 02 02 00 00 00 00 01"));
  if (vlanId !== undefined) fields.u16(EtherType.VLAN).u16(vlanId);
  return fields.u16(etherType).bytes(payload).done();
}

/** Linux cooked v1: packet type, ARPHRD type, address length, 8-byte address, protocol. */
export function linuxSll(protocol: number, payload: Uint8Array, packetType = 4): Uint8Array {
  return new Fields("big").u16(packetType).u16(772).u16(6).bytes(new Uint8Array(8)).u16(protocol).bytes(payload).done();
}

/** Linux cooked v2: protocol, reserved, interface index, ARPHRD type, packet type, address length, 8-byte address. */
export function linuxSll2(protocol: number, interfaceIndex: number, payload: Uint8Array, packetType = 4): Uint8Array {
  return new Fields("big").u16(protocol).u16(0).u32(interfaceIndex).u16(772).u8(packetType).u8(6).bytes(new Uint8Array(8)).bytes(payload).done();
}

/** BSD loopback: a 4-byte address family in the writer's byte order (LINKTYPE_NULL) or big-endian (LOOP). */
export function bsdLoopback(family: number, payload: Uint8Array, endian: Endian): Uint8Array {
  return new Fields(endian).u32(family).bytes(payload).done();
}

// ---------------------------------------------------------------------------
// IP, UDP, TCP

function address(text: string): Uint8Array {
  const bytes = parseIPv4(text) ?? parseIPv6(text);
  if (bytes === null) throw new Error(`not an address: ${text}`);
  return bytes;
}

export const IpProtocol = { TCP: 6, UDP: 17, ICMP: 1 } as const;

/** RFC 791 header without options. `fragment` is the flags/offset word (0x2000 = more fragments). */
export function ipv4(source: string, destination: string, protocol: number, payload: Uint8Array, options: { fragment?: number } = {}): Uint8Array {
  return new Fields("big")
    .u8(0x45)
    .u8(0)
    .u16(20 + payload.length)
    .u16(0x1234)
    .u16(options.fragment ?? 0x4000)
    .u8(64)
    .u8(protocol)
    .u16(0)
    .bytes(address(source))
    .bytes(address(destination))
    .bytes(payload)
    .done();
}

/** An IPv6 extension header of the RFC 8200 generic form, `body` padded to make the header a multiple of 8. */
export interface ExtensionHeader {
  type: number;
  body?: Uint8Array;
}

/** RFC 8200; `extensions` are chained in order before `protocol`. */
export function ipv6(source: string, destination: string, protocol: number, payload: Uint8Array, extensions: ExtensionHeader[] = []): Uint8Array {
  const chain: Uint8Array[] = [];
  extensions.forEach((extension, i) => {
    const next = i + 1 < extensions.length ? extensions[i + 1]!.type : protocol;
    if (extension.type === 44) {
      chain.push(new Fields("big").u8(next).u8(0).bytes(extension.body ?? new Uint8Array(6)).done());
      return;
    }
    const body = extension.body ?? new Uint8Array(6);
    const length = Math.ceil((2 + body.length) / 8) * 8;
    const header = new Uint8Array(length);
    header[0] = next;
    header[1] = length / 8 - 1;
    header.set(body, 2);
    chain.push(header);
  });
  const rest = concat(...chain, payload);
  return new Fields("big")
    .u32(0x60000000)
    .u16(rest.length)
    .u8(extensions.length > 0 ? extensions[0]!.type : protocol)
    .u8(64)
    .bytes(address(source))
    .bytes(address(destination))
    .bytes(rest)
    .done();
}

export function udp(sourcePort: number, destinationPort: number, payload: Uint8Array): Uint8Array {
  return new Fields("big").u16(sourcePort).u16(destinationPort).u16(8 + payload.length).u16(0).bytes(payload).done();
}

export const TcpFlag = { FIN: 0x01, SYN: 0x02, PSH: 0x08, ACK: 0x10 } as const;

export function tcp(sourcePort: number, destinationPort: number, payload: Uint8Array, flags: number = TcpFlag.PSH | TcpFlag.ACK): Uint8Array {
  return new Fields("big")
    .u16(sourcePort)
    .u16(destinationPort)
    .u32(1000)
    .u32(flags & TcpFlag.ACK ? 2000 : 0)
    .u8(5 << 4)
    .u8(flags)
    .u16(65535)
    .u16(0)
    .u16(0)
    .bytes(payload)
    .done();
}

// ---------------------------------------------------------------------------
// DNS (RFC 1035 section 4; dns-packet's encoder)

export function dnsQuery(name: string, type: RecordType = "A", id = 0x1234): Uint8Array {
  return dnsMessage({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }] });
}

export function dnsMessage(packet: Packet): Uint8Array {
  return new Uint8Array(dnsPacket.encode(packet));
}

/** DNS over TCP: each message after its 2-byte length (RFC 1035 section 4.2.2). */
export function tcpDnsPayload(...messages: Uint8Array[]): Uint8Array {
  return concat(...messages.map((message) => concat(new Fields("big").u16(message.length).done(), message)));
}
