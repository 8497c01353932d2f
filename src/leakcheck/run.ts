/**
 * One run of `safetunnel leakcheck`: open a control connection to the
 * tunnel's -D port (control-client.ts), print the canary URL, gather what the
 * probes see while the user opens it, and print the verdict (verdict.ts,
 * report.ts). Returns the exit status: 0 PASS, 1 LEAK, 2 could not test.
 *
 * The run ends as soon as the verdict is certain: a second after the page's
 * WebRTC report once the canary page has arrived by name (or a few seconds
 * without one), a second after a leak the verdict counts (a canary looked up
 * locally, an IP-address request from the browser, WebRTC's UDP at
 * leakcheck's port), or when --wait runs out; with --watch it goes on until
 * Ctrl-C.
 */
import type { LeakcheckPlan } from "../cli/leakcheck-args.ts";
import { hostPort } from "../address.ts";
import { NotAFrontEnd, openControl, type ControlConnection } from "./control-client.ts";
import type { CanaryEvent } from "./canary-registry.ts";
import { decideCaptureVerdict, decideVerdict, isTestedProgram, type CanaryOutcome, type IpLiteralRequest, type LeakcheckResult, type ProxyCheck } from "./verdict.ts";
import { findingJsonLine, renderHuman, renderJsonLines } from "./report.ts";
import type { Finding } from "./findings.ts";
import { ResolverSocketPoller } from "../platform/resolver-sockets.ts";
import { MAX_KEPT, startLiveCapture, type LiveCapture } from "./live-capture.ts";
import { access, constants } from "node:fs/promises";
import { readCaptureFile } from "./capture-file.ts";
import { canariesIn, namesCanary, resolverFindings } from "./resolver-findings.ts";
import type { ProxyEndpoint } from "../client-setup.ts";
import type { DnsObservation } from "./dns-frames.ts";
import { auditBrowserSetup } from "./browser-files.ts";
import { asWebrtcReport, stunLookupFix, udpProbeFindings, webrtcFindings, type UdpProbe, type WebrtcReport } from "./webrtc.ts";
import { listenForWebrtcUdp, type StunListener } from "./stun-listener.ts";
import { procUdpSender } from "../platform/udp-owner.ts";
import { TunnelError, describeError, errnoCode } from "../errors.ts";

export interface LeakcheckEnvironment {
  /** Writes one line of the report (stdout). */
  out(line: string): void;
  /** Writes one line of progress for a person (stderr), never in --json. */
  note(line: string): void;
  platform: string;
  /** Where browser profiles live: the home folder and the environment (XDG_CONFIG_HOME, APPDATA). */
  home: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Opens a URL in the default browser (--open). */
  openUrl(url: string): void;
  /** Registers what to do on Ctrl-C. */
  onStopSignal(handler: (signal: string) => void): void;
  /** Milliseconds now. @default Date.now */
  now?: () => number;
}

/** Once the verdict is certain (the page arrived, or a leak was seen), how long stragglers may still arrive. */
const SETTLE_MS = 1000;
/** After the page, how long its script may take to post the WebRTC report (it gathers for at most 3 s). */
const REPORT_WAIT_MS = 6000;
/** How long the front end may take to answer a control request. */
const REQUEST_WAIT_MS = 2000;

/**
 * @example
 * const status = await runLeakcheck(plan, { out: console.log, note: console.error, platform: process.platform, openUrl, onStopSignal });
 */
