import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { procUdpSender, udpSocketInodes } from "../../src/platform/udp-owner.ts";
import { tempTrees } from "../helpers/temp-tree.ts";

// Rows as Linux prints /proc/net/udp and udp6 (proc(5)): state 07 is TCP_CLOSE, what an unconnected UDP socket shows.
const UDP_HEADER = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
const UDP6_HEADER =
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
const row = (sl: number, local: string, remote: string, inode: string): string =>
  `  ${sl}: ${local} ${remote} 07 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 2 0000000000000000 0`;
const table = (header: string, rows: string[]): string => `${[header, ...rows].join("\n")}\n`;

const ANY4 = "00000000:0000";
const ANY6 = "00000000000000000000000000000000:0000";
// Port 40000 is 9C40; 10.0.0.2 is 0200000A, 192.168.1.20 is 1401A8C0 (each word printed little-endian).
const UDP = table(UDP_HEADER, [
  row(101, "00000000:9C40", ANY4, "5123"), // 0.0.0.0:40000
  row(102, "0200000A:9C40", ANY4, "5124"), // 10.0.0.2:40000
  row(103, "1401A8C0:9C40", ANY4, "5125"), // 192.168.1.20:40000
  row(104, "0200000A:9C41", ANY4, "5126"), // 10.0.0.2:40001
  row(105, "0200000A:9C40", ANY4, "0"), // closed
]);
const UDP6 = table(UDP6_HEADER, [
  row(201, "00000000000000000000000000000000:9C40", ANY6, "6001"), // [::]:40000
  row(202, "B80D0120000000000000000001000000:9C40", ANY6, "6002"), // [2001:db8::1]:40000
  row(203, "0000000000000000FFFF00000200000A:9C40", ANY6, "6003"), // [::ffff:10.0.0.2]:40000
  row(204, "B80D0120000000000000000002000000:9C40", ANY6, "6004"), // [2001:db8::2]:40000
  row(205, "B80D0120000000000000000001000000:9C41", ANY6, "6005"), // [2001:db8::1]:40001
]);

describe("udpSocketInodes", () => {
  test("an IPv4 sender: sockets on its port at its address or the wildcard, IPv4-mapped and dual-stack ones included", () => {
    assert.deepEqual(udpSocketInodes([UDP, UDP6], { address: "10.0.0.2", port: 40000 }), ["5123", "5124", "6001", "6003"]);
  });

  test("another port or another address of the same machine is not the sender", () => {
    assert.deepEqual(udpSocketInodes([UDP], { address: "10.0.0.2", port: 40002 }), []);
    assert.deepEqual(udpSocketInodes([UDP], { address: "192.168.1.21", port: 40000 }), ["5123"]);
    assert.deepEqual(udpSocketInodes([UDP], { address: "192.168.1.20", port: 40000 }), ["5123", "5125"]);
  });

  test("an IPv6 sender, spelled any way: sockets at its address or [::] on its port", () => {
    assert.deepEqual(udpSocketInodes([UDP6], { address: "2001:DB8::0:1", port: 40000 }), ["6001", "6002"]);
    assert.deepEqual(udpSocketInodes([UDP6], { address: "2001:db8::1", port: 40001 }), ["6005"]);
  });

  test(
    "an IPv6 sender is not matched to an IPv4 socket bound to 0.0.0.0",
    () => {
      assert.deepEqual(udpSocketInodes([UDP, UDP6], { address: "2001:db8::1", port: 40000 }), ["6001", "6002"]);
    },
  );

  test("headers, blank lines, rows without a socket (inode 0) and text that is not a table give nothing", () => {
    assert.deepEqual(udpSocketInodes([table(UDP_HEADER, [row(1, "0200000A:9C40", ANY4, "0")]), "", "\n\n", "not /proc/net/udp at all"], { address: "10.0.0.2", port: 40000 }), []);
  });
});

describe("procUdpSender against a /proc of our own", () => {
  const trees = tempTrees("safetunnel-udp-proc-");
  after(() => trees.cleanup());
  // Never our own pid: SocketProgramFinder skips that one.
  const pid = String(process.pid + 1);
  const other = String(process.pid + 2);

  /** A /proc with these tables, `pid` holding `inode` as "firefox-esr" and `other` holding 9999 as "curl". */
  async function fakeProc(files: Record<string, string>, inode: string): Promise<string> {
    const root = await trees.make({ ...files, [`${pid}/comm`]: "firefox-esr\n", [`${other}/comm`]: "curl\n" });
    await mkdir(join(root, pid, "fd"));
    await mkdir(join(root, other, "fd"));
    await symlink("/dev/null", join(root, pid, "fd", "0"));
    await symlink(`socket:[${inode}]`, join(root, pid, "fd", "27"));
    await symlink("socket:[9999]", join(root, other, "fd", "3"));
    return root;
  }

  test("names the program holding the socket bound to the sender's address and port", async () => {
    const root = await fakeProc({ "net/udp": UDP, "net/udp6": table(UDP6_HEADER, []) }, "5124");
    assert.equal(await procUdpSender({ procRoot: root })({ address: "10.0.0.2", port: 40000 }), "firefox-esr");
  });

  test("names the holder of a wildcard socket in udp6 when the sender is IPv6", async () => {
    const root = await fakeProc({ "net/udp": table(UDP_HEADER, []), "net/udp6": UDP6 }, "6001");
    assert.equal(await procUdpSender({ procRoot: root })({ address: "2001:db8::7", port: 40000 }), "firefox-esr");
  });

  test("skips sockets no process holds and names the one that is held", async () => {
    // 5123 (the wildcard) comes first and nobody holds it; 5124 is firefox-esr's.
    const root = await fakeProc({ "net/udp": UDP }, "5124");
    assert.equal(await procUdpSender({ procRoot: root })({ address: "10.0.0.2", port: 40000 }), "firefox-esr");
  });

  test("is undefined when no row matches, or the matching socket is held by nobody", async () => {
    const root = await fakeProc({ "net/udp": UDP, "net/udp6": UDP6 }, "1234");
    const sender = procUdpSender({ procRoot: root });
    assert.equal(await sender({ address: "10.0.0.2", port: 40002 }), undefined);
    assert.equal(await sender({ address: "10.0.0.2", port: 40000 }), undefined);
  });

  test("is undefined when the tables are missing, and when /proc itself is", async () => {
    const root = await fakeProc({}, "5124");
    assert.equal(await procUdpSender({ procRoot: root })({ address: "10.0.0.2", port: 40000 }), undefined);
    assert.equal(await procUdpSender({ procRoot: join(root, "no-such-proc") })({ address: "10.0.0.2", port: 40000 }), undefined);
  });
});
