/**
 * The WebRTC probe: the canary page's script gathers ICE candidates (RFC 8445
 * section 5.1.1) with a STUN server at the STUN canary name, and posts them
 * back to the canary origin. What they show:
 *
 * - a server-reflexive ("srflx") candidate: some STUN request got an answer,
 *   over UDP that did not go through the proxy: WebRTC leaks around it;
 * - a host candidate with an address: the page can read this machine's LAN
 *   or public address (exposure); one named `*.local` is an mDNS name the
 *   browser hides the address behind (draft-ietf-mmusic-mdns-ice-candidates);
 * - no report: the script did not run (JavaScript off, or not a browser).
 *
 * The STUN server name is a canary: a browser that resolves it locally is
 * caught by the resolver probe like the page canary. The page's second STUN
 * server is a UDP port leakcheck listens on at an address of this machine
 * outside loopback (stun-listener.ts): a STUN request arriving there is
 * WebRTC sending UDP around the proxy, whatever the candidates say (a SOCKS
 * CONNECT carries TCP only; RFC 1928 UDP ASSOCIATE is not offered).
 */
import { isIPv4, isIPv6 } from "node:net";
import { hostPort, isLoopbackAddress, parseIPv4, parseIPv6 } from "../address.ts";
import { chromiumLaunchFlags, chromiumWebrtcFix, FIREFOX_PREF, firefoxPrefSetting, type ProxyEndpoint } from "../client-setup.ts";
import type { Finding } from "./findings.ts";
import type { UdpEndpoint } from "./control-protocol.ts";
// canary-page.ts imports nothing of this module (only types of canary-registry.ts), so no cycle.
import { GATHER_MS } from "./canary-page.ts";

/** What the page posts to /report. */
export interface WebrtcReport {
  /** Candidate lines as RTCIceCandidate.candidate gives them. */
  candidates: string[];
  /** Set when WebRTC could not run ("RTCPeerConnection is not available"). */
  error?: string;
  /**
   * How gathering ended: "complete" when the browser said it had every
   * candidate, "timeout" when the page stopped waiting after GATHER_MS;
   * absent from pages that did not say (an error, an older page).
   */
  gathering?: "complete" | "timeout";
}

/** One candidate's parts that matter here (RFC 8839 section 5.1 candidate-attribute). */
export interface Candidate {
  address: string;
  type: string;
}

/**
 * @example
 * parseCandidate("candidate:1 1 udp 2122260223 192.168.1.20 54400 typ host generation 0")
 * // { address: "192.168.1.20", type: "host" }
 */
export function parseCandidate(line: string): Candidate | undefined {
  const fields = line.replace(/^a=/, "").replace(/^candidate:/, "").trim().split(/\s+/);
  const typ = fields.indexOf("typ");
  if (fields.length < 8 || typ !== 6) return undefined;
  return { address: fields[4]!, type: fields[7]! };
}

const FIX_FIREFOX = `in Firefox ${firefoxPrefSetting(FIREFOX_PREF.webrtcProxyOnlyIfBehindProxy, true)} (or ${firefoxPrefSetting(FIREFOX_PREF.webrtcEnabled, false)})`;
const FIX_CHROMIUM = `in Chromium ${chromiumWebrtcFix()}`;
/** What keeps WebRTC inside the proxy, for Firefox and for Chromium. */
const WEBRTC_FIX = `${FIX_FIREFOX}; ${FIX_CHROMIUM}`;
/**
 * What hides this machine's addresses from pages: the same, or in Firefox at
 * least offering only the default route's address instead of every interface's.
 */
const ADDRESS_FIX =
  `in Firefox ${firefoxPrefSetting(FIREFOX_PREF.webrtcProxyOnlyIfBehindProxy, true)}, or ${firefoxPrefSetting(FIREFOX_PREF.webrtcDefaultAddressOnly, true)} to offer only the default address ` +
  `(or ${firefoxPrefSetting(FIREFOX_PREF.webrtcEnabled, false)}); ${FIX_CHROMIUM}`;

/**
 * The fix for a local lookup of the STUN canary: the browser resolved a
 * WebRTC server name itself (Chromium does, with its own resolver, unless
 * WebRTC is kept inside the proxy).
 *
 * @example
 * stunLookupFix({ host: "127.0.0.1", port: 9001 }) // "...; and start Chromium with --proxy-server=socks5://127.0.0.1:9001 ... --host-resolver-rules=..."
 */
export function stunLookupFix(proxy: ProxyEndpoint): string {
  return `${WEBRTC_FIX}; and start Chromium with ${chromiumLaunchFlags(proxy)} so it resolves nothing itself`;
}

/**
 * Findings of probe "webrtc" for what the page reported (undefined: no report).
 *
 * @example
 * webrtcFindings({ candidates: ["candidate:1 1 udp 1 203.0.113.7 5000 typ srflx raddr 0.0.0.0 rport 0"] })
 * // [{ probe: "webrtc", severity: "leak", detail: "WebRTC reached a STUN server around the proxy ...", fix: "..." }]
 */
