/**
 * Which local program opened a loopback TCP connection, for refusal log
 * lines ("... from 127.0.0.1:51234 (firefox)"). Linux only: /proc/net/tcp{,6}
 * gives the socket's inode, /proc/<pid>/fd links give the owner. Any failure
 * (another OS, another user's process, a race) just means "unknown".
 *
 * This reads a few hundred small files, so it runs only for refusals, never on
 * the path of an accepted connection, and looks at recent owners first.
 */
import process from "node:process";
import { readFile, readdir, readlink } from "node:fs/promises";

/** A TCP connection as seen from the client's side: its address and port, and ours. */
export interface PeerSocket {
  clientAddress: string;
  clientPort: number;
  serverAddress: string;
  serverPort: number;
}

/** Encode an address:port as /proc/net/tcp writes it (hex, host byte order per 32-bit word). */
export function procNetAddress(address: string, port: number): string | null {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  if (v4) {
    const bytes = v4.slice(1, 5).map(Number);
    // Little-endian hosts (x86, arm64) print each 32-bit word reversed.
    return bytes.reverse().map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("") + ":" + hexPort;
  }
  if (address === "::1") return "00000000000000000000000001000000:" + hexPort;
  return null;
}

/**
 * Find the process name (`/proc/<pid>/comm`) owning the client end of a connection.
 *
 * @example
 * await peerProcessName({ clientAddress: "127.0.0.1", clientPort: 51234, serverAddress: "127.0.0.1", serverPort: 9001 }) // "curl"
 */
export async function peerProcessName(peer: PeerSocket, procRoot = "/proc"): Promise<string | undefined> {
  if (process.platform !== "linux") return undefined;
  try {
    const local = procNetAddress(peer.clientAddress, peer.clientPort);
    const remote = procNetAddress(peer.serverAddress, peer.serverPort);
    if (local === null || remote === null) return undefined;
    const inode = await findInode(procRoot, local, remote);
    if (inode === undefined) return undefined;
    const target = `socket:[${inode}]`;
    const all = (await readdir(procRoot)).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
    // A misconfigured app is refused again and again: look at it first.
    const pids = [...recentOwners.filter((pid) => all.includes(pid)), ...all.filter((pid) => !recentOwners.includes(pid))];
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = await readdir(`${procRoot}/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if ((await readlink(`${procRoot}/${pid}/fd/${fd}`)) === target) {
            rememberOwner(pid);
            return (await readFile(`${procRoot}/${pid}/comm`, "utf8")).trim();
          }
        } catch {
          // The fd closed while we looked.
        }
      }
    }
  } catch {
    // No /proc, or not readable: unknown.
  }
  return undefined;
}

/** PIDs that owned recent client sockets, most recent first. */
const recentOwners: string[] = [];

function rememberOwner(pid: string): void {
  const at = recentOwners.indexOf(pid);
  if (at >= 0) recentOwners.splice(at, 1);
  recentOwners.unshift(pid);
  recentOwners.length = Math.min(recentOwners.length, 8);
}

async function findInode(procRoot: string, local: string, remote: string): Promise<string | undefined> {
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = await readFile(`${procRoot}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d in tcp6.
      if (sameEndpoint(fields[1]!, local) && sameEndpoint(fields[2]!, remote)) return fields[9];
    }
  }
  return undefined;
}

function sameEndpoint(procField: string, wanted: string): boolean {
  if (procField === wanted) return true;
  // tcp6 form of a mapped IPv4 address: 0000000000000000FFFF0000 + the v4 word.
  return procField.length === 37 && procField.startsWith("0000000000000000FFFF0000") && procField.slice(24) === wanted;
}
