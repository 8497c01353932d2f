/**
 * What a leak check reports: findings, each from one probe, with how much it
 * reveals and the exact change that removes it. Plain data; every probe
 * returns these and the verdict (verdict.ts) reads only these.
 */

/**
 * - `leak`: reveals where you browse (a name resolved locally, traffic around the proxy);
 * - `exposure`: reveals that you are there, or your address (a WebRTC candidate, a captive-portal check);
 * - `info`: worth knowing, reveals nothing by itself.
 */
export type Severity = "leak" | "exposure" | "info";

/** The probes, as named in reports and in `--json`. */
export type ProbeName = "canary" | "webrtc" | "resolver" | "firefox" | "chromium" | "system";

export interface Finding {
  probe: ProbeName;
  severity: Severity;
  /** One sentence: what was seen or read, with where (file and pref, program, address). */
  detail: string;
  /** The exact change that removes it (a pref and its value, a flag, a policy), or null when nothing needs changing. */
  fix: string | null;
}
