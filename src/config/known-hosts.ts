/**
 * OpenSSH-compatible known_hosts handling: parse the file, decide whether a
 * presented host key is known, changed, revoked or new, and append new lines.
 *
 * The format and matching rules follow sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"
 * and OpenSSH's hostfile.c / match.c / sshconnect.c. Everything here is pure
 * except `loadKnownHosts` and `appendKnownHost` at the bottom.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdir, open, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { TunnelError, describeError, echoValue, errnoCode } from "../errors.ts";
import { hostPatternListMatches } from "./patterns.ts";
import { decodeStrictBase64, nextToken, skipBlanks } from "./key-line.ts";

/** A public host key: `blob` is the SSH wire encoding, `type` the first string inside it. */
export interface HostKey {
  type: string;
  blob: Buffer;
}

/** One valid known_hosts line. `line` is 1-based; `keyType` always equals the type inside the key blob. */
export interface KnownHostsEntry {
  file: string;
  line: number;
  marker: "revoked" | "cert-authority" | null;
  hostField: string;
  hashed: boolean;
  keyType: string;
  keyBase64: string;
  comment: string;
}

export type HostKeyStatus =
  | { status: "known"; entry: KnownHostsEntry }
  | { status: "revoked"; entry: KnownHostsEntry }
  | { status: "changed"; entry: KnownHostsEntry }
  | { status: "unknown"; otherTypes: KnownHostsEntry[] };

// hostfile.h: HASH_MAGIC "|1|", salt and digest are both SHA-1 sized (20 bytes).
const HASH_MAGIC = "|1|";
const HASH_SALT_BYTES = 20;
const SSH_DEFAULT_PORT = 22;

/** The salt of a `|1|salt|hash` field, or null when OpenSSH's extract_salt() would reject it. */
function hashedFieldSalt(field: string): Buffer | null {
  if (!field.startsWith(HASH_MAGIC)) return null;
  const rest = field.slice(HASH_MAGIC.length);
  const bar = rest.indexOf("|");
  if (bar <= 0) return null;
  const salt = decodeStrictBase64(rest.slice(0, bar));
  return salt !== null && salt.length === HASH_SALT_BYTES ? salt : null;
}

function parseLine(text: string, file: string, line: number): KnownHostsEntry | null {
  let i = skipBlanks(text, 0);
  if (i === text.length || text[i] === "#") return null;

  // check_markers(): at most one of @cert-authority / @revoked, terminated by a blank; anything else invalidates the line.
  let marker: KnownHostsEntry["marker"] = null;
  if (text[i] === "@") {
    const { token, end } = nextToken(text, i);
    if (end === text.length) return null;
    if (token === "@cert-authority") marker = "cert-authority";
    else if (token === "@revoked") marker = "revoked";
    else return null;
    i = skipBlanks(text, end);
    if (text[i] === "@") return null;
  }

  const host = nextToken(text, i);
  const hostField = host.token;
  if (hostField.length === 0) return null;
  const hashed = hostField.startsWith("|");
  // A hashed field with a bad salt is a parse error in hostkeys_foreach() when matching, so the line never counts.
  if (hashed && hashedFieldSalt(hostField) === null) return null;

  i = skipBlanks(text, host.end);
  if (i === text.length || text[i] === "#") return null;
  const type = nextToken(text, i);
  i = skipBlanks(text, type.end);
  const data = nextToken(text, i);
  const blob = decodeStrictBase64(data.token);
  if (blob === null) return null;
  // sshkey_read() rejects a line whose declared type differs from the type inside the blob (this also drops SSH-1 RSA lines).
  let key: HostKey;
  try {
    key = hostKeyFromBlob(blob);
  } catch {
    return null;
  }
  if (key.type !== type.token) return null;

  const comment = text.slice(skipBlanks(text, data.end)).trimEnd();
  return { file, line, marker, hostField, hashed, keyType: key.type, keyBase64: data.token, comment };
}

/**
 * Parses known_hosts text into entries, skipping blank lines, comments and
 * lines OpenSSH would reject (unknown markers, truncated lines, bad base64, a
 * key type that differs from the blob's, hashed names with a bad salt).
 * Never throws.
 *
 * @example
 * const entries = parseKnownHosts("example.com ssh-ed25519 AAAAC3Nza...\n", "/home/me/.ssh/known_hosts");
 * entries[0]?.hostField; // "example.com"
 */
