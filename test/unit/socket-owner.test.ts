import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as fs from "node:fs";
import { OffLoop } from "../../src/platform/off-loop.ts";
import { bounded } from "../helpers/wait.ts";
import {
  decodeProcNetAddress,
  parseProcNetRow,
  parseProcNetTcpRow,
  procNetAddress,
  SocketOwnerLookup,
  tableScanner,
  type AcceptedClient,
  type ScanReport,
  type ScanRequest,
} from "../../src/platform/socket-owner.ts";

describe("procNetAddress", () => {
  test("127.0.0.1:9001 is 0100007F:2329, as /proc/net/tcp prints it on little-endian hosts", () => {
    assert.equal(procNetAddress("127.0.0.1", 9001), "0100007F:2329");
  });

  test("::1:9001 is 00000000000000000000000001000000:2329", () => {
    assert.equal(procNetAddress("::1", 9001), "00000000000000000000000001000000:2329");
  });

  test("an IPv4-mapped address is looked up as its IPv4 form", () => {
    assert.equal(procNetAddress("::ffff:127.0.0.1", 9001), "0100007F:2329");
  });

  test("other IPv4 addresses and ports pad to four hex digits in upper case", () => {
    assert.equal(procNetAddress("10.1.2.3", 80), "0302010A:0050");
    assert.equal(procNetAddress("192.168.254.171", 65535), "ABFEA8C0:FFFF");
  });

  test("any IPv6 address, not only ::1, is each 32-bit word reversed (a local program may use a global address on a -g port)", () => {
    assert.equal(procNetAddress("2001:4860:4860::8888", 53), "60480120000060480000000088880000:0035");
    assert.equal(procNetAddress("fd00::2", 43604), "000000FD000000000000000002000000:AA54");
  });

  test("a string that is not an address, or an address with a zone, gives null", () => {
    assert.equal(procNetAddress("localhost", 80), null);
    assert.equal(procNetAddress("fe80::1%eth0", 80), null);
  });
});

// Rows as Linux 6.1 prints them (proc(5)); the header line comes first.
const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const row = (sl: number, local: string, remote: string, uid: number, inode: string): string =>
  `  ${sl}: ${local} ${remote} 01 00000000:00000000 00:00000000 00000000  ${uid}        0 ${inode} 1 0000000000000000 20 4 30 10 -1`;

describe("parseProcNetTcpRow", () => {
  test("reads the endpoints, the uid and the inode of an established row", () => {
    assert.deepEqual(parseProcNetTcpRow(row(3, "0100007F:C350", "0100007F:2329", 1000, "48121")), {
      local: "0100007F:C350",
      remote: "0100007F:2329",
      owner: { uid: 1000, inode: "48121" },
    });
  });

  test("a tcp6 row for an IPv4-mapped peer compares in its tcp form", () => {
    const parsed = parseProcNetTcpRow(row(0, "0000000000000000FFFF00000100007F:C350", "0000000000000000FFFF00000100007F:2329", 0, "7"));
    assert.deepEqual(parsed, { local: "0100007F:C350", remote: "0100007F:2329", owner: { uid: 0, inode: "7" } });
  });

  test("an IPv6 row keeps its 32 hex digits", () => {
    const v6 = "00000000000000000000000001000000:2329";
    assert.equal(parseProcNetTcpRow(row(0, v6, v6, 0, "7"))?.local, v6);
  });

  test("the header, blank lines and rows whose socket is closed (inode 0) give null", () => {
    assert.equal(parseProcNetTcpRow(HEADER), null);
    assert.equal(parseProcNetTcpRow(""), null);
    assert.equal(parseProcNetTcpRow(row(1, "0100007F:C350", "0100007F:2329", 0, "0")), null);
  });
});

describe("parseProcNetRow", () => {
  test("reads state, both queues, uid and inode of a udp row, as Linux prints a connected socket", () => {
    const line = "  242: 020200C0:E9F2 08080808:0035 01 00000040:00000200 00:00000000 00000000  1000        0 416041 2 00000000756f6e18 0        ";
    assert.deepEqual(parseProcNetRow(line), { local: "020200C0:E9F2", remote: "08080808:0035", state: 1, txQueue: 64, rxQueue: 512, uid: 1000, inode: "416041" });
  });

  test("keeps a TIME_WAIT row, inode \"0\", which parseProcNetTcpRow drops", () => {
    const line = "   2: 0100007F:953A 3500007F:0035 06 00000000:00000000 03:00001766 00000000     0        0 0 3 0000000098d8628f";
    assert.deepEqual(parseProcNetRow(line), { local: "0100007F:953A", remote: "3500007F:0035", state: 6, txQueue: 0, rxQueue: 0, uid: 0, inode: "0" });
    assert.equal(parseProcNetTcpRow(line), null);
  });

  test("unmaps IPv4-mapped endpoints and gives null for the header and a row with a malformed queue column", () => {
    assert.equal(parseProcNetRow(row(0, "0000000000000000FFFF00000100007F:C350", "0000000000000000FFFF000004040808:0035", 0, "7"))?.remote, "04040808:0035");
    assert.equal(parseProcNetRow(HEADER), null);
    assert.equal(parseProcNetRow("   1: 0100007F:C350 0100007F:2329 01 nope 00:00000000 00000000  1000        0 9 1"), null);
  });
});

