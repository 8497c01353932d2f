import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { DnsObservation } from "../../src/leakcheck/dns-frames.ts";
import { MAX_KEPT, startLiveCapture } from "../../src/leakcheck/live-capture.ts";
import { dnsQuery, EtherType, IpProtocol, ipv4, LinkType, linuxSll2, pcapFile, udp, type PcapRecord } from "../helpers/capture-fixtures.ts";
import { fakeTcpdump, type FakeTcpdump } from "../helpers/fake-tcpdump.ts";
import { bounded, waitFor } from "../helpers/wait.ts";

/** 2023-11-14T22:13:20Z. */
const SECONDS = 1_700_000_000;
const CANARY = "st-canary-7f3a.invalid";
const FILLER = MAX_KEPT + 5;
const TOTAL = FILLER + 2;

/** The arguments live-capture.ts gives tcpdump: every interface, packet-buffered pcap on stdout, DNS ports. */
const TCPDUMP_ARGS = ["-i", "any", "-U", "-n", "-w", "-", "port 53 or port 5353 or port 5355 or port 853"];

function query(interfaceIndex: number, from: string, to: string, sourcePort: number, name: string, type: "A" | "AAAA"): Uint8Array {
  return linuxSll2(EtherType.IPV4, interfaceIndex, ipv4(from, to, IpProtocol.UDP, udp(sourcePort, 53, dnsQuery(name, type))));
}

/** MAX_KEPT + 5 queries for example.org, then an A and an AAAA query for the canary, as `tcpdump -i any -w -` writes them. */
const CAPTURE: Uint8Array = (() => {
  const filler = query(2, "192.0.2.10", "192.0.2.53", 40000, "example.org", "A");
  const records: PcapRecord[] = Array.from({ length: FILLER }, (_, i) => ({ seconds: SECONDS, fraction: i, data: filler }));
  records.push({ seconds: SECONDS + 1, fraction: 0, data: query(1, "127.0.0.1", "127.0.0.53", 41001, CANARY, "A") });
  records.push({ seconds: SECONDS + 1, fraction: 500_000, data: query(1, "127.0.0.1", "127.0.0.53", 41002, CANARY, "AAAA") });
  return pcapFile({ endian: "little", linkType: LinkType.LINUX_SLL2 }, records);
})();

const FIRST_FILLER: DnsObservation = {
  time: SECONDS * 1000,
  protocol: "dns",
  transport: "udp",
  from: { address: "192.0.2.10", port: 40000 },
  to: { address: "192.0.2.53", port: 53 },
  query: true,
  names: ["example.org"],
  types: ["A"],
  interfaceIndex: 2,
};

const CANARY_QUERIES: DnsObservation[] = [
  {
    time: (SECONDS + 1) * 1000,
    protocol: "dns",
    transport: "udp",
    from: { address: "127.0.0.1", port: 41001 },
    to: { address: "127.0.0.53", port: 53 },
    query: true,
    names: [CANARY],
    types: ["A"],
    interfaceIndex: 1,
  },
  {
    time: (SECONDS + 1) * 1000 + 500,
    protocol: "dns",
    transport: "udp",
    from: { address: "127.0.0.1", port: 41002 },
    to: { address: "127.0.0.53", port: 53 },
    query: true,
    names: [CANARY],
    types: ["AAAA"],
    interfaceIndex: 1,
  },
];

const fakes: FakeTcpdump[] = [];
after(async () => {
  for (const fake of fakes.splice(0)) await fake.cleanup();
});

async function newFake(): Promise<FakeTcpdump> {
  const fake = await fakeTcpdump(CAPTURE);
  fakes.push(fake);
  return fake;
}

/** How many observations carry the name `name`. */
function named(observations: DnsObservation[], name: string): number {
  return observations.filter((observation) => observation.names.length === 1 && observation.names[0] === name).length;
}

describe("startLiveCapture", () => {
  test("keeps the first MAX_KEPT observations and every one mustKeep picks, counts the others as dropped, and reports all of them", async () => {
    const fake = await newFake();
    const seen: DnsObservation[] = [];
    const capture = await startLiveCapture({
      command: fake.command,
      mustKeep: (observation) => observation.names.includes(CANARY),
      onObservation: (observation) => seen.push(observation),
    });
    // Stop only once everything is decoded, so stop()'s grace period for the rest of the output plays no part.
    await waitFor(() => seen.length === TOTAL, `${TOTAL} observations`, () => `${seen.length} so far`);
    assert.equal(await bounded(capture.stop(), "stop()", 10_000), undefined);

    assert.equal(seen.length, TOTAL);
    assert.equal(named(seen, "example.org"), FILLER);
    assert.deepEqual(seen.slice(-2), CANARY_QUERIES);

    assert.equal(capture.observations.length, MAX_KEPT + 2);
    assert.deepEqual(capture.observations[0], FIRST_FILLER);
    assert.equal(named(capture.observations, "example.org"), MAX_KEPT);
    assert.deepEqual(capture.observations.slice(-2), CANARY_QUERIES);
    assert.equal(capture.dropped, 5);

    assert.deepEqual(await fake.args(), TCPDUMP_ARGS);
    assert.equal(await fake.terminatedBy(), "SIGTERM");
  });

  test("without mustKeep keeps exactly MAX_KEPT observations and counts every later one, canaries included, as dropped", async () => {
    const fake = await newFake();
    let calls = 0;
    const capture = await startLiveCapture({ command: fake.command, onObservation: () => calls++ });
    await waitFor(() => calls === TOTAL, `${TOTAL} observations`, () => `${calls} so far`);
    assert.equal(await bounded(capture.stop(), "stop()", 10_000), undefined);

    assert.equal(calls, TOTAL);
    assert.equal(capture.observations.length, MAX_KEPT);
    assert.equal(named(capture.observations, "example.org"), MAX_KEPT);
    assert.equal(named(capture.observations, CANARY), 0);
    assert.equal(capture.dropped, 7);
    assert.equal(await fake.terminatedBy(), "SIGTERM");
  });

  test("a command that does not exist gives a 'cannot run tcpdump' problem from stop() and drops nothing", async () => {
    const folder = await mkdtemp(join(tmpdir(), "safetunnel-live-capture-"));
    try {
      const missing = join(folder, "tcpdump");
      let calls = 0;
      const capture = await bounded(startLiveCapture({ command: missing, onObservation: () => calls++ }), "startLiveCapture", 10_000);
      assert.equal(await bounded(capture.stop(), "stop()", 10_000), `cannot run tcpdump (spawn ${missing} ENOENT)`);
      assert.deepEqual(capture.observations, []);
      assert.equal(capture.dropped, 0);
      assert.equal(calls, 0);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
