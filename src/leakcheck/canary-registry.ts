/**
 * Canary names and who is waiting for them.
 *
 * Everything lives under `safetunnel.invalid`: RFC 6761 section 6.4 reserves
 * `.invalid`, so no resolver anywhere answers such a name. A browser that
 * sends one to the proxy as a name has proved it resolves remotely; one that
 * resolves locally gets no address and sends nothing. The -D front end
 * answers every name under this domain itself and never opens a channel for
 * one, so the names cannot be used to reach anything.
 *
 * `safetunnel leakcheck` opens a control connection to the front end (a
 * SOCKS5 CONNECT to `control.safetunnel.invalid` port 1, see
 * canary-service.ts); each control connection gets fresh random canary names,
 * hears what happens to them, and loses them when it closes.
 */
import { randomBytes } from "node:crypto";
import type { UdpEndpoint } from "./control-protocol.ts";

/** The domain the front end answers itself. */
export const RESERVED_DOMAIN = "safetunnel.invalid";
/** CONNECT here (port CONTROL_PORT) to open a leak-check control connection. */
export const CONTROL_NAME = `control.${RESERVED_DOMAIN}`;
export const CONTROL_PORT = 1;

/**
 * A SOCKS name as it is compared here: lower case, without the final dots,
 * blanks and NULs a resolver would ignore or stop at.
 *
 * @example
 * canonicalName("X.Safetunnel.Invalid..\u0000") // "x.safetunnel.invalid"
 */
export function canonicalName(host: string): string {
  return host.toLowerCase().replace(/[\s\u0000.]+$/, "").replace(/^\s+/, "");
}

/** Control connections open at once, at most: each is one running `safetunnel leakcheck`. */
export const MAX_SESSIONS = 8;

/** What the front end saw, reported to the control connection that owns the canary. */
export type CanaryEvent =
  /** A CONNECT by name to the page canary or the STUN canary. */
  | { event: "canary"; name: string; port: number; client: string; program: string | null }
  /** The canary page was requested over HTTP (`path` as sent). */
  | { event: "page"; method: string; path: string; userAgent: string | null }
  /** The canary page posted what it found (WebRTC candidates), as parsed JSON. */
  | { event: "report"; body: unknown }
  /** A SOCKS request carrying an IP address was refused while the check ran. */
  | { event: "refused-ip"; destination: string; client: string; version: 4 | 5 | "http"; program: string | null };

/** One control connection's canaries. */
export interface CanarySession {
  /** The local account that opened it, when known: it hears only that account's refusals. */
  readonly uid: number | undefined;
  /** The page canary: `http://NAME/` is the URL the user opens. */
  readonly canary: string;
  /** A second name, for the page's WebRTC STUN server. */
  readonly stun: string;
  /** Where leakcheck listens for WebRTC's UDP, once it has said (the page's second STUN server). */
  udpStun: UdpEndpoint | undefined;
  /** The check's verdict, once leakcheck has sent it: the page shows it. */
  verdict: { verdict: "PASS" | "LEAK" | "UNTESTED"; summary: string } | undefined;
  report(event: CanaryEvent): void;
  close(): void;
}

/**
 * @example
 * const registry = new CanaryRegistry();
 * const session = registry.open((event) => console.log(event));
 * registry.sessionFor(session.canary) === session // true
 */
export class CanaryRegistry {
  readonly #sessions = new Map<string, CanarySession>();
  readonly #open = new Set<CanarySession>();
  readonly #label: () => string;

  /** `label` makes a random DNS label; injectable for tests. */
  constructor(label: () => string = () => randomBytes(8).toString("hex")) {
    this.#label = label;
  }

  /**
   * New canary names, reported to `listener` until the session is closed;
   * undefined when MAX_SESSIONS are open already (a leak check needs one).
   */
  open(listener: (event: CanaryEvent) => void, uid?: number): CanarySession | undefined {
    if (this.#open.size >= MAX_SESSIONS) return undefined;
    const id = this.#label();
    const canary = `${id}.canary.${RESERVED_DOMAIN}`;
    const stun = `${id}-stun.canary.${RESERVED_DOMAIN}`;
    let open = true;
    const session: CanarySession = {
      uid,
      canary,
      stun,
      udpStun: undefined,
      verdict: undefined,
      report: (event) => {
        if (open) listener(event);
      },
      close: () => {
        if (!open) return;
        open = false;
        this.#sessions.delete(canary);
        this.#sessions.delete(stun);
        this.#open.delete(session);
      },
    };
    this.#sessions.set(canary, session);
    this.#sessions.set(stun, session);
    this.#open.add(session);
    return session;
  }

  /** The session a canary name belongs to (case-insensitive, a final dot allowed). */
  sessionFor(host: string): CanarySession | undefined {
    return this.#sessions.get(canonicalName(host));
  }

  /**
   * Something running checks want to know (an IP-address request was
   * refused), told only to the checks of the same local account: another
   * user's destinations are none of theirs. Where accounts are unknown
   * (not Linux), to the checks whose account is unknown too.
   */
  broadcast(event: CanaryEvent, uid: number | undefined): void {
    for (const session of this.#open) if (session.uid === uid) session.report(event);
  }

  /** Open control connections. */
  get size(): number {
    return this.#open.size;
  }
}
