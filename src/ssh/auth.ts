/**
 * User authentication in OpenSSH's order (ssh(1) "AUTHENTICATION", sshconnect2.c):
 * the agent's keys, then identity files (-i, config, then the default names),
 * then keyboard-interactive, then password. Passphrases and passwords are asked
 * for only when that method's turn comes, through prompt.ts (terminal or
 * SSH_ASKPASS, never with BatchMode).
 *
 * The result is an ssh2 `authHandler`: ssh2 calls it with the methods the
 * server still allows, and it answers with the next attempt or `false`.
 */
import { readFile, stat } from "node:fs/promises";
import process from "node:process";
import type { AnyAuthMethod, AuthHandlerMiddleware, AuthenticationType, BaseAgent, ParsedKey } from "ssh2";
import { Buffer } from "node:buffer";
import type { Logger } from "../log.ts";
import type { AuthOptions, IdentityFile } from "../config/settings.ts";
import type { PromptRequest } from "./prompt.ts";
import { TunnelError, describeError, errnoCode, isTunnelError } from "../errors.ts";
import { printable } from "../log.ts";

/** The parts of the ssh2 module this file uses (passed in: ssh2 is imported lazily). */
export interface Ssh2Runtime {
  utils: { parseKey(data: Buffer | string, passphrase?: Buffer | string): ParsedKey | ParsedKey[] | Error };
  OpenSSHAgent: new (socketPath: string) => BaseAgent;
  BaseAgent: abstract new () => BaseAgent;
}

export interface AuthSettings extends AuthOptions {
  user: string;
  /** As shown in prompts: `user@host's password:`. */
  host: string;
  prompt: (request: PromptRequest) => Promise<string | null>;
  log: Logger;
  /**
   * Keys unlocked with a passphrase, by file path, kept in memory (never
   * written) so a reconnect does not ask again. Share one map across the
   * connections of a run. @default none: every connection asks
   */
  unlockedKeys?: Map<string, ParsedKey>;
}

export interface AuthFlow {
  handler: AuthHandlerMiddleware;
  /** Set when the user interrupted a prompt: the reason to report instead of "Permission denied". */
  cancelled(): TunnelError | undefined;
  /** The methods the server offered last, for "Permission denied (publickey,password)." */
  serverMethods(): string[];
}

/** One attempt; `cancel` ends the whole flow (Ctrl-C at a prompt the server sent later). */
type Step = (cancel: (err: TunnelError) => void) => Promise<AnyAuthMethod | null>;

const DEFAULT_ORDER = ["publickey", "keyboard-interactive", "password"];

/**
 * @example
 * const flow = createAuthFlow(settings, await import("ssh2"));
 * client.connect({ ...config, authHandler: flow.handler });
 */
export function createAuthFlow(settings: AuthSettings, ssh2: Ssh2Runtime): AuthFlow {
  const { user, log } = settings;
  let offered: string[] = [];
  const steps = buildSteps(settings, ssh2);
  let index = -1;
  let sentNone = false;
  let cancelled: TunnelError | undefined;
  const cancel = (err: TunnelError): void => {
    cancelled ??= err;
  };

  const handler: AuthHandlerMiddleware = (methodsLeft, _partial, next) => {
    if (methodsLeft) offered = methodsLeft;
    // Like OpenSSH, ask with "none" first: it returns the list of allowed methods.
    if (!sentNone) {
      sentNone = true;
      next({ type: "none", username: user });
      return;
    }
    const tryNext = (): void => {
      index++;
      const step = steps[index];
      if (step === undefined || cancelled !== undefined) {
        next(false as unknown as AuthenticationType);
        return;
      }
      if (!offered.includes(step.method)) {
        tryNext();
        return;
      }
      step.run(cancel).then(
        (method) => (method === null ? tryNext() : next(method)),
        (err: unknown) => {
          if (isTunnelError(err, "CANCELLED")) cancel(err);
          else log.debug(1, `authentication step failed: ${describeError(err)}`);
          tryNext();
        },
      );
    };
    tryNext();
  };
  return { handler, serverMethods: () => offered, cancelled: () => cancelled };
}

interface PlannedStep {
  method: "publickey" | "keyboard-interactive" | "password";
  run: Step;
}