export async function runLeakcheck(plan: LeakcheckPlan, env: LeakcheckEnvironment): Promise<number> {
  const now = env.now ?? Date.now;
  const proxy = { host: plan.proxy.host, port: plan.proxy.port };
  // Ctrl-C is ours from the start: whatever runs by then is stopped in the finally below.
  let onStop = (): void => {};
  let stopped = false;
  env.onStopSignal(() => {
    stopped = true;
    onStop();
  });
  if (plan.pcap !== undefined) await checkReadable(plan.pcap);

  let control: ControlConnection;
  try {
    control = await openControl(proxy);
  } catch (err) {
    if (!(err instanceof NotAFrontEnd)) throw err;
    if (plan.pcap !== undefined) {
      env.note(`No safetunnel front end: ${err.found}; reading the capture alone.`);
      return finish(await captureOnly(plan.pcap, proxy, err.found), plan, env);
    }
    const proxyCheck: ProxyCheck = { kind: err.kind, found: err.found };
    return finish(decideVerdict({ proxy, proxyCheck, canary: { arrivedByName: false, waitedSeconds: 0 }, ipLiteralRequests: [], findings: [] }), plan, env);
  }

  const started = now();
  const canary: CanaryOutcome = { arrivedByName: false, waitedSeconds: 0 };
  const ipLiteralRequests: IpLiteralRequest[] = [];
  const findings: Finding[] = [];
  let webrtc: WebrtcReport | undefined;
  let poller: ResolverSocketPoller | undefined;
  let udp: StunListener | undefined;
  let udpProbe: UdpProbe | undefined;
  let capture: LiveCapture | undefined;
  let captureProblem: string | undefined;
  let outcome: Outcome;
  try {
    poller =
      env.platform === "linux"
        ? new ResolverSocketPoller({
            proxy,
            onSocket: ({ finding }) => {
              findings.push(finding);
              if (plan.watch) env.out(plan.json ? findingJsonLine(finding) : `resolver: ${finding.detail}`);
            },
          })
        : undefined;
    poller?.start();
    // Settings are read while the user opens the page; a failure is a finding, never the end of the check.
    const setup = auditBrowserSetup({ home: env.home, platform: env.platform, env: env.env }, proxy).catch(
      (err: unknown): Finding[] => [{ probe: "system", severity: "info", detail: `Browser settings could not be read: ${describeError(err)}`, fix: null }],
    );
    // Set once the wait below starts: a canary looked up locally, or WebRTC's UDP at our port, makes the verdict LEAK at once.
    let onCanaryLookup = (): void => {};
    let onUdpStun = (): void => {};
    udp = await listenForWebrtcUdp({
      ...(env.platform === "linux" ? { senderProgram: procUdpSender() } : {}),
      onStun: (from) => {
        if (plan.watch) env.out(plan.json ? JSON.stringify({ type: "webrtc-udp", from }) : `webrtc: a STUN request over UDP from ${from} reached leakcheck's port around the proxy (a leak)`);
        onUdpStun();
      },
    });
    if (udp.endpoint !== undefined) {
      // The front end names our port in the page it serves: it must know before the URL is shown.
      const answer = await control.request({ request: "stun-udp", ...udp.endpoint }, REQUEST_WAIT_MS);
      if (answer?.event !== "stun-udp") {
        udpProbe = { problem: answer === undefined ? "the tunnel did not answer the request to add it to the page (a safetunnel from before this check existed?)" : `the tunnel would not add it to the page (${answer.reason})` };
        await udp.close();
      }
    }
    const canaryNames = [control.hello.canary, control.hello.stun];
    const namesOurCanary = (seen: DnsObservation): boolean => seen.names.some((name) => canaryNames.some((canaryName) => namesCanary(name, canaryName)));
    capture = await startLiveCapture({
      mustKeep: namesOurCanary,
      onObservation: (seen) => {
        const isCanary = namesOurCanary(seen);
        if (isCanary) onCanaryLookup();
        if (plan.watch && seen.query) {
          const line = `${seen.protocol} query for ${seen.names.join(", ")} to ${hostPort(seen.to.address, seen.to.port)}${isCanary ? " (the canary: a leak)" : ""}`;
          env.out(plan.json ? JSON.stringify({ type: "lookup", detail: line }) : `resolver: ${line}`);
        }
      },
    });

    // The probes run before the URL is shown: the first lookup a browser makes is seen.
    const { url } = control.hello;
    if (plan.json) env.out(JSON.stringify({ type: "url", url }));
    else {
      env.out(`Open this URL in the browser you will use through ${hostPort(proxy.host, proxy.port)}:`);
      env.out(url);
    }
    if (plan.open) env.openUrl(url);

    const connection = control;
    outcome = await new Promise<Outcome>((resolve) => {
      let settle: ReturnType<typeof setTimeout> | undefined;
      let certain: "arrived" | "leaked" | undefined;
      let endsAt = Infinity;
      const deadline = plan.watch ? undefined : setTimeout(() => resolve("timeout"), plan.waitMs);
      const done = (why: Outcome): void => {
        clearTimeout(deadline);
        clearTimeout(settle);
        resolve(why);
      };
      /** The verdict is certain: end after `ms`, unless it ends sooner already; a leak overrides an arrival. */
      const endAfter = (why: "arrived" | "leaked", ms: number): void => {
        if (plan.watch || (certain === "leaked" && why === "arrived")) return;
        const at = now() + ms;
        if (certain === why && at >= endsAt) return;
        certain = why;
        endsAt = at;
        clearTimeout(settle);
        settle = setTimeout(() => done(why), ms);
      };
      onStop = () => done("interrupted");
      if (stopped) done("interrupted");
      onCanaryLookup = () => endAfter("leaked", SETTLE_MS);
      // The page's report, if it comes, says what else WebRTC did.
      onUdpStun = () => endAfter("leaked", webrtc === undefined ? REPORT_WAIT_MS : SETTLE_MS);
      connection.onLost(() => done("lost"));
      connection.onEvent((event: CanaryEvent) => {
        if (event.event === "canary") {
          if (event.port === 80 || event.port === 443) {
            canary.arrivedByName = true;
            if (event.program !== null) canary.program = event.program;
          }
        } else if (event.event === "page" && event.path === "/") {
          const by = canary.program === undefined ? "" : ` from ${canary.program}`;
          if (plan.watch) env.out(plan.json ? JSON.stringify({ type: "canary", detail: `The canary page arrived by name${by}` }) : `canary: the page arrived by name${by}`);
          if (certain === undefined) endAfter("arrived", REPORT_WAIT_MS);
        } else if (event.event === "report") {
          webrtc = asWebrtcReport(event.body) ?? webrtc;
          if (webrtc !== undefined && certain !== undefined) endAfter(certain, SETTLE_MS);
        } else if (event.event === "refused-ip") {
          ipLiteralRequests.push({ destination: event.destination, version: event.version, ...(event.program !== null ? { program: event.program } : {}) });
          if (plan.watch) env.out(plan.json ? JSON.stringify({ type: "refused-ip", destination: event.destination, program: event.program }) : `canary: refused an IP-address request to ${event.destination}${event.program === null ? "" : ` from ${event.program}`} (a leak)`);
          // Certain only when it counts whatever comes next: its program unknown, or the browser
          // already known and this is it (verdict.ts: another program's request does not decide).
          const decides = event.program === null || (canary.arrivedByName && (canary.program === undefined || isTestedProgram(event.program, canary.program)));
          if (decides) endAfter("leaked", SETTLE_MS);
        }
      });
    });
    canary.waitedSeconds = Math.round((now() - started) / 1000);
    findings.push(...(await setup));
  } finally {
    control.close();
    if (udpProbe === undefined) udpProbe = await udp?.close();
    await poller?.stop();
    captureProblem = await capture?.stop();
  }

  const observations: DnsObservation[] = [...(capture?.observations ?? [])];
  if (capture !== undefined && capture.dropped > 0) {
    findings.push({ probe: "resolver", severity: "info", detail: `${capture.dropped} more DNS messages were seen than the report keeps (${MAX_KEPT}); each lookup of a canary was kept`, fix: null });
  }
  if (captureProblem !== undefined) {
    const fallback = poller !== undefined ? "resolver sockets were watched through /proc instead" : "local resolver use was not watched";
    findings.push({ probe: "resolver", severity: "info", detail: `No live capture: ${captureProblem}; ${fallback}`, fix: "run leakcheck as root (or with CAP_NET_RAW) with tcpdump installed to see every local lookup" });
  }
  if (plan.pcap !== undefined) {
    try {
      observations.push(...(await readCaptureFile(plan.pcap, { allowCutOff: true })).observations);
    } catch (err) {
      findings.push({ probe: "resolver", severity: "info", detail: `The capture could not be read: ${describeError(err)}`, fix: null });
    }
  }
  const { canary: canaryName, stun } = control.hello;
  const lookups = lookupFindings(observations, [canaryName, stun], [stun], proxy);
  const udpFindings = udpProbe === undefined ? [] : udpProbeFindings(udpProbe, webrtc);
  findings.unshift(...lookups, ...(canary.arrivedByName ? [...webrtcFindings(webrtc), ...udpFindings] : udpFindings.filter((finding) => finding.severity === "leak")));

  // Cut short, not run out: "nothing arrived within the wait" would not be true.
  if (outcome !== "timeout" && outcome !== "arrived") canary.interrupted = true;
  if (outcome === "lost") env.note("The tunnel stopped during the check; what was seen until then:");
  return finish(decideVerdict({ proxy, proxyCheck: { kind: "ours" }, canary, ipLiteralRequests, findings }), plan, env);
}

