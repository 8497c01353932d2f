/**
 * From a captured packet to the DNS it carries: link layer, IPv4 or IPv6, UDP
 * or TCP, then the DNS message, decoded with dns-packet. Pure; never throws on
 * packet contents: a packet is DNS (one or more observations), malformed DNS
 * (skipped and counted) or something else (skipped).
 *
 * What counts as DNS here:
 * - port 53, UDP and TCP (RFC 1035 section 4.2; TCP messages carry a 2-byte
 *   length prefix, RFC 7766 section 8). Only whole messages inside one TCP
 *   segment are read: a stub's query fits one segment, and reassembling
 *   streams is not worth its cost for a leak check. A message that continues
 *   in the next segment is skipped, not counted as malformed;
 * - mDNS on 5353 (RFC 6762) and LLMNR on 5355 (RFC 4795), same message format;
 * - DNS over TLS to port 853 (RFC 7858): encrypted, so reported without names
 *   as "encrypted DNS leaving this machine"; UDP to 853 (DNS over DTLS,
 *   RFC 8094, or QUIC, RFC 9250) is reported the same way.
 *
 * Link types (https://www.tcpdump.org/linktypes.html): Ethernet (1, with
 * 802.1Q/802.1ad tags), raw IP (101, and 12 and 14 where some BSDs wrote
 * their DLT_RAW value; 228 IPv4, 229 IPv6), Linux cooked SLL (113) and SLL2
 * (276, which carries the interface index), BSD loopback NULL (0, address
 * family in the capturing host's byte order) and OpenBSD LOOP (108, network
 * byte order).
 */
import { Buffer } from "node:buffer";
import dnsPacket, { type DecodedPacket } from "dns-packet";
import { formatAddress } from "../address.ts";
import type { CapturePacket } from "./pcap.ts";

export type DnsProtocol = "dns" | "mdns" | "llmnr" | "dot";

export interface Endpoint {
  address: string;
  port: number;
}

/** One DNS message (or, for DoT, one encrypted segment) seen in a capture. */
export interface DnsObservation {
  /** Capture timestamp, milliseconds since 1970-01-01 UTC, when the capture has one. */
  time?: number;
  protocol: DnsProtocol;
  transport: "udp" | "tcp";
  from: Endpoint;
  to: Endpoint;
  /** True for a query (QR bit clear), and for every DoT segment sent to port 853. */
  query: boolean;
  /** Question names as sent (no final dot); a response without questions gives its answers' names. Empty for DoT. */
  names: string[];
  /** Question types ("A", "AAAA", "HTTPS"...), in the same way. */
  types: string[];
  /** pcapng if_name of the capturing interface. */
  interfaceName?: string;
  /** Linux SLL2 interface index (see /sys/class/net/NAME/ifindex), when the capture has no name. */
  interfaceIndex?: number;
  /** The sending process, when the capture records it (pcapng epb_processid_threadid). */
  processId?: number;
}

export type FrameDecoding =
  | { status: "dns"; observations: DnsObservation[] }
  /** A DNS port, but the payload is not a DNS message dns-packet can read. */
  | { status: "malformed"; reason: string }
  /** Not DNS traffic, or nothing this module reads (another link type, an IP fragment...). */
  | { status: "skipped"; reason: string };

export interface DnsFrameOptions {
  /**
   * More ports that carry plain DNS, besides 53: a local resolver on a
   * non-standard port (dnsmasq, a test's own server).
   * @default []
   */
  extraDnsPorts?: readonly number[];
}

export const DNS_PORT = 53;
export const MDNS_PORT = 5353;
export const LLMNR_PORT = 5355;
export const DOT_PORT = 853;

const IP_PROTOCOL_TCP = 6;
const IP_PROTOCOL_UDP = 17;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
/** 802.1Q, 802.1ad and the older QinQ value: a 4-byte tag before the real EtherType. */
const VLAN_ETHERTYPES = new Set([0x8100, 0x88a8, 0x9100]);
/** AF_INET6 in BSD loopback headers: NetBSD/OpenBSD 24, FreeBSD 28, macOS 30 (LINKTYPE_NULL). */
const BSD_AF_INET6 = new Set([24, 28, 30]);
const BSD_AF_INET = 2;

/**
 * Decodes one packet.
 *
 * @example
 * const result = decodeDnsFrame(packet);
 * if (result.status === "dns") console.log(result.observations[0].names);
 */
