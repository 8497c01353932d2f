/**
 * How the -D front end answers a name under `safetunnel.invalid`, itself,
 * without SSH (canary-registry.ts says why these names):
 *
 * - `control.safetunnel.invalid` port 1: a leak-check control connection.
 *   After the SOCKS success reply the front end writes one JSON object per
 *   line: first `{"event":"hello","version":...,"canary":...,"stun":...,"url":...}`,
 *   then every CanaryEvent for this connection's canaries. Whatever the client
 *   sends is read and dropped; when it closes, its canaries are forgotten.
 * - a registered page canary, port 80: a small HTTP/1.1 page (and POST
 *   /report for what the page's script found); port 443: recorded, then
 *   refused (0x05), so HTTPS-First and HTTPS upgrades fall back to http.
 * - a registered STUN canary: recorded, then refused.
 * - any other `.invalid` name: host unreachable (0x04), as a name that does
 *   not resolve (none does).
 *
 * None of these can reach anything beyond this process.
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { Socks5Reply, type Destination } from "../socks/codec.ts";
import type { ConnectOutcome, SocksClient } from "../socks/server.ts";
import { hostPort, isLoopbackAddress } from "../address.ts";
import { VERSION } from "../version.ts";
import { canonicalName, CONTROL_NAME, CONTROL_PORT, type CanaryRegistry, type CanarySession } from "./canary-registry.ts";
import type { LocalAnswers } from "../forward/dynamic.ts";
import type { PeerLookup } from "../platform/peer-lookup.ts";
import { within } from "../deadline.ts";

/** Longest request head, and longest POST body, the page accepts. */
const MAX_HEAD_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 64 * 1024;

/**
 * The canary service as the -D front end takes it: it answers `.invalid`
 * names (naming a canary's sender, and a control client's account, through
 * `peers` when given) and tells running checks of refused IP-address
 * requests, each only its own account's.
 *
 * @example
 * startDynamicForward({ ...options, localAnswers: canaryAnswers(new CanaryRegistry(), procPeerLookup()) });
 */
export function canaryAnswers(registry: CanaryRegistry, peers?: PeerLookup): LocalAnswers {
  const bounded = <T>(lookup: (client: SocksClient) => Promise<T | undefined>, client: SocksClient): Promise<T | undefined> =>
    peers === undefined ? Promise.resolve(undefined) : within(lookup(client), NAME_WAIT_MS);
  return {
    async answer(destination, client) {
      // The client waits for its reply meanwhile: /proc still shows its socket.
      const program = registry.sessionFor(destination.host) !== undefined ? await bounded((c) => peers!.programOf(c), client) : undefined;
      const uid = canonicalName(destination.host) === CONTROL_NAME ? (await bounded((c) => peers!.ownerOf(c), client))?.uid : undefined;
      return answerReservedName(destination, client, registry, { ...(program !== undefined ? { program } : {}), ...(uid !== undefined ? { uid } : {}) });
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
 * `program` names the client for the canary event, when known.
 */
export function answerReservedName(destination: Destination, client: SocksClient, registry: CanaryRegistry, who: { program?: string; uid?: number } = {}): ConnectOutcome {
  const name = canonicalName(destination.host);
  if (name === CONTROL_NAME && destination.port === CONTROL_PORT) {
    // Only this machine's own programs may run a check (with -g, the SOCKS port is open to the network).
    if (!isLoopbackAddress(client.address)) return { ok: false, reply: Socks5Reply.NOT_ALLOWED };
    const stream = controlStream(registry, who.uid);
    return stream === undefined ? { ok: false, reply: Socks5Reply.GENERAL_FAILURE } : { ok: true, stream };
  }
  const session = registry.sessionFor(name);
  if (session === undefined) return { ok: false, reply: Socks5Reply.HOST_UNREACHABLE };
  session.report({ event: "canary", name, port: destination.port, client: hostPort(client.address, client.port), program: who.program ?? null });
  if (name === session.canary && destination.port === 80) return { ok: true, stream: pageStream(session) };
  return { ok: false, reply: Socks5Reply.CONNECTION_REFUSED };
}

/**
 * The control connection: JSON lines out, input dropped, canaries forgotten
 * on close. A client that stops reading is dropped once a buffer's worth of
 * lines waits for it, so it cannot grow this process's memory.
 */
function controlStream(registry: CanaryRegistry, uid: number | undefined): Duplex | undefined {
  let session: CanarySession | undefined;
  const stream = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
    final(callback) {
      session?.close();
      stream.push(null);
      callback();
    },
    destroy(err, callback) {
      session?.close();
      callback(err);
    },
  });
  const line = (value: unknown): void => {
    if (!stream.destroyed && !stream.push(`${JSON.stringify(value)}\n`)) stream.destroy();
  };
  session = registry.open(line, uid);
  if (session === undefined) return undefined;
  line({ event: "hello", version: VERSION, canary: session.canary, stun: session.stun, url: `http://${session.canary}/` });
  return stream;
}

/** One HTTP/1.1 exchange on the canary origin, then the connection closes. */
function pageStream(session: CanarySession): Duplex {
  let received = Buffer.alloc(0);
  let answered = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (!answered) {
        received = Buffer.concat([received, chunk]);
        const response = respond(received, session);
        if (response !== undefined) {
          answered = true;
          stream.push(response);
          stream.push(null);
        }
      }
      callback();
    },
    final(callback) {
      if (!answered) {
        answered = true;
        stream.push(null);
      }
      callback();
    },
  });
  return stream;
}

