/**
 * leakcheck's verdict (probe 5): from what every probe found, what arrived
 * through the proxy for the canary, and which SOCKS requests carried IP
 * addresses, decide PASS, LEAK or UNTESTED. Pure: the probes and the command
 * gather the facts, report.ts prints the result.
 *
 * A LEAK is something seen leaving this machine outside the proxy: the canary
 * not arriving by name (as an IP address, or not at all within the wait), a
 * local lookup of it, WebRTC UDP around the proxy, IP-address SOCKS requests.
 * Every probe's leaks decide, with two exceptions, both for programs other
 * than the browser that fetched the canary (when it could be named):
 * - the settings audits (firefox, chromium) read every profile on the
 *   machine, including browsers the user is not testing, so a leaking setting
 *   counts only for the tested browser. A forgotten Firefox profile then does
 *   not fail a Chromium user, yet a Firefox on a PAC proxy, which passes the
 *   canary but may resolve prefetched names locally, does;
 * - an IP-address SOCKS request from a program of another known kind (curl,
 *   a browser of the other family) than every program that fetched the
 *   canary: that program resolved locally, but the browser under test did
 *   not send it.
 * Both are still listed as leaks. When a program cannot be named, or is of no
 * kind leakcheck knows (a browser's processes go by several names), the leak
 * counts: leakcheck cannot tell it is not the browser's.
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
  /** Every program that sent a canary request, `program` first (the user may open the URL in more than one). @default [program] */
  programs?: readonly string[];
  /** How long leakcheck waited, in whole seconds. */
  waitedSeconds: number;
  /** The wait was cut short (Ctrl-C during --watch), not run out. */
  interrupted?: boolean;
}

/** A SOCKS (or HTTP proxy) request with an IP-address destination seen (and refused) during the test. */
export interface IpLiteralRequest {
  /** As requested: "93.184.216.34:443", "[2001:db8::1]:80". */
  destination: string;
  version: 4 | 5 | "http";
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
  /**
   * Why the check cannot vouch for the browser even if nothing leaked (a
   * --pcap file the user gave could not be read): UNTESTED instead of PASS.
   */
  incomplete?: string;
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
  const testedPrograms = input.canary.programs ?? (input.canary.program === undefined ? [] : [input.canary.program]);
  const requests = ipLiteralFindings(input.ipLiteralRequests, testedPrograms, input.proxy);
  // Keyed by the finding objects themselves: sortFindings reorders them but keeps each object.
  const otherPrograms = new Map(requests.flatMap(({ finding, otherProgram }) => (otherProgram === undefined ? [] : [[finding, otherProgram] as const])));
  const findings = sortFindings([...canaryFindings(input.canary, input.proxy), ...requests.map(({ finding }) => finding), ...input.findings]);
  const tested = socksAppFromProgram(input.canary.program);
  const untestedBrowser = (finding: Finding): boolean => BROWSER_AUDITS.has(finding.probe) && tested !== undefined && finding.probe !== tested;
  const counts = (finding: Finding): boolean => finding.severity === "leak" && !untestedBrowser(finding) && !otherPrograms.has(finding);
  const leaks = findings.filter(counts);
  if (leaks.length > 0) {
    const probes = [...new Set(leaks.map((finding) => finding.probe))].join(", ");
    return result("LEAK", findings, `${plural(leaks.length, "leak")} (${probes}): apply the fixes above and run leakcheck again`);
  }
  if (!input.canary.arrivedByName) {
    return result("UNTESTED", findings, `Stopped after ${input.canary.waitedSeconds} s before the canary arrived: open the canary URL in the browser and let leakcheck wait`);
  }
  if (input.incomplete !== undefined) return result("UNTESTED", findings, `The canary arrived through the proxy as a name, but ${input.incomplete}`);
  const settings = findings.filter((finding) => finding.severity === "leak" && untestedBrowser(finding)).length;
  const clauses = [
    ...(settings > 0 ? [`${plural(settings, "setting")} above would leak in a browser not tested here`] : []),
    ...(otherPrograms.size > 0 ? [otherProgramsClause([...otherPrograms.values()])] : []),
  ];
  const elsewhere = clauses.length > 0 ? `; ${clauses.join(", and ")}` : "";
  return result("PASS", findings, `The canary arrived through the proxy as a name and nothing leaked${elsewhere}`);
}

