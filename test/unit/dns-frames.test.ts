import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { isTunnelError } from "../../src/errors.ts";
import { readCaptureFile, readCaptureStream } from "../../src/leakcheck/capture-file.ts";
import { decodeDnsFrame, DnsFrameDecoder, type DnsObservation, type FrameDecoding } from "../../src/leakcheck/dns-frames.ts";
import type { CapturePacket } from "../../src/leakcheck/pcap.ts";
import {
  bsdLoopback,
  concat,
  dnsMessage,
  dnsQuery,
  enhancedPacketBlock,
  ethernet,
  EtherType,
  hex,
  interfaceDescriptionBlock,
  ipv4,
  ipv6,
  IpProtocol,
  LinkType,
  linuxSll,
  linuxSll2,
  pcapFile,
  sectionHeaderBlock,
  tcp,
  tcpDnsPayload,
  TcpFlag,
  udp,
} from "../helpers/capture-fixtures.ts";
import { delay, stopChild, watchChild, within } from "../helpers/child.ts";
import { deterministicBytes } from "../helpers/targets.ts";

const CANARY = "x7k2.canary.safetunnel.invalid";

function packet(linkType: number, data: Uint8Array, extra: Partial<CapturePacket> = {}): CapturePacket {
  return { linkType, data, originalLength: data.length, ...extra };
}

function observations(result: FrameDecoding): DnsObservation[] {
  assert.equal(result.status, "dns", `expected DNS, got ${JSON.stringify(result)}`);
  return result.status === "dns" ? result.observations : [];
}

function only(result: FrameDecoding): DnsObservation {
  const list = observations(result);
  assert.equal(list.length, 1);
  return list[0]!;
}

function skipped(result: FrameDecoding, reason: RegExp): void {
  assert.equal(result.status, "skipped", JSON.stringify(result));
  if (result.status === "skipped") assert.match(result.reason, reason);
}

const queryOverUdp4 = (from = "127.0.0.1", to = "127.0.0.53", sport = 41000, dport = 53): Uint8Array =>
  ipv4(from, to, IpProtocol.UDP, udp(sport, dport, dnsQuery(CANARY, "AAAA")));

