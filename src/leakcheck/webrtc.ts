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
 * caught by the resolver probe like the page canary.
 */
import { isIPv4, isIPv6 } from "node:net";
import { isLoopbackAddress, parseIPv4, parseIPv6 } from "../address.ts";
import { CHROMIUM_POLICY, CHROMIUM_WEBRTC_PROXIED_ONLY, chromiumLaunchFlags, chromiumPolicies, FIREFOX_PREF, firefoxPrefSetting, type ProxyEndpoint } from "../client-setup.ts";
import type { Finding } from "./findings.ts";

/** What the page posts to /report. */
export interface WebrtcReport {
  /** Candidate lines as RTCIceCandidate.candidate gives them. */
  candidates: string[];
  /** Set when WebRTC could not run ("RTCPeerConnection is not available"). */
  error?: string;
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
const FIX_CHROMIUM = `in Chromium ${chromiumPolicies({ [CHROMIUM_POLICY.webRtcIpHandling]: CHROMIUM_WEBRTC_PROXIED_ONLY })}`;
const FIX = `${FIX_FIREFOX}; ${FIX_CHROMIUM}`;

/**
 * The fix for a local lookup of the STUN canary: the browser resolved a
 * WebRTC server name itself (Chromium does, with its own resolver, unless
 * WebRTC is kept inside the proxy).
 *
 * @example
 * stunLookupFix({ host: "127.0.0.1", port: 9001 }) // "...; and start Chromium with --proxy-server=socks5://127.0.0.1:9001 ... --host-resolver-rules=..."
 */
export function stunLookupFix(proxy: ProxyEndpoint): string {
  return `${FIX}; and start Chromium with ${chromiumLaunchFlags(proxy)} so it resolves nothing itself`;
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
      fix: FIX,
    });
  }
  const host = candidates.filter((c) => c.type === "host" && (isIPv4(c.address) || isIPv6(c.address)) && !isLoopbackAddress(c.address));
  // One finding per kind, each listing only its own addresses: a public address identifies the machine to any site, a LAN one only where it sits on its network.
  const addresses = unique(host.map((c) => c.address));
  for (const [kind, list] of [["LAN", addresses.filter(isPrivate)], ["public", addresses.filter((a) => !isPrivate(a))]] as const) {
    if (list.length > 0) {
      findings.push({ probe: "webrtc", severity: "exposure", detail: `WebRTC shows pages this machine's ${kind} address${list.length === 1 ? "" : "es"} ${list.join(", ")}`, fix: FIX });
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
  const { candidates, error } = webrtc as Record<string, unknown>;
  const lines = Array.isArray(candidates) ? candidates.filter((c): c is string => typeof c === "string").slice(0, 200) : [];
  return typeof error === "string" ? { candidates: lines, error: error.slice(0, 200) } : { candidates: lines };
}
