import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { runInNewContext } from "node:vm";
import { CanaryRegistry, type CanaryEvent, type CanarySession } from "../../src/leakcheck/canary-registry.ts";
import { GATHER_MS, iceServers, pageStream } from "../../src/leakcheck/canary-page.ts";
import { bounded } from "../helpers/wait.ts";

const CANARY = "c0ffee.canary.safetunnel.invalid";
const STUN = "c0ffee-stun.canary.safetunnel.invalid";

function session(): { session: CanarySession; events: CanaryEvent[] } {
  const events: CanaryEvent[] = [];
  const opened = new CanaryRegistry(() => "c0ffee").open((event) => events.push(event));
  assert.ok(opened !== undefined);
  return { session: opened, events };
}

/** Sends `request` through a page stream and returns everything it answered, once it has ended. */
async function exchange(session: CanarySession, request: string): Promise<Buffer> {
  const stream = pageStream(session);
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve) => stream.once("end", resolve));
  stream.write(request);
  await bounded(ended, "the page's response to end", 10_000);
  return Buffer.concat(chunks);
}

/** The head and body of a response, split at the blank line. */
function split(response: Buffer): { head: string; body: string } {
  const at = response.indexOf("\r\n\r\n");
  assert.ok(at >= 0, `no blank line in ${JSON.stringify(response.toString("latin1"))}`);
  return { head: response.subarray(0, at + 4).toString("latin1"), body: response.subarray(at + 4).toString("utf8") };
}

const okHead = (length: number): string =>
  `HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ${length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n`;

/** The one line of the page's script that gives WebRTC its STUN servers. */
function connectionLine(html: string): string[] {
  return html.split("\n").filter((line) => line.includes("new RTCPeerConnection(")).map((line) => line.trim());
}

describe("iceServers", () => {
  test("only the STUN canary name, port 3478, until leakcheck has said where it listens", () => {
    assert.deepEqual(iceServers({ stun: STUN, udpStun: undefined }), [{ urls: `stun:${STUN}:3478` }]);
  });

  test("then leakcheck's UDP port as the second server", () => {
    assert.deepEqual(iceServers({ stun: STUN, udpStun: { address: "192.168.1.20", port: 40000 } }), [{ urls: `stun:${STUN}:3478` }, { urls: "stun:192.168.1.20:40000" }]);
  });

  test("an IPv6 address is bracketed, as RFC 7064 URIs need", () => {
    assert.deepEqual(iceServers({ stun: STUN, udpStun: { address: "2001:db8::1", port: 40000 } }), [{ urls: `stun:${STUN}:3478` }, { urls: "stun:[2001:db8::1]:40000" }]);
  });
});

