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
import { readFile } from "node:fs/promises";
import type { AnyAuthMethod, AuthHandlerMiddleware, AuthenticationType, BaseAgent, ParsedKey } from "ssh2";
import { Buffer } from "node:buffer";
import type { Logger } from "../log.ts";
import type { PromptRequest } from "./prompt.ts";
import { describeError } from "../errors.ts";

/** The parts of the ssh2 module this file uses (passed in: ssh2 is imported lazily). */
export interface Ssh2Runtime {
  utils: { parseKey(data: Buffer | string, passphrase?: Buffer | string): ParsedKey | ParsedKey[] | Error };
  OpenSSHAgent: new (socketPath: string) => BaseAgent;
}

export interface IdentityFile {
  path: string;
  /** Named by -i or IdentityFile (a missing one is worth a warning); defaults are not. */
  explicit: boolean;
}

export interface AuthSettings {
  user: string;
  /** As shown in prompts: `user@host's password:`. */
  host: string;
  identityFiles: IdentityFile[];
  identitiesOnly: boolean;
  /** SSH_AUTH_SOCK or IdentityAgent; "pageant" on Windows; undefined for none. */
  agent: string | undefined;
  batchMode: boolean;
  /** NumberOfPasswordPrompts (OpenSSH default 3). */
  passwordPrompts: number;
  /** PreferredAuthentications, if set; else OpenSSH's default order. */
  preferredAuthentications: string[] | undefined;
  prompt: (request: PromptRequest) => Promise<string | null>;
  log: Logger;
}

export interface AuthFlow {
  handler: AuthHandlerMiddleware;
  /** The methods the server offered last, for "Permission denied (publickey,password)." */
  serverMethods(): string[];
}

type Step = () => Promise<AnyAuthMethod | null>;

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
      if (step === undefined) {
        next(false as unknown as AuthenticationType);
        return;
      }
      if (!offered.includes(step.method)) {
        tryNext();
        return;
      }
      step.run().then(
        (method) => (method === null ? tryNext() : next(method)),
        (err: unknown) => {
          log.debug(1, `authentication step failed: ${describeError(err)}`);
          tryNext();
        },
      );
    };
    tryNext();
  };
  return { handler, serverMethods: () => offered };
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
      // OpenSSH retries up to NumberOfPasswordPrompts rounds while the server
      // keeps offering it, and stops once a round brought no prompt or the user cancelled.
      const rounds = { over: false };
      for (let round = 0; round < settings.passwordPrompts; round++) {
        steps.push({ method, run: async () => (rounds.over ? null : keyboardInteractive(settings, rounds)) });
      }
    } else if (method === "password" && !settings.batchMode) {
      for (let attempt = 0; attempt < settings.passwordPrompts; attempt++) {
        steps.push({
          method,
          run: async () => {
            if (attempt > 0) settings.log.error("Permission denied, please try again.");
            const password = await settings.prompt({ message: `${settings.user}@${settings.host}'s password: `, echo: false, kind: "secret" });
            return password === null ? null : { type: "password", username: settings.user, password };
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
      run: async () => {
        const key = await loadIdentity(identity, settings, ssh2);
        if (key === null) return null;
        log.debug(1, `Offering public key: ${identity.path}`);
        return { type: "publickey", username: user, key };
      },
    });
  }
  return steps;
}

/** Read and decrypt one identity file; null (with OpenSSH's kind of warning) when it cannot be used. */
async function loadIdentity(identity: IdentityFile, settings: AuthSettings, ssh2: Ssh2Runtime): Promise<ParsedKey | null> {
  let data: Buffer;
  try {
    data = await readFile(identity.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !identity.explicit) return null;
    settings.log.warn(`Identity file ${identity.path} not accessible: ${errnoText(code, err)}.`);
    return null;
  }
  let parsed = firstKey(ssh2.utils.parseKey(data));
  if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message)) {
    if (settings.batchMode) {
      settings.log.debug(1, `Skipping encrypted key ${identity.path}: BatchMode is on`);
      return null;
    }
    for (let attempt = 0; attempt < 3 && parsed instanceof Error; attempt++) {
      const passphrase = await settings.prompt({ message: `Enter passphrase for key '${identity.path}': `, echo: false, kind: "secret" });
      if (passphrase === null || passphrase === "") return null;
      parsed = firstKey(ssh2.utils.parseKey(data, passphrase));
      if (parsed instanceof Error) settings.log.error(`Bad passphrase for ${identity.path}, try again.`);
    }
  }
  if (parsed instanceof Error) {
    const message = parsed.message.replace(/[.?!]+$/, "");
    const hint = /passphrase|integrity/i.test(message) ? "wrong passphrase" : "check that it is an OpenSSH, PEM or PPK private key";
    settings.log.warn(`Load key "${identity.path}": ${message} (${hint}); skipping it.`);
    return null;
  }
  return parsed;
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
    for (const candidate of [`${file.path}.pub`, file.path]) {
      try {
        const parsed = firstKey(ssh2.utils.parseKey(await readFile(candidate)));
        if (!(parsed instanceof Error)) {
          wanted.add(parsed.getPublicSSH().toString("base64"));
          break;
        }
      } catch {
        // Missing or unreadable: that identity simply offers nothing.
      }
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

async function keyboardInteractive(settings: AuthSettings, rounds: { over: boolean }): Promise<AnyAuthMethod> {
  return {
    type: "keyboard-interactive",
    username: settings.user,
    prompt: (name, instructions, _lang, prompts, finish) => {
      if (name) settings.log.info(name);
      if (instructions) settings.log.info(instructions);
      if (prompts.length === 0) rounds.over = true;
      const answers: string[] = [];
      const askAll = async (): Promise<void> => {
        for (const p of prompts) {
          // sshconnect2.c: "(user@host) " before each server prompt, so a phishing
          // server cannot pass its prompt off as a local one.
          const answer = await settings.prompt({ message: `(${settings.user}@${settings.host}) ${p.prompt}`, echo: p.echo ?? false, kind: "secret" });
          if (answer === null) {
            rounds.over = true;
            break;
          }
          answers.push(answer);
        }
      };
      askAll().then(
        () => finish(answers),
        () => finish([]),
      );
    },
  };
}
