/**
 * One run of `safetunnel leakcheck`: open a control connection to the
 * tunnel's -D port (control-client.ts), print the canary URL, gather what the
 * probes see while the user opens it, and print the verdict (verdict.ts,
 * report.ts). Returns the exit status: 0 PASS, 1 LEAK, 2 could not test.
 *
 * The run ends as soon as the verdict is certain: once the canary page has
 * arrived by name, a second after its WebRTC report (REPORT_WAIT_MS after the
 * page without one); after a leak the verdict counts (a canary looked up
 * locally, an IP-address request that is the browser's, WebRTC's UDP at
 * leakcheck's port), a second, or until the page's report when the page has
 * come; or when --wait runs out. With --watch it goes on until Ctrl-C.
 */
import type { LeakcheckPlan } from "../cli/leakcheck-args.ts";
import { hostPort } from "../address.ts";
import { NotAFrontEnd, openControl, type ControlConnection } from "./control-client.ts";
import type { CanaryEvent } from "./canary-registry.ts";
import { decideCaptureVerdict, decideVerdict, isOtherProgram, type CanaryOutcome, type IpLiteralRequest, type LeakcheckResult, type ProxyCheck } from "./verdict.ts";
import { findingJsonLine, renderHuman, renderJsonLines } from "./report.ts";
import type { Finding } from "./findings.ts";
import { ResolverSocketPoller } from "../platform/resolver-sockets.ts";
import { startLiveCapture, type LiveCapture } from "./live-capture.ts";
import { access, constants } from "node:fs/promises";
import { MAX_KEPT, ObservationStore, readCaptureFile } from "./capture-file.ts";
import { canariesIn, namesCanary, resolverFindings } from "./resolver-findings.ts";
import { socksAppFromProgram, type ProxyEndpoint } from "../client-setup.ts";
import type { DnsObservation } from "./dns-frames.ts";
import { auditBrowserSetup } from "./browser-files.ts";
import { asWebrtcReport, mergeWebrtcReports, stunLookupFix, udpProbeFindings, webrtcFindings, type UdpProbe, type WebrtcReport } from "./webrtc.ts";
import { GATHER_MS, VERDICT_PATH } from "./canary-page.ts";
import { verdictSummary } from "./control-protocol.ts";
import { within } from "../deadline.ts";
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
/** After the page, how long its script may take to post the WebRTC report (it gathers for at most GATHER_MS). */
const REPORT_WAIT_MS = GATHER_MS + 3000;
/** Sources of WebRTC UDP that --watch names, at most: anyone on the network can send to the port. */
const MAX_WATCH_SOURCES = 16;
/** How long the front end may take to answer a control request. */
const REQUEST_WAIT_MS = 2000;
/** How long the open page may take to ask for the verdict (it asks every VERDICT_POLL_MS), before the names go. */
const VERDICT_SHOW_MS = 3000;

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
    // Nothing there at all: the capture is all there is to read. Another SOCKS server there is a mistake to report.
    if (plan.pcap !== undefined && err.kind === "absent") {
      env.note(`No safetunnel front end: ${err.found}; reading the capture alone.`);
      return finish(await captureOnly(plan.pcap, proxy, err.found), plan, env);
    }
    const proxyCheck: ProxyCheck = { kind: err.kind, found: err.found };
    return finish(decideVerdict({ proxy, proxyCheck, canary: { arrivedByName: false, waitedSeconds: 0 }, ipLiteralRequests: [], findings: [] }), plan, env);
  }

  const started = now();
  const canary: CanaryOutcome = { arrivedByName: false, waitedSeconds: 0 };
  /** Every program that fetched the canary, in order (the user may open the URL in more than one). */
  const canaryPrograms: string[] = [];
  const ipLiteralRequests: IpLiteralRequest[] = [];
  const findings: Finding[] = [];
  let webrtc: WebrtcReport | undefined;
  let poller: ResolverSocketPoller | undefined;
  let udp: StunListener | undefined;
  let udpProbe: UdpProbe | undefined;
  /** Why the UDP probe is not confirmed: the port keeps listening, and STUN arriving there still counts. */
  let udpUnconfirmed: string | undefined;
  let capture: LiveCapture | undefined;
  let captureProblem: string | undefined;
  let outcome: Outcome;
  /** When the canary page arrived: its script reports within REPORT_WAIT_MS, then asks for the verdict. */
  let pageAt: number | undefined;
  /** A request for /verdict arrived (the page is showing it). */
  let onVerdictFetched = (): void => {};
  try {
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
      const setup = (plan.settings === false ? Promise.resolve([]) : auditBrowserSetup({ home: env.home, platform: env.platform, env: env.env }, proxy)).catch(
        (err: unknown): Finding[] => [{ probe: "system", severity: "info", detail: `Browser settings could not be read: ${describeError(err)}`, fix: null }],
      );
      // Set once the wait below starts: a canary looked up locally, or WebRTC's UDP at our port, makes the verdict LEAK at once.
      let onCanaryLookup = (): void => {};
      let onUdpStun = (): void => {};
      const reportedSources = new Set<string>();
      udp = await listenForWebrtcUdp({
        ...(env.platform === "linux" ? { senderProgram: procUdpSender() } : {}),
        onStun: (from) => {
          // One line per source: a browser retransmits, and anyone on the network can send to the port.
          if (plan.watch && !reportedSources.has(from) && reportedSources.size < MAX_WATCH_SOURCES) {
            reportedSources.add(from);
            env.out(plan.json ? JSON.stringify({ type: "webrtc-udp", from }) : `webrtc: a STUN request over UDP from ${from} reached leakcheck's port around the proxy (a leak)`);
          }
          onUdpStun();
        },
      });
      if (udp.endpoint !== undefined) {
        // The front end names our port in the page it serves: it must know before the URL is shown.
        const answer = await control.request({ request: "stun-udp", ...udp.endpoint }, REQUEST_WAIT_MS);
        if (answer === undefined) {
          // A late answer would still put the port in the page: listen on.
          udpUnconfirmed = "the tunnel did not answer the request to add it to the page (a safetunnel from before this check existed?)";
        } else if (answer.event !== "stun-udp") {
          udpProbe = { problem: `the tunnel would not add it to the page (${answer.event === "request-refused" ? answer.reason : "it answered something else"})` };
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
        const through = hostPort(proxy.host, proxy.port);
        env.out(plan.openedIn === undefined ? `Open this URL in the browser you will use through ${through}:` : `The leak check, opening in ${plan.openedIn} through ${through}:`);
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
        /**
         * After a leak: a moment for stragglers, and once the page has arrived, time for its
         * report, so the WebRTC findings (and their fixes) come in the same run. Without the
         * page, none may come (a browser that resolved the canary itself never fetches it).
         */
        const leaked = (): void => {
          const reportDue = pageAt !== undefined && webrtc === undefined ? pageAt + REPORT_WAIT_MS - now() : 0;
          endAfter("leaked", Math.max(SETTLE_MS, reportDue));
        };
        onCanaryLookup = leaked;
        // STUN at our port comes from the page's script: its report follows.
        onUdpStun = () => endAfter("leaked", webrtc === undefined ? REPORT_WAIT_MS : SETTLE_MS);
        connection.onLost(() => done("lost"));
        connection.onEvent((event: CanaryEvent) => {
          if (event.event === "canary") {
            if (event.port === 80 || event.port === 443) {
              canary.arrivedByName = true;
              if (event.program !== null && !canaryPrograms.includes(event.program)) canaryPrograms.push(event.program);
              canary.program ??= event.program ?? undefined;
            }
          } else if (event.event === "page" && event.path === VERDICT_PATH) {
            onVerdictFetched();
          } else if (event.event === "page" && event.path === "/") {
            const by = canary.program === undefined ? "" : ` from ${canary.program}`;
            if (plan.watch) env.out(plan.json ? JSON.stringify({ type: "canary", detail: `The canary page arrived by name${by}` }) : `canary: the page arrived by name${by}`);
            pageAt ??= now();
            if (certain === undefined) endAfter("arrived", REPORT_WAIT_MS);
          } else if (event.event === "report") {
            const report = asWebrtcReport(event.body);
            // A reload, or a second browser, reports again: the findings cover every report.
            if (report !== undefined) webrtc = mergeWebrtcReports(webrtc, report);
            if (webrtc !== undefined && certain !== undefined) endAfter(certain, SETTLE_MS);
          } else if (event.event === "refused-ip") {
            ipLiteralRequests.push({ destination: event.destination, version: event.version, ...(event.program !== null ? { program: event.program } : {}) });
            if (plan.watch) env.out(plan.json ? JSON.stringify({ type: "refused-ip", destination: event.destination, program: event.program }) : `canary: refused an IP-address request to ${event.destination}${event.program === null ? "" : ` from ${event.program}`} (a leak)`);
            // Certain only when it counts whatever comes next (verdict.ts isOtherProgram): its program
            // unnamed or of no known kind, or the canary already fetched and this is not provably
            // another program. Before the canary, a known program may yet turn out not to be the browser.
            const decides =
              event.program === null || socksAppFromProgram(event.program) === undefined || (canary.arrivedByName && !isOtherProgram(event.program, canaryPrograms));
            if (decides) leaked();
          }
        });
      });
      canary.waitedSeconds = Math.round((now() - started) / 1000);
      if (canaryPrograms.length > 0) canary.programs = canaryPrograms;
      findings.push(...(await setup));
    } finally {
      if (udpProbe === undefined && udp !== undefined) {
        const seen = await udp.close();
        // Unconfirmed, silence proves nothing; STUN that arrived anyway still went around the proxy.
        udpProbe = udpUnconfirmed !== undefined && !("stunCount" in seen && seen.stunCount > 0) ? { problem: udpUnconfirmed } : seen;
      }
      await poller?.stop();
      captureProblem = await capture?.stop();
    }

    const { canary: canaryName, stun } = control.hello;
    const store = new ObservationStore((seen) => seen.names.some((name) => namesCanary(name, canaryName) || namesCanary(name, stun)));
    for (const seen of capture?.observations ?? []) store.add(seen);
    if (captureProblem !== undefined) {
      const fallback = poller !== undefined ? "resolver sockets were watched through /proc instead" : "local resolver use was not watched";
      findings.push({ probe: "resolver", severity: "info", detail: `No live capture: ${captureProblem}; ${fallback}`, fix: "run leakcheck as root (or with CAP_NET_RAW) with tcpdump installed to see every local lookup" });
    }
    /** Why the check cannot vouch for the browser although it ran: a capture the user gave that could not be read. */
    let incomplete: string | undefined;
    if (plan.pcap !== undefined) {
      try {
        await readCaptureFile(plan.pcap, { allowCutOff: true, keep: false, onObservation: (seen) => store.add(seen) });
      } catch (err) {
        // Its lookups were not checked: without them the check cannot vouch for the browser.
        findings.push({ probe: "resolver", severity: "info", detail: `The capture could not be read: ${describeError(err)}`, fix: null });
        incomplete = `the capture ${plan.pcap} could not be read, so its lookups were not checked`;
      }
    }
    const dropped = store.dropped + (capture?.dropped ?? 0);
    if (dropped > 0) {
      findings.push({ probe: "resolver", severity: "info", detail: `${dropped} more DNS messages were seen than the report keeps (${MAX_KEPT}); each lookup of a canary was kept`, fix: null });
    }
    const lookups = lookupFindings(store.observations, [canaryName, stun], [stun], proxy);
    const udpFindings = udpProbe === undefined ? [] : udpProbeFindings(udpProbe, webrtc);
    findings.unshift(...lookups, ...(canary.arrivedByName ? [...webrtcFindings(webrtc), ...udpFindings] : udpFindings.filter((finding) => finding.severity === "leak")));

    // Cut short, not run out: "nothing arrived within the wait" would not be true.
    if (outcome !== "timeout" && outcome !== "arrived") canary.interrupted = true;
    if (outcome === "lost") env.note("The tunnel stopped during the check; what was seen until then:");
    const result = decideVerdict({ proxy, proxyCheck: { kind: "ours" }, canary, ipLiteralRequests, findings, ...(incomplete !== undefined ? { incomplete } : {}) });
    // The page is open in a browser: show the verdict there too (a LEAK is seen where the user looks).
    if (pageAt !== undefined && outcome !== "lost") {
      const answer = await control.request({ request: "verdict", verdict: result.verdict, summary: verdictSummary(result.summary) }, REQUEST_WAIT_MS);
      // Listened for only now: a request for it before the answer was answered "not yet".
      if (answer?.event === "verdict") await within(new Promise<void>((resolve) => (onVerdictFetched = resolve)), VERDICT_SHOW_MS);
    }
    return finish(result, plan, env);
  } finally {
    control.close();
  }
}

/**
 * Probe 3's findings for `observations`: a lookup of a STUN canary is
 * WebRTC's leak, so its fix is WebRTC's, not the proxy settings'.
 */
function lookupFindings(observations: readonly DnsObservation[], canaries: readonly string[], stunCanaries: readonly string[], proxy: ProxyEndpoint, maxNamesListed?: number): Finding[] {
  return resolverFindings(observations, canaries, { ...(maxNamesListed === undefined ? {} : { maxNamesListed }), webrtcCanaries: stunCanaries, webrtcFix: stunLookupFix(proxy) });
}

/** How many other names a capture read alone lists: every one, within reason. */
const CAPTURE_ONLY_NAMES = 200;

/**
 * `--pcap FILE` with no tunnel to test through: the capture alone, with the
 * canaries of whichever check it was taken during.
 */
async function captureOnly(path: string, proxy: ProxyEndpoint, found: string): Promise<LeakcheckResult> {
  // Which canaries a capture names is known only once it has been read: keep every canary lookup.
  const store = new ObservationStore((seen) => canariesIn([seen]).length > 0);
  const { format, counts } = await readCaptureFile(path, { allowCutOff: true, keep: false, onObservation: (seen) => store.add(seen) });
  const { observations } = store;
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
