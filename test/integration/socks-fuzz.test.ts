/**
 * The built CLI's SOCKS port under fuzz: `safetunnel -N -D` against a private
 * loopback sshd takes 10^5 random and mutated SOCKS4, 4a and 5 handshakes
 * (10^6 with SAFETUNNEL_FUZZ_CASES=1000000), HTTP and TLS preambles and
 * random bytes, written whole or in pieces with pauses, then waited on,
 * half-closed, reset or closed early, many connections at a time. Afterwards
 * it must still be running and serving, hold no more descriptors than before,
 * have kept its log small, have never said yes to an IP address, and stop
 * cleanly on SIGTERM.
 *
 * The run prints its seed; SAFETUNNEL_FUZZ_SEED=<seed> replays it, and
 * SAFETUNNEL_FUZZ_CASE=<index> with it replays one case alone.
 *
 * The sshd permits forwarding to the echo target only (PermitOpen), so a
 * mutated name or port is refused by sshd before any lookup: no DNS query and
 * no connection leave loopback, whatever the fuzz sends. 127.0.0.1 and ::1
 * are permitted on purpose: were the proxy to pass an IP-address request on,
 * sshd would connect it and the proxy would answer success, which fails the
 * test.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { randomInt } from "node:crypto";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { delay, within } from "../helpers/child.ts";
import { socks5Open, socks5Request } from "../helpers/raw-socks.ts";
import { assertNoCrash, type Home } from "../helpers/run.ts";
import { carriesAddress, type FuzzCase, fuzzCase, HTTP_ESTABLISHED, judgeReply, readSent } from "../helpers/socks-fuzz-cases.ts";
import type { Sshd } from "../helpers/sshd.ts";
import { deterministicBytes, type EchoTarget, startEchoTarget } from "../helpers/targets.ts";
import { type SocksTunnel, startSocksTunnel, startSshdWithHome } from "../helpers/tunnel.ts";

/** Connections open at once. */
const CONCURRENCY = 160;
/** How long a case waits for the proxy to answer a whole request (a refusal first asks /proc who the client is). */
const ANSWER_MS = 5000;
/** How long a case with an unfinished request waits to see whether the proxy (wrongly) answers it anyway. */
const IDLE_MS = 100;
/** How long a case waits for the proxy to close after the client's FIN. */
const CLOSE_MS = 3000;
/** The whole run's stderr, at the default log level. */
const LOG_LIMIT_BYTES = 200 * 1024;
/** Descriptors the CLI may hold beyond its count before the fuzz (a /proc walk in flight, a timer's handle). */
const FD_SLACK = 8;
/** Problems kept for the failure message, each with its replay line. */
const PROBLEMS_KEPT = 10;

/** An integer from the environment (`1e6` works), at least `min`; `fallback` when unset. */
function integerFromEnv(name: string, fallback: number, min = 0): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  return value;
}

const SEED = integerFromEnv("SAFETUNNEL_FUZZ_SEED", randomInt(0x1_0000_0000)) >>> 0;
const CASES = integerFromEnv("SAFETUNNEL_FUZZ_CASES", 100_000, 1);
const ONLY_CASE = process.env.SAFETUNNEL_FUZZ_CASE === undefined ? undefined : integerFromEnv("SAFETUNNEL_FUZZ_CASE", 0);

/** What one case saw. */
interface CaseRun {
  sent: Buffer;
  received: Buffer;
  /** The proxy closed (or reset) the connection before the client gave up on it. */
  closedByProxy: boolean;
  connectError?: string;
}