/** The response to the bytes received so far, or undefined while the request is incomplete. */
function respond(received: Buffer, session: CanarySession): Buffer | undefined {
  const headEnd = received.indexOf("\r\n\r\n");
  if (headEnd < 0) return received.length > MAX_HEAD_BYTES ? httpResponse(431, "text/plain", "Request header fields too large\n") : undefined;
  const head = received.subarray(0, headEnd).toString("latin1");
  const [requestLine = "", ...headerLines] = head.split("\r\n");
  const [method = "", path = ""] = requestLine.split(" ");
  const header = (name: string): string | null => {
    const found = headerLines.find((h) => h.toLowerCase().startsWith(`${name}:`));
    return found === undefined ? null : found.slice(name.length + 1).trim();
  };
  if (method === "POST" && path === "/report") {
    const length = Number(header("content-length") ?? "NaN");
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_BODY_BYTES) return httpResponse(413, "text/plain", "Report too large or without Content-Length\n");
    const body = received.subarray(headEnd + 4);
    if (body.length < length) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.subarray(0, length).toString("utf8"));
    } catch {
      return httpResponse(400, "text/plain", "Report is not JSON\n");
    }
    session.report({ event: "report", body: parsed });
    return httpResponse(204, "text/plain", "");
  }
  if (method !== "GET" && method !== "HEAD") return httpResponse(405, "text/plain", "Only GET, HEAD and POST /report\n");
  session.report({ event: "page", method, path, userAgent: header("user-agent") });
  if (path !== "/") return httpResponse(404, "text/plain", "Not found\n", method === "HEAD");
  return httpResponse(200, "text/html; charset=utf-8", canaryPage(session), method === "HEAD");
}

function httpResponse(status: number, type: string, body: string, headOnly = false): Buffer {
  const reason: Record<number, string> = { 200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large", 431: "Request Header Fields Too Large" };
  const bytes = Buffer.from(body, "utf8");
  const head =
    `HTTP/1.1 ${status} ${reason[status] ?? ""}\r\n` +
    `Content-Type: ${type}\r\nContent-Length: ${bytes.length}\r\n` +
    // Never cached: every check must reach the proxy again.
    "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  return Buffer.concat([Buffer.from(head, "latin1"), headOnly ? Buffer.alloc(0) : bytes]);
}

/**
 * The page the user opens: reaching it at all is the canary probe. Its script
 * is the WebRTC probe (webrtc.ts): it gathers ICE candidates with a STUN
 * server at the STUN canary name for at most 3 s and posts them to /report
 * on this same origin, so the report too comes through the proxy.
 */
function canaryPage(session: CanarySession): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>safetunnel leak check</title></head>
<body>
<h1>safetunnel leak check</h1>
<p>This page came through your SSH tunnel, asked for by name (${session.canary}): this browser sends names to the proxy.</p>
<p id="webrtc">WebRTC: not tested (JavaScript is off).</p>
<p>Go back to the terminal for the verdict.</p>
<script>
(async () => {
  const status = document.getElementById("webrtc");
  const post = (webrtc) => fetch("/report", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ webrtc }) });
  if (typeof RTCPeerConnection !== "function") {
    status.textContent = "WebRTC: off in this browser.";
    await post({ candidates: [], error: "RTCPeerConnection is not available" });
    return;
  }
  status.textContent = "WebRTC: testing...";
  const candidates = [];
  try {
    const connection = new RTCPeerConnection({ iceServers: [{ urls: "stun:${session.stun}:3478" }] });
    connection.createDataChannel("leakcheck");
    connection.onicecandidate = (event) => {
      if (event.candidate && event.candidate.candidate) candidates.push(event.candidate.candidate);
    };
    await connection.setLocalDescription(await connection.createOffer());
    await new Promise((resolve) => {
      connection.onicegatheringstatechange = () => connection.iceGatheringState === "complete" && resolve();
      setTimeout(resolve, 3000);
    });
    connection.close();
    await post({ candidates });
    status.textContent = "WebRTC: tested; the verdict is in the terminal.";
  } catch (err) {
    await post({ candidates, error: String(err) });
  }
})();
</script>
</body>
</html>
`;
}
