/**
 * Which local program holds the UDP socket a datagram came from. Ask only
 * for datagrams from this machine's own addresses (the caller checks): a
 * socket here bound to the same port says nothing about a sender elsewhere.
 * The socket's row in /proc/net/udp or /proc/net/udp6
 * (proc(5)) is the one bound to the datagram's source port, at its source
 * address or at the wildcard address; its inode leads to the program
 * (peer-process.ts). Ask while the sender still holds the socket (a browser's
 * WebRTC keeps it while it gathers candidates). Any failure means "unknown".
 */
import { readFile } from "node:fs/promises";
import { decodeProcNetAddress, parseProcNetRow } from "./socket-owner.ts";
import { SocketProgramFinder } from "./peer-process.ts";
import { canonicalAddress } from "./interface-addresses.ts";

export interface UdpSender {
  address: string;
  port: number;
}

/**
 * The inodes of the UDP sockets in `tables` (the text of /proc/net/udp and
 * udp6) that could have sent from `from`. Pure.
 *
 * @example
 * udpSocketInodes(["  1: 00000000:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 5123 2 0 0"], { address: "10.0.0.2", port: 40000 })
 * // ["5123"]
 */
export function udpSocketInodes(tables: readonly string[], from: UdpSender): string[] {
  const source = canonicalAddress(from.address);
  const inodes: string[] = [];
  for (const text of tables) {
    for (const line of text.split("\n")) {
      const row = parseProcNetRow(line);
      if (row === null || row.inode === "0") continue;
      const local = decodeProcNetAddress(row.local);
      if (local === null || local.port !== from.port) continue;
      // A wildcard socket sends from any address of its family; "::" (udp6) also sends IPv4 unless IPV6_V6ONLY.
      const wildcard = local.address === "::" || (local.address === "0.0.0.0" && source !== undefined && !source.includes(":"));
      if (local.address === source || wildcard) inodes.push(row.inode);
    }
  }
  return inodes;
}

/**
 * @example
 * const program = await procUdpSender()({ address: "192.168.1.20", port: 40000 }); // "firefox-esr", or undefined
 */
export function procUdpSender(options: { procRoot?: string } = {}): (from: UdpSender) => Promise<string | undefined> {
  const procRoot = options.procRoot ?? "/proc";
  const programs = new SocketProgramFinder({ procRoot });
  return async (from) => {
    const tables = await Promise.all(["udp", "udp6"].map((table) => readFile(`${procRoot}/net/${table}`, "utf8").catch(() => "")));
    for (const inode of udpSocketInodes(tables, from)) {
      const program = await programs.find(inode);
      if (program !== undefined) return program;
    }
    return undefined;
  };
}