describe("decodeProcNetAddress", () => {
  test("is the inverse of procNetAddress for IPv4 and ::1", () => {
    assert.deepEqual(decodeProcNetAddress("0100007F:2329"), { address: "127.0.0.1", port: 9001 });
    assert.deepEqual(decodeProcNetAddress("ABFEA8C0:FFFF"), { address: "192.168.254.171", port: 65535 });
    assert.deepEqual(decodeProcNetAddress("00000000000000000000000001000000:2329"), { address: "::1", port: 9001 });
  });

  test("reverses each 32-bit word of an IPv6 address and spells it per RFC 5952", () => {
    assert.deepEqual(decodeProcNetAddress("60480120000060480000000088880000:0035"), { address: "2001:4860:4860::8888", port: 53 });
    assert.deepEqual(decodeProcNetAddress("000000FD000000000000000002000000:AA54"), { address: "fd00::2", port: 43604 });
  });

  test("gives an IPv4-mapped endpoint as its IPv4 address", () => {
    assert.deepEqual(decodeProcNetAddress("0000000000000000FFFF000004040808:0035"), { address: "8.8.4.4", port: 53 });
  });

  test("gives null for anything but 8 or 32 hex digits and a 4-digit port", () => {
    for (const text of ["0100007F", "0100007F:29", "0100007G:2329", "01000007F:2329", ""]) assert.equal(decodeProcNetAddress(text), null, text);
  });
});

// ------------------------------------------------------------------ a /proc of our own

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

async function fakeProc(tcp: string[], tcp6: string[] = []): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
  folders.push(root);
  await mkdir(join(root, "net"));
  await writeFile(join(root, "net", "tcp"), [HEADER, ...tcp, ""].join("\n"));
  await writeFile(join(root, "net", "tcp6"), [HEADER, ...tcp6, ""].join("\n"));
  return root;
}

/** A client at address:port that reached us on localAddress:localPort. */
const peer = (address: string, port: number, localPort = 9001, localAddress = "127.0.0.1"): AcceptedClient => ({ address, port, localAddress, localPort });

describe("SocketOwnerLookup against a /proc of our own", () => {
  test("finds the client's row (its address local, ours remote), not the server's mirror row", async () => {
    const root = await fakeProc([
      row(0, "0100007F:2329", "0100007F:C350", 0, "111"), // our accepted end
      row(1, "0100007F:C350", "0100007F:2329", 1000, "222"), // the client's end
    ]);
    assert.deepEqual(await new SocketOwnerLookup({ procRoot: root }).find(peer("127.0.0.1", 0xc350)), { uid: 1000, inode: "222" });
  });

  test("answers lookups made at the same time, each with its own row, a repeated one twice", async () => {
    const root = await fakeProc(
      [row(0, "0100007F:C350", "0100007F:2329", 1000, "222"), row(1, "0100007F:C351", "0100007F:2329", 1001, "333")],
      [row(0, "00000000000000000000000001000000:C352", "00000000000000000000000001000000:2329", 1002, "444")],
    );
    const owners = new SocketOwnerLookup({ procRoot: root });
    const found = await Promise.all([
      owners.find(peer("127.0.0.1", 0xc350)),
      owners.find(peer("::ffff:127.0.0.1", 0xc351, 9001, "::ffff:127.0.0.1")),
      owners.find(peer("::1", 0xc352, 9001, "::1")),
      owners.find(peer("127.0.0.1", 0xc353)),
      owners.find(peer("127.0.0.1", 0xc350)),
    ]);
    assert.deepEqual(found, [{ uid: 1000, inode: "222" }, { uid: 1001, inode: "333" }, { uid: 1002, inode: "444" }, undefined, { uid: 1000, inode: "222" }]);
  });

  test("an IPv4 client of a dual-stack socket is found in tcp6", async () => {
    const root = await fakeProc([], [row(0, "0000000000000000FFFF00000100007F:C350", "0000000000000000FFFF00000100007F:2329", 1000, "555")]);
    assert.deepEqual(await new SocketOwnerLookup({ procRoot: root }).find(peer("::ffff:127.0.0.1", 0xc350, 9001, "::ffff:127.0.0.1")), { uid: 1000, inode: "555" });
  });

  test("a table far larger than one read finds rows anywhere in it, also one cut across two reads", async () => {
    // 3,000 other rows (about 450 KB, several 64 KiB reads), with the wanted rows spread through them.
    const others = Array.from({ length: 3000 }, (_, i) => row(i + 2, `0100007F:${(0x1000 + i).toString(16).toUpperCase().padStart(4, "0")}`, "0100007F:0050", 0, String(10000 + i)));
    const wantedRows = [row(0, "0100007F:C350", "0100007F:2329", 1000, "222"), row(1, "0100007F:C351", "0100007F:2329", 1001, "333")];
    const rows = [...others.slice(0, 437), wantedRows[0]!, ...others.slice(437), wantedRows[1]!];
    const root = await fakeProc(rows);
    const owners = new SocketOwnerLookup({ procRoot: root });
    // Every row, in turn, so that some row surely straddles a read boundary.
    const found = await Promise.all([owners.find(peer("127.0.0.1", 0xc350)), owners.find(peer("127.0.0.1", 0xc351)), ...others.map((_, i) => owners.find(peer("127.0.0.1", 0x1000 + i, 80)))]);
    assert.deepEqual(found.slice(0, 2), [{ uid: 1000, inode: "222" }, { uid: 1001, inode: "333" }]);
    assert.deepEqual(found.slice(2).map((owner) => owner?.inode), others.map((_, i) => String(10000 + i)));
  });

  test("a row whose socket is closed (inode 0) is unknown", async () => {
    const root = await fakeProc([row(0, "0100007F:C350", "0100007F:2329", 0, "0")]);
    assert.equal(await new SocketOwnerLookup({ procRoot: root }).find(peer("127.0.0.1", 0xc350)), undefined);
  });

  test("no /proc at all, or an address /proc/net cannot be searched for, is unknown", async () => {
    const empty = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
    folders.push(empty);
    assert.equal(await new SocketOwnerLookup({ procRoot: empty }).find(peer("127.0.0.1", 50000)), undefined);
    assert.equal(await new SocketOwnerLookup().find(peer("localhost", 50000)), undefined);
  });
});