export function decodeDnsFrame(packet: CapturePacket, options: DnsFrameOptions = {}): FrameDecoding {
  const link = networkLayer(packet.linkType, packet.data);
  if ("skip" in link) return { status: "skipped", reason: link.skip };
  const ip = link.version === 4 ? parseIPv4(link.bytes) : parseIPv6(link.bytes);
  if ("skip" in ip) return { status: "skipped", reason: ip.skip };
  const context: Context = {};
  if (packet.timestampMs !== undefined) context.time = packet.timestampMs;
  if (packet.interfaceName !== undefined) context.interfaceName = packet.interfaceName;
  else if (link.interfaceIndex !== undefined) context.interfaceIndex = link.interfaceIndex;
  if (packet.processId !== undefined) context.processId = packet.processId;
  return decodeTransport(ip, context, new Set([DNS_PORT, ...(options.extraDnsPorts ?? [])]));
}

/** How many packets a DnsFrameDecoder has seen, and what became of them. */
export interface DnsFrameCounts {
  packets: number;
  /** Packets that gave at least one observation. */
  dns: number;
  /** Packets on a DNS port whose payload could not be decoded. */
  malformed: number;
  /** Everything else. */
  skipped: number;
}

/**
 * decodeDnsFrame over a stream of packets, with counts for the report.
 *
 * @example
 * const decoder = new DnsFrameDecoder();
 * for (const packet of reader.push(chunk)) observations.push(...decoder.decode(packet));
 * decoder.counts.malformed // packets skipped because their DNS could not be read
 */
export class DnsFrameDecoder {
  readonly counts: DnsFrameCounts = { packets: 0, dns: 0, malformed: 0, skipped: 0 };
  readonly #options: DnsFrameOptions;

  constructor(options: DnsFrameOptions = {}) {
    this.#options = options;
  }