export function webrtcFindings(report: WebrtcReport | undefined): Finding[] {
  if (report === undefined) {
    return [{ probe: "webrtc", severity: "info", detail: "WebRTC was not tested: the canary page's script did not report (JavaScript off, or not a browser)", fix: null }];
  }
  if (report.error !== undefined && report.candidates.length === 0) {
    return [{ probe: "webrtc", severity: "info", detail: `WebRTC did not run in this browser (${report.error}): it cannot leak`, fix: null }];
  }
  const candidates = report.candidates.map(parseCandidate).filter((c): c is Candidate => c !== undefined);
  const findings: Finding[] = [];
  const reflexive = candidates.filter((c) => c.type === "srflx" || c.type === "prflx");
  if (reflexive.length > 0) {
    findings.push({
      probe: "webrtc",
      severity: "leak",
      detail: `WebRTC reached a STUN server around the proxy (UDP from this machine), and learnt the address ${unique(reflexive.map((c) => c.address)).join(", ")}`,
      fix: WEBRTC_FIX,
    });
  }
  const host = candidates.filter((c) => c.type === "host" && (isIPv4(c.address) || isIPv6(c.address)) && !isLoopbackAddress(c.address));
  // One finding per kind, each listing only its own addresses: a public address identifies the machine to any site, a LAN one only where it sits on its network.
  const addresses = unique(host.map((c) => c.address));
  for (const [kind, list] of [["LAN", addresses.filter(isPrivate)], ["public", addresses.filter((a) => !isPrivate(a))]] as const) {
    if (list.length > 0) {
      findings.push({ probe: "webrtc", severity: "exposure", detail: `WebRTC shows pages this machine's ${kind} address${list.length === 1 ? "" : "es"} ${list.join(", ")}`, fix: ADDRESS_FIX });
    }
  }
  if (findings.length === 0) {
    const hidden = candidates.some((c) => c.address.endsWith(".local"));
    findings.push({
      probe: "webrtc",
      severity: "info",
      detail: hidden ? "WebRTC showed only mDNS names (*.local) and got no answer from a STUN server" : `WebRTC gathered ${candidates.length} candidate${candidates.length === 1 ? "" : "s"} with no address of this machine and got no answer from a STUN server`,
      fix: null,
    });
  }
  return findings;
}

