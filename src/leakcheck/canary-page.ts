/**
 * The canary origin's HTTP side: one HTTP/1.1 exchange per connection, then
 * close. `GET /` is the page the user opens (reaching it at all is the canary
 * probe); its script is the WebRTC probe (webrtc.ts) and posts what it found
 * to `POST /report` on the same origin, so the report too comes through the
 * proxy. Bounded: request heads and report bodies have a size limit.
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { hostPort } from "../address.ts";
import type { CanarySession } from "./canary-registry.ts";

/** Longest request head, and longest POST body, the page accepts. */
const MAX_HEAD_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 64 * 1024;

/** How long the page's script gathers ICE candidates before it reports. */
export const GATHER_MS = 3000;

/** Where the page asks for the check's verdict, once it has reported (leakcheck sends it there, control-protocol.ts). */
export const VERDICT_PATH = "/verdict";
/** How often the page asks, and for how long. */
const VERDICT_POLL_MS = 500;
const VERDICT_POLL_FOR_MS = 120_000;

/**
 * One HTTP/1.1 exchange on the canary origin, then the connection closes.
 *
 * @example
 * const outcome = { ok: true, stream: pageStream(session) };
 */
export function pageStream(session: CanarySession): Duplex {
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
  if (path === VERDICT_PATH) {
    // 204 until leakcheck has sent it.
    return session.verdict === undefined ? httpResponse(204, "text/plain", "") : httpResponse(200, "application/json", JSON.stringify(session.verdict), method === "HEAD");
  }
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
 * The STUN servers the page's WebRTC is given (RFC 7064 URIs): the STUN
 * canary name, which a browser that resolves locally looks up, and, once
 * leakcheck has said where it listens, that UDP port on this machine, which
 * a browser whose WebRTC goes around the proxy sends to.
 *
 * @example
 * iceServers({ stun: "a-stun.canary.safetunnel.invalid", udpStun: { address: "192.168.1.20", port: 40000 } })
 * // [{ urls: "stun:a-stun.canary.safetunnel.invalid:3478" }, { urls: "stun:192.168.1.20:40000" }]
 */
export function iceServers(session: Pick<CanarySession, "stun" | "udpStun">): { urls: string }[] {
  const servers = [{ urls: `stun:${session.stun}:3478` }];
  if (session.udpStun !== undefined) servers.push({ urls: `stun:${hostPort(session.udpStun.address, session.udpStun.port)}` });
  return servers;
}

/** The page the user opens. */
function canaryPage(session: CanarySession): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>safetunnel leak check</title></head>
<body>
<h1>safetunnel leak check</h1>
<p>This page came through your SSH tunnel, asked for by name (${session.canary}): this browser sends names to the proxy.</p>
<p id="webrtc">WebRTC: not tested (JavaScript is off).</p>
<p id="verdict">The verdict will show here and in the terminal.</p>
<script>
const showVerdict = async () => {
  const shown = document.getElementById("verdict");
  for (let waited = 0; waited < ${VERDICT_POLL_FOR_MS}; waited += ${VERDICT_POLL_MS}) {
    try {
      const response = await fetch("${VERDICT_PATH}", { cache: "no-store" });
      if (response.status === 200) {
        const { verdict, summary } = await response.json();
        shown.textContent = "Verdict: " + verdict + ". " + summary + (verdict === "LEAK" ? ". Do not use this browser through the tunnel until it is fixed: the terminal says how." : ".");
        shown.style.cssText = verdict === "PASS" ? "color:#060;font-weight:bold" : "color:#fff;background:#b00;padding:1em;font-size:150%;font-weight:bold";
        return;
      }
    } catch {
      // The check has ended (its names are gone): the terminal has the verdict.
      shown.textContent = "The check has ended: see the terminal for the verdict.";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, ${VERDICT_POLL_MS}));
  }
};
(async () => {
  const status = document.getElementById("webrtc");
  const post = (webrtc) => fetch("/report", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ webrtc }) });
  if (typeof RTCPeerConnection !== "function") {
    status.textContent = "WebRTC: off in this browser.";
    await post({ candidates: [], error: "RTCPeerConnection is not available" });
    await showVerdict();
    return;
  }
  status.textContent = "WebRTC: testing...";
  const candidates = [];
  let gathering;
  try {
    const connection = new RTCPeerConnection({ iceServers: ${JSON.stringify(iceServers(session))} });
    connection.createDataChannel("leakcheck");
    connection.onicecandidate = (event) => {
      if (event.candidate && event.candidate.candidate) candidates.push(event.candidate.candidate);
    };
    await connection.setLocalDescription(await connection.createOffer());
    gathering = await new Promise((resolve) => {
      connection.onicegatheringstatechange = () => connection.iceGatheringState === "complete" && resolve("complete");
      setTimeout(() => resolve("timeout"), ${GATHER_MS});
    });
    connection.close();
    await post({ candidates, gathering });
    status.textContent = "WebRTC: tested.";
  } catch (err) {
    await post({ candidates, gathering, error: String(err) });
  }
  await showVerdict();
})();
</script>
</body>
</html>
`;
}
