/**
 * Who may use the tunnel's ports on a shared machine. By default only the
 * account that started it (and root, which could read its keys anyway): a
 * SOCKS port on 127.0.0.1 is otherwise open to every local user, who would
 * ride the tunnel with our SSH identity. `--allow-users` opens it to more
 * accounts, `*` to all. Pure: the caller finds the client's uid (Linux
 * /proc/net/tcp, platform/socket-owner.ts) and the names' uids (/etc/passwd).
 */
import { TunnelError } from "../errors.ts";

export interface AccessPolicy {
  /** The uid that started the tunnel; undefined where the platform has none (Windows). */
  ownUid: number | undefined;
  /** Other uids let in by --allow-users; "all" for `*`. */
  allowed: ReadonlySet<number> | "all";
}

export type AccessDecision = "allow" | "refuse" | "unknown";

/**
 * @example
 * decideAccess({ ownUid: 1000, allowed: new Set() }, 1001) // "refuse"
 * decideAccess({ ownUid: 1000, allowed: new Set() }, 0)    // "allow" (root)
 */
export function decideAccess(policy: AccessPolicy, clientUid: number | undefined): AccessDecision {
  if (policy.allowed === "all") return "allow";
  if (clientUid === undefined || policy.ownUid === undefined) return "unknown";
  if (clientUid === policy.ownUid || clientUid === 0 || policy.allowed.has(clientUid)) return "allow";
  return "refuse";
}

/**
 * `--allow-users` values: comma-separated names or uids, `*` for everyone.
 * Names are looked up with `uidOf` (/etc/passwd); an unknown one is a usage
 * error, since a typo would otherwise quietly keep that user out.
 *
 * @example
 * parseAllowUsers(["alice,1002"], (name) => (name === "alice" ? 1001 : undefined)) // Set {1001, 1002}
 */
export function parseAllowUsers(values: readonly string[], uidOf: (name: string) => number | undefined): ReadonlySet<number> | "all" {
  const uids = new Set<number>();
  for (const entry of values.flatMap((value) => value.split(","))) {
    const name = entry.trim();
    if (name === "*") return "all";
    if (/^\d{1,10}$/.test(name) && Number(name) <= 0xffffffff) {
      uids.add(Number(name));
      continue;
    }
    if (name === "") throw new TunnelError("USAGE", "--allow-users has an empty entry; give user names or uids separated by commas, e.g. --allow-users alice,1002, or * for everyone");
    const uid = uidOf(name);
    if (uid === undefined) {
      throw new TunnelError("USAGE", `--allow-users: no local user named '${name.slice(0, 64)}' (not in /etc/passwd); give an existing user name or a uid`);
    }
    uids.add(uid);
  }
  return uids;
}

/**
 * The uid of each user name in an /etc/passwd text (passwd(5): name:password:uid:...).
 *
 * @example
 * passwdUids("root:x:0:0:root:/root:/bin/bash\n").get("root") // 0
 */
export function passwdUids(text: string): Map<string, number> {
  const uids = new Map<string, number>();
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 3 || fields[0] === "" || line.startsWith("#")) continue;
    const uid = Number(fields[2]);
    if (Number.isInteger(uid) && uid >= 0 && !uids.has(fields[0]!)) uids.set(fields[0]!, uid);
  }
  return uids;
}
