/**
 * leakcheck's verdict (probe 5): from what every probe found, what arrived
 * through the proxy for the canary, and which SOCKS requests carried IP
 * addresses, decide PASS, LEAK or UNTESTED. Pure: the probes and the command
 * gather the facts, report.ts prints the result.
 *
 * A LEAK is something seen leaving this machine outside the proxy: the canary
 * not arriving by name (as an IP address, or not at all within the wait), a
 * local lookup of it, WebRTC UDP around the proxy, IP-address SOCKS requests.
 * Every probe's leaks decide, with one exception: the settings audits
 * (firefox, chromium) read every profile on the machine, including browsers
 * the user is not testing, so a leaking setting counts only for the browser
 * that fetched the canary (or for all, when it could not be named). A
 * forgotten Firefox profile then does not fail a Chromium user, yet a Firefox
 * on a PAC proxy, which passes the canary but may resolve prefetched names
 * locally, does.
 * `exposure` and `info` never decide; they are listed with their fixes.
 */
import { hostPort } from "../address.ts";
import { refusalFix, socksAppFromProgram, type ProxyEndpoint } from "../client-setup.ts";
import type { Finding, ProbeName, Severity } from "./findings.ts";

export type Verdict = "PASS" | "LEAK" | "UNTESTED";

/** 0 PASS, 1 LEAK, 2 could not test. */
export type LeakcheckExitCode = 0 | 1 | 2;

const EXIT_CODES: Record<Verdict, LeakcheckExitCode> = { PASS: 0, LEAK: 1, UNTESTED: 2 };

/** What answers at --proxy: safetunnel's -D (which answers canaries), nothing, or another SOCKS server. */
export type ProxyCheck = { kind: "ours" } | ProxyNotOurs;

export interface ProxyNotOurs {
  kind: "absent" | "foreign";
  /** What was found, one clause: "nothing listens on 127.0.0.1:1080". */
  found: string;
}

/** What arrived through the proxy for the canary page's origin during the wait. */
export interface CanaryOutcome {
  /** A CONNECT carrying the canary name arrived: the browser resolves remotely. */
  arrivedByName: boolean;
  /** The program that sent the canary request, when it could be named ("firefox-esr", "chromium"). */
  program?: string;
  /** How long leakcheck waited, in whole seconds. */
  waitedSeconds: number;
  /** The wait was cut short (Ctrl-C during --watch), not run out. */
  interrupted?: boolean;
}

/** A SOCKS request with an IP-address destination seen (and refused) during the test. */
export interface IpLiteralRequest {
  /** As requested: "93.184.216.34:443", "[2001:db8::1]:80". */
  destination: string;
  version: 4 | 5;
  program?: string;
}

export interface VerdictInput {
  /** The --proxy endpoint, for fixes that can be pasted. */
  proxy: ProxyEndpoint;
  proxyCheck: ProxyCheck;
  canary: CanaryOutcome;
  /** Only the requests of the test's time window: another app using the proxy meanwhile counts too. */
  ipLiteralRequests: readonly IpLiteralRequest[];
  /** Every other probe's findings (webrtc, resolver, firefox, chromium, system), in the order found. */
  findings: readonly Finding[];
}

export interface LeakcheckResult {
  verdict: Verdict;
  exitCode: LeakcheckExitCode;
  /** Leaks first, then exposure, then info; in the order found within each. */
  findings: Finding[];
  /** One sentence on why this verdict, without the verdict word. */
  summary: string;
}

const SEVERITY_ORDER: Record<Severity, number> = { leak: 0, exposure: 1, info: 2 };

/** Audits of one browser's settings: their leaks decide only for that browser (see the top of this file). */
const BROWSER_AUDITS: ReadonlySet<ProbeName> = new Set(["firefox", "chromium"]);

/**
 * Findings in report order: leaks, exposure, info, each group in the order given.
 *
 * @example
 * sortFindings([info, leak, exposure]) // [leak, exposure, info]
 */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return findings
    .map((finding, index) => ({ finding, index }))
    .sort((a, b) => SEVERITY_ORDER[a.finding.severity] - SEVERITY_ORDER[b.finding.severity] || a.index - b.index)
    .map(({ finding }) => finding);
}