export function parseKnownHosts(text: string, file: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    // OpenSSH strips only "\n"; its base64 decoder then ignores a trailing "\r", so CRLF files still load.
    const raw = lines[n] ?? "";
    const entry = parseLine(raw.endsWith("\r") ? raw.slice(0, -1) : raw, file, n + 1);
    if (entry !== null) entries.push(entry);
  }
  return entries;
}

/**
 * The name a host is stored under in known_hosts, as OpenSSH's put_host_port():
 * the bare host for port 22 (or 0), `[host]:port` otherwise. Case is kept;
 * matching and writing lowercase it, as ssh does.
 *
 * @example
 * knownHostsName("example.com", 22);   // "example.com"
 * knownHostsName("example.com", 2222); // "[example.com]:2222"
 */
export function knownHostsName(host: string, port: number): string {
  if (port === 0 || port === SSH_DEFAULT_PORT) return host;
  return `[${host}]:${port}`;
}

function hashHostName(name: string, salt: Buffer): string {
  const digest = createHmac("sha1", salt).update(name, "utf8").digest();
  return `${HASH_MAGIC}${salt.toString("base64")}|${digest.toString("base64")}`;
}

/**
 * Whether the entry's host field covers `host` on `port`. The host is
 * lowercased and looked up as `knownHostsName(host, port)`, so a plain `host`
 * line does not cover port 2222. Plain fields are comma-separated patterns
 * with `*`, `?` and `!` negation (a matching negation vetoes the line); hashed
 * fields compare HMAC-SHA1(salt, name) like OpenSSH's host_hash().
 *
 * @example
 * const [entry] = parseKnownHosts("*.example.com,!bad.example.com ssh-ed25519 AAAAC3Nza...", "kh");
 * entryMatchesHost(entry, "www.example.com", 22); // true
 * entryMatchesHost(entry, "bad.example.com", 22); // false
 */
export function entryMatchesHost(entry: KnownHostsEntry, host: string, port: number): boolean {
  const name = knownHostsName(host.toLowerCase(), port);
  if (entry.hostField.startsWith("|")) {
    // match_maybe_hashed(): a hashed field holds one name and is compared whole, never as a list.
    const salt = hashedFieldSalt(entry.hostField);
    return salt !== null && hashHostName(name, salt) === entry.hostField;
  }
  return hostPatternListMatches(entry.hostField.split(","), name);
}

function entryHasKey(entry: KnownHostsEntry, blob: Buffer): boolean {
  return Buffer.from(entry.keyBase64, "base64").equals(blob);
}

/**
 * Classifies a presented host key against the entries, in entry order:
 * "revoked" when a matching `@revoked` line holds this key (it wins over
 * everything); "known" when any plain line for the host holds it (other lines
 * of the same type may differ, as with OpenSSH's HOST_OK); "changed" with the
 * first plain line of the same key type holding another key; otherwise
 * "unknown", listing the plain lines for the host with other key types.
 * `@cert-authority` lines never vouch for plain keys.
 *
 * OpenSSH differs in ways the caller has to handle: check_hostkeys_by_key_or_type()
 * reports HOST_CHANGED when only keys of other types are known (so `unknown`
 * with non-empty `otherTypes` is what ssh refuses as "REMOTE HOST IDENTIFICATION
 * HAS CHANGED") and names the last differing line rather than the first; and
 * for a non-22 port whose result is HOST_NEW, ssh retries the bare host name
 * and accepts the key if that finds it known.
 *
 * @example
 * const result = checkHostKey(entries, "example.com", 22, hostKeyFromBlob(blob));
 * if (result.status === "changed") console.error(`offending key in ${result.entry.file}:${result.entry.line}`);
 */
export function checkHostKey(entries: KnownHostsEntry[], host: string, port: number, key: HostKey): HostKeyStatus {
  const forHost = entries.filter((entry) => entryMatchesHost(entry, host, port));
  const revoked = forHost.find((entry) => entry.marker === "revoked" && entryHasKey(entry, key.blob));
  if (revoked !== undefined) return { status: "revoked", entry: revoked };

  const plain = forHost.filter((entry) => entry.marker === null);
  const known = plain.find((entry) => entryHasKey(entry, key.blob));
  if (known !== undefined) return { status: "known", entry: known };
  const changed = plain.find((entry) => entry.keyType === key.type);
  if (changed !== undefined) return { status: "changed", entry: changed };
  return { status: "unknown", otherTypes: plain.filter((entry) => entry.keyType !== key.type) };
}