describe("tableScanner", () => {
  /** 20,000 rows (about 3 MB, so a pass over plain files takes several steps of 16 reads of 64 KiB), the port of row i being 0x1000 + i. */
  const port = (i: number): string => (0x1000 + i).toString(16).toUpperCase().padStart(4, "0");
  const bigTable = (): string[] => Array.from({ length: 20_000 }, (_, i) => row(i, `0100007F:${port(i)}`, "0100007F:2329", 1000, String(100_000 + i)));
  const needle = (i: number): string => `0100007F:${port(i)} 0100007F:2329`;

  test("a key added while a pass is under way is found in its rest or in the next pass; one no whole pass shows is absent", async () => {
    const root = await fakeProc(bigTable());
    const paths = [join(root, "net", "tcp"), join(root, "net", "tcp6")];
    const reports: ScanReport[] = [];
    let steps = 0;
    let take: (request: ScanRequest) => void = () => {};
    const done = new Promise<void>((resolve) => {
      take = tableScanner(
        (report) => {
          reports.push(report);
          if (report.absent.length > 0) resolve();
        },
        {
          fs,
          setImmediate(callback) {
            setImmediate(() => {
              callback();
              steps += 1;
              // After the first step, which read about 7,000 rows: row 100 is behind, row 15,000 ahead, port 0xF000 nowhere.
              if (steps === 1) take({ paths, add: [["behind", [needle(100), ""]], ["ahead", [needle(15_000), ""]], ["gone", ["0100007F:F000 0100007F:2329", ""]]] });
            });
          },
        },
      );
    });
    take({ paths, add: [["last", [needle(19_999), ""]]] });
    await bounded(done, "the scanner's reports", 10_000);
    // Found in table order across the two passes: "ahead" in the pass it joined, "behind" only in the next, which also had to end to call "gone" absent.
    const order = reports.flatMap((report) => [...report.found.map(([key]) => key), ...report.absent.map((key) => `absent ${key}`)]);
    assert.deepEqual(order, ["ahead", "last", "behind", "absent gone"]);
    const lines = new Map(reports.flatMap((report) => report.found));
    assert.equal(lines.get("behind"), row(100, needle(100).split(" ")[0]!, "0100007F:2329", 1000, "100100"));
    assert.equal(lines.get("last"), row(19_999, needle(19_999).split(" ")[0]!, "0100007F:2329", 1000, "119999"));
  });

  test("runs on a worker: it uses nothing from outside its body", async () => {
    const root = await fakeProc(bigTable());
    let report: (value: ScanReport) => void = () => {};
    const reported = new Promise<ScanReport>((resolve) => (report = resolve));
    const scanner = new OffLoop(tableScanner, { onOutput: report, onRestart: () => assert.fail(`the worker died: ${scanner.failure?.message}`) });
    scanner.busy = true;
    scanner.send({ paths: [join(root, "net", "tcp"), join(root, "net", "tcp6")], add: [["k", [needle(12_345), ""]]] });
    assert.deepEqual(await bounded(reported, "the worker's report", 10_000), { found: [["k", row(12_345, needle(12_345).split(" ")[0]!, "0100007F:2329", 1000, "112345")]], absent: [] });
    scanner.busy = false;
    assert.equal(scanner.offLoop, true);
  });
});
