/**
 * Reproducible SOCKS fuzz cases and an oracle that judges what a proxy sent
 * back, both pure. A case is a function of (seed, index) alone, so any one
 * case can be rebuilt from the seed a run printed. The oracle reads the bytes
 * a client sent with a parser of its own (RFC 1928 for SOCKS5, the SOCKS4
 * protocol note and its 4a extension), never the project's codec: a bug
 * shared by the two would otherwise pass unseen.
 */
import { Buffer } from "node:buffer";
import { isIPv6 } from "node:net";

// ------------------------------------------------------------ randomness

/** A 32-bit hash of two words (splitmix32's finaliser), to give each case its own stream. */
function mix32(a: number, b: number): number {
  let z = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * mulberry32: small, fast, seedable, good enough to pick fuzz inputs. Not for cryptography.
 *
 * @example
 * const random = new Prng(42);
 * random.int(10); // 0..9, the same every run
 */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** 0 <= n < max. */
  int(max: number): number {
    return max <= 1 ? 0 : this.next() % max;
  }

  /** lo <= n <= hi. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** One item, each as likely as its weight. */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    const total = items.reduce((sum, [, weight]) => sum + weight, 0);
    let at = this.int(total);
    for (const [item, weight] of items) {
      if (at < weight) return item;
      at -= weight;
    }
    return items[items.length - 1]![0];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const word = this.next();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

// ------------------------------------------------------------ cases

/** What the client does once it has written `bytes.subarray(0, stopAt)`. */
export type Ending =
  /** Keep the socket open and wait for the proxy (the usual client). */
  | "wait"
  /** Half-close (FIN) and keep reading. */
  | "end"
  /** Reset (RST) the connection. */
  | "reset"
  /** Close at once without reading further (FIN, then gone). */
  | "destroy";

export interface FuzzCase {
  index: number;
  /** The starting message and the changes made to it, e.g. "socks5-name+flip+trailing". */
  label: string;
  /** Everything the case would send; only `bytes.subarray(0, stopAt)` goes out. */
  bytes: Buffer;
  /** Chunk boundaries, ascending, strictly inside (0, stopAt). */
  cuts: number[];
  /** Milliseconds to pause before each chunk after the first (one per cut). */
  pausesMs: number[];
  stopAt: number;
  ending: Ending;
  /** Milliseconds between the last write and a reset or destroy. */
  lingerMs: number;
}

/** Where the fields a mutation likes to aim at sit in a built message. */
interface Built {
  base: string;
  bytes: Buffer;
  /** Offsets of version bytes, command bytes, count or length bytes, address-type bytes, ports. */
  versions: number[];
  commands: number[];
  lengths: number[];
  atyps: number[];
  ports: number[];
}

const NAME_TARGETS = ["localhost", "LOCALHOST", "localhost.", "a.invalid", "x.example", "localhost:80", "local host", "lo\u0000calhost"];
/** Names that any resolver reads as addresses, which must count as IP literals. */
const ADDRESS_NAMES = ["127.0.0.1", "::1", "[::1]", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "::ffff:127.0.0.1", "[::ffff:7f00:1]", "0:0:0:0:0:0:0:1", "fe80::1%lo", "127.0.0.1."];
const GREETINGS: readonly (readonly [number[], number])[] = [
  [[0x05, 0x01, 0x00], 6],
  [[0x05, 0x02, 0x00, 0x02], 2],
  [[0x05, 0x02, 0x02, 0x00], 1],
  [[0x05, 0x03, 0x01, 0x02, 0x00], 1],
  [[0x05, 0x01, 0x02], 1],
  [[0x05, 0x00], 1],
];

function port16(port: number): number[] {
  return [(port >> 8) & 0xff, port & 0xff];
}

function socks5(greeting: number[], request: number[], atypAt: number, lengthAt: number[], base: string): Built {
  const g = greeting.length;
  return {
    base,
    bytes: Buffer.from([...greeting, ...request]),
    versions: [0, g],
    commands: [g + 1],
    lengths: [1, ...lengthAt.map((at) => g + at)],
    atyps: [g + atypAt],
    ports: [g + request.length - 2],
  };
}

/** One of the valid starting messages (or a foreign preamble), aimed at `echoPort` on loopback. */
function buildBase(random: Prng, echoPort: number): Built {
  const kind = random.weighted([
    ["socks5-name", 24],
    ["socks5-ipv4", 14],
    ["socks5-ipv6", 10],
    ["socks5-address-name", 6],
    ["socks4", 14],
    ["socks4a", 16],
    ["socks4a-address-name", 4],
    ["http", 4],
    ["tls", 4],
    ["random", 4],
  ] as const);
  const greeting = random.weighted(GREETINGS);
  const port = random.chance(0.9) ? echoPort : random.int(0x10000);
  switch (kind) {
    case "socks5-name":
    case "socks5-address-name": {
      const name = Buffer.from(kind === "socks5-name" ? (random.chance(0.8) ? "localhost" : random.pick(NAME_TARGETS)) : random.pick(ADDRESS_NAMES), "latin1");
      return socks5(greeting, [0x05, 0x01, 0x00, 0x03, name.length, ...name, ...port16(port)], 3, [4], kind);
    }
    case "socks5-ipv4":
      return socks5(greeting, [0x05, 0x01, 0x00, 0x01, ...(random.chance(0.8) ? [127, 0, 0, 1] : [...random.bytes(4)]), ...port16(port)], 3, [], kind);
    case "socks5-ipv6": {
      const address = random.chance(0.8) ? [...Buffer.alloc(15), 1] : [...random.bytes(16)];
      return socks5(greeting, [0x05, 0x01, 0x00, 0x04, ...address, ...port16(port)], 3, [], kind);
    }
    case "socks4": {
      const ip = random.weighted([
        [[127, 0, 0, 1], 6],
        [[0, 0, 0, 0], 1],
        [[...random.bytes(4)], 2],
      ] as const);
      const user = Buffer.from(random.chance(0.5) ? "" : "fuzz", "latin1");
      return { base: kind, bytes: Buffer.from([0x04, 0x01, ...port16(port), ...ip, ...user, 0]), versions: [0], commands: [1], lengths: [], atyps: [], ports: [2] };
    }
    case "socks4a":
    case "socks4a-address-name": {
      const user = Buffer.from(random.chance(0.5) ? "" : "fuzz", "latin1");
      const name = Buffer.from(kind === "socks4a" ? (random.chance(0.8) ? "localhost" : random.pick(NAME_TARGETS)) : random.pick(ADDRESS_NAMES), "latin1");
      const x = random.range(1, 255);
      return { base: kind, bytes: Buffer.from([0x04, 0x01, ...port16(port), 0, 0, 0, x, ...user, 0, ...name, 0]), versions: [0], commands: [1], lengths: [], atyps: [], ports: [2] };
    }
    case "http": {
      const line = random.pick([
        `CONNECT localhost:${echoPort} HTTP/1.1\r\nHost: localhost:${echoPort}\r\n\r\n`,
        `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\n\r\n`,
        `GET http://localhost:${echoPort}/ HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fuzz\r\n\r\n`,
        "GET / HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      ]);
      return { base: kind, bytes: Buffer.from(line, "latin1"), versions: [0], commands: [], lengths: [], atyps: [], ports: [] };
    }
    case "tls":
      return { base: kind, bytes: clientHello(random), versions: [0], commands: [], lengths: [3, 4], atyps: [], ports: [] };
    case "random":
      return { base: kind, bytes: random.bytes(random.range(1, 600)), versions: [0], commands: [], lengths: [], atyps: [], ports: [] };
  }
}

/** A TLS 1.2-style ClientHello record with an SNI of "localhost" (RFC 8446 section 4.1.2, RFC 6066 section 3). */
function clientHello(random: Prng): Buffer {
  const host = Buffer.from("localhost", "latin1");
  const sni = Buffer.concat([Buffer.from([0x00, 0x00, 0x00, host.length + 5, 0x00, host.length + 3, 0x00, 0x00, host.length]), host]);
  const suites = Buffer.from([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    random.bytes(32),
    Buffer.from([0x00]),
    suites,
    Buffer.from([0x01, 0x00]),
    Buffer.from([(sni.length >> 8) & 0xff, sni.length & 0xff]),
    sni,
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01, 0x00, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (handshake.length >> 8) & 0xff, handshake.length & 0xff]), handshake]);
}

/** Replace bytes.subarray(at, at + remove) with `insert`. */
function splice(bytes: Buffer, at: number, remove: number, insert: Uint8Array = Buffer.alloc(0)): Buffer {
  return Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at + remove)]);
}