/**
 * The verdict on a capture read alone (`--pcap` with no tunnel at --proxy):
 * a canary of any check in it, looked up locally, is a LEAK; otherwise the
 * browser was not tested (only the canary's arrival through the proxy can
 * show that it sends names), so UNTESTED, with what the capture held listed.
 *
 * @example
 * decideCaptureVerdict({ found: "nothing is listening on 127.0.0.1:1080", findings: [] })
 * // { verdict: "UNTESTED", exitCode: 2, findings: [], summary: "Only the capture was read (nothing is listening on 127.0.0.1:1080) ..." }
 */
export function decideCaptureVerdict(input: { found: string; findings: readonly Finding[] }): LeakcheckResult {
  const findings = sortFindings(input.findings);
  const leaks = findings.filter((finding) => finding.severity === "leak");
  if (leaks.length > 0) {
    const probes = [...new Set(leaks.map((finding) => finding.probe))].join(", ");
    return result("LEAK", findings, `${plural(leaks.length, "leak")} in the capture (${probes}): apply the fixes above and run leakcheck again with the tunnel`);
  }
  return result(
    "UNTESTED",
    findings,
    `Only the capture was read (${input.found}): no canary was looked up in it, but the browser itself was not tested; start the tunnel and run leakcheck while the browser opens the canary URL`,
  );
}

/** "1 leak above is from a program not tested here (curl)", for the leaks of `programs` (one entry per leak). */
function otherProgramsClause(programs: readonly string[]): string {
  const names = [...new Set(programs)];
  return `${plural(programs.length, "leak")} above ${programs.length === 1 ? "is" : "are"} from ${names.length === 1 ? "a program" : "programs"} not tested here (${names.join(", ")})`;
}

/**
 * Whether `program` is provably not the browser under test: it is of a kind
 * leakcheck knows (socksAppFromProgram: a Firefox, a Chromium, curl), and so
 * is every program in `tested`, each of another kind. Anything less certain
 * (an unnamed or unknown program: Firefox's "Socket Process", vivaldi-bin)
 * may be the browser, so its leaks count.
 *
 * @example
 * isOtherProgram("curl", ["firefox-esr"]) // true
 * isOtherProgram("firefox", ["firefox-esr"]) // false: the same family
 * isOtherProgram("python3", ["firefox-esr"]) // false: an unknown kind
 */
export function isOtherProgram(program: string | undefined, tested: readonly string[]): boolean {
  const kind = socksAppFromProgram(program);
  if (kind === undefined || tested.length === 0) return false;
  return tested.every((name) => {
    const testedKind = socksAppFromProgram(name);
    return testedKind !== undefined && testedKind !== kind;
  });
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

/**
 * One leak per program and SOCKS version (each has its own fix), counting its
 * requests; `otherProgram` names the program when it is provably not the
 * browser under test (isOtherProgram; see the top of this file).
 */
function ipLiteralFindings(requests: readonly IpLiteralRequest[], tested: readonly string[], proxy: ProxyEndpoint): { finding: Finding; otherProgram?: string }[] {
  const groups = new Map<string, { first: IpLiteralRequest; count: number }>();
  for (const request of requests) {
    const key = `${request.program ?? ""}\u0000${request.version}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { first: request, count: 1 });
    else group.count++;
  }
  return [...groups.values()].map(({ first, count }) => {
    const { program } = first;
    const other = isOtherProgram(program, tested);
    const finding: Finding = {
      probe: "canary",
      severity: "leak",
      detail:
        `${plural(count, `${first.version === "http" ? "HTTP proxy" : `SOCKS${first.version}`} request`)} from ${program ?? "a client leakcheck could not name"} carried an IP address instead of a name ` +
        `(first: ${first.destination}) and ${count === 1 ? "was" : "were"} refused: the client resolved those names locally` +
        (other ? `; ${program} is not the browser under test (the canary came from ${tested.join(", ")})` : ""),
      fix: refusalFix(program, first.version, proxy),
    };
    return other ? { finding, otherProgram: program } : { finding };
  });
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