/** Open a connection to the proxy and play one case on it; never rejects, always destroys the socket. */
async function playCase(port: number, fuzz: FuzzCase): Promise<CaseRun> {
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  const chunks: Buffer[] = [];
  let closed = false;
  let wake = (): void => {};
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    wake();
  });
  socket.on("close", () => {
    closed = true;
    wake();
  });
  // Resets and EPIPE after the proxy closed are part of the game; 'close' follows.
  socket.on("error", () => {});
  /** Resolves when `condition` holds (checked on every event) or after `ms`. */
  const until = async (condition: () => boolean, ms: number): Promise<void> => {
    if (condition()) return;
    await within(
      new Promise<void>((resolve) => {
        wake = () => {
          if (condition()) resolve();
        };
      }),
      ms,
    );
    wake = () => {};
  };
  const sent = fuzz.bytes.subarray(0, fuzz.stopAt);
  try {
    let connected = false;
    let connectError: string | undefined;
    socket.once("connect", () => {
      connected = true;
      wake();
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (!connected) connectError = err.code ?? err.message;
    });
    await until(() => connected || closed, ANSWER_MS);
    if (!connected) return { sent, received: Buffer.alloc(0), closedByProxy: false, connectError: connectError ?? "connect timed out" };
    if (fuzz.cuts.length > 0) socket.setNoDelay(true);
    const bounds = [0, ...fuzz.cuts, fuzz.stopAt];
    for (let i = 0; i + 1 < bounds.length && !closed; i++) {
      const pause = i === 0 ? 0 : fuzz.pausesMs[i - 1]!;
      if (pause > 0) await delay(pause);
      if (!closed) socket.write(sent.subarray(bounds[i], bounds[i + 1]));
    }
    if (fuzz.ending === "reset" || fuzz.ending === "destroy") {
      if (fuzz.lingerMs > 0) await delay(fuzz.lingerMs);
      if (fuzz.ending === "reset" && !closed) socket.resetAndDestroy();
      else socket.destroy();
      return { sent, received: Buffer.concat(chunks), closedByProxy: false };
    }
    if (fuzz.ending === "end") socket.end();
    const reading = readSent(sent);
    // The proxy must answer a whole request, a hopeless one, or a greeting without X'00'; anything else waits for more bytes.
    const answerDue = reading.request !== undefined || reading.hopeless === true || reading.greeting?.offersNoAuth === false;
    const payload = reading.request === undefined ? 0 : sent.length - reading.request.end;
    const settled = (): boolean => {
      if (closed) return true;
      const judged = judgeReply(sent, Buffer.concat(chunks));
      if (judged.problem !== undefined) return true;
      // After a success, wait for the echo of the whole payload; then our FIN ends it.
      // A forwarded absolute-form request comes back rewritten: its first bytes are enough.
      if (reading.request?.http?.form === "absolute") return judged.success;
      const header = reading.protocol === "socks5" ? 12 : reading.protocol === "http" ? HTTP_ESTABLISHED.length : 8;
      return judged.success && chunks.reduce((n, c) => n + c.length, 0) >= header + payload;
    };
    await until(settled, answerDue ? ANSWER_MS : IDLE_MS);
    const closedByProxy = closed;
    if (!closed) {
      socket.end();
      await until(() => closed, CLOSE_MS);
    }
    return { sent, received: Buffer.concat(chunks), closedByProxy };
  } finally {
    socket.destroy();
  }
}

interface Problem {
  index: number;
  label: string;
  problem: string;
  sent: Buffer;
  received: Buffer;
}

/** Counts over the whole run, and the first problems in detail. */
class Tally {
  cases = 0;
  connectErrors = 0;
  successes = 0;
  /** Whole requests that carried an IP address (declared, or a name that is one). */
  addressRequests = 0;
  /** ... of which the proxy answered (with a refusal: anything else is a problem). */
  addressAnswered = 0;
  /** Whole requests the client waited on (or half-closed after) that got no reply before the proxy closed or ANSWER_MS passed. */
  unanswered = 0;
  readonly bases = new Map<string, number>();
  readonly tags = new Map<string, number>();
  readonly addressSuccesses: Problem[] = [];
  readonly protocolProblems: Problem[] = [];
  addressSuccessCount = 0;
  protocolProblemCount = 0;
  readonly firstConnectErrors: string[] = [];
  readonly firstUnanswered: Problem[] = [];