/**
 * Distinct key types of the plain (not revoked, not CA) lines for the host, in
 * entry order. OpenSSH's order_hostkeyalgs() uses this to offer the algorithms
 * of already-known key types first, so the server does not pick a key we would
 * have to ask about.
 *
 * @example
 * keyTypesKnownFor(entries, "example.com", 22); // ["ssh-ed25519", "ssh-rsa"]
 */
export function keyTypesKnownFor(entries: KnownHostsEntry[], host: string, port: number): string[] {
  const types: string[] = [];
  for (const entry of entries) {
    if (entry.marker !== null || types.includes(entry.keyType)) continue;
    if (entryMatchesHost(entry, host, port)) types.push(entry.keyType);
  }
  return types;
}

/** The key type a host-key signature algorithm verifies with: rsa-sha2-256/512 sign with "ssh-rsa" keys. */
function keyTypeOfAlgorithm(algorithm: string): string {
  return algorithm === "rsa-sha2-256" || algorithm === "rsa-sha2-512" ? "ssh-rsa" : algorithm;
}

/**
 * Reorders host-key algorithms so those whose key type is already known come
 * first, each group keeping its original order (OpenSSH's order_hostkeyalgs()).
 *
 * @example
 * orderHostKeyAlgorithms(["ssh-ed25519", "rsa-sha2-512", "ssh-rsa"], ["ssh-rsa"]);
 * // ["rsa-sha2-512", "ssh-rsa", "ssh-ed25519"]
 */
export function orderHostKeyAlgorithms(algorithms: string[], knownTypes: string[]): string[] {
  const known = new Set(knownTypes);
  const first = algorithms.filter((algorithm) => known.has(keyTypeOfAlgorithm(algorithm)));
  const rest = algorithms.filter((algorithm) => !known.has(keyTypeOfAlgorithm(algorithm)));
  return [...first, ...rest];
}

function badKey(detail: string): TunnelError {
  return new TunnelError("BAD_KEY", `malformed SSH public key blob: ${detail}; the key or known_hosts line is corrupt`);
}

/** Reads RFC 4251 section 5 `string` fields from a blob, throwing BAD_KEY on truncation. */
class BlobReader {
  private offset = 0;
  private readonly blob: Buffer;

  constructor(blob: Buffer) {
    this.blob = blob;
  }

  string(what: string): Buffer {
    if (this.blob.length - this.offset < 4) throw badKey(`truncated before ${what}`);
    const length = this.blob.readUInt32BE(this.offset);
    if (length > this.blob.length - this.offset - 4) throw badKey(`${what} runs past the end`);
    const value = this.blob.subarray(this.offset + 4, this.offset + 4 + length);
    this.offset += 4 + length;
    return value;
  }

  end(): void {
    if (this.offset !== this.blob.length) throw badKey(`${this.blob.length - this.offset} trailing bytes`);
  }
}

// Field layouts (RFC 4253 6.6, RFC 5656 3.1, RFC 8709, PROTOCOL.u2f) for the types OpenSSH accepts as host keys.
const ECDSA_CURVES: Record<string, string> = {
  "ecdsa-sha2-nistp256": "nistp256",
  "ecdsa-sha2-nistp384": "nistp384",
  "ecdsa-sha2-nistp521": "nistp521",
  "sk-ecdsa-sha2-nistp256@openssh.com": "nistp256",
};

/**
 * Reads the key type out of an SSH wire-format public key and checks the
 * fields of the well-known types (unknown types are accepted with any body).
 * Throws TunnelError("BAD_KEY") on a malformed blob.
 *
 * @example
 * hostKeyFromBlob(Buffer.from("AAAAC3NzaC1lZDI1NTE5AAAAIEkq+OYmD2oCk8y1OGRYcX6IDq+f4uphaT9pYjiKsvaU", "base64")).type;
 * // "ssh-ed25519"
 */
export function hostKeyFromBlob(blob: Buffer): HostKey {
  const reader = new BlobReader(blob);
  const typeBytes = reader.string("the key type");
  // OpenSSH key type names are short printable ASCII; anything else means this is not a key blob.
  if (typeBytes.length === 0 || typeBytes.length > 128 || typeBytes.some((b) => b < 0x21 || b > 0x7e)) {
    throw badKey("the key type is not a printable name");
  }
  const type = typeBytes.toString("latin1");
  const curve = ECDSA_CURVES[type];
  if (type === "ssh-ed25519" || type === "sk-ssh-ed25519@openssh.com") {
    if (reader.string("the ed25519 public key").length !== 32) throw badKey("ed25519 public key is not 32 bytes");
    if (type !== "ssh-ed25519") reader.string("the security key application");
    reader.end();
  } else if (type === "ssh-rsa") {
    reader.string("the RSA exponent");
    if (reader.string("the RSA modulus").length === 0) throw badKey("empty RSA modulus");
    reader.end();
  } else if (type === "ssh-dss") {
    for (const part of ["p", "q", "g", "y"]) reader.string(`the DSA ${part}`);
    reader.end();
  } else if (curve !== undefined) {
    if (reader.string("the curve name").toString("latin1") !== curve) throw badKey(`curve name does not match ${type}`);
    if (reader.string("the EC point").length === 0) throw badKey("empty EC point");
    if (type.startsWith("sk-")) reader.string("the security key application");
    reader.end();
  }
  return { type, blob };
}

