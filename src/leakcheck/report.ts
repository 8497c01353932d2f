/**
 * leakcheck's report, from a decided result (verdict.ts): a short table for
 * people, or one JSON object a line for `--json`. Pure: text in, text out.
 *
 * Details and fixes stay on one line each, never wrapped or cut: a fix is a
 * pref, a flag or a policy to paste. Text that came from elsewhere (a program
 * name from /proc, a pref value from a profile) is made printable, as every
 * line we write on a terminal is (log.ts).
 */
import { singleLine } from "../log.ts";
import type { Finding } from "./findings.ts";
import type { LeakcheckResult } from "./verdict.ts";

/**
 * The human report: a header, a row per finding (probe, result, detail; its
 * fix on the line below), the verdict last with its exit code. Ends with a
 * newline.
 *
 * @example
 * renderHuman(result)
 * // PROBE     RESULT    DETAIL
 * // canary    info      the canary arrived through the proxy as a name from firefox-esr
 * // verdict   PASS      the canary arrived through the proxy as a name and nothing leaked (exit 0)
 */
export function renderHuman(result: LeakcheckResult): string {
  const rows: [probe: string, outcome: string, text: string][] = [["PROBE", "RESULT", "DETAIL"]];
  const fixes = new Map<number, string>();
  for (const finding of result.findings) {
    if (finding.fix !== null) fixes.set(rows.length, finding.fix);
    rows.push([finding.probe, finding.severity, finding.detail]);
  }
  rows.push(["verdict", result.verdict, `${result.summary} (exit ${result.exitCode})`]);
  const probeWidth = Math.max(...rows.map(([probe]) => probe.length)) + 2;
  const outcomeWidth = Math.max(...rows.map(([, outcome]) => outcome.length)) + 2;
  const indent = " ".repeat(probeWidth + outcomeWidth);
  const lines: string[] = [];
  rows.forEach(([probe, outcome, text], index) => {
    lines.push(probe.padEnd(probeWidth) + outcome.padEnd(outcomeWidth) + singleLine(text));
    const fix = fixes.get(index);
    if (fix !== undefined) lines.push(`${indent}fix: ${singleLine(fix)}`);
  });
  return lines.join("\n") + "\n";
}

/**
 * The `--json` report: a line per finding (`"type": "finding"`), then the
 * verdict (`"type": "verdict"`, `verdict`, `exitCode`, `summary` and all the
 * findings again in `findings`). Ends with a newline.
 *
 * @example
 * renderJsonLines(result).trimEnd().split("\n").map((line) => JSON.parse(line)).at(-1)
 * // { type: "verdict", verdict: "PASS", exitCode: 0, summary: "...", findings: [{ probe: "canary", severity: "info", detail: "...", fix: null }] }
 */
export function renderJsonLines(result: LeakcheckResult): string {
  return [...result.findings.map(findingJsonLine), verdictJsonLine(result)].join("\n") + "\n";
}

/**
 * One finding as a `--json` line, for reporting findings as they come (--watch).
 *
 * @example
 * findingJsonLine({ probe: "resolver", severity: "info", detail: "curl holds ...", fix: null })
 * // '{"type":"finding","probe":"resolver","severity":"info","detail":"curl holds ...","fix":null}'
 */
export function findingJsonLine(finding: Finding): string {
  return JSON.stringify({ type: "finding", ...findingFields(finding) });
}

/**
 * The verdict as the last `--json` line, findings included.
 *
 * @example
 * verdictJsonLine(result) // '{"type":"verdict","verdict":"LEAK","exitCode":1,"summary":"...","findings":[...]}'
 */
export function verdictJsonLine(result: LeakcheckResult): string {
  return JSON.stringify({ type: "verdict", verdict: result.verdict, exitCode: result.exitCode, summary: result.summary, findings: result.findings.map(findingFields) });
}

/** The four documented keys in a fixed order, whatever else a finding object carries. */
function findingFields(finding: Finding): Finding {
  return { probe: finding.probe, severity: finding.severity, detail: finding.detail, fix: finding.fix };
}