/** Aimed mutations first (they need the fields where the builder put them), then blind ones. */
function mutate(random: Prng, built: Built, tags: string[]): Buffer {
  let bytes: Buffer = Buffer.from(built.bytes);
  const set = (offsets: number[], values: readonly number[], tag: string): void => {
    if (offsets.length === 0) return;
    bytes[random.pick(offsets)] = random.pick(values);
    tags.push(tag);
  };
  const aimed = random.int(3);
  for (let i = 0; i < aimed; i++) {
    switch (random.int(6)) {
      case 0: set(built.versions, [0x00, 0x01, 0x03, 0x04, 0x05, 0x06, 0x47, 0x16, 0xff], "version"); break;
      case 1: set(built.commands, [0x00, 0x02, 0x03, 0x04, 0x80, 0xff], "command"); break;
      case 2: set(built.lengths, [0x00, 0x01, 0x02, 0x7f, 0xfe, 0xff, random.int(256)], "length"); break;
      case 3: set(built.atyps, [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0xff], "atyp"); break;
      case 4: set(built.ports, [0x00, 0xff, random.int(256)], "port"); break;
      case 5:
        // Huge counts: a field that says 255 or a SOCKS4 field with no NUL in sight.
        if (built.lengths.length > 0) set(built.lengths, [0xff], "huge-count");
        else if (built.base.startsWith("socks4")) {
          bytes = splice(bytes, 8, 0, Buffer.alloc(random.range(250, 600), 0x41));
          tags.push("long-field");
        }
        break;
    }
  }
  const blind = aimed === 0 ? random.range(1, 3) : random.int(3);
  for (let i = 0; i < blind && bytes.length > 0; i++) {
    const at = random.int(bytes.length);
    switch (random.int(6)) {
      case 0:
        bytes[at] = bytes[at]! ^ (1 << random.int(8));
        tags.push("flip");
        break;
      case 1:
        bytes[at] = random.int(256);
        tags.push("byte");
        break;
      case 2:
        bytes = splice(bytes, at, 0, random.bytes(random.range(1, 8)));
        tags.push("insert");
        break;
      case 3:
        bytes = splice(bytes, at, random.range(1, 8));
        tags.push("delete");
        break;
      case 4: {
        const end = Math.min(bytes.length, at + random.range(1, 16));
        bytes = splice(bytes, end, 0, Buffer.from(bytes.subarray(at, end)));
        tags.push("duplicate");
        break;
      }
      case 5:
        bytes = bytes.subarray(0, at);
        tags.push("truncate");
        break;
    }
  }
  return bytes;
}