  record(fuzz: FuzzCase, run: CaseRun): void {
    this.cases++;
    const [base = "", ...tags] = fuzz.label.split("+");
    this.bases.set(base, (this.bases.get(base) ?? 0) + 1);
    for (const tag of new Set(tags)) this.tags.set(tag, (this.tags.get(tag) ?? 0) + 1);
    if (run.connectError !== undefined) {
      this.connectErrors++;
      if (this.firstConnectErrors.length < PROBLEMS_KEPT) this.firstConnectErrors.push(`case ${fuzz.index}: ${run.connectError}`);
      return;
    }
    const reading = readSent(run.sent);
    const judged = judgeReply(run.sent, run.received);
    if (judged.success) this.successes++;
    if (carriesAddress(reading.request)) {
      this.addressRequests++;
      if (judged.answered) this.addressAnswered++;
    }
    if (reading.request !== undefined && !judged.answered && (fuzz.ending === "wait" || fuzz.ending === "end")) {
      this.unanswered++;
      if (this.firstUnanswered.length < PROBLEMS_KEPT) {
        this.firstUnanswered.push({ index: fuzz.index, label: fuzz.label, problem: run.closedByProxy ? "closed without a reply" : `no reply within ${ANSWER_MS} ms`, sent: run.sent, received: run.received });
      }
    }
    if (judged.problem === undefined) return;
    const problem = { index: fuzz.index, label: fuzz.label, problem: judged.problem, sent: run.sent, received: run.received };
    if (judged.success && carriesAddress(reading.request)) {
      this.addressSuccessCount++;
      if (this.addressSuccesses.length < PROBLEMS_KEPT) this.addressSuccesses.push(problem);
    } else {
      this.protocolProblemCount++;
      if (this.protocolProblems.length < PROBLEMS_KEPT) this.protocolProblems.push(problem);
    }
  }

  mix(): string {
    const list = (map: Map<string, number>): string =>
      [...map.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([name, n]) => `${name} ${n}`)
        .join(", ");
    return `starting messages: ${list(this.bases)}\nchanges and endings: ${list(this.tags)}`;
  }
}

function hexHead(bytes: Buffer, max = 96): string {
  return bytes.length <= max ? bytes.toString("hex") : `${bytes.subarray(0, max).toString("hex")}... (${bytes.length} bytes)`;
}

function describeProblems(problems: Problem[], total: number): string {
  const lines = problems.map(
    (p) =>
      `case ${p.index} (${p.label}): ${p.problem}\n  sent ${hexHead(p.sent)}\n  received ${hexHead(p.received)}\n  replay: SAFETUNNEL_FUZZ_SEED=${SEED} SAFETUNNEL_FUZZ_CASE=${p.index}`,
  );
  return `${total} case(s), the first ${problems.length}:\n${lines.join("\n")}`;
}

/** The CLI's open descriptors (Linux only). */
function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** SOCKS5 CONNECT by name to the echo target; resolves with what came back after the reply. */
async function echoByName(proxyPort: number, echoPort: number, payload: Buffer): Promise<{ reply: Buffer; echoed: Buffer }> {
  const client = await socks5Open(proxyPort, socks5Request("localhost", echoPort), { allowHalfOpen: true, timeoutMs: 10_000 });
  try {
    const reply = await client.read(10, "the CONNECT reply");
    client.write(payload);
    client.end();
    return { reply, echoed: await client.readToEnd("the echo of the payload") };
  } finally {
    client.destroy();
  }
}