function buildSteps(settings: AuthSettings, ssh2: Ssh2Runtime): PlannedStep[] {
  const order = settings.preferredAuthentications ?? DEFAULT_ORDER;
  const steps: PlannedStep[] = [];
  for (const method of order) {
    if (method === "publickey") steps.push(...publicKeySteps(settings, ssh2));
    else if (method === "keyboard-interactive" && !settings.batchMode) {
      // OpenSSH (sshconnect2.c, info_req_seen) retries up to
      // NumberOfPasswordPrompts rounds, but only while the previous round
      // brought an info request, and not after the user declined.
      const rounds: KbdRounds = { over: false, requestSeen: false };
      for (let round = 0; round < settings.passwordPrompts; round++) {
        steps.push({
          method,
          run: async (cancel) => {
            if (rounds.over || (round > 0 && !rounds.requestSeen)) return null;
            rounds.requestSeen = false;
            return keyboardInteractive(settings, rounds, cancel);
          },
        });
      }
    } else if (method === "password" && !settings.batchMode) {
      const state = { sent: false, gaveUp: false };
      for (let attempt = 0; attempt < settings.passwordPrompts; attempt++) {
        steps.push({
          method,
          run: async () => {
            if (state.gaveUp) return null;
            // Only after a password was really sent and refused, as in OpenSSH.
            if (state.sent) settings.log.error("Permission denied, please try again.");
            const password = await settings.prompt({ message: `${settings.user}@${settings.host}'s password: `, echo: false, kind: "secret" });
            if (password === null) {
              state.gaveUp = true;
              return null;
            }
            state.sent = true;
            return { type: "password", username: settings.user, password };
          },
        });
      }
    }
  }
  return steps;
}

function publicKeySteps(settings: AuthSettings, ssh2: Ssh2Runtime): PlannedStep[] {
  const { user, log } = settings;
  const steps: PlannedStep[] = [];
  if (settings.agent !== undefined) {
    steps.push({
      method: "publickey",
      run: async () => {
        const agent = settings.identitiesOnly
          ? await filteredAgent(ssh2, settings.agent!, settings.identityFiles)
          : settings.agent!;
        log.debug(1, `Offering keys from the agent at ${settings.agent}`);
        return { type: "agent", username: user, agent };
      },
    });
  }
  for (const identity of settings.identityFiles) {
    steps.push({
      method: "publickey",
      run: async (cancel) => {
        const key = await loadIdentity(identity, settings, ssh2, cancel);
        if (key === null) return null;
        log.debug(1, `Offering public key: ${identity.path}`);
        return "agent" in key ? { type: "agent", username: user, agent: key.agent } : { type: "publickey", username: user, key: key.key };
      },
    });
  }
  return steps;
}

/**
 * Read one identity file. A plain key is returned as is. An encrypted key whose
 * public half we can read (`<file>.pub`, or the clear header of the OpenSSH
 * format) is offered first and unlocked only if the server accepts it, as
 * OpenSSH does: no passphrase prompt for a key the server would refuse. Null
 * (with OpenSSH's kind of warning) when the file cannot be used.
 */
async function loadIdentity(
  identity: IdentityFile,
  settings: AuthSettings,
  ssh2: Ssh2Runtime,
  cancel: (err: TunnelError) => void,
): Promise<{ key: ParsedKey } | { agent: BaseAgent } | null> {
  const data = await readIdentity(identity, settings);
  if (data === null) return null;
  const plain = firstKey(ssh2.utils.parseKey(data));
  if (!(plain instanceof Error)) return { key: plain };
  if (!/encrypted|passphrase/i.test(plain.message)) return unusable(identity, plain, settings);
  if (settings.batchMode) {
    settings.log.debug(1, `Skipping encrypted key ${identity.path}: BatchMode is on`);
    return null;
  }
  const publicKey = await publicHalf(identity.path, data, ssh2);
  if (publicKey === null) {
    const key = await unlock(identity, data, settings, ssh2);
    return key === null ? null : { key };
  }
  const unlockMatching = async (): Promise<ParsedKey | null> => {
    const key = await unlock(identity, data, settings, ssh2);
    if (key !== null && !key.getPublicSSH().equals(publicKey.getPublicSSH())) {
      settings.log.warn(`The private key in ${identity.path} does not match ${identity.path}.pub; skipping it. Regenerate the .pub with: ssh-keygen -y -f ${identity.path}`);
      return null;
    }
    return key;
  };
  return { agent: unlockOnSign(ssh2, publicKey, unlockMatching, cancel) };
}