/**
 * Case `index` of the run seeded with `seed`: a valid greeting and request
 * (or an HTTP, TLS or random preamble), mutated in 75% of cases, maybe
 * followed by more bytes, written in one piece or in chunks with pauses, then
 * waited on, half-closed, reset or closed, possibly before the end.
 *
 * @example
 * const fuzz = fuzzCase(1234, 0, echo.port);
 * fuzz.label; // "socks5-name+flip"
 */
export function fuzzCase(seed: number, index: number, echoPort: number): FuzzCase {
  const random = new Prng(mix32(seed, index));
  const built = buildBase(random, echoPort);
  const tags = [built.base];
  let bytes: Buffer = random.chance(0.75) ? mutate(random, built, tags) : built.bytes;
  if (random.chance(0.15)) {
    // Bytes after the request: what a client pipelines (a TLS hello, an HTTP request) or a flood.
    const n = random.chance(0.2) ? random.range(8 * 1024, 64 * 1024) : random.range(1, 512);
    bytes = Buffer.concat([bytes, random.bytes(n)]);
    tags.push(n > 512 ? "flood" : "trailing");
  }
  const ending = random.weighted([
    ["wait", 50],
    ["end", 22],
    ["reset", 14],
    ["destroy", 14],
  ] as const);
  let stopAt = bytes.length;
  if (ending !== "wait" && bytes.length > 1 && random.chance(0.4)) {
    stopAt = random.range(1, bytes.length - 1);
    tags.push(`${ending}-early`);
  } else if (ending !== "wait") {
    tags.push(ending);
  }
  const cuts: number[] = [];
  const pausesMs: number[] = [];
  const split = random.weighted([
    ["whole", 60],
    ["chunks", 30],
    ["bytewise", 10],
  ] as const);
  if (split === "chunks" && stopAt > 1) {
    const positions = new Set<number>();
    const n = random.range(1, 4);
    for (let i = 0; i < n; i++) positions.add(random.range(1, stopAt - 1));
    for (const at of [...positions].sort((a, b) => a - b)) {
      cuts.push(at);
      pausesMs.push(random.chance(0.3) ? 0 : random.range(1, 40));
    }
    tags.push("paused");
  } else if (split === "bytewise" && stopAt > 1) {
    for (let at = 1; at < Math.min(stopAt, 24); at++) {
      cuts.push(at);
      pausesMs.push(random.int(3));
    }
    tags.push("bytewise");
  }
  return { index, label: tags.join("+"), bytes, cuts, pausesMs, stopAt, ending, lingerMs: random.int(15) };
}