  decode(packet: CapturePacket): DnsObservation[] {
    this.counts.packets++;
    const result = decodeDnsFrame(packet, this.#options);
    this.counts[result.status === "dns" ? "dns" : result.status]++;
    return result.status === "dns" ? result.observations : [];
  }
}

type NetworkLayer = { version: 4 | 6; bytes: Uint8Array; interfaceIndex?: number } | { skip: string };

function networkLayer(linkType: number, data: Uint8Array): NetworkLayer {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (linkType) {
    case 1: {
      let at = 12;
      while (at + 2 <= data.length && VLAN_ETHERTYPES.has(view.getUint16(at))) at += 4;
      if (at + 2 > data.length) return { skip: "Ethernet frame too short" };
      return byEtherType(view.getUint16(at), data.subarray(at + 2));
    }
    case 12:
    case 14:
    case 101:
      return byVersionNibble(data);
    case 228:
      return { version: 4, bytes: data };
    case 229:
      return { version: 6, bytes: data };
    case 113: {
      // Linux cooked capture v1: 16-byte header, protocol (EtherType) last.
      if (data.length < 16) return { skip: "Linux SLL header too short" };
      return byEtherType(view.getUint16(14), data.subarray(16));
    }
    case 276: {
      // Linux cooked capture v2: 20-byte header, protocol first, then reserved, interface index.
      if (data.length < 20) return { skip: "Linux SLL2 header too short" };
      const layer = byEtherType(view.getUint16(0), data.subarray(20));
      if ("skip" in layer) return layer;
      return { ...layer, interfaceIndex: view.getUint32(4) };
    }
    case 0:
    case 108: {
      if (data.length < 4) return { skip: "loopback header too short" };
      // LINKTYPE_NULL is in the capturing host's byte order; the family is
      // small, so a zero first byte means big-endian. LOOP is always big-endian.
      const littleEndian = linkType === 0 && data[0] !== 0;
      const family = view.getUint32(0, littleEndian);
      const bytes = data.subarray(4);
      if (family === BSD_AF_INET) return { version: 4, bytes };
      if (BSD_AF_INET6.has(family)) return { version: 6, bytes };
      return { skip: `loopback address family ${family}` };
    }
    default:
      return { skip: `link type ${linkType}` };
  }
}

function byEtherType(etherType: number, bytes: Uint8Array): NetworkLayer {
  if (etherType === ETHERTYPE_IPV4) return { version: 4, bytes };
  if (etherType === ETHERTYPE_IPV6) return { version: 6, bytes };
  return { skip: `EtherType 0x${etherType.toString(16).padStart(4, "0")}` };
}

function byVersionNibble(bytes: Uint8Array): NetworkLayer {
  const version = bytes.length > 0 ? bytes[0]! >> 4 : 0;
  if (version === 4 || version === 6) return { version, bytes };
  return { skip: `raw IP packet of version ${version}` };
}

interface IpPacket {
  source: string;
  destination: string;
  protocol: number;
  payload: Uint8Array;
}

/** RFC 791 section 3.1. */
function parseIPv4(bytes: Uint8Array): IpPacket | { skip: string } {
  if (bytes.length < 20 || bytes[0]! >> 4 !== 4) return { skip: "not an IPv4 header" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = (bytes[0]! & 0x0f) * 4;
  const totalLength = view.getUint16(2);
  if (headerLength < 20 || bytes.length < headerLength) return { skip: "bad IPv4 header length" };
  // A total length of 0 is what captures of TSO/GSO packets show: take what was captured.
  const end = totalLength === 0 ? bytes.length : Math.min(totalLength, bytes.length);
  if (end < headerLength) return { skip: "bad IPv4 total length" };
  const fragment = view.getUint16(6);
  if ((fragment & 0x2000) !== 0 || (fragment & 0x1fff) !== 0) return { skip: "IPv4 fragment" };
  return {
    source: formatAddress(bytes.subarray(12, 16)),
    destination: formatAddress(bytes.subarray(16, 20)),
    protocol: bytes[9]!,
    payload: bytes.subarray(headerLength, end),
  };
}

/** IPv6 extension headers with the RFC 8200 section 4 layout (next header, length in 8-octet units after the first 8): Hop-by-Hop, Routing, Destination Options, Mobility, HIP, Shim6 (RFC 6564). */
const GENERIC_EXTENSION_HEADERS = new Set([0, 43, 60, 135, 139, 140]);
const IPV6_FRAGMENT = 44;
const IPV6_AUTHENTICATION = 51;

/** RFC 8200 sections 3 and 4. */
function parseIPv6(bytes: Uint8Array): IpPacket | { skip: string } {
  if (bytes.length < 40 || bytes[0]! >> 4 !== 6) return { skip: "not an IPv6 header" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payloadLength = view.getUint16(4);
  // 0 is a jumbogram (RFC 2675) or a TSO capture: take what was captured.
  const end = payloadLength === 0 ? bytes.length : Math.min(40 + payloadLength, bytes.length);
  let next = bytes[6]!;
  let at = 40;
  // Each header moves `at` forward by at least 8, so this ends.
  for (;;) {
    if (GENERIC_EXTENSION_HEADERS.has(next)) {
      if (at + 8 > end) return { skip: "IPv6 extension header cut short" };
      const following = bytes[at]!;
      at += (bytes[at + 1]! + 1) * 8;
      next = following;
    } else if (next === IPV6_AUTHENTICATION) {
      // RFC 4302 section 2.2: its length is in 4-octet units, minus 2.
      if (at + 8 > end) return { skip: "IPv6 authentication header cut short" };
      const following = bytes[at]!;
      at += (bytes[at + 1]! + 2) * 4;
      next = following;
    } else if (next === IPV6_FRAGMENT) {
      if (at + 8 > end) return { skip: "IPv6 fragment header cut short" };
      // An atomic fragment (offset 0, no more fragments; RFC 6946) is a whole packet.
      const offsetAndMore = view.getUint16(at + 2);
      if ((offsetAndMore & 0xfff9) !== 0) return { skip: "IPv6 fragment" };
      next = bytes[at]!;
      at += 8;
    } else {
      break;
    }
  }
  if (at > end) return { skip: "IPv6 extension headers run past the packet" };
  return {
    source: formatAddress(bytes.subarray(8, 24)),
    destination: formatAddress(bytes.subarray(24, 40)),
    protocol: next,
    payload: bytes.subarray(at, end),
  };
}

type Context = Omit<DnsObservation, "protocol" | "transport" | "from" | "to" | "query" | "names" | "types">;

/** The DNS protocol a port pair speaks: the server's port decides, and the destination is tried first. */
function protocolFor(sourcePort: number, destinationPort: number, dnsPorts: ReadonlySet<number>): DnsProtocol | undefined {
  for (const port of [destinationPort, sourcePort]) {
    if (dnsPorts.has(port)) return "dns";
    if (port === MDNS_PORT) return "mdns";
    if (port === LLMNR_PORT) return "llmnr";
    if (port === DOT_PORT) return "dot";
  }
  return undefined;
}

/** A UDP datagram or TCP segment between DNS ports, ready for its payload to be read. */
interface Flow {
  segment: Uint8Array;
  view: DataView;
  protocol: DnsProtocol;
  to: Endpoint;
  /** The observation of one message of this flow. */
  seen(message: DecodedMessage): DnsObservation;
}

/** The ports of UDP (RFC 768) or TCP (RFC 9293 section 3.1), then the payload by transport. */
function decodeTransport(ip: IpPacket, context: Context, dnsPorts: ReadonlySet<number>): FrameDecoding {
  const transport = ip.protocol === IP_PROTOCOL_UDP ? "udp" : ip.protocol === IP_PROTOCOL_TCP ? "tcp" : undefined;
  if (transport === undefined) return { status: "skipped", reason: `IP protocol ${ip.protocol}` };
  const segment = ip.payload;
  const name = transport.toUpperCase();
  if (segment.length < (transport === "udp" ? 8 : 20)) return { status: "skipped", reason: `${name} header cut short` };
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  const from = { address: ip.source, port: view.getUint16(0) };
  const to = { address: ip.destination, port: view.getUint16(2) };
  const protocol = protocolFor(from.port, to.port, dnsPorts);
  if (protocol === undefined) return { status: "skipped", reason: `${name}, not a DNS port` };
  const flow: Flow = { segment, view, protocol, to, seen: (message) => observation(context, protocol, transport, from, to, message) };
  return transport === "udp" ? decodeUdp(flow) : decodeTcp(flow);
}

function decodeUdp({ segment, view, protocol, to, seen }: Flow): FrameDecoding {
  if (protocol === "dot") {
    if (to.port !== DOT_PORT) return { status: "skipped", reason: "encrypted DNS reply" };
    return { status: "dns", observations: [seen(ENCRYPTED)] };
  }
  const length = view.getUint16(4);
  if (length < 8) return { status: "malformed", reason: `UDP length ${length}` };
  if (length > segment.length) return { status: "skipped", reason: "UDP datagram cut short by the capture's snapshot length" };
  const message = decodeMessage(segment.subarray(8, length));
  if ("reason" in message) return { status: "malformed", reason: message.reason };
  return { status: "dns", observations: [seen(message)] };
}

function decodeTcp({ segment, protocol, to, seen }: Flow): FrameDecoding {
  const headerLength = (segment[12]! >> 4) * 4;
  if (headerLength < 20 || headerLength > segment.length) return { status: "skipped", reason: "bad TCP data offset" };
  const payload = segment.subarray(headerLength);
  if (protocol === "dot") {
    // The opening SYN and every segment that carries data toward the server;
    // replies and bare ACKs would only repeat the same finding.
    const flags = segment[13]!;
    const opening = (flags & 0x02) !== 0 && (flags & 0x10) === 0;
    if (to.port !== DOT_PORT || (!opening && payload.length === 0)) return { status: "skipped", reason: "DoT segment without news" };
    return { status: "dns", observations: [seen(ENCRYPTED)] };
  }
  if (payload.length === 0) return { status: "skipped", reason: "TCP segment without data" };
  const observations: DnsObservation[] = [];
  let at = 0;
  while (at + 2 <= payload.length) {
    const length = (payload[at]! << 8) | payload[at + 1]!;
    if (at + 2 + length > payload.length) break;
    const message = decodeMessage(payload.subarray(at + 2, at + 2 + length));
    if ("reason" in message) return { status: "malformed", reason: message.reason };
    observations.push(seen(message));
    at += 2 + length;
  }
  if (observations.length === 0) return { status: "skipped", reason: "DNS message continues in another TCP segment" };
  return { status: "dns", observations };
}

type DecodedMessage = Pick<DnsObservation, "query" | "names" | "types">;

/** What a DoT segment to port 853 tells: a query went out, names unknown. */
const ENCRYPTED: DecodedMessage = { query: true, names: [], types: [] };

function observation(context: Context, protocol: DnsProtocol, transport: "udp" | "tcp", from: Endpoint, to: Endpoint, message: DecodedMessage): DnsObservation {
  const { time, ...rest } = context;
  return { ...(time === undefined ? {} : { time }), protocol, transport, from, to, ...message, names: [...message.names], types: [...message.types], ...rest };
}

function decodeMessage(bytes: Uint8Array): DecodedMessage | { reason: string } {
  if (bytes.length < 12) return { reason: `${bytes.length}-byte message, shorter than a DNS header` };
  let message: DecodedPacket;
  try {
    message = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    return { reason: err instanceof Error ? err.message : String(err) };
  }
  const questions = message.questions ?? [];
  const records = questions.length > 0 ? questions : (message.answers ?? []).filter((answer) => answer.type !== "OPT");
  return {
    query: !message.flag_qr,
    names: unique(records.map((record) => record.name)),
    types: unique(records.map((record) => record.type)),
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