describe("pageStream", () => {
  test("GET / answers 200 with the page, its length exact, never cached, then closes", async () => {
    const { session: canary, events } = session();
    const response = await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const { head, body } = split(response);
    assert.equal(head, okHead(Buffer.byteLength(body, "utf8")));
    assert.ok(body.startsWith("<!doctype html>\n"), body.slice(0, 40));
    assert.ok(body.includes(`<p>This page came through your SSH tunnel, asked for by name (${CANARY}): this browser sends names to the proxy.</p>`));
    assert.deepEqual(events, [{ event: "page", method: "GET", path: "/", userAgent: null }]);
  });

  test("without udpStun the page's WebRTC gets only the STUN canary", async () => {
    const { session: canary } = session();
    const { body } = split(await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.deepEqual(connectionLine(body), [`const connection = new RTCPeerConnection({ iceServers: [{"urls":"stun:${STUN}:3478"}] });`]);
  });

  test("with udpStun the page's WebRTC gets leakcheck's UDP port as its second STUN server", async () => {
    const { session: canary } = session();
    canary.udpStun = { address: "10.0.0.2", port: 40000 };
    const { body } = split(await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.deepEqual(connectionLine(body), [`const connection = new RTCPeerConnection({ iceServers: [{"urls":"stun:${STUN}:3478"},{"urls":"stun:10.0.0.2:40000"}] });`]);
  });

  test("with an IPv6 udpStun the URL is bracketed in the page too", async () => {
    const { session: canary } = session();
    canary.udpStun = { address: "2001:db8::1", port: 40000 };
    const { body } = split(await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.deepEqual(connectionLine(body), [`const connection = new RTCPeerConnection({ iceServers: [{"urls":"stun:${STUN}:3478"},{"urls":"stun:[2001:db8::1]:40000"}] });`]);
  });

  test("the page is made when asked for: udpStun set after the stream opened still counts", async () => {
    const { session: canary } = session();
    const stream = pageStream(canary);
    canary.udpStun = { address: "10.0.0.2", port: 40000 };
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise((resolve) => stream.once("end", resolve));
    stream.write("GET / HTTP/1.1\r\n");
    stream.write("Host: x\r\nUser-Agent: test/1.0\r\n\r\n");
    await bounded(ended, "the page's response to end", 10_000);
    assert.deepEqual(connectionLine(split(Buffer.concat(chunks)).body), [
      `const connection = new RTCPeerConnection({ iceServers: [{"urls":"stun:${STUN}:3478"},{"urls":"stun:10.0.0.2:40000"}] });`,
    ]);
  });

  test("HEAD / answers the same head with no body", async () => {
    const { session: canary, events } = session();
    const get = split(await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const head = await exchange(canary, "HEAD / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\n\r\n");
    assert.equal(head.toString("latin1"), get.head);
    assert.deepEqual(events[1], { event: "page", method: "HEAD", path: "/", userAgent: "curl/8.5.0" });
  });

  test("another path is 404, still reported as a page request", async () => {
    const { session: canary, events } = session();
    const response = await exchange(canary, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(response.toString("latin1"), "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nNot found\n");
    assert.deepEqual(events, [{ event: "page", method: "GET", path: "/favicon.ico", userAgent: null }]);
  });
});

/** The page's script, between its script tags. */
function pageScript(html: string): string {
  const match = /<script>\n([\s\S]*)<\/script>/.exec(html);
  assert.ok(match !== null, "no script in the page");
  return match[1]!;
}

/** How the fake browser's ICE gathering behaves. */
interface FakeGathering {
  /** Candidate lines handed to onicecandidate, after setLocalDescription. */
  candidates: string[];
  /** Whether iceGatheringState then becomes "complete". */
  completes: boolean;
}

/**
 * Runs the page's script in a fake browser (no RTCPeerConnection when
 * `gathering` is undefined) and returns the bodies it posted to /report,
 * with the delays of the timers it set. Timers fire only when `fireTimers`
 * is true, once gathering has had its turn.
 */
async function runPage(gathering: FakeGathering | undefined, fireTimers: boolean): Promise<{ posts: { path: string; body: unknown }[]; timers: number[] }> {
  const { session: canary } = session();
  const html = split(await exchange(canary, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")).body;
  const posts: { path: string; body: unknown }[] = [];
  const timers: number[] = [];
  const timerCallbacks: (() => void)[] = [];
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  class FakePeerConnection {
    iceGatheringState = "new";
    onicecandidate: ((event: { candidate: { candidate: string } | null }) => void) | null = null;
    onicegatheringstatechange: (() => void) | null = null;
    createDataChannel(): void {}
    async createOffer(): Promise<object> {
      return {};
    }
    async setLocalDescription(): Promise<void> {
      // As in a browser, candidates and the state change come as later tasks, once the script has set its handlers.
      void turn().then(() => {
        for (const line of gathering!.candidates) this.onicecandidate?.({ candidate: { candidate: line } });
        if (gathering!.completes) {
          this.iceGatheringState = "complete";
          this.onicegatheringstatechange?.();
        }
      });
    }
    close(): void {}
  }
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const context: Record<string, unknown> = {
    document: { getElementById: () => ({ textContent: "" }) },
    setTimeout: (callback: () => void, ms: number) => {
      timers.push(ms);
      timerCallbacks.push(callback);
    },
    fetch: async (path: string, init: { body: string }) => {
      posts.push({ path, body: JSON.parse(init.body) });
      done();
      return {};
    },
  };
  if (gathering !== undefined) context["RTCPeerConnection"] = FakePeerConnection;
  runInNewContext(pageScript(html), context);
  for (let i = 0; i < 5; i++) await turn();
  if (fireTimers) for (const callback of timerCallbacks) callback();
  await bounded(finished, "the page's script to post its report", 10_000);
  for (let i = 0; i < 5; i++) await turn();
  return { posts, timers };
}

describe("the page's script", () => {
  const lines = ["candidate:1 1 udp 2122260223 192.168.1.20 54400 typ host", "candidate:2 1 udp 1686052607 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"];

  test("gathering that completes before the timer posts the candidates with gathering complete, once", async () => {
    const { posts, timers } = await runPage({ candidates: lines, completes: true }, false);
    assert.deepEqual(posts, [{ path: "/report", body: { webrtc: { candidates: lines, gathering: "complete" } } }]);
    assert.deepEqual(timers, [GATHER_MS]);
  });

  test("a timer that fires first posts what was gathered with gathering timeout", async () => {
    const { posts } = await runPage({ candidates: lines.slice(0, 1), completes: false }, true);
    assert.deepEqual(posts, [{ path: "/report", body: { webrtc: { candidates: lines.slice(0, 1), gathering: "timeout" } } }]);
  });

  test("nothing gathered before the timer posts no candidates with gathering timeout", async () => {
    const { posts } = await runPage({ candidates: [], completes: false }, true);
    assert.deepEqual(posts, [{ path: "/report", body: { webrtc: { candidates: [], gathering: "timeout" } } }]);
  });

  test("without RTCPeerConnection it posts the error alone, no gathering, and sets no timer", async () => {
    const { posts, timers } = await runPage(undefined, false);
    assert.deepEqual(posts, [{ path: "/report", body: { webrtc: { candidates: [], error: "RTCPeerConnection is not available" } } }]);
    assert.deepEqual(timers, []);
  });

  test("gathers for GATHER_MS, 3 s", () => {
    assert.equal(GATHER_MS, 3000);
  });
});

describe("the verdict on the page", () => {
  test("GET /verdict is 204 until leakcheck has sent it, then the verdict as JSON", async () => {
    const { session: s, events } = session();
    const before = await exchange(s, "GET /verdict HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(before.toString("latin1"), "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
    s.verdict = { verdict: "LEAK", summary: "The canary was looked up locally" };
    const { head, body } = split(await exchange(s, "GET /verdict HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.match(head, /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/json\r\n/);
    assert.deepEqual(JSON.parse(body), { verdict: "LEAK", summary: "The canary was looked up locally" });
    assert.deepEqual(events.filter((e) => e.event === "page").map((e) => (e as { path: string }).path), ["/verdict", "/verdict"]);
  });

  test("the page's script asks for it after its report, and shows a LEAK prominently", async () => {
    const { session: s } = session();
    const { body } = split(await exchange(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.ok(body.includes('fetch("/verdict", { cache: "no-store" })'), body);
    assert.ok(body.includes('<p id="verdict">The verdict will show here and in the terminal.</p>'), body);
    assert.match(body, /await post\(\{ candidates, gathering \}\);[^]*await showVerdict\(\);\n\}\)\(\);/);
    assert.ok(body.includes("Do not use this browser through the tunnel until it is fixed"), body);
  });
});