// ------------------------------------------------------------ the oracle's own parser

export interface SentRequest {
  version: 4 | 5 | "http";
  /** SOCKS: CMD/CD. HTTP: 1 for a CONNECT or an absolute-form request (a request to go out), 0 for anything else. */
  command: number;
  /** HTTP only: the request's method and form (origin form is a page of the proxy's own). */
  http?: { method: string; form: "connect" | "absolute" | "origin" };
  kind: "ipv4" | "ipv6" | "name";
  host: string;
  port: number;
  /** Offset just past the request in the bytes sent: what follows is the client's payload. */
  end: number;
}

/** What the bytes a client sent amount to, read as a SOCKS client stream. */
export interface SentReading {
  /** By the first byte: 5, 4, an upper-case letter (an HTTP request line), or anything else (nothing at all included). */
  protocol: "socks5" | "socks4" | "http" | "other";
  /**
   * SOCKS5 only: the greeting is whole; `offersNoAuth` says whether method
   * X'00' is in it (RFC 1928 section 3) and so which method choice may come.
   */
  greeting?: { offersNoAuth: boolean };
  /** The request, when it is whole (bounds of the protocol, not of any implementation). */
  request?: SentRequest;
  /**
   * The request is not whole but already cannot be served, so a failure reply
   * may come early: an unknown SOCKS5 address type or an empty name, or a
   * SOCKS4 USERID or 4a host name longer than 255 bytes (the protocol sets no
   * bound, but a server must: a NUL may never come).
   */
  hopeless?: boolean;
}

/**
 * Read the bytes as a SOCKS client stream. SOCKS5: VER NMETHODS METHODS, then
 * VER CMD RSV ATYP DST.ADDR DST.PORT. SOCKS4: VN CD DSTPORT DSTIP USERID NUL,
 * and for 4a (DSTIP 0.0.0.x, x != 0) HOST NUL after it.
 *
 * @example
 * readSent(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80])).request;
 * // { version: 5, command: 1, kind: "ipv4", host: "127.0.0.1", port: 80, end: 13 }
 */
