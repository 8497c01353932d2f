/**
 * The I/O edge of capture analysis: a capture file (`--pcap FILE`) or a byte
 * stream (tcpdump's stdout with `-w -`) through the pcap reader and the DNS
 * decoder, chunk by chunk: reading holds one record at a time, and what is
 * kept of the observations is the caller's choice (`keep`, ObservationStore).
 */
import { open, type FileHandle } from "node:fs/promises";
import { describeError, errnoCode, TunnelError } from "../errors.ts";
import { DnsFrameDecoder, type DnsFrameCounts, type DnsFrameOptions, type DnsObservation } from "./dns-frames.ts";
import { CaptureReader, type CaptureFormat } from "./pcap.ts";

export interface CaptureAnalysis {
  format: CaptureFormat;
  /** Every DNS, mDNS, LLMNR and DoT message found, in capture order (none when `keep` was false). */
  observations: DnsObservation[];
  /** Packets read, and how many were DNS, malformed DNS (skipped) or other traffic. */
  counts: DnsFrameCounts;
}

/**
 * Reads a pcap or pcapng file. Throws TunnelError BAD_CAPTURE (exit code 2)
 * when it cannot be opened, is not a capture, or is cut off or corrupt.
 *
 * @example
 * const { observations, counts } = await readCaptureFile("dns.pcapng");
 */
export async function readCaptureFile(path: string, options: CaptureStreamOptions = {}): Promise<CaptureAnalysis> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    return await readCaptureStream(chunksOf(handle), options);
  } catch (err) {
    if (err instanceof TunnelError) throw new TunnelError(err.code, `${path}: ${err.message}`, { exitCode: err.exitCode });
    const code = errnoCode(err);
    const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : describeError(err);
    throw new TunnelError("BAD_CAPTURE", `Cannot read the capture ${path}: ${reason}`, { exitCode: 2, cause: err });
  } finally {
    await handle?.close();
  }
}

const READ_SIZE = 64 * 1024;

/** The file in chunks; each chunk is a new array, since the reader may keep it until its record is whole. */
async function* chunksOf(handle: FileHandle): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buffer = new Uint8Array(READ_SIZE);
    const { bytesRead } = await handle.read(buffer, 0, READ_SIZE, null);
    if (bytesRead === 0) return;
    yield buffer.subarray(0, bytesRead);
  }
}

export interface CaptureStreamOptions extends DnsFrameOptions {
  /** Called as each observation is decoded, before the stream ends (for `--watch`). */
  onObservation?: (observation: DnsObservation) => void;
  /**
   * Keep the observations for the result; false leaves them to onObservation
   * (a live capture that keeps its own). @default true
   */
  keep?: boolean;
  /**
   * Accept a capture cut off inside its last record, as one still being
   * written is: what came before it counts. @default false
   */
  allowCutOff?: boolean;
}

/**
 * Reads a capture from any stream of byte chunks until it ends, calling
 * `options.onObservation` as each DNS message is decoded.
 *
 * @example
 * const analysis = await readCaptureStream(tcpdump.stdout, { onObservation: (seen) => report(seen) });
 */
export async function readCaptureStream(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: CaptureStreamOptions = {}): Promise<CaptureAnalysis> {
  const onObservation = options.onObservation ?? (() => {});
  const reader = new CaptureReader();
  const decoder = new DnsFrameDecoder(options);
  const observations: DnsObservation[] = [];
  for await (const chunk of chunks) {
    for (const packet of reader.push(chunk)) {
      for (const observation of decoder.decode(packet)) {
        if (options.keep !== false) observations.push(observation);
        onObservation(observation);
      }
    }
  }
  const format = reader.format;
  try {
    reader.end();
  } catch (err) {
    // Only the last record can be cut off once every chunk has been read.
    if (!(options.allowCutOff === true && format !== undefined)) throw err;
  }
  return { format: format!, observations, counts: decoder.counts };
}

/**
 * Observations kept for a report, at most, besides those `mustKeep` picks: a
 * live capture with --watch can run all day and a --pcap file can be large,
 * and the report lists names, not every message.
 */
export const MAX_KEPT = 20_000;

/**
 * A bounded list of observations: the first `max`, and every one `mustKeep`
 * picks (the lookups of a canary, which decide the verdict); the rest are
 * counted.
 *
 * @example
 * const store = new ObservationStore((seen) => seen.names.some(isCanary));
 * await readCaptureFile(path, { keep: false, onObservation: (seen) => store.add(seen) });
 * resolverFindings(store.observations, canaries);
 */
export class ObservationStore {
  readonly observations: DnsObservation[] = [];
  #dropped = 0;
  readonly #mustKeep: (observation: DnsObservation) => boolean;
  readonly #max: number;

  constructor(mustKeep: (observation: DnsObservation) => boolean = () => false, max = MAX_KEPT) {
    this.#mustKeep = mustKeep;
    this.#max = max;
  }

  add(observation: DnsObservation): void {
    if (this.observations.length < this.#max || this.#mustKeep(observation)) this.observations.push(observation);
    else this.#dropped++;
  }

  /** Observations seen but not kept. */
  get dropped(): number {
    return this.#dropped;
  }
}