async function readIdentity(identity: IdentityFile, settings: AuthSettings): Promise<Buffer | null> {
  let data: Buffer;
  try {
    data = await readFile(identity.path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" && !identity.explicit) return null;
    settings.log.warn(`Identity file ${identity.path} not accessible: ${errnoText(code, err)}.`);
    return null;
  }
  return (await permissionsOk(identity.path, settings.log)) ? data : null;
}

/** Ask for the passphrase (three tries, as OpenSSH); null when declined or wrong. */
async function unlock(identity: IdentityFile, data: Buffer, settings: AuthSettings, ssh2: Ssh2Runtime): Promise<ParsedKey | null> {
  const kept = settings.unlockedKeys?.get(identity.path);
  if (kept !== undefined) return kept;
  let parsed: ParsedKey | Error = new Error("no passphrase given");
  for (let attempt = 0; attempt < 3 && parsed instanceof Error; attempt++) {
    const passphrase = await settings.prompt({ message: `Enter passphrase for key '${identity.path}': `, echo: false, kind: "secret" });
    if (passphrase === null || passphrase === "") return null;
    parsed = firstKey(ssh2.utils.parseKey(data, passphrase));
    if (parsed instanceof Error) settings.log.error(`Bad passphrase for ${identity.path}, try again.`);
  }
  if (parsed instanceof Error) return unusable(identity, parsed, settings);
  settings.unlockedKeys?.set(identity.path, parsed);
  return parsed;
}

function unusable(identity: IdentityFile, err: Error, settings: AuthSettings): null {
  const message = err.message.replace(/[.?!]+$/, "");
  const hint = /passphrase|integrity/i.test(message) ? "wrong passphrase" : "check that it is an OpenSSH, PEM or PPK private key";
  settings.log.warn(`Load key "${identity.path}": ${message} (${hint}); skipping it.`);
  return null;
}

/**
 * The public key of an encrypted private key file, without the passphrase:
 * from `<file>.pub`, else from the openssh-key-v1 header, which stores the
 * public key in clear (PROTOCOL.key). Null when neither is available.
 */
async function publicHalf(path: string, data: Buffer, ssh2: Ssh2Runtime): Promise<ParsedKey | null> {
  try {
    const fromPub = firstKey(ssh2.utils.parseKey(await readFile(`${path}.pub`)));
    if (!(fromPub instanceof Error)) return fromPub;
  } catch {
    // No .pub file: try the header.
  }
  const blob = openSshPublicBlob(data);
  if (blob === null) return null;
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString("latin1");
  const parsed = firstKey(ssh2.utils.parseKey(`${type} ${blob.toString("base64")}`));
  return parsed instanceof Error ? null : parsed;
}

/** The first public key blob of an "-----BEGIN OPENSSH PRIVATE KEY-----" file, or null. */
export function openSshPublicBlob(data: Buffer): Buffer | null {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(data.toString("latin1"));
  if (!match) return null;
  const raw = Buffer.from(match[1]!.replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (raw.subarray(0, magic.length).toString("latin1") !== magic) return null;
  let offset = magic.length;
  const readString = (): Buffer | null => {
    if (offset + 4 > raw.length) return null;
    const length = raw.readUInt32BE(offset);
    if (offset + 4 + length > raw.length) return null;
    const value = raw.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return value;
  };
  // ciphername, kdfname, kdfoptions, then the key count and the first public key.
  if (readString() === null || readString() === null || readString() === null) return null;
  if (offset + 4 > raw.length || raw.readUInt32BE(offset) < 1) return null;
  offset += 4;
  const blob = readString();
  return blob === null || blob.length < 4 ? null : Buffer.from(blob);
}

/**
 * An agent holding one key that is decrypted at the first signature: ssh2
 * asks the server about the public key first and signs only after PK_OK.
 */
function unlockOnSign(
  ssh2: Ssh2Runtime,
  publicKey: ParsedKey,
  unlockKey: () => Promise<ParsedKey | null>,
  cancel: (err: TunnelError) => void,
): BaseAgent {
  let unlocked: Promise<ParsedKey | null> | undefined;
  // ssh2 recognises agents with instanceof, so subclass its own BaseAgent.
  class UnlockOnSign extends ssh2.BaseAgent {
    getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
      cb(undefined, [publicKey]);
    }
    sign(_pub: unknown, data: Buffer, options: unknown, cb?: (err?: Error, signature?: Buffer) => void): void {
      const done = (typeof options === "function" ? options : cb) as (err?: Error, signature?: Buffer) => void;
      const hash = typeof options === "object" && options !== null ? (options as { hash?: string }).hash : undefined;
      unlocked ??= unlockKey();
      unlocked.then(
        (key) => {
          if (key === null) return done(new Error("key not unlocked"));
          const signature = key.sign(data, hash);
          if (signature instanceof Error) done(signature);
          else done(undefined, signature);
        },
        (err: unknown) => {
          if (isTunnelError(err, "CANCELLED")) cancel(err);
          done(err instanceof Error ? err : new Error(String(err)));
        },
      );
    }
  }
  return new UnlockOnSign();
}
/**
 * OpenSSH's sshkey_perm_ok(): a private key that others may read is ignored,
 * loudly, whatever it would unlock. Only for files the user owns (root's
 * shared keys and Windows ACLs are outside this rule).
 */
async function permissionsOk(path: string, log: Logger): Promise<boolean> {
  if (process.platform === "win32" || typeof process.getuid !== "function") return true;
  try {
    const info = await stat(path);
    if (info.uid !== process.getuid() || (info.mode & 0o077) === 0) return true;
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    log.warn(
      `UNPROTECTED PRIVATE KEY FILE! Permissions ${mode} for '${path}' are too open; others could read it, so it is ignored. Fix: chmod 600 ${path}`,
    );
    return false;
  } catch {
    return true;
  }
}

function firstKey(result: ParsedKey | ParsedKey[] | Error): ParsedKey | Error {
  if (Array.isArray(result)) return result[0] ?? new Error("no key in file");
  return result;
}

function errnoText(code: string | undefined, err: unknown): string {
  if (code === "ENOENT") return "No such file or directory";
  if (code === "EACCES" || code === "EPERM") return "Permission denied";
  if (code === "EISDIR") return "Is a directory";
  return describeError(err);
}

/**
 * IdentitiesOnly=yes: offer only agent keys that match an identity file's
 * public half (OpenSSH reads `<file>.pub`, else the private file's public part).
 */
async function filteredAgent(ssh2: Ssh2Runtime, socket: string, files: IdentityFile[]): Promise<BaseAgent> {
  const wanted = new Set<string>();
  for (const file of files) {
    try {
      const data = await readFile(file.path);
      const plain = firstKey(ssh2.utils.parseKey(data));
      // An encrypted file's public half (.pub or the clear header): no passphrase needed to match it.
      const publicKey = plain instanceof Error ? await publicHalf(file.path, data, ssh2) : plain;
      if (publicKey !== null) wanted.add(publicKey.getPublicSSH().toString("base64"));
    } catch {
      // Missing or unreadable: that identity simply offers nothing.
    }
  }
  const inner = new ssh2.OpenSSHAgent(socket);
  const agent = Object.create(inner) as BaseAgent;
  agent.getIdentities = (cb) => {
    inner.getIdentities((err, keys) => {
      if (err || !keys) return cb(err ?? new Error("agent returned no keys"));
      cb(
        undefined,
        keys.filter((key) => {
          const parsed = key as unknown as ParsedKey;
          return typeof parsed.getPublicSSH === "function" && wanted.has(parsed.getPublicSSH().toString("base64"));
        }),
      );
    });
  };
  return agent;
}

interface KbdRounds {
  /** The user declined or cancelled: no further rounds. */
  over: boolean;
  /** The current round received an info request from the server. */
  requestSeen: boolean;
}

async function keyboardInteractive(settings: AuthSettings, rounds: KbdRounds, cancel: (err: TunnelError) => void): Promise<AnyAuthMethod> {
  return {
    type: "keyboard-interactive",
    username: settings.user,
    prompt: (name, instructions, _lang, prompts, finish) => {
      rounds.requestSeen = true;
      if (name) settings.log.info(name);
      if (instructions) settings.log.info(instructions);
      const answers: string[] = [];
      // sshd drops the connection on a reply with fewer answers than prompts
      // ("wrong number of replies"): declined prompts are answered empty.
      const padded = (): string[] => [...answers, ...new Array<string>(prompts.length - answers.length).fill("")];
      const askAll = async (): Promise<void> => {
        for (const p of prompts) {
          // sshconnect2.c: "(user@host) " before each server prompt, so a phishing
          // server cannot pass its prompt off as a local one.
          const answer = await settings.prompt({ message: `(${settings.user}@${settings.host}) ${printable(p.prompt)}`, echo: p.echo ?? false, kind: "secret" });
          if (answer === null) {
            rounds.over = true;
            break;
          }
          answers.push(answer);
        }
      };
      askAll().then(
        () => finish(padded()),
        (err: unknown) => {
          if (isTunnelError(err, "CANCELLED")) cancel(err);
          rounds.over = true;
          finish(padded());
        },
      );
    },
  };
}