export function readSent(b: Buffer): SentReading {
  if (b[0] === 5) {
    const count = b[1];
    if (count === undefined || b.length < 2 + count) return { protocol: "socks5" };
    const offersNoAuth = b.subarray(2, 2 + count).includes(0x00);
    const greeting = { offersNoAuth };
    if (!offersNoAuth) return { protocol: "socks5", greeting };
    const at = 2 + count;
    if (b.length < at + 4 || b[at] !== 5) return { protocol: "socks5", greeting };
    const command = b[at + 1]!;
    const atyp = b[at + 3]!;
    let kind: SentRequest["kind"];
    let host: string;
    let portAt: number;
    if (atyp === 1) {
      kind = "ipv4";
      portAt = at + 8;
      host = [...b.subarray(at + 4, portAt)].join(".");
    } else if (atyp === 4) {
      kind = "ipv6";
      portAt = at + 20;
      host = b.subarray(at + 4, portAt).toString("hex");
    } else if (atyp === 3 && b[at + 4] === 0) {
      return { protocol: "socks5", greeting, hopeless: true };
    } else if (atyp === 3 && b.length > at + 4) {
      kind = "name";
      portAt = at + 5 + b[at + 4]!;
      host = b.subarray(at + 5, portAt).toString("latin1");
    } else {
      return atyp === 3 ? { protocol: "socks5", greeting } : { protocol: "socks5", greeting, hopeless: true };
    }
    if (b.length < portAt + 2) return { protocol: "socks5", greeting };
    return { protocol: "socks5", greeting, request: { version: 5, command, kind, host, port: b.readUInt16BE(portAt), end: portAt + 2 } };
  }
  if (b[0] === 4) {
    if (b.length < 8) return { protocol: "socks4" };
    const userEnd = b.indexOf(0, 8);
    const userLength = (userEnd < 0 ? b.length : userEnd) - 8;
    if (userEnd < 0) return userLength > 255 ? { protocol: "socks4", hopeless: true } : { protocol: "socks4" };
    const base = { version: 4 as const, command: b[1]!, port: b.readUInt16BE(2) };
    const is4a = b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] !== 0;
    if (!is4a) return { protocol: "socks4", request: { ...base, kind: "ipv4", host: [...b.subarray(4, 8)].join("."), end: userEnd + 1 } };
    const hostEnd = b.indexOf(0, userEnd + 1);
    if (hostEnd < 0) return userLength > 255 || b.length > userEnd + 1 + 255 ? { protocol: "socks4", hopeless: true } : { protocol: "socks4" };
    return { protocol: "socks4", request: { ...base, kind: "name", host: b.subarray(userEnd + 1, hostEnd).toString("latin1"), end: hostEnd + 1 } };
  }
  if (b[0] !== undefined && b[0] >= 0x41 && b[0] <= 0x5a) return readSentHttp(b);
  return { protocol: "other" };
}

/** The longest request head a proxy must read before it may give up on it (16 KiB, as ours; RFC 9112 sets no bound). */
const HTTP_HEAD_BOUND = 16 * 1024;

/**
 * An HTTP proxy request (RFC 9112 section 3): the head ends at the first
 * empty line; the request line is METHOD SP TARGET SP HTTP/1.x; CONNECT's
 * target is host:port (RFC 9110 section 9.3.6), an absolute-form target
 * http://host[:port]/... A whole head whose request line is not one of these
 * is hopeless (a 400 may come); so is an unfinished head past the bound.
 */
