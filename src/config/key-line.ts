/**
 * The lexical pieces OpenSSH's key files share (known_hosts, authorized_keys):
 * fields split on spaces and tabs only, and base64 key data that must decode
 * exactly (sshd(8) SSH_KNOWN_HOSTS and AUTHORIZED_KEYS FILE FORMAT).
 */
import { Buffer } from "node:buffer";

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Padded, canonical base64 only: Buffer.from() would silently skip bad characters.
 *
 * @example
 * decodeStrictBase64("AAAA") // <Buffer 00 00 00>
 * decodeStrictBase64("AA A") // null
 */
export function decodeStrictBase64(text: string): Buffer | null {
  if (text.length === 0 || !STRICT_BASE64.test(text)) return null;
  return Buffer.from(text, "base64");
}

/**
 * Splits off the next token delimited by spaces or tabs (OpenSSH only treats those two as separators).
 *
 * @example
 * nextToken("ssh-ed25519 AAAA", 0) // { token: "ssh-ed25519", end: 11 }
 */
export function nextToken(text: string, from: number): { token: string; end: number } {
  let end = from;
  while (end < text.length && text[end] !== " " && text[end] !== "\t") end++;
  return { token: text.slice(from, end), end };
}

/** The index of the first character at or after `from` that is not a space or tab. */
export function skipBlanks(text: string, from: number): number {
  let i = from;
  while (i < text.length && (text[i] === " " || text[i] === "\t")) i++;
  return i;
}