describe(`safetunnel -D under ${ONLY_CASE === undefined ? CASES : 1} fuzzed SOCKS connections (seed ${SEED})`, () => {
  let home: Home | undefined;
  let sshd: Sshd | undefined;
  let echo: EchoTarget | undefined;
  let tunnel: SocksTunnel;
  const tally = new Tally();
  const linux = process.platform === "linux";
  let fdsBefore = 0;
  /** The CLI's stderr up to the first fuzz case, and up to the last. */
  let stderrBefore = "";
  let stderrDuring = "";
  let fuzzSeconds = 0;

  before(
    async () => {
      console.log(`socks fuzz: seed ${SEED} (replay with SAFETUNNEL_FUZZ_SEED=${SEED}), ${ONLY_CASE === undefined ? `${CASES} cases` : `case ${ONLY_CASE} only`}, ${CONCURRENCY} at a time`);
      echo = await startEchoTarget();
      ({ home, sshd } = await startSshdWithHome({ extraConfig: [`PermitOpen localhost:${echo.port} 127.0.0.1:${echo.port} [::1]:${echo.port}`] }));
      tunnel = await startSocksTunnel(sshd, home);
      // Warm up (the SSH connection, the first channel) before counting descriptors.
      const warm = await echoByName(tunnel.port, echo.port, Buffer.from("warm-up"));
      assert.equal(warm.echoed.toString(), "warm-up", tunnel.cli.stderr());
      await delay(200);
      if (linux) fdsBefore = openDescriptors(tunnel.cli.pid);
      stderrBefore = tunnel.cli.stderr();

      const started = Date.now();
      const indices = ONLY_CASE === undefined ? undefined : [ONLY_CASE];
      const total = indices?.length ?? CASES;
      let next = 0;
      let reported = 0;
      const worker = async (): Promise<void> => {
        while (next < total) {
          const index = indices?.[next] ?? next;
          next++;
          const fuzz = fuzzCase(SEED, index, echo!.port);
          tally.record(fuzz, await playCase(tunnel.port, fuzz));
          if (tally.cases - reported >= total / 10 && total >= 10_000) {
            reported = tally.cases;
            console.log(`socks fuzz: ${tally.cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, total) }, worker));
      fuzzSeconds = (Date.now() - started) / 1000;
      stderrDuring = tunnel.cli.stderr().slice(stderrBefore.length);
      console.log(`socks fuzz: ${tally.cases} cases in ${fuzzSeconds.toFixed(1)} s (${Math.round(tally.cases / fuzzSeconds)}/s), seed ${SEED}`);
      console.log(tally.mix());
      console.log(
        `socks fuzz: ${tally.successes} success replies, ${tally.addressRequests} whole IP-address requests (${tally.addressAnswered} answered, all refusals unless reported below), ` +
          `${tally.unanswered} whole requests unanswered within ${ANSWER_MS} ms, ${tally.connectErrors} connect errors, ${tally.protocolProblemCount} malformed answers`,
      );
      if (indices !== undefined) {
        const fuzz = fuzzCase(SEED, indices[0]!, echo.port);
        console.log(`case ${fuzz.index} (${fuzz.label}): sends ${fuzz.bytes.subarray(0, fuzz.stopAt).toString("hex")} in pieces at ${fuzz.cuts.join(",") || "-"}, then ${fuzz.ending}`);
      }
    },
    { timeout: 120_000 + CASES * 5 },
  );

  after(async () => {
    await tunnel?.cli.stop();
    await sshd?.stop();
    await echo?.stop();
    await home?.cleanup();
  });

  test("never answers success to a request that carries an IP address", () => {
    assert.equal(tally.addressSuccessCount, 0, describeProblems(tally.addressSuccesses, tally.addressSuccessCount));
    if (ONLY_CASE === undefined) assert.ok(tally.addressAnswered > 0, "no IP-address request was ever answered: the check above saw nothing");
  });

  test("answers every fuzzed connection with well-formed SOCKS replies only", () => {
    assert.equal(tally.connectErrors, 0, `connections to the proxy failed: ${tally.firstConnectErrors.join("; ")}`);
    assert.equal(tally.protocolProblemCount, 0, describeProblems(tally.protocolProblems, tally.protocolProblemCount));
  });

  test(`answers every whole request the client waits for within ${ANSWER_MS / 1000} s`, () => {
    assert.equal(tally.unanswered, 0, describeProblems(tally.firstUnanswered, tally.unanswered));
  });

  test("is still running afterwards and serves a SOCKS5 CONNECT by name, echoing bytes exactly", async () => {
    assert.equal(await within(tunnel.cli.exited, 0), undefined, `safetunnel exited during the fuzz: ${tunnel.cli.stderr().slice(-4000)}`);
    const payload = deterministicBytes(100_000, SEED);
    const { reply, echoed } = await echoByName(tunnel.port, echo!.port, payload);
    assert.equal(reply.toString("hex"), "05000001000000000000");
    assert.ok(echoed.equals(payload), `echoed ${echoed.length} of ${payload.length} bytes, not the same`);
  });

  test("holds no more descriptors after the fuzz than before it", async (t) => {
    if (!linux) {
      t.skip("counts /proc/<pid>/fd, which only Linux has");
      return;
    }
    // Every fuzz socket is destroyed on our side; the proxy closes its ends as the FINs and resets arrive.
    let now = openDescriptors(tunnel.cli.pid);
    for (let i = 0; i < 150 && now > fdsBefore + FD_SLACK; i++) {
      await delay(100);
      now = openDescriptors(tunnel.cli.pid);
    }
    console.log(`socks fuzz: safetunnel holds ${now} descriptors, ${fdsBefore} before the fuzz`);
    assert.ok(now <= fdsBefore + FD_SLACK, `safetunnel holds ${now} descriptors, ${fdsBefore} before the fuzz (slack ${FD_SLACK})`);
  });

  test("stops on SIGTERM with exit status 0 and its summary line", async () => {
    const status = await tunnel.cli.stop();
    assert.deepEqual(status, { code: 0, signal: null }, tunnel.cli.stderr().slice(-4000));
    const summary = /^Stopped by SIGTERM: (\d+) connections?, .* up, .* down, (\d+) refused \(IP address\), (\d+) failed\.$/m.exec(tunnel.cli.stderr());
    assert.ok(summary !== null, `no summary line: ${tunnel.cli.stderr().slice(-2000)}`);
    if (ONLY_CASE === undefined) assert.ok(Number(summary[2]) > 0, `the summary counts no refusal: ${summary[0]}`);
  });

  test("writes no stack trace or internal error", () => {
    assertNoCrash(tunnel.cli.stderr());
  });

  test("folds its refusal and dropped-client lines to one per client and kind per 10 s", () => {
    // forward/refusal-log.ts keys a line on the program (or, when /proc did not
    // name it in time, the client address) and on the kind: dropped, refused SOCKS4, refused SOCKS5.
    const windows = Math.ceil(fuzzSeconds / 10) + 1;
    const perKey = new Map<string, number>();
    for (const line of stderrDuring.split("\n")) {
      const refused = /^Warning: Refused SOCKS(\d) CONNECT to \S+ from (\S+):\d+(?: \(([^)]+)\))?:/.exec(line);
      const dropped = / dropped client (\S+):\d+(?: \(([^)]+)\))?: /.exec(line);
      const key = refused !== null ? `${refused[3] ?? refused[2]} refused SOCKS${refused[1]}` : dropped !== null ? `${dropped[2] ?? dropped[1]} dropped` : undefined;
      if (key !== undefined) perKey.set(key, (perKey.get(key) ?? 0) + 1);
    }
    const over = [...perKey.entries()].filter(([, n]) => n > windows);
    assert.deepEqual(over, [], `more than ${windows} lines for one key in ${fuzzSeconds.toFixed(0)} s: ${JSON.stringify([...perKey.entries()])}`);
    if (ONLY_CASE === undefined) assert.ok(perKey.size > 0, "no refusal or dropped-client line at all: the fuzz did not reach the log");
  });

  test(`keeps its whole log under ${LOG_LIMIT_BYTES / 1024} kB`, () => {
    const size = Buffer.byteLength(tunnel.cli.stderr());
    assert.ok(size < LOG_LIMIT_BYTES, `stderr is ${size} bytes, ${Buffer.byteLength(stderrDuring)} of them written during the fuzz; its most common lines:\n${commonLines(stderrDuring)}`);
  });
});

/** The most frequent stderr lines, with digits folded, for a log that grew too much. */
function commonLines(stderr: string): string {
  const counts = new Map<string, number>();
  for (const line of stderr.split("\n")) {
    const shape = line.replace(/\d+/g, "N").slice(0, 200);
    counts.set(shape, (counts.get(shape) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([shape, n]) => `${n} x ${shape}`)
    .join("\n");
}