function readSentHttp(b: Buffer): SentReading {
  const text = b.toString("latin1");
  const blank = /\r?\n\r?\n/.exec(text);
  if (blank === null) return b.length > HTTP_HEAD_BOUND ? { protocol: "http", hopeless: true } : { protocol: "http" };
  const end = blank.index + blank[0].length;
  const line = /^([^\r\n]*)/.exec(text)![1]!;
  const parts = line.split(" ");
  // A method is any token, case-sensitive (RFC 9110 sections 9.1 and 5.6.2): "GyT" is forwarded as it is.
  if (parts.length !== 3 || !/^HTTP\/1\.[01]$/.test(parts[2]!) || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(parts[0]!)) return { protocol: "http", hopeless: true };
  const [method, target] = parts as [string, string];
  if (method === "CONNECT") {
    const authority = /^(\[[^\]]*\]|[^:\[\]]+):([0-9]{1,5})$/.exec(target);
    if (authority === null) return { protocol: "http", hopeless: true };
    return { protocol: "http", request: httpRequest(method, "connect", authority[1]!, Number(authority[2]), end) };
  }
  const absolute = /^http:\/\/(\[[^\]]*\]|[^:/?#@\[\]]+)(?::([0-9]{1,5}))?(?:[/?#].*)?$/i.exec(target);
  if (absolute !== null) return { protocol: "http", request: httpRequest(method, "absolute", absolute[1]!, Number(absolute[2] ?? "80"), end) };
  return { protocol: "http", request: { version: "http", command: 0, http: { method, form: "origin" }, kind: "name", host: "", port: 0, end } };
}

function httpRequest(method: string, form: "connect" | "absolute", host: string, port: number, end: number): SentRequest {
  const kind = host.startsWith("[") ? "ipv6" : "name";
  return { version: "http", command: 1, http: { method, form }, kind, host: kind === "ipv6" ? host.slice(1, -1) : host, port, end };
}

/** One inet_aton(3) part: 0x hex, 0 octal, or decimal; NaN when it is none of those. */
function atonPart(text: string): number {
  if (/^0x[0-9a-f]+$/i.test(text)) return parseInt(text.slice(2), 16);
  if (/^0[0-7]*$/.test(text)) return parseInt(text, 8);
  if (/^[1-9][0-9]*$/.test(text)) return Number(text);
  return Number.NaN;
}

/** inet_aton(3)'s forms: a, a.b, a.b.c, a.b.c.d, the last part filling the remaining bytes. */
function isInetAtonForm(text: string): boolean {
  const parts = text.split(".");
  if (parts.length > 4) return false;
  const values = parts.map(atonPart);
  if (values.some((v) => !Number.isFinite(v))) return false;
  const last = values[values.length - 1]!;
  return values.slice(0, -1).every((v) => v <= 255) && last < 256 ** (5 - parts.length);
}

/**
 * Whether a SOCKS name field is really an address that a resolver on the far
 * end would use without asking DNS: IPv6 (bare, bracketed, with a zone) or
 * any inet_aton(3) form of IPv4.
 *
 * @example
 * nameIsAddress("0x7f.1"); // true
 * nameIsAddress("127.0.0.1."); // false: a trailing dot is not an inet_aton form
 */
export function nameIsAddress(name: string): boolean {
  const inner = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  const zone = inner.indexOf("%");
  if (isIPv6(zone < 0 ? inner : inner.slice(0, zone))) return true;
  return isInetAtonForm(inner);
}

/** The request is whole and names its destination by an address (declared, or hiding in the name field). */
export function carriesAddress(request: SentRequest | undefined): boolean {
  return request !== undefined && (request.kind !== "name" || nameIsAddress(request.host));
}

// ------------------------------------------------------------ judging a reply

export interface ReplyJudgement {
  /** The proxy said the request succeeded (SOCKS5 REP X'00', SOCKS4 CD 90). */
  success: boolean;
  /** The proxy answered the request (any reply to it, success or not). */
  answered: boolean;
  /** What is wrong with the bytes received, if anything. */
  problem?: string;
}

