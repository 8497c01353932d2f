/**
 * Who is behind a local client connection: the account that owns its socket
 * and the program that holds it. Forwards take a `PeerLookup` and ask it when
 * they need an answer (the owner for the access check of every -D and -L
 * connection, the program when a refusal line names it); which one to use, if
 * any, is the caller's decision (`procPeerLookup` on Linux).
 */
import { closeSync, openSync } from "node:fs";
import { isLoopbackAddress } from "../address.ts";
import { describeError } from "../errors.ts";
import { SocketProgramFinder } from "./peer-process.ts";
import { SocketOwnerLookup, type AcceptedClient, type SocketOwner } from "./socket-owner.ts";

export type { AcceptedClient, SocketOwner };

/**
 * Ask while the client's socket is still open (before replying to it): once
 * it has closed, nothing tells who it was. Answers are undefined when unknown,
 * never a rejection; each call looks afresh (nothing is remembered per client).
 */
export interface PeerLookup {
  /** The local account and socket inode behind `client` (for an access check on uid, say). */
  ownerOf(client: AcceptedClient): Promise<SocketOwner | undefined>;
  /** The name of the local program holding `client`'s socket ("curl", "firefox-esr"). */
  programOf(client: AcceptedClient): Promise<string | undefined>;
}

export interface ProcPeerLookupOptions {
  /** Where procfs is mounted; tests pass a folder of their own. @default "/proc" */
  procRoot?: string;
  /** A process whose sockets are not searched: ours holds only the server ends. @default process.pid */
  skipPid?: number;
  /** Longest wait for the client's /proc/net/tcp row. @default 20000 */
  ownerWaitMs?: number;
}

/**
 * A PeerLookup over Linux's /proc: the client's row in /proc/net/tcp{,6} for
 * the owner, then the process whose /proc/<pid>/fd links to that socket. Only
 * loopback clients are looked up (another machine's programs are not in our
 * /proc); others are undefined. Build one for the whole run and share it among
 * forwards: table reads and fd walks then run one at a time in the process,
 * requests made meanwhile share the next one (a burst of refusals costs two
 * reads, not one each), and a program found for one forward is looked at first
 * for the next. It does not check the OS: the caller uses it only on Linux.
 *
 * @example
 * const peers = platform === "linux" ? procPeerLookup() : undefined;
 * await peers?.programOf({ address: "127.0.0.1", port: 51234, localAddress: "127.0.0.1", localPort: 9001 }) // "curl"
 */
export function procPeerLookup(options: ProcPeerLookupOptions = {}): PeerLookup {
  const owners = new SocketOwnerLookup({ procRoot: options.procRoot, waitMs: options.ownerWaitMs });
  const programs = new SocketProgramFinder({ procRoot: options.procRoot, skipPid: options.skipPid });
  // This machine's clients only: from loopback, or from the address they connected to (a local program using a LAN address).
  const ownerOf = async (client: AcceptedClient): Promise<SocketOwner | undefined> =>
    isLoopbackAddress(client.address) || client.address === client.localAddress ? owners.find(client) : undefined;
  return {
    ownerOf,
    async programOf(client) {
      const owner = await ownerOf(client);
      return owner === undefined ? undefined : programs.find(owner.inode);
    },
  };
}

/**
 * Why this process cannot read the table every owner lookup starts from, or
 * undefined when it can. Asked once, before the ports open, so that a lookup
 * that would always come back empty is said at start-up instead of making
 * every client "unknown". Deno 2.9 lets a program read /proc only with
 * --allow-all: `--allow-read=/proc` still gets NotCapable "Requires all
 * access" (measured on /proc/net/tcp, /proc/self/limits and /proc/self/fd).
 *
 * @example
 * procUnreadable() // undefined on Linux under Node
 * procUnreadable() // "Deno reads /proc only with --allow-all" under deno run --allow-read=/proc
 */
export function procUnreadable(procRoot = "/proc"): string | undefined {
  try {
    // Opening is enough: Deno checks its permissions there, and reading would walk the whole table.
    closeSync(openSync(`${procRoot}/net/tcp`, "r"));
    return undefined;
  } catch (err) {
    if ((err as Error).name === "NotCapable") return "Deno reads /proc only with --allow-all";
    return `cannot read ${procRoot}/net/tcp: ${describeError(err)}`;
  }
}
