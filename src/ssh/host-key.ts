/**
 * Host key verification as OpenSSH does it (sshconnect.c check_host_key):
 * known_hosts files decide; StrictHostKeyChecking says what to do with a key
 * never seen before; a changed or revoked key is refused whatever the setting,
 * before any channel is opened. (OpenSSH with StrictHostKeyChecking=no lets a
 * changed key through with forwarding disabled; a tunnel tool has nothing left
 * to do then, so we refuse.)
 */
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  hostKeyFromBlob,
  knownHostsName,
  loadKnownHosts,
  prefersHashing,
  type KnownHostsEntry,
} from "../config/known-hosts.ts";
import { TunnelError } from "../errors.ts";
import type { HostKeySettings } from "../config/settings.ts";
import type { Logger } from "../log.ts";
import type { PromptRequest } from "./prompt.ts";
import { Buffer } from "node:buffer";
import type { HostVerifier } from "ssh2";

export interface HostKeyPolicy extends HostKeySettings {
  prompt: (request: PromptRequest) => Promise<string | null>;
  log: Logger;
}

/** Key type as OpenSSH names it in messages ("ED25519", "ECDSA", "RSA"). */
export function keyTypeLabel(type: string): string {
  if (type === "ssh-ed25519") return "ED25519";
  if (type.startsWith("ecdsa-")) return "ECDSA";
  if (type === "ssh-rsa") return "RSA";
  if (type === "ssh-dss") return "DSA";
  return type.toUpperCase();
}

/**
 * Resolves when the key may be used; throws TunnelError (exit 255) otherwise.
 *
 * @example
 * await verifyHostKey(blobFromSsh2, policy);
 */
export async function verifyHostKey(blob: Buffer, policy: HostKeyPolicy): Promise<void> {
  const key = hostKeyFromBlob(blob);
  const label = keyTypeLabel(key.type);
  const fingerprint = fingerprintSha256(blob);
  const name = knownHostsName(policy.host, policy.port);
  const entries = await loadKnownHosts([...policy.userKnownHostsFiles, ...policy.globalKnownHostsFiles]);
  const checked = checkHostKey(entries, policy.host, policy.port, key);
  // Like OpenSSH: a host known only by keys of other types, presenting a new
  // type, is a changed host. (We ask for the known types first, so a server
  // that still had the recorded key would have shown it.)
  const verdict = checked.status === "unknown" && checked.otherTypes.length > 0 ? { status: "changed" as const, entry: checked.otherTypes[0]! } : checked;
  policy.log.debug(1, `Server host key: ${key.type} ${fingerprint} (${verdict.status})`);

  switch (verdict.status) {
    case "known":
      policy.log.debug(1, `Host '${name}' is known and matches the ${label} host key (${verdict.entry.file}:${verdict.entry.line}).`);
      return;
    case "revoked":
      policy.log.error(`@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@       WARNING: REVOKED HOST KEY DETECTED!               @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
The ${label} host key for ${name} is marked as revoked (${verdict.entry.file}:${verdict.entry.line}).
This could mean that a stolen key is being used to impersonate this host.`);
      throw new TunnelError("HOST_KEY_REVOKED", `Host key for ${name} (${fingerprint}) is revoked in ${verdict.entry.file}:${verdict.entry.line}; refusing to connect.`);
    case "changed": {
      const knownFingerprint = fingerprintSha256(Buffer.from(verdict.entry.keyBase64, "base64"));
      const knownLabel = keyTypeLabel(verdict.entry.keyType);
      policy.log.error(`@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ${label} key sent by the remote host is
${fingerprint}.
The fingerprint of the ${knownLabel} key recorded for this host is
${knownFingerprint}.
Please contact your system administrator.
Add correct host key in ${policy.userKnownHostsFiles[0] ?? verdict.entry.file} to get rid of this message.
Offending ${knownLabel} key in ${verdict.entry.file}:${verdict.entry.line}
${removeHint(verdict.entry.file, name)}`);
      throw new TunnelError(
        "HOST_KEY_CHANGED",
        `Host key for ${name} has changed (${verdict.entry.file}:${verdict.entry.line}); no forwarding was started. Host key verification failed.`,
      );
    }
    case "unknown":
      await decideUnknown(policy, { name, label, fingerprint, line: () => formatNewLine(policy, key, entries) });
      return;
  }
}

/**
 * The two lines Debian's OpenSSH prints after "Offending ... key in FILE:LINE"
 * (its patch mention-ssh-keygen-on-keychange, sshconnect.c check_host_key();
 * checked against OpenSSH 9.2p1 Debian-2+deb12u10): the command that removes
 * every key recorded for the host from the file that holds the offending line.
 * NAME is the host as known_hosts names it: `[host]:port` off port 22, the
 * HostKeyAlias when one is set.
 *
 * @example
 * removeHint("/home/me/.ssh/known_hosts", "[example.org]:2222")
 * // '  remove with:\n  ssh-keygen -f "/home/me/.ssh/known_hosts" -R "[example.org]:2222"'
 */
function removeHint(file: string, name: string): string {
  return `  remove with:\n  ssh-keygen -f ${shellQuote(file)} -R ${shellQuote(name)}`;
}