/**
 * Judge everything received on one connection against what was sent. The
 * received bytes must be (a prefix of) what a SOCKS server may say: for
 * SOCKS5 a method choice that matches the greeting (X'00' only if offered,
 * else X'FF' and nothing more), then one 10- or 22-byte reply (RFC 1928
 * section 6); for SOCKS4 one 8-byte reply with CD 90..93; for anything else,
 * nothing. Bytes after a reply only after a success, and then only the echo
 * of what the client sent after its request. A success needs a whole CONNECT
 * naming its destination by name.
 *
 * @example
 * judgeReply(Buffer.from([5, 1, 0]), Buffer.from([5, 0xff])); // { success: false, answered: false }
 */
export function judgeReply(sent: Buffer, received: Buffer): ReplyJudgement {
  const reading = readSent(sent);
  const fail = (problem: string, success = false, answered = false): ReplyJudgement => ({ success, answered, problem });
  if (received.length === 0) return { success: false, answered: false };
  let at = 0;
  let reply: { code: number; success: boolean } | undefined;
  if (reading.protocol === "socks5") {
    if (received[0] !== 5) return fail(`method choice with version 0x${received[0]!.toString(16)}`);
    if (received.length < 2) return { success: false, answered: false };
    const method = received[1]!;
    if (reading.greeting === undefined) return fail(`method choice 0x${method.toString(16)} before the greeting was whole`);
    if (method === 0xff) {
      if (reading.greeting.offersNoAuth) return fail("method choice X'FF' though the greeting offered X'00'");
      return received.length > 2 ? fail("bytes after a X'FF' method choice") : { success: false, answered: false };
    }
    if (method !== 0x00) return fail(`method choice 0x${method.toString(16)}, which nobody offered`);
    if (!reading.greeting.offersNoAuth) return fail("method choice X'00' though the greeting did not offer it");
    at = 2;
    if (received.length === at) return { success: false, answered: false };
    const header = received.subarray(at, at + 5);
    if (header[0] !== 5) return fail(`reply with version 0x${header[0]!.toString(16)}`);
    if (header.length >= 2 && header[1]! > 8) return fail(`reply with unassigned REP 0x${header[1]!.toString(16)}`);
    if (header.length >= 3 && header[2] !== 0) return fail("reply with a non-zero RSV byte");
    if (header.length >= 4 && header[3] !== 1 && header[3] !== 4 && header[3] !== 3) return fail(`reply with ATYP 0x${header[3]!.toString(16)}`);
    const length = header[3] === 4 ? 22 : header[3] === 3 && header.length >= 5 ? 7 + header[4]! : 10;
    if (received.length < at + 2) return { success: false, answered: false };
    reply = { code: received[at + 1]!, success: received[at + 1] === 0x00 };
    at += length;
  } else if (reading.protocol === "socks4") {
    if (received[0] !== 0) return fail(`SOCKS4 reply with VN 0x${received[0]!.toString(16)}`);
    if (received.length < 2) return { success: false, answered: false };
    const code = received[1]!;
    if (code < 0x5a || code > 0x5d) return fail(`SOCKS4 reply with CD 0x${code.toString(16)}`);
    reply = { code, success: code === 0x5a };
    at = 8;
  } else if (reading.protocol === "http") {
    return judgeHttpReply(reading, sent, received);
  } else {
    return fail(`${received.length} bytes sent back to a client that did not speak SOCKS`);
  }
  return judgeSocksReply(reading, sent, received, reply, at);
}

