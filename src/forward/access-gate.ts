/**
 * The access check every -D and -L connection passes before anything is
 * opened for it: whose socket is it (Linux: its row in /proc/net/tcp, while
 * the client still holds it), and may that account use this tunnel
 * (access.ts). A refused account gets one folded log line per uid every 10 s,
 * each one at -v.
 */
import type { Logger } from "../log.ts";
import type { AcceptedClient, PeerLookup, SocketOwner } from "../platform/peer-lookup.ts";
import { FoldWindow } from "../fold-window.ts";
import { isLoopbackAddress } from "../address.ts";
import { decideAccess, type AccessPolicy } from "./access.ts";

/** A client on this machine: from loopback, or from the very address it connected to (one of ours). */
function isThisMachine(client: AcceptedClient): boolean {
  return isLoopbackAddress(client.address) || client.address === client.localAddress;
}

export interface AccessGate {
  /**
   * Whether `client` may use the port named by `label`; logs a refusal. With
   * `quietIfUnknown`, a client whose owner could not be found is refused at
   * -v only: -L decides as it accepts, before the client has said anything,
   * and a port probe that has already closed is such a client.
   */
  admit(client: AcceptedClient, label: string, quietIfUnknown?: boolean): Promise<boolean>;
}

export interface AccessGateOptions {
  policy: AccessPolicy;
  /** How the owner is found; undefined where the platform cannot tell (then everyone is let in, as said at start-up). */
  peers: PeerLookup | undefined;
  log: Logger;
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
}

/**
 * @example
 * const gate = accessGate({ policy: { ownUid: 1000, allowed: new Set() }, peers: procPeerLookup(), log });
 * if (!(await gate.admit(client, "-D 9001"))) return { ok: false, reply: Socks5Reply.NOT_ALLOWED };
 */
export function accessGate(options: AccessGateOptions): AccessGate {
  const { policy, peers, log } = options;
  const folds = new FoldWindow(options.clock === undefined ? {} : { clock: options.clock });
  const decide = async (client: AcceptedClient, label: string, looking: Promise<SocketOwner | undefined>, quietIfUnknown = false): Promise<boolean> => {
    const owner = await looking;
    const decision = decideAccess(policy, owner?.uid);
    if (decision === "allow") return true;
    if (decision === "unknown") {
      // Another machine (-g): no /proc of ours knows it, and start-up said
      // that only --socks-auth guards against those. One of this machine's
      // programs whose row /proc did not show in time (its socket already
      // closed, or the table read failed): refused, since letting it in
      // would let any local account in through a slow /proc.
      if (!isThisMachine(client)) {
        log.debug(1, `${label}: ${client.address}:${client.port} is another machine, whose account cannot be told; let in.`);
        return true;
      }
      const line = `${label}: refused a connection from ${client.address}:${client.port}: /proc/net/tcp did not say which account it belongs to in time. If this repeats, let every local account in with --allow-users '*'`;
      const folded = quietIfUnknown ? undefined : folds.admit("unknown");
      if (folded === undefined) log.debug(1, line);
      else log.warn(folded > 0 ? `${line} (and ${folded} more since the last such line)` : line, { event: "access-refused" });
      return false;
    }
    const line = `${label}: refused a connection from ${client.address}:${client.port}: it belongs to uid ${owner!.uid}, not to the account running the tunnel (uid ${policy.ownUid}). To let that account in: --allow-users ${owner!.uid}`;
    const folded = folds.admit(String(owner!.uid));
    if (folded === undefined) log.debug(1, line);
    else log.warn(folded > 0 ? `${line} (and ${folded} more since the last such line)` : line, { event: "access-refused", uid: owner!.uid });
    return false;
  };
  const everyone = policy.allowed === "all" || peers === undefined;
  return {
    admit: (client, label, quietIfUnknown) => (everyone ? Promise.resolve(true) : decide(client, label, peers.ownerOf(client), quietIfUnknown)),
  };
}
