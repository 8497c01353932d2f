/**
 * Which local program holds a socket, for refusal lines ("... from
 * 127.0.0.1:51234 (firefox)"): the process one of whose /proc/<pid>/fd links
 * reads `socket:[inode]`, named by its /proc/<pid>/comm (proc(5)). The inode
 * comes from the client's row in /proc/net/tcp (socket-owner.ts).
 *
 * A walk reads a link per open file of every process, a few hundred to a few
 * thousand: it runs only when a refusal needs a name, one walk at a time, and
 * looks at recent owners first, since a misconfigured app is refused again and
 * again. Requests that arrive during a walk share the next one, so a browser's
 * burst of refusals costs two walks, not one each (nor no name for all but the
 * first). Any failure (another OS, another user's process, a socket already
 * closed) just means "unknown".
 */
import process from "node:process";
import { readFile, readdir, readlink } from "node:fs/promises";
import { BatchedLookup } from "./batched-lookup.ts";

export interface SocketProgramFinderOptions {
  /** Where procfs is mounted; tests pass a folder of their own. @default "/proc" */
  procRoot?: string;
  /** A process not to search: our own holds only the server ends. @default process.pid */
  skipPid?: number;
}

/** How many recent owners are tried before the rest. */
const RECENT_OWNERS = 8;

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

/**
 * @example
 * const programs = new SocketProgramFinder();
 * await programs.find("48121") // "curl"
 */
export class SocketProgramFinder {
  readonly #procRoot: string;
  readonly #skipPid: string;
  /** PIDs that held recently asked-for sockets, most recent first. */
  readonly #recentOwners: string[] = [];
  readonly #walks = new BatchedLookup<string, string>((wanted, found) => this.#walk(wanted, found));

  constructor(options: SocketProgramFinderOptions = {}) {
    this.#procRoot = options.procRoot ?? "/proc";
    this.#skipPid = String(options.skipPid ?? process.pid);
  }

  /** The `comm` of a process holding socket `inode`, or undefined. */
  find(inode: string): Promise<string | undefined> {
    return this.#walks.find(inode);
  }

  async #walk(wanted: ReadonlySet<string>, found: (inode: string, name: string) => void): Promise<void> {
    const all = (await readdir(this.#procRoot)).filter((name) => /^\d+$/.test(name) && name !== this.#skipPid);
    const present = new Set(all);
    const recent = this.#recentOwners.filter((pid) => present.has(pid));
    const pids = [...recent, ...all.filter((pid) => !recent.includes(pid))];
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = await readdir(`${this.#procRoot}/${pid}/fd`);
      } catch {
        continue; // gone, or another user's
      }
      const links = await Promise.all(fds.map((fd) => readlink(`${this.#procRoot}/${pid}/fd/${fd}`).catch(() => "")));
      const held = links.map((link) => SOCKET_LINK.exec(link)?.[1]).filter((inode): inode is string => inode !== undefined && wanted.has(inode));
      if (held.length === 0) continue;
      let name: string;
      try {
        name = (await readFile(`${this.#procRoot}/${pid}/comm`, "utf8")).trim();
      } catch {
        continue; // the process exited while we looked
      }
      this.#remember(pid);
      for (const inode of held) found(inode, name);
      if (wanted.size === 0) return;
    }
  }

  #remember(pid: string): void {
    const at = this.#recentOwners.indexOf(pid);
    if (at >= 0) this.#recentOwners.splice(at, 1);
    this.#recentOwners.unshift(pid);
    this.#recentOwners.length = Math.min(this.#recentOwners.length, RECENT_OWNERS);
  }
}