/** RFC 1918, RFC 6598 shared space, IPv6 unique-local (fc00::/7) and link-local (169.254/16, fe80::/10). */
function isPrivate(address: string): boolean {
  const v4 = parseIPv4(address);
  if (v4 !== null) {
    const [a, b] = [v4[0]!, v4[1]!];
    return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
  }
  const v6 = parseIPv6(address);
  return v6 !== null && ((v6[0]! & 0xfe) === 0xfc || (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** How many candidate lines a report keeps, and how long its error may be: a page posts what it likes. */
const MAX_CANDIDATES = 200;
const MAX_ERROR_CHARS = 200;

/**
 * Reads a /report body into a WebrtcReport, or undefined when it is not one.
 *
 * @example
 * asWebrtcReport({ webrtc: { candidates: [] } }) // { candidates: [] }
 */
export function asWebrtcReport(body: unknown): WebrtcReport | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const webrtc = (body as Record<string, unknown>)["webrtc"];
  if (typeof webrtc !== "object" || webrtc === null) return undefined;
  const { candidates, error, gathering } = webrtc as Record<string, unknown>;
  const report: WebrtcReport = { candidates: Array.isArray(candidates) ? candidates.filter((c): c is string => typeof c === "string").slice(0, MAX_CANDIDATES) : [] };
  if (typeof error === "string") report.error = error.slice(0, MAX_ERROR_CHARS);
  if (gathering === "complete" || gathering === "timeout") report.gathering = gathering;
  return report;
}

/**
 * One report covering two posts of the page (reloaded, or opened in two
 * browsers), so the findings judge both: candidates of both, each once, at
 * most 200; every distinct error, joined by "; " (at most 200 characters);
 * gathering "complete" if either completed, else "timeout" if either timed
 * out, else absent.
 *
 * @example
 * mergeWebrtcReports({ candidates: ["a", "b"], gathering: "timeout" }, { candidates: ["b", "c"], error: "x", gathering: "complete" })
 * // { candidates: ["a", "b", "c"], error: "x", gathering: "complete" }
 * mergeWebrtcReports(undefined, { candidates: [] }) // { candidates: [] }
 */
export function mergeWebrtcReports(earlier: WebrtcReport | undefined, later: WebrtcReport): WebrtcReport {
  const both = earlier === undefined ? [later] : [earlier, later];
  const merged: WebrtcReport = { candidates: unique(both.flatMap((report) => report.candidates)).slice(0, MAX_CANDIDATES) };
  const errors = unique(both.flatMap((report) => (report.error === undefined ? [] : [report.error])));
  if (errors.length > 0) merged.error = errors.join("; ").slice(0, MAX_ERROR_CHARS);
  const endings = both.map((report) => report.gathering);
  if (endings.includes("complete")) merged.gathering = "complete";
  else if (endings.includes("timeout")) merged.gathering = "timeout";
  return merged;
}

/** RFC 5389 section 6: the magic cookie every STUN message carries at bytes 4 to 7. */
const STUN_MAGIC_COOKIE = 0x2112a442;

/**
 * Whether a UDP datagram is a STUN message (RFC 5389 section 6): the two
 * top bits zero, the magic cookie, and a length that is the rest of the
 * datagram, a multiple of 4.
 *
 * @example
 * isStunMessage(Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, ...new Array(12).fill(7))) // true: a Binding request
 */
export function isStunMessage(datagram: Uint8Array): boolean {
  if (datagram.length < 20 || (datagram[0]! & 0xc0) !== 0) return false;
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const length = view.getUint16(2);
  return view.getUint32(4) === STUN_MAGIC_COOKIE && length % 4 === 0 && length === datagram.length - 20;
}

/** A STUN request that reached leakcheck's UDP port. */
export interface UdpArrival {
  /** Its source, "address:port". */
  from: string;
  /** The program holding the sending socket, when it could be named. */
  program?: string;
  /** It came from another machine (a browser using the proxy over the network with -g, or anyone sending to the port). */
  elsewhere?: boolean;
}

/** What leakcheck's UDP port saw during the check, or why it could not listen. */
export type UdpProbe =
  | {
      listening: UdpEndpoint;
      /** The first senders of STUN requests, one entry per source. */
      arrivals: UdpArrival[];
      /** STUN requests in all, from every source. */
      stunCount: number;
      /** Datagrams that were not STUN (not counted as WebRTC's). */
      otherCount: number;
    }
  | { problem: string };

/**
 * Findings of probe "webrtc" for leakcheck's UDP port. `report` is the page's
 * (undefined: its script did not run, so silence proves nothing).
 *
 * @example
 * udpProbeFindings({ listening: { address: "192.168.1.20", port: 40000 }, arrivals: [{ from: "192.168.1.20:51000", program: "firefox-esr" }], stunCount: 3, otherCount: 0 }, report)
 * // [{ probe: "webrtc", severity: "leak", detail: "WebRTC sent 3 STUN requests over UDP straight to 192.168.1.20:40000 ...", fix: "..." }]
 */
export function udpProbeFindings(probe: UdpProbe, report: WebrtcReport | undefined): Finding[] {
  if ("problem" in probe) {
    return [{ probe: "webrtc", severity: "info", detail: `WebRTC's UDP was not watched: ${probe.problem}; the candidates and the STUN name still were`, fix: null }];
  }
  const where = hostPort(probe.listening.address, probe.listening.port);
  const findings: Finding[] = [];
  if (probe.stunCount > 0) {
    const senders = probe.arrivals.map((arrival) =>
      arrival.elsewhere === true ? `${arrival.from} (another machine)` : arrival.program === undefined ? arrival.from : `${arrival.from} (${arrival.program})`,
    );
    findings.push({
      probe: "webrtc",
      severity: "leak",
      detail:
        `WebRTC sent ${probe.stunCount === 1 ? "a STUN request" : `${probe.stunCount} STUN requests`} over UDP straight to ${where} (the page's second STUN server) from ${senders.join(", ")}: ` +
        "UDP does not go through the proxy, so any page can make the browser reveal where it is",
      fix: WEBRTC_FIX,
    });
  } else if (report !== undefined && report.error === undefined) {
    // Nothing gathered before the page stopped waiting: WebRTC kept inside the proxy looks so (measured: Chromium 156
    // with webrtc.ip_handling_policy disable_non_proxied_udp never completed gathering), but so does a browser too
    // busy to have tried yet. Say both.
    const unexercised = report.gathering === "timeout" && report.candidates.length === 0;
    findings.push({
      probe: "webrtc",
      severity: "info",
      detail: unexercised
        ? `No UDP reached ${where}, the page's second STUN server, and WebRTC gathered no candidate within ${GATHER_MS / 1000} s: it is kept inside the proxy, or had no time to try (a busy machine: open the page again to be sure)`
        : `No UDP reached ${where}, the page's second STUN server: WebRTC did not go around the proxy`,
      fix: null,
    });
  }
  if (probe.otherCount > 0) {
    findings.push({ probe: "webrtc", severity: "info", detail: `${probe.otherCount} UDP datagram${probe.otherCount === 1 ? "" : "s"} that ${probe.otherCount === 1 ? "was" : "were"} not STUN arrived at ${where}; not counted`, fix: null });
  }
  return findings;
}