/**
 * @example
 * decideVerdict({ proxy, proxyCheck: { kind: "ours" }, canary: { arrivedByName: true, waitedSeconds: 4 }, ipLiteralRequests: [], findings: [] })
 * // { verdict: "PASS", exitCode: 0, findings: [canary info], summary: "The canary arrived through the proxy as a name and nothing leaked" }
 */
export function decideVerdict(input: VerdictInput): LeakcheckResult {
  if (input.proxyCheck.kind !== "ours") {
    const fix =
      input.proxyCheck.kind === "absent"
        ? `start the tunnel first (safetunnel -D ${tunnelSpec(input.proxy)} user@host)`
        : `point --proxy at safetunnel's own -D port: only it answers leakcheck's canaries`;
    return result("UNTESTED", sortFindings(input.findings), `Could not test: ${input.proxyCheck.found}; ${fix}`);
  }
  const findings = sortFindings([...canaryFindings(input.canary, input.proxy), ...ipLiteralFindings(input.ipLiteralRequests, input.proxy), ...input.findings]);
  const tested = socksAppFromProgram(input.canary.program);
  const counts = (finding: Finding): boolean =>
    finding.severity === "leak" && !(BROWSER_AUDITS.has(finding.probe) && tested !== undefined && finding.probe !== tested);
  const leaks = findings.filter(counts);
  if (leaks.length > 0) {
    const probes = [...new Set(leaks.map((finding) => finding.probe))].join(", ");
    return result("LEAK", findings, `${plural(leaks.length, "leak")} (${probes}): apply the fixes above and run leakcheck again`);
  }
  if (!input.canary.arrivedByName) {
    return result("UNTESTED", findings, `Stopped after ${input.canary.waitedSeconds} s before the canary arrived: open the canary URL in the browser and let leakcheck wait`);
  }
  const untested = findings.filter((finding) => finding.severity === "leak").length;
  const elsewhere = untested > 0 ? `; ${plural(untested, "setting")} above would leak in a browser not tested here` : "";
  return result("PASS", findings, `The canary arrived through the proxy as a name and nothing leaked${elsewhere}`);
}

/** The -D argument that listens where --proxy points: the port alone for ssh's default, 127.0.0.1. */
function tunnelSpec(proxy: ProxyEndpoint): string {
  return proxy.host === "127.0.0.1" || proxy.host === "localhost" ? String(proxy.port) : hostPort(proxy.host, proxy.port);
}

function result(verdict: Verdict, findings: Finding[], summary: string): LeakcheckResult {
  return { verdict, exitCode: EXIT_CODES[verdict], findings, summary };
}

/** What the canary's arrival (or absence) says, as findings of probe "canary". */
function canaryFindings(canary: CanaryOutcome, proxy: ProxyEndpoint): Finding[] {
  const by = canary.program === undefined ? "" : ` from ${canary.program}`;
  const found: Finding[] = [];
  if (canary.arrivedByName) {
    found.push({ probe: "canary", severity: "info", detail: `The canary arrived through the proxy as a name${by}`, fix: null });
  }
  if (!canary.arrivedByName && canary.interrupted !== true) {
    found.push({
      probe: "canary",
      severity: "leak",
      detail: `Nothing arrived through the proxy for the canary within ${canary.waitedSeconds} s: the browser resolved its name locally (and found nothing) or does not use the proxy`,
      fix: `use SOCKS v5 at ${hostPort(proxy.host, proxy.port)} in the browser and ${refusalFix(undefined, 5, proxy)}`,
    });
  }
  return found;
}

/** One leak per program and SOCKS version (each has its own fix), counting its requests. */
function ipLiteralFindings(requests: readonly IpLiteralRequest[], proxy: ProxyEndpoint): Finding[] {
  const groups = new Map<string, { first: IpLiteralRequest; count: number }>();
  for (const request of requests) {
    const key = `${request.program ?? ""}\u0000${request.version}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { first: request, count: 1 });
    else group.count++;
  }
  return [...groups.values()].map(({ first, count }) => ({
    probe: "canary",
    severity: "leak",
    detail:
      `${plural(count, `SOCKS${first.version} request`)} from ${first.program ?? "a client leakcheck could not name"} carried an IP address instead of a name ` +
      `(first: ${first.destination}) and ${count === 1 ? "was" : "were"} refused: the client resolved those names locally`,
    fix: refusalFix(first.program, first.version, proxy),
  }));
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
