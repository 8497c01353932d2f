/**
 * How the -D front end answers a name under `safetunnel.invalid`, itself,
 * without SSH (canary-registry.ts says why these names):
 *
 * - `control.safetunnel.invalid` port 1, from this machine only: a leak-check
 *   control connection (control-stream.ts): JSON lines, the hello and then
 *   every CanaryEvent for this connection's canaries; when it closes, its
 *   canaries are forgotten.
 * - a registered page canary, port 80: a small HTTP/1.1 page (canary-page.ts);
 *   port 443: recorded, then refused (0x05), so HTTPS-First and HTTPS
 *   upgrades fall back to http.
 * - a registered STUN canary: recorded, then refused.
 * - any other `.invalid` name: host unreachable (0x04), as a name that does
 *   not resolve (none does).
 *
 * None of these opens a channel or reaches anything beyond this process;
 * the one thing a check can add, a UDP port for the page's WebRTC, must be on
 * this machine's own addresses (control-stream.ts).
 */
import { Socks5Reply, type Destination } from "../socks/codec.ts";
import type { ConnectOutcome, SocksClient } from "../socks/server.ts";
import { hostPort, isLoopbackAddress } from "../address.ts";
import { canonicalName, CONTROL_NAME, CONTROL_PORT, type CanaryRegistry } from "./canary-registry.ts";
import { controlStream } from "./control-stream.ts";
import { pageStream } from "./canary-page.ts";
import { networkAddresses as machineAddresses } from "../platform/interface-addresses.ts";
import type { LocalAnswers } from "../forward/dynamic.ts";
import type { PeerLookup } from "../platform/peer-lookup.ts";
import { within } from "../deadline.ts";

/**
 * The canary service as the -D front end takes it: it answers `.invalid`
 * names (naming a canary's sender, and a control client's account, through
 * `peers` when given) and tells running checks of refused IP-address
 * requests, each only its own account's. `networkAddresses` lists this
 * machine's addresses outside loopback, where a check may have the page's
 * WebRTC send (control-stream.ts).
 *
 * @example
 * startDynamicForward({ ...options, localAnswers: canaryAnswers(new CanaryRegistry(), procPeerLookup()) });
 */
export function canaryAnswers(registry: CanaryRegistry, peers?: PeerLookup, networkAddresses: () => readonly string[] = machineAddresses): LocalAnswers {
  const bounded = <T>(lookup: (client: SocksClient) => Promise<T | undefined>, client: SocksClient): Promise<T | undefined> =>
    peers === undefined ? Promise.resolve(undefined) : within(lookup(client), NAME_WAIT_MS);
  return {
    async answer(destination, client) {
      // The client waits for its reply meanwhile: /proc still shows its socket.
      const program = registry.sessionFor(destination.host) !== undefined ? await bounded((c) => peers!.programOf(c), client) : undefined;
      const uid = canonicalName(destination.host) === CONTROL_NAME ? (await bounded((c) => peers!.ownerOf(c), client))?.uid : undefined;
      return answerReservedName(destination, client, registry, { ...(program !== undefined ? { program } : {}), ...(uid !== undefined ? { uid } : {}) }, networkAddresses);
    },
    async refused(request, client, program) {
      if (registry.size === 0) return;
      const event = {
        event: "refused-ip" as const,
        destination: hostPort(request.destination.host, request.destination.port),
        client: hostPort(client.address, client.port),
        version: request.version,
        program: program ?? null,
      };
      registry.broadcast(event, (await bounded((c) => peers!.ownerOf(c), client))?.uid);
    },
  };
}

/** How long /proc may take to name a canary's sender or a control client's account. */
const NAME_WAIT_MS = 1000;

/**
 * The outcome for a CONNECT to a `.invalid` name.
 *
 * @example
 * const outcome = answerReservedName({ kind: "name", host: CONTROL_NAME, port: 1 }, client, registry, "firefox-esr");
 *
 * `who.program` names the client for the canary event, `who.uid` its account, when known.
 */
export function answerReservedName(
  destination: Destination,
  client: SocksClient,
  registry: CanaryRegistry,
  who: { program?: string; uid?: number } = {},
  networkAddresses: () => readonly string[] = machineAddresses,
): ConnectOutcome {
  const name = canonicalName(destination.host);
  if (name === CONTROL_NAME && destination.port === CONTROL_PORT) {
    // Only this machine's own programs may run a check (with -g, the SOCKS port is open to the network).
    if (!isLoopbackAddress(client.address)) return { ok: false, reply: Socks5Reply.NOT_ALLOWED };
    const stream = controlStream(registry, { ...(who.uid !== undefined ? { uid: who.uid } : {}), networkAddresses });
    return stream === undefined ? { ok: false, reply: Socks5Reply.GENERAL_FAILURE } : { ok: true, stream };
  }
  const session = registry.sessionFor(name);
  if (session === undefined) return { ok: false, reply: Socks5Reply.HOST_UNREACHABLE };
  session.report({ event: "canary", name, port: destination.port, client: hostPort(client.address, client.port), program: who.program ?? null });
  if (name === session.canary && destination.port === 80) return { ok: true, stream: pageStream(session) };
  return { ok: false, reply: Socks5Reply.CONNECTION_REFUSED };
}