/**
 * Probe 3's findings for `observations`: a lookup of a STUN canary is
 * WebRTC's leak, so its fix is WebRTC's, not the proxy settings'.
 */
function lookupFindings(observations: readonly DnsObservation[], canaries: readonly string[], stunCanaries: readonly string[], proxy: ProxyEndpoint, maxNamesListed?: number): Finding[] {
  const stunLookup = (finding: Finding): boolean => finding.severity === "leak" && stunCanaries.some((name) => finding.detail.includes(name));
  return resolverFindings(observations, canaries, maxNamesListed === undefined ? {} : { maxNamesListed }).map((finding): Finding =>
    stunLookup(finding) ? { ...finding, probe: "webrtc", fix: stunLookupFix(proxy) } : finding,
  );
}

/** How many other names a capture read alone lists: every one, within reason. */
const CAPTURE_ONLY_NAMES = 200;

/**
 * `--pcap FILE` with no tunnel to test through: the capture alone, with the
 * canaries of whichever check it was taken during.
 */
async function captureOnly(path: string, proxy: ProxyEndpoint, found: string): Promise<LeakcheckResult> {
  const { format, observations, counts } = await readCaptureFile(path, { allowCutOff: true });
  const canaries = canariesIn(observations);
  const summary: Finding = {
    probe: "resolver",
    severity: "info",
    detail: `The capture ${path} (${format}) holds ${counts.packets} packet${counts.packets === 1 ? "" : "s"}, ${counts.dns} with DNS${counts.malformed > 0 ? `, ${counts.malformed} malformed` : ""}; ${canaries.length === 0 ? "it names no leakcheck canary" : `it names the canar${canaries.length === 1 ? "y" : "ies"} ${canaries.join(", ")}`}`,
    fix: null,
  };
  const stun = canaries.filter((name) => /-stun\.canary\./.test(name));
  return decideCaptureVerdict({ found, findings: [summary, ...lookupFindings(observations, canaries, stun, proxy, CAPTURE_ONLY_NAMES)] });
}

type Outcome = "arrived" | "leaked" | "timeout" | "interrupted" | "lost";

/** `--pcap FILE` is read when the check ends; it must exist when it starts (a capture already running). */
async function checkReadable(path: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch (err) {
    throw new TunnelError("BAD_CAPTURE", `cannot read --pcap ${path} (${errnoCode(err) ?? describeError(err)}); start your capture first (tcpdump -w ${path}): leakcheck reads it when the check ends`, { exitCode: 2 });
  }
}

function finish(result: LeakcheckResult, plan: LeakcheckPlan, env: LeakcheckEnvironment): number {
  const text = plan.json ? renderJsonLines(result) : renderHuman(result);
  for (const line of text.replace(/\n$/, "").split("\n")) env.out(line);
  return result.exitCode;
}