describe("link layers and IP", () => {
  test("decodes a UDP query in an Ethernet IPv4 frame into one observation", () => {
    const frame = ethernet(EtherType.IPV4, queryOverUdp4());
    assert.deepEqual(only(decodeDnsFrame(packet(LinkType.ETHERNET, frame, { timestampMs: 1234.5, interfaceName: "lo" }))), {
      time: 1234.5,
      protocol: "dns",
      transport: "udp",
      from: { address: "127.0.0.1", port: 41000 },
      to: { address: "127.0.0.53", port: 53 },
      query: true,
      names: [CANARY],
      types: ["AAAA"],
      interfaceName: "lo",
    });
  });

  test("looks through 802.1Q VLAN tags", () => {
    const seen = only(decodeDnsFrame(packet(LinkType.ETHERNET, ethernet(EtherType.IPV4, queryOverUdp4("192.168.1.5", "192.168.1.1"), 42))));
    assert.equal(seen.to.address, "192.168.1.1");
  });

  test("reads Linux cooked SLL and SLL2 frames; SLL2 gives the interface index", () => {
    const sll = only(decodeDnsFrame(packet(LinkType.LINUX_SLL, linuxSll(EtherType.IPV4, queryOverUdp4()))));
    assert.deepEqual(sll.names, [CANARY]);
    assert.equal(sll.interfaceIndex, undefined);
    const sll2 = only(decodeDnsFrame(packet(LinkType.LINUX_SLL2, linuxSll2(EtherType.IPV4, 3, queryOverUdp4()))));
    assert.equal(sll2.interfaceIndex, 3);
    // A capture-level interface name wins over the index.
    const named = only(decodeDnsFrame(packet(LinkType.LINUX_SLL2, linuxSll2(EtherType.IPV4, 3, queryOverUdp4()), { interfaceName: "any" })));
    assert.equal(named.interfaceName, "any");
    assert.equal(named.interfaceIndex, undefined);
  });

  test("reads BSD loopback frames in either byte order, and OpenBSD LOOP, for IPv4 and IPv6", () => {
    const v6 = ipv6("::1", "::1", IpProtocol.UDP, udp(41000, 53, dnsQuery(CANARY)));
    for (const data of [bsdLoopback(2, queryOverUdp4(), "little"), bsdLoopback(2, queryOverUdp4(), "big"), bsdLoopback(30, v6, "little"), bsdLoopback(28, v6, "big")]) {
      assert.deepEqual(only(decodeDnsFrame(packet(LinkType.NULL, data))).names, [CANARY]);
    }
    assert.equal(only(decodeDnsFrame(packet(LinkType.LOOP, bsdLoopback(24, v6, "big")))).from.address, "::1");
    skipped(decodeDnsFrame(packet(LinkType.NULL, bsdLoopback(7, v6, "little"))), /loopback address family 7/);
  });

  test("reads raw IP under each of its link type numbers", () => {
    const v4 = queryOverUdp4();
    const v6 = ipv6("fe80::1", "ff02::fb", IpProtocol.UDP, udp(5353, 5353, dnsQuery("printer.local", "PTR")));
    for (const linkType of [LinkType.RAW, LinkType.RAW_BSD, LinkType.RAW_OPENBSD]) {
      assert.equal(only(decodeDnsFrame(packet(linkType, v4))).protocol, "dns");
      assert.equal(only(decodeDnsFrame(packet(linkType, v6))).protocol, "mdns");
    }
    assert.equal(only(decodeDnsFrame(packet(LinkType.IPV4, v4))).to.port, 53);
    assert.equal(only(decodeDnsFrame(packet(LinkType.IPV6, v6))).to.address, "ff02::fb");
  });

  test("skips IPv6 extension headers it can walk to find UDP", () => {
    const data = ipv6("2001:db8::5", "2001:db8::53", IpProtocol.UDP, udp(41000, 53, dnsQuery(CANARY)), [
      { type: 0, body: new Uint8Array(6) },
      { type: 60, body: new Uint8Array(14) },
      { type: 44, body: hex("0000 00000001") },
    ]);
    const seen = only(decodeDnsFrame(packet(LinkType.RAW, data)));
    assert.deepEqual([seen.from.address, seen.to.address, seen.names], ["2001:db8::5", "2001:db8::53", [CANARY]]);
  });

  test("ignores IPv4 and IPv6 fragments", () => {
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("10.0.0.2", "10.0.0.1", IpProtocol.UDP, udp(41000, 53, dnsQuery(CANARY)), { fragment: 0x2000 }))), /IPv4 fragment/);
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("10.0.0.2", "10.0.0.1", IpProtocol.UDP, hex("00112233"), { fragment: 0x0010 }))), /IPv4 fragment/);
    const moreFragments = ipv6("::1", "::1", IpProtocol.UDP, udp(41000, 53, dnsQuery(CANARY)), [{ type: 44, body: hex("0001 00000001") }]);
    skipped(decodeDnsFrame(packet(LinkType.RAW, moreFragments)), /IPv6 fragment/);
  });

  test("skips what is not DNS: other ports, other protocols, other EtherTypes, unknown link types", () => {
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("10.0.0.2", "10.0.0.1", IpProtocol.UDP, udp(41000, 123, new Uint8Array(48))))), /not a DNS port/);
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("10.0.0.2", "10.0.0.1", IpProtocol.ICMP, new Uint8Array(8)))), /IP protocol 1/);
    skipped(decodeDnsFrame(packet(LinkType.ETHERNET, ethernet(EtherType.ARP, new Uint8Array(28)))), /EtherType 0x0806/);
    skipped(decodeDnsFrame(packet(127, new Uint8Array(40))), /link type 127/);
    skipped(decodeDnsFrame(packet(LinkType.ETHERNET, hex("0102"))), /too short/);
  });
});