/**
 * Double quotes, as Debian's OpenSSH 9.2 prints them (later versions of the
 * patch use single quotes), unless the text holds a character a POSIX shell
 * still interprets inside double quotes ($, `, \, ", and ! for bash's history
 * expansion): then single quotes, so that the pasted command names the same
 * file and host.
 */
function shellQuote(text: string): string {
  if (!/[$`\\"!]/.test(text)) return `"${text}"`;
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * ssh2's `hostVerifier` for one connection. ssh2 calls it at the first key
 * exchange and again at every re-key (RFC 4253 section 9). The first key
 * goes to `check` and, once accepted, is pinned: a re-key must present that
 * same key, whatever known_hosts says. OpenSSH (sshconnect.c
 * verify_host_key(), previous_host_key) lets the same key through without a
 * second look and checks a different one against known_hosts again; nobody can
 * be asked about a key in the middle of a session, so we refuse it.
 *
 * @example
 * const hostVerifier = pinFirstHostKey({
 *   check: (key) => verifyHostKey(key, policy),
 *   refused: (reason) => { failure = reason; },
 *   changed: () => log.error("the host key changed while re-keying"),
 * });
 */
export function pinFirstHostKey(handlers: PinnedKeyHandlers): HostVerifier {
  let pinned: Buffer | undefined;
  return (key, verify) => {
    if (pinned !== undefined) {
      const same = pinned.equals(key);
      if (!same) handlers.changed(key);
      verify(same);
      return;
    }
    handlers.check(key).then(
      () => {
        pinned = Buffer.from(key);
        verify(true);
      },
      (reason: unknown) => {
        handlers.refused(reason);
        verify(false);
      },
    );
  };
}

export interface PinnedKeyHandlers {
  /** Decides on the first key: resolves to accept it, rejects with the reason to refuse it. */
  check(key: Buffer): Promise<void>;
  /** Receives `check`'s rejection; ssh2 itself only reports "Host denied (verification failed)". */
  refused(reason: unknown): void;
  /** A re-key presented a key other than the pinned one; the connection is refused after this returns. */
  changed(key: Buffer): void;
}

interface UnknownKey {
  name: string;
  label: string;
  fingerprint: string;
  line: () => string;
}

async function decideUnknown(policy: HostKeyPolicy, key: UnknownKey): Promise<void> {
  const strict = policy.batchMode && policy.strict === "ask" ? "yes" : policy.strict;
  if (strict === "yes") {
    throw new TunnelError(
      "HOST_KEY_UNKNOWN",
      `No ${key.label} host key is known for ${key.name} and you have requested strict checking. Host key verification failed. Add it to ${policy.userKnownHostsFiles[0]} (fingerprint ${key.fingerprint}) or use -o StrictHostKeyChecking=accept-new.`,
    );
  }
  if (strict === "ask") {
    const question = `The authenticity of host '${key.name}' can't be established.\n${key.label} key fingerprint is ${key.fingerprint}.\nThis key is not known by any other names.\nAre you sure you want to continue connecting (yes/no/[fingerprint])? `;
    let accepted = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const answer = await policy.prompt({ message: attempt === 0 ? question : "Please type 'yes', 'no' or the fingerprint: ", echo: true, kind: "secret" });
      if (answer === null && attempt === 0) {
        throw new TunnelError(
          "HOST_KEY_UNKNOWN",
          `Host key verification failed: ${key.name} is not in known_hosts (${key.label} ${key.fingerprint}) and the question got no answer (no terminal or SSH_ASKPASS to ask, or it was cancelled). Run once in a terminal, or add the key to ${policy.userKnownHostsFiles[0]}, or use -o StrictHostKeyChecking=accept-new.`,
        );
      }
      if (answer === null) break;
      const trimmed = answer.trim();
      if (trimmed.toLowerCase() === "yes" || trimmed === key.fingerprint) {
        accepted = true;
        break;
      }
      // OpenSSH's confirm(): Enter alone means no.
      if (trimmed === "" || trimmed.toLowerCase() === "no") break;
    }
    if (!accepted) {
      throw new TunnelError("HOST_KEY_UNKNOWN", `Host key verification failed for ${key.name} (${key.label} ${key.fingerprint}): not confirmed. Answer 'yes' at the prompt, or add the key to ${policy.userKnownHostsFiles[0]}.`);
    }
  }
  const file = policy.userKnownHostsFiles[0];
  if (file === undefined) return;
  try {
    await appendKnownHost(file, key.line());
    policy.log.warn(`Permanently added '${key.name}' (${key.label}) to the list of known hosts.`);
  } catch (err) {
    // OpenSSH goes on when it cannot record the key; so do we, loudly.
    policy.log.warn(`Failed to add the host to the list of known hosts (${file}): ${(err as Error).message}`);
  }
}

function formatNewLine(policy: HostKeyPolicy, key: ReturnType<typeof hostKeyFromBlob>, entries: KnownHostsEntry[]): string {
  const target = policy.userKnownHostsFiles[0];
  const hash = policy.hashKnownHosts ?? prefersHashing(entries.filter((e) => e.file === target));
  return formatKnownHostsLine(policy.host, policy.port, key, { hash });
}