function judgeSocksReply(reading: SentReading, sent: Buffer, received: Buffer, reply: { code: number; success: boolean }, at: number): ReplyJudgement {
  const fail = (problem: string, success = false, answered = false): ReplyJudgement => ({ success, answered, problem });
  const request = reading.request;
  if (reply.success) {
    if (request === undefined) return fail("a success reply to an incomplete request", true, true);
    if (carriesAddress(request)) return fail(`a success reply to a request for the IP address ${request.host}`, true, true);
    if (request.command !== 0x01) return fail(`a success reply to command 0x${request.command.toString(16)}`, true, true);
  } else if (received.length > at) {
    return fail(`${received.length - at} bytes after failure reply 0x${reply.code.toString(16)}`, false, true);
  }
  if (request === undefined) {
    return reading.hopeless === true ? { success: false, answered: true } : fail(`reply 0x${reply.code.toString(16)} to an incomplete request`, false, true);
  }
  if (reply.success && received.length > at) {
    const echoed = received.subarray(at);
    const payload = sent.subarray(request.end);
    if (!payload.subarray(0, echoed.length).equals(echoed)) return fail("bytes after the success reply are not the echo of the client's payload", true, true);
  }
  return { success: reply.success, answered: true };
}

/** What an HTTP proxy says when a CONNECT's tunnel is open (RFC 9110 section 9.3.6). */
export const HTTP_ESTABLISHED = "HTTP/1.1 200 Connection established\r\n\r\n";

/**
 * The HTTP side: a tunnel's 200 only to a whole CONNECT by name, then only
 * the echo of the payload; a forwarded absolute-form request by name shows
 * as the echo target's copy of its rewritten head (origin-form line first);
 * anything else is one whole response of the proxy's own (a status line, a
 * Content-Length and no more bytes than it says), 200 only for a page (origin
 * form). A refusal may answer an unfinished head (a client that closed, or one
 * past the bound).
 */
function judgeHttpReply(reading: SentReading, sent: Buffer, received: Buffer): ReplyJudgement {
  const fail = (problem: string, success = false): ReplyJudgement => ({ success, answered: true, problem });
  const text = received.toString("latin1");
  const request = reading.request;
  if (text.length < HTTP_ESTABLISHED.length && HTTP_ESTABLISHED.startsWith(text)) return { success: false, answered: false };
  if (text.startsWith(HTTP_ESTABLISHED)) {
    if (request?.http?.form !== "connect") return fail("200 Connection established to something other than a whole CONNECT", true);
    if (carriesAddress(request)) return fail(`a success reply to a request for the IP address ${request.host}`, true);
    const echoed = received.subarray(HTTP_ESTABLISHED.length);
    if (!sent.subarray(request.end).subarray(0, echoed.length).equals(echoed)) return fail("bytes after 200 Connection established are not the echo of the client's payload", true);
    return { success: true, answered: true };
  }
  if (text.length < "HTTP/1.1 ".length && "HTTP/1.1 ".startsWith(text)) return { success: false, answered: false };
  if (text.startsWith("HTTP/1.1 ")) {
    const status = /^HTTP\/1\.1 ([1-5][0-9][0-9]) [^\r\n]*\r\n/.exec(text);
    if (status === null) return /^HTTP\/1\.1 [^\r\n]*$/.test(text) ? { success: false, answered: true } : fail("a malformed status line");
    const headEnd = text.indexOf("\r\n\r\n");
    if (headEnd < 0) return { success: false, answered: true };
    const length = /\r\nContent-Length: ([0-9]+)\r\n/.exec(text.slice(0, headEnd + 2));
    if (length === null) return fail(`a ${status[1]} response without Content-Length`);
    if (text.length - (headEnd + 4) > Number(length[1])) return fail(`bytes after a ${status[1]} response`);
    if (status[1] === "200" && request?.http?.form !== "origin") return fail("200 OK to a request that is not for a page of the proxy's own");
    return { success: false, answered: true };
  }
  if (request?.http?.form !== "absolute") return fail(`${received.length} bytes that are no HTTP response`);
  if (carriesAddress(request)) return fail(`a forwarded request for the IP address ${request.host}`, true);
  const line = `${request.http.method} /`;
  if (!(text.length < line.length ? line.startsWith(text) : text.startsWith(line))) return fail("the echo of a forwarded request does not start with its origin-form line", true);
  return { success: true, answered: true };
}