describe("DNS, mDNS, LLMNR and DoT", () => {
  test("a response is not a query and names its question", () => {
    const response = dnsMessage({
      type: "response",
      id: 7,
      flags: 0x8180,
      questions: [{ type: "A", name: "example.org" }],
      answers: [{ type: "A", name: "example.org", ttl: 60, data: "192.0.2.1" }],
    });
    const seen = only(decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.53", "127.0.0.1", IpProtocol.UDP, udp(53, 41000, response)))));
    assert.deepEqual([seen.query, seen.names, seen.types, seen.from.port], [false, ["example.org"], ["A"], 53]);
  });

  test("labels mDNS (5353) and LLMNR (5355) by port, and an mDNS announcement by its answers", () => {
    const mdns = only(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "224.0.0.251", IpProtocol.UDP, udp(5353, 5353, dnsQuery(CANARY))))));
    assert.deepEqual([mdns.protocol, mdns.query, mdns.names], ["mdns", true, [CANARY]]);
    const llmnr = only(decodeDnsFrame(packet(LinkType.RAW, ipv6("fe80::5", "ff02::1:3", IpProtocol.UDP, udp(50000, 5355, dnsQuery("fileserver"))))));
    assert.deepEqual([llmnr.protocol, llmnr.names], ["llmnr", ["fileserver"]]);
    const announcement = dnsMessage({ type: "response", id: 0, flags: 0x8400, answers: [{ type: "A", name: "laptop.local", ttl: 120, data: "192.168.1.5" }] });
    const announced = only(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "224.0.0.251", IpProtocol.UDP, udp(5353, 5353, announcement)))));
    assert.deepEqual([announced.query, announced.names, announced.types], [false, ["laptop.local"], ["A"]]);
  });

  test("reads every whole length-prefixed DNS message in one TCP segment", () => {
    const payload = tcpDnsPayload(dnsQuery(CANARY, "A", 1), dnsQuery(CANARY, "AAAA", 2));
    const list = observations(decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.TCP, tcp(41000, 53, payload)))));
    assert.deepEqual(
      list.map((seen) => [seen.transport, seen.protocol, seen.types[0]]),
      [
        ["tcp", "dns", "A"],
        ["tcp", "dns", "AAAA"],
      ],
    );
  });

  test("skips a TCP DNS message that continues in the next segment, and segments without data", () => {
    const whole = tcpDnsPayload(dnsQuery(CANARY));
    const first = whole.subarray(0, 10);
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.TCP, tcp(41000, 53, first)))), /continues in another TCP segment/);
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.TCP, tcp(41000, 53, new Uint8Array(0), TcpFlag.SYN)))), /without data/);
  });

  test("reports DNS over TLS to port 853 without names: the opening SYN and data toward the server", () => {
    const syn = only(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "9.9.9.9", IpProtocol.TCP, tcp(50123, 853, new Uint8Array(0), TcpFlag.SYN)))));
    assert.deepEqual(syn, {
      protocol: "dot",
      transport: "tcp",
      from: { address: "192.168.1.5", port: 50123 },
      to: { address: "9.9.9.9", port: 853 },
      query: true,
      names: [],
      types: [],
    });
    assert.equal(only(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "9.9.9.9", IpProtocol.TCP, tcp(50123, 853, hex("16030100")))))).protocol, "dot");
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "9.9.9.9", IpProtocol.TCP, tcp(50123, 853, new Uint8Array(0), TcpFlag.ACK)))), /without news/);
    skipped(decodeDnsFrame(packet(LinkType.RAW, ipv4("9.9.9.9", "192.168.1.5", IpProtocol.TCP, tcp(853, 50123, hex("17030300"))))), /without news/);
    assert.equal(only(decodeDnsFrame(packet(LinkType.RAW, ipv4("192.168.1.5", "9.9.9.9", IpProtocol.UDP, udp(50123, 853, hex("c0000000")))))).transport, "udp");
  });

  test("treats extra ports as plain DNS when asked", () => {
    const data = ipv4("127.0.0.1", "127.0.0.1", IpProtocol.UDP, udp(41000, 5300, dnsQuery(CANARY)));
    skipped(decodeDnsFrame(packet(LinkType.RAW, data)), /not a DNS port/);
    assert.deepEqual(only(decodeDnsFrame(packet(LinkType.RAW, data), { extraDnsPorts: [5300] })).names, [CANARY]);
  });
});

