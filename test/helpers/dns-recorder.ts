/**
 * A DNS server for tests that records every question and answers NXDOMAIN.
 * Meant to run inside a test's network namespace on 127.0.0.1:53 (the
 * namespace's resolv.conf points there), so every local lookup a browser makes
 * is seen and none leaves the namespace.
 *
 * Run as a script: `node --import tsx test/helpers/dns-recorder.ts [HOST [PORT]]`.
 * It prints `{"ready":"HOST:PORT"}` once bound, then one JSON line per question
 * (`{"name":"x.invalid","type":"A","from":"127.0.0.1:41000"}`), and stops on SIGTERM.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import process from "node:process";
import { fileURLToPath } from "node:url";
import dnsPacket from "dns-packet";

/** One question the server was asked. */
export interface RecordedQuery {
  name: string;
  type: string;
  from: string;
}

// RFC 1035 section 4.1.1: QR (set by dns-packet for responses), RD copied from the query, RA, RCODE 3 = NXDOMAIN.
const RECURSION_DESIRED = 0x0100;
const RECURSION_AVAILABLE = 0x0080;
const NXDOMAIN = 3;

/**
 * The NXDOMAIN answer to a query, or undefined when the bytes are not a DNS query.
 *
 * @example
 * const reply = nxdomainReply(dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name: "x.invalid" }] }));
 */
export function nxdomainReply(message: Buffer): { reply: Buffer; questions: { name: string; type: string }[] } | undefined {
  let query: dnsPacket.Packet;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return undefined;
  }
  if (query.type !== "query") return undefined;
  const questions = (query.questions ?? []).map((question) => ({ name: question.name, type: String(question.type) }));
  const reply = dnsPacket.encode({
    type: "response",
    id: query.id ?? 0,
    flags: ((query.flags ?? 0) & RECURSION_DESIRED) | RECURSION_AVAILABLE | NXDOMAIN,
    questions: query.questions ?? [],
  });
  return { reply, questions };
}

/**
 * Parse the recorder's stdout into the questions it printed (the ready line and
 * anything not JSON are skipped).
 *
 * @example
 * recordedQueries(recorder.stdout()).some((query) => query.name === canary);
 */
export function recordedQueries(stdout: string): RecordedQuery[] {
  const found: RecordedQuery[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line) as Partial<RecordedQuery>;
      if (typeof record.name === "string") found.push({ name: record.name, type: String(record.type), from: String(record.from) });
    } catch {
      // A line cut short while the process ended.
    }
  }
  return found;
}

function serve(host: string, port: number): void {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  socket.on("message", (message: Buffer, peer: RemoteInfo) => {
    const answered = nxdomainReply(message);
    if (answered === undefined) return;
    for (const question of answered.questions) {
      process.stdout.write(`${JSON.stringify({ name: question.name, type: question.type, from: `${peer.address}:${peer.port}` })}\n`);
    }
    socket.send(answered.reply, peer.port, peer.address);
  });
  socket.on("error", (err) => {
    process.stderr.write(`dns-recorder: ${err.message}\n`);
    process.exit(1);
  });
  socket.bind(port, host, () => process.stdout.write(`${JSON.stringify({ ready: `${host}:${port}` })}\n`));
  process.on("SIGTERM", () => socket.close(() => process.exit(0)));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  serve(process.argv[2] ?? "127.0.0.1", Number(process.argv[3] ?? 53));
}
