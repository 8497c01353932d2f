/**
 * `serve`'s host key: an ed25519 key made on the first run and kept in the
 * user's config folder (mode 0600, in a 0700 folder, as sshd(8) wants its
 * host keys readable by nobody else), or the file --host-key names. Clients
 * pin it in known_hosts, so it must survive restarts: losing it would make
 * every client see OpenSSH's "REMOTE HOST IDENTIFICATION HAS CHANGED".
 */
import { Buffer } from "node:buffer";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import process from "node:process";
import { join } from "node:path";
import { TunnelError } from "../errors.ts";
import { fingerprintSha256 } from "../config/known-hosts.ts";
import { loadSsh2 } from "../ssh/ssh2-module.ts";

export interface HostKey {
  /** The private key file's text (OpenSSH format), for ssh2's Server. */
  privateKey: string;
  /** "ssh-ed25519" (or the type of a --host-key file). */
  type: string;
  /** The public key blob (RFC 4253 section 6.6). */
  publicBlob: Buffer;
  /** "SHA256:...", as ssh-keygen -l and OpenSSH's prompts print it. */
  fingerprint: string;
  /** Where it is kept. */
  file: string;
  /** Made by this run. */
  created: boolean;
}

export const HOST_KEY_FILE_NAME = "host_ed25519_key";

/**
 * @example
 * const key = await loadOrCreateHostKey({ configDir: userConfigDir(process.platform, process.env, homedir()) });
 */
export async function loadOrCreateHostKey(where: { file?: string; configDir: string }): Promise<HostKey> {
  if (where.file !== undefined) return await readHostKey(where.file, "--host-key");
  const file = join(where.configDir, HOST_KEY_FILE_NAME);
  try {
    return await readHostKey(file, "the host key");
  } catch (err) {
    if (!(err instanceof TunnelError && err.code === "HOST_KEY_MISSING")) throw err;
  }
  const { utils } = await loadSsh2();
  const pair = utils.generateKeyPairSync("ed25519", { comment: "safetunnel serve host key" });
  try {
    await mkdir(where.configDir, { recursive: true, mode: 0o700 });
    // "wx": never overwrite a key another run made meanwhile; 0600 from the first byte.
    const handle = await open(file, "wx", 0o600);
    try {
      await handle.writeFile(pair.private);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return await readHostKey(file, "the host key");
    throw new TunnelError("HOST_KEY_UNWRITABLE", `cannot keep the new host key in ${file} (${code ?? (err as Error).message}); make the folder writable or give --host-key FILE.`);
  }
  return { ...(await readHostKey(file, "the host key")), created: true };
}

async function readHostKey(file: string, what: string): Promise<HostKey> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new TunnelError("HOST_KEY_MISSING", `${what} ${file} does not exist; give an existing private key file (ssh-keygen -t ed25519 -f FILE -N '').`);
    throw new TunnelError("HOST_KEY_UNREADABLE", `cannot read ${what} ${file} (${code ?? (err as Error).message}).`);
  }
  // sshd(8) refuses a host key others can read ("UNPROTECTED PRIVATE KEY FILE"): whoever reads it can pose as this server.
  // Windows has no such mode bits (its ACLs are not visible here).
  if (process.platform !== "win32") {
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new TunnelError("HOST_KEY_INVALID", `${what} ${file} can be read by other users (mode 0${mode.toString(8)}); run chmod 600 ${file}.`);
    }
  }
  const { utils } = await loadSsh2();
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key === undefined || key instanceof Error || !key.isPrivateKey()) {
    const why = key instanceof Error ? `: ${key.message}` : "";
    throw new TunnelError("HOST_KEY_INVALID", `${what} ${file} is not an unencrypted private key${why}; make one with ssh-keygen -t ed25519 -f FILE -N ''.`);
  }
  const publicBlob = Buffer.from(key.getPublicSSH());
  return { privateKey: text, type: key.type, publicBlob, fingerprint: fingerprintSha256(publicBlob), file, created: false };
}

/**
 * The known_hosts line a client adds to trust this server without a prompt:
 * one name or address per listed host, in OpenSSH's `[host]:port` form for
 * ports other than 22 (sshd(8) SSH_KNOWN_HOSTS FILE FORMAT).
 *
 * @example
 * knownHostsLine(["home.example", "192.0.2.7"], 2222, key) // "[home.example]:2222,[192.0.2.7]:2222 ssh-ed25519 AAAA..."
 */
export function knownHostsLine(hosts: readonly string[], port: number, key: Pick<HostKey, "type" | "publicBlob">): string {
  const names = hosts.map((host) => (port === 22 ? host : `[${host}]:${port}`)).join(",");
  return `${names} ${key.type} ${key.publicBlob.toString("base64")}`;
}