describe("malformed DNS", () => {
  const malformed: [string, Uint8Array][] = [
    ["a payload shorter than a DNS header", hex("1234 0100 0001")],
    ["a question count with no questions behind it", hex("1234 0100 0005 0000 0000 0000")],
    ["a name that points past the message", hex("1234 0100 0001 0000 0000 0000 c0ff 0001 0001")],
    ["a label running past the message", hex("1234 0100 0001 0000 0000 0000 3f61 6263")],
  ];
  for (const [what, payload] of malformed) {
    test(`${what} is skipped and counted, never thrown`, () => {
      const result = decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.UDP, udp(41000, 53, payload))));
      assert.equal(result.status, "malformed", JSON.stringify(result));
    });
  }

  test("the decoder counts DNS, malformed and other packets and goes on after a bad one", () => {
    const decoder = new DnsFrameDecoder();
    const bad = packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.UDP, udp(41000, 53, malformed[2]![1])));
    const good = packet(LinkType.RAW, queryOverUdp4());
    const other = packet(LinkType.RAW, ipv4("10.0.0.2", "10.0.0.1", IpProtocol.UDP, udp(41000, 123, new Uint8Array(48))));
    const seen = [bad, good, other, bad, good].flatMap((p) => decoder.decode(p));
    assert.equal(seen.length, 2);
    assert.deepEqual(decoder.counts, { packets: 5, dns: 2, malformed: 2, skipped: 1 });
  });

  test("a TCP segment with one malformed message among good ones is skipped whole", () => {
    const payload = tcpDnsPayload(dnsQuery(CANARY), malformed[2]![1]);
    assert.equal(decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", IpProtocol.TCP, tcp(41000, 53, payload)))).status, "malformed");
  });

  test("random payloads on port 53 never throw", () => {
    for (let round = 0; round < 500; round++) {
      const payload = new Uint8Array(deterministicBytes(round % 80, round + 1));
      const result = decodeDnsFrame(packet(LinkType.RAW, ipv4("127.0.0.1", "127.0.0.53", round % 2 ? IpProtocol.UDP : IpProtocol.TCP, round % 2 ? udp(41000, 53, payload) : tcp(41000, 53, payload))));
      assert.ok(["dns", "malformed", "skipped"].includes(result.status));
    }
  });
});