/**
 * The SHA-256 fingerprint as `ssh-keygen -l -E sha256` prints it.
 *
 * @example
 * fingerprintSha256(blob); // "SHA256:MUBr06T8GjdPp7W+5VpBon7NUKIaBy6K4RBsPmXn2As"
 */
export function fingerprintSha256(blob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

/**
 * One known_hosts line for a host key, without a trailing newline, as
 * OpenSSH's write_host_entry() writes it: the name lowercased and
 * port-decorated, optionally hashed as `|1|salt|hash` with a fresh 20-byte
 * salt (pass `salt` only to make output reproducible).
 *
 * @example
 * formatKnownHostsLine("Example.com", 2222, key, { hash: false });
 * // "[example.com]:2222 ssh-ed25519 AAAAC3Nza..."
 */
export function formatKnownHostsLine(
  host: string,
  port: number,
  key: HostKey,
  options: { hash: boolean; salt?: Buffer },
): string {
  const name = knownHostsName(host.toLowerCase(), port);
  let field = name;
  if (options.hash) {
    const salt = options.salt ?? randomBytes(HASH_SALT_BYTES);
    if (salt.length !== HASH_SALT_BYTES) {
      throw new TunnelError("INTERNAL", `known_hosts salt must be ${HASH_SALT_BYTES} bytes, got ${salt.length}`);
    }
    field = hashHostName(name, salt);
  }
  return `${field} ${key.type} ${key.blob.toString("base64")}`;
}

/**
 * Whether new lines should be hashed to match the file's style: the last
 * plain (unmarked) entry decides, because it is what the user's ssh wrote most
 * recently (files often keep old plain lines above newer hashed ones after
 * HashKnownHosts was turned on). An empty file gives false, OpenSSH's default.
 * An explicit HashKnownHosts setting should override this.
 *
 * @example
 * prefersHashing(parseKnownHosts(text, path)); // true for a file written with HashKnownHosts yes
 */
export function prefersHashing(entries: KnownHostsEntry[]): boolean {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i];
    if (entry !== undefined && entry.marker === null) return entry.hashed;
  }
  return false;
}

/**
 * Reads and parses known_hosts files in order (user files before global ones,
 * as ssh loads them). A missing file counts as empty; any other read error
 * throws TunnelError("BAD_CONFIG") naming the file.
 *
 * @example
 * const entries = await loadKnownHosts(["/home/me/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"]);
 */
export async function loadKnownHosts(paths: string[]): Promise<KnownHostsEntry[]> {
  const entries: KnownHostsEntry[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw new TunnelError(
        "BAD_CONFIG",
        `cannot read known_hosts file ${echoValue(path)} (${code ?? describeError(err)}); fix its permissions or point UserKnownHostsFile elsewhere`,
        { cause: err },
      );
    }
    entries.push(...parseKnownHosts(text, path));
  }
  return entries;
}

/**
 * Appends one line to a known_hosts file, creating the parent directory
 * (mode 0700) and the file (mode 0600) when missing, and first ending an
 * unterminated last line so the new entry starts on its own line.
 *
 * @example
 * await appendKnownHost("/home/me/.ssh/known_hosts", formatKnownHostsLine("example.com", 22, key, { hash: true }));
 */
export async function appendKnownHost(path: string, line: string): Promise<void> {
  if (/[\r\n]/.test(line)) throw new TunnelError("INTERNAL", "a known_hosts line must not contain a line break");
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const handle = await open(path, "a+", 0o600);
    try {
      const { size } = await handle.stat();
      let prefix = "";
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) prefix = "\n";
      }
      await handle.write(`${prefix}${line}\n`);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new TunnelError(
      "BAD_CONFIG",
      `cannot add host key to ${echoValue(path)} (${errnoCode(err) ?? describeError(err)}); fix its permissions or point UserKnownHostsFile elsewhere`,
      { cause: err },
    );
  }
}