describe("capture files and streams", () => {
  test("a pcapng with two interfaces of different link types gives each observation its interface and time", async () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET, name: "lo" }),
      interfaceDescriptionBlock("little", { linkType: LinkType.LINUX_SLL2, name: "any", tsresol: 9 }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 1_700_000_000_000_000n, data: ethernet(EtherType.IPV4, queryOverUdp4()) }),
      enhancedPacketBlock("little", {
        interfaceId: 1,
        timestamp: 1_700_000_001_000_000_000n,
        data: linuxSll2(EtherType.IPV6, 2, ipv6("2001:db8::5", "2001:db8::1", IpProtocol.UDP, udp(41001, 53, dnsQuery("example.org")))),
      }),
    );
    const analysis = await readCaptureStream([file.subarray(0, 50), file.subarray(50)]);
    assert.equal(analysis.format, "pcapng");
    assert.deepEqual(
      analysis.observations.map((seen) => [seen.time, seen.interfaceName, seen.names[0]]),
      [
        [1_700_000_000_000, "lo", CANARY],
        [1_700_000_001_000, "any", "example.org"],
      ],
    );
    assert.deepEqual(analysis.counts, { packets: 2, dns: 2, malformed: 0, skipped: 0 });
  });

  test("readCaptureStream with keep false hands every observation to onObservation and keeps none", async () => {
    const file = concat(
      sectionHeaderBlock("little"),
      interfaceDescriptionBlock("little", { linkType: LinkType.ETHERNET, name: "lo" }),
      enhancedPacketBlock("little", { interfaceId: 0, timestamp: 1_700_000_000_000_000n, data: ethernet(EtherType.IPV4, queryOverUdp4()) }),
    );
    const seen: string[] = [];
    const analysis = await readCaptureStream([file], { keep: false, onObservation: (observation) => seen.push(observation.names[0]!) });
    assert.deepEqual(seen, [CANARY]);
    assert.deepEqual(analysis.observations, []);
    assert.deepEqual(analysis.counts, { packets: 1, dns: 1, malformed: 0, skipped: 0 });
  });

  test("readCaptureFile reads a file and names it in its errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safetunnel-pcap-"));
    try {
      const good = join(dir, "dns.pcap");
      await writeFile(good, pcapFile({ endian: "little", linkType: LinkType.RAW }, [{ seconds: 1, fraction: 0, data: queryOverUdp4() }]));
      const analysis = await readCaptureFile(good);
      assert.deepEqual(analysis.observations.map((seen) => seen.names), [[CANARY]]);
      const cut = join(dir, "cut.pcap");
      const bytes = pcapFile({ endian: "little", linkType: LinkType.RAW }, [{ seconds: 1, fraction: 0, data: queryOverUdp4() }]);
      await writeFile(cut, bytes.subarray(0, bytes.length - 1));
      await assert.rejects(readCaptureFile(cut), (err: unknown) => isTunnelError(err, "BAD_CAPTURE") && err.message.startsWith(`${cut}: The capture is cut off at byte`));
      await assert.rejects(readCaptureFile(join(dir, "missing.pcap")), (err: unknown) => isTunnelError(err, "BAD_CAPTURE") && err.message === `Cannot read the capture ${join(dir, "missing.pcap")}: no such file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** tcpdump, when this process may capture with it (root; CAP_NET_RAW alone is not checked) and it is installed. */
function tcpdumpPath(): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].find((candidate) => existsSync(candidate));
}

test("a real tcpdump capture of a loopback DNS query to our own UDP socket decodes to that query", async (t) => {
  const tcpdump = tcpdumpPath();
  if (tcpdump === undefined) {
    t.skip("needs root and tcpdump (apt-get install -y tcpdump)");
    return;
  }
  const server = await boundUdp();
  const client = await boundUdp();
  const port = (server.address() as { port: number }).port;
  const clientPort = (client.address() as { port: number }).port;
  // Only loopback, only our port, one packet, packet-buffered to stdout.
  const watched = watchChild(spawn(tcpdump, ["-i", "lo", "-n", "-U", "-c", "1", "-w", "-", `udp and dst port ${port}`], { stdio: ["ignore", "pipe", "pipe"] }));
  try {
    let stderr = "";
    watched.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const analysis = readCaptureStream(watched.child.stdout!, { extraDnsPorts: [port] });
    // If the wait below gives up, stopping tcpdump may end the stream mid-record: that rejection is expected.
    analysis.catch(() => undefined);
    for (let i = 0; i < 100 && !stderr.includes("listening on"); i++) await delay(50);
    assert.match(stderr, /listening on lo/);
    const query = dnsQuery(CANARY, "A", 0x4242);
    await new Promise<void>((resolve, reject) => client.send(query, port, "127.0.0.1", (err) => (err ? reject(err) : resolve())));
    const result = await within(analysis, 10_000);
    assert.ok(result !== undefined, `tcpdump gave no packet in 10 s: ${stderr}`);
    assert.equal(result.format, "pcap");
    const [seen] = result.observations;
    assert.deepEqual(
      { ...seen, time: undefined },
      { time: undefined, protocol: "dns", transport: "udp", from: { address: "127.0.0.1", port: clientPort }, to: { address: "127.0.0.1", port }, query: true, names: [CANARY], types: ["A"] },
    );
    assert.ok(Math.abs(seen!.time! - Date.now()) < 60_000, `capture time ${seen!.time} is not now`);
  } finally {
    await stopChild(watched);
    server.close();
    client.close();
  }
});

function boundUdp(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve(socket));
  });
}
