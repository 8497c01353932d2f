/**
 * The log side of refusing an IP-address request: one warning that says who
 * asked, why it leaked, and how to fix that app. Clients dropped for SOCKS
 * protocol errors (garbage, HTTP on the SOCKS port, a fuzzer) are logged here
 * too, folded the same way.
 *
 * A misconfigured browser is refused dozens of times a page, so a full line
 * is written at most once per program (or client address, where no program
 * can be named) and SOCKS version in a 10-second window; refusals in between
 * go to -v and are counted into the next full line. Each app needs its own
 * fix, and the fix differs between SOCKS4 and SOCKS5, hence the key. Dropped
 * clients are keyed on the program (or address) alone.
 */
import { formatAddress, hostPort } from "../address.ts";
import { refusalFix } from "../client-setup.ts";
import { within } from "../deadline.ts";
import { FOLD_WINDOW_MS, FoldWindow, foldedSince } from "../fold-window.ts";
import type { Logger } from "../log.ts";
import { requestName, type ProxyRequest } from "./proxy-request.ts";
import { classifyHost } from "../socks/policy.ts";
import type { SocksClient } from "../socks/server.ts";

/** At most one full refusal (or dropped-client) line per key in this window. */
export const REFUSAL_WINDOW_MS = FOLD_WINDOW_MS;

export interface RefusalLogOptions {
  log: Logger;
  /** Milliseconds now. @default Date.now */
  clock?: () => number;
  /**
   * Names the local program behind a client, for the line and its fix; asked
   * once per refusal, before the reply is sent (the client's socket, which the
   * lookup may need, is still open then). @default no names: lines key on the address
   */
  nameProgram?: (client: SocksClient) => Promise<string | undefined>;
  /**
   * How long a refusal waits for `nameProgram` before going on without a name.
   * The first /proc walk of a burst reads a link per open file of every
   * process: under load (this project's tests, two cores) it took over 200 ms.
   * The refused client waits that long at most, once per burst.
   * @default 1000
   */
  nameWaitMs?: number;
  /**
   * The full line for one refusal. A client on the SSH server's side of a
   * -R port (`farSideRefusalLine`) needs other words and another fix than one
   * on this machine. @default refusalLine
   */
  line?: (request: ProxyRequest, client: SocksClient, program: string | undefined) => string;
  /**
   * The line for a client dropped for a SOCKS protocol error, without its
   * closing full stop (the count of folded lines goes before it). The same
   * words serve the full line and, for folded ones, the -v line.
   * @default droppedClientLine with no label
   */
  droppedLine?: (client: SocksClient, reason: string, program: string | undefined) => string;
  /**
   * Keys remembered at most: with -g, many addresses may come and go. When
   * full, expired keys are forgotten, then all (at worst a line is repeated
   * early). @default 1024
   */
  maxKeys?: number;
}

/**
 * @example
 * const refusals = new RefusalLog({ log });
 * await refusals.report(request, client); // Warning: Refused SOCKS5 CONNECT to ...
 */
export class RefusalLog {
  readonly #log: Logger;
  readonly #nameProgram: ((client: SocksClient) => Promise<string | undefined>) | undefined;
  readonly #nameWaitMs: number;
  readonly #line: (request: ProxyRequest, client: SocksClient, program: string | undefined) => string;
  readonly #droppedLine: (client: SocksClient, reason: string, program: string | undefined) => string;
  readonly #window: FoldWindow;

  constructor(options: RefusalLogOptions) {
    this.#log = options.log;
    this.#nameProgram = options.nameProgram;
    this.#nameWaitMs = options.nameWaitMs ?? 1000;
    this.#line = options.line ?? refusalLine;
    this.#droppedLine = options.droppedLine ?? ((client, reason, program) => droppedClientLine("", client, reason, program));
    this.#window = new FoldWindow({ clock: options.clock ?? Date.now, maxKeys: options.maxKeys ?? 1024 });
  }

  /**
   * Logs the refusal (or folds it into the next line); resolves with the
   * program's name when it was found. `onNamed` hears who it was before the
   * line is written (the status line drawn under it shows the same name).
   */
  async report(request: ProxyRequest, client: SocksClient, onNamed?: (program: string | undefined) => void): Promise<string | undefined> {
    const program = await this.#program(client);
    onNamed?.(program);
    const folded = this.#window.admit(`${program ?? client.address}/${request.version}`);
    const target = hostPort(request.destination.host, request.destination.port);
    if (folded === undefined) {
      this.#log.debug(1, `Refused ${requestName(request)} to ${target} from ${client.address}:${client.port}${program ? ` (${program})` : ""} (IP address).`);
      return program;
    }
    this.#log.warn(this.#line(request, client, program) + foldedSince(folded, "refused"), {
      event: "refused",
      code: "SOCKS_IP_REFUSED",
      destination: target,
      client: `${client.address}:${client.port}`,
      program: program ?? null,
    });
    return program;
  }

  /**
   * Logs a client dropped for a SOCKS protocol error (or folds it into the
   * next such line of its program or address). Never rejects. The caller has
   * counted it already, and need not wait: the client's socket is still open
   * when this is called, which is when a program lookup can still find it.
   */
  async dropped(client: SocksClient, reason: string): Promise<void> {
    const program = await this.#program(client);
    const folded = this.#window.admit(`${program ?? client.address}/dropped`);
    const line = this.#droppedLine(client, reason, program);
    if (folded === undefined) {
      this.#log.debug(1, `${line}.`);
      return;
    }
    this.#log.info(`${line}${foldedSince(folded, "dropped")}.`, {
      event: "protocol-error",
      client: `${client.address}:${client.port}`,
      program: program ?? null,
    });
  }

  #program(client: SocksClient): Promise<string | undefined> {
    return this.#nameProgram === undefined ? Promise.resolve(undefined) : within(this.#nameProgram(client), this.#nameWaitMs);
  }
}

/**
 * The line for a client dropped for a SOCKS protocol error, without the
 * closing full stop. `farSide`: a client of a remote dynamic forward, which
 * came in through the SSH server (its program cannot be named).
 *
 * @example
 * droppedClientLine("-D 9001", { address: "127.0.0.1", port: 51234, localAddress: "127.0.0.1", localPort: 9001 }, "not a SOCKS request (first byte 0x00)", "curl")
 * // "-D 9001: dropped client 127.0.0.1:51234 (curl): not a SOCKS request (first byte 0x00)"
 */
export function droppedClientLine(label: string, client: SocksClient, reason: string, program: string | undefined, farSide = false): string {
  const who = `${client.address}:${client.port}${program ? ` (${program})` : ""}${farSide ? " on the far side" : ""}`;
  return `${label === "" ? "" : `${label}: `}dropped client ${who}: ${reason}`;
}

/**
 * The one line a refused client gets: who, what, why it matters, the fix for
 * the program that asked (or for the common ones when we cannot tell), and the
 * --allow-ip that would let this address through on purpose.
 *
 * @example
 * refusalLine(request, { address: "127.0.0.1", port: 51234, localAddress: "127.0.0.1", localPort: 9001 }, "curl")
 * // "Refused SOCKS5 CONNECT to 93.184.215.14:443 from 127.0.0.1:51234 (curl): it carries an IP address, ... Fix: use curl --socks5-hostname 127.0.0.1:9001 ..."
 */
export function refusalLine(request: ProxyRequest, client: SocksClient, program: string | undefined): string {
  const target = hostPort(request.destination.host, request.destination.port);
  const who = `${client.address}:${client.port}${program ? ` (${program})` : ""}`;
  const why =
    request.version === 4 && !request.socks4a
      ? "it used plain SOCKS4, which carries only IP addresses, so the name was resolved locally and your network saw the DNS lookup"
      : request.version === "http"
        ? "it names an IP address, so the app either resolved the name itself (and your network saw the DNS lookup) or was given an address"
        : "it carries an IP address, so the name was resolved locally and your network saw the DNS lookup";
  // The address the client itself used to reach us, so the fix can be pasted as is.
  const proxy = { host: client.localAddress.replace(/^::ffff:/, ""), port: client.localPort };
  const fix = refusalFix(program, request.version, proxy);
  // The canonical spelling, so the suggested flag parses (127.1, 0x7f.1 and fe80::1%eth0 would not).
  const address = classifyHost(request.destination.host).address;
  const allow = address === undefined ? request.destination.host : formatAddress(address);
  return `Refused ${requestName(request)} to ${target} from ${who}: ${why}. Fix: ${fix}. To allow this address on purpose: --allow-ip ${allow}`;
}

/**
 * The line for a client of a remote dynamic forward (`-R [bind_address:]port`
 * alone): the app runs on the SSH server's side (or beyond it, with the
 * server's GatewayPorts), came in through that port, and resolved the name
 * there. Its program cannot be named (there is no /proc of the server to
 * read), so the fix is the general one: send names, as `curl
 * --socks5-hostname` or `socks5h://` do, to the proxy address on the server.
 *
 * @example
 * farSideRefusalLine(request, { address: "127.0.0.1", port: 51234, localAddress: "localhost", localPort: 1080 }, "-R 1080")
 * // "Refused SOCKS5 CONNECT to 93.184.215.14:443 from 127.0.0.1:51234 on the far side (through -R 1080 on the SSH server): ... Fix: make that app send names, e.g. curl --socks5-hostname localhost:1080 ..."
 */
export function farSideRefusalLine(request: ProxyRequest, client: SocksClient, label: string): string {
  const target = hostPort(request.destination.host, request.destination.port);
  const why =
    request.version === 4 && !request.socks4a
      ? "it used plain SOCKS4, which carries only IP addresses, so the app resolved the name itself, over there, and that network saw the DNS lookup"
      : "it carries an IP address, so the app resolved the name itself, over there, and that network saw the DNS lookup";
  // An app on the server reaches a wildcard or default bind as localhost.
  const wildcard = ["", "*", "localhost", "0.0.0.0", "::"].includes(client.localAddress);
  const proxy = hostPort(wildcard ? "localhost" : client.localAddress, client.localPort);
  const fix =
    request.version === 4 && !request.socks4a
      ? `make that app use SOCKS5 (or SOCKS4a) with names, e.g. curl --socks5-hostname ${proxy} or -x socks5h://${proxy}`
      : `make that app send names, e.g. curl --socks5-hostname ${proxy} or -x socks5h://${proxy}`;
  const address = classifyHost(request.destination.host).address;
  const allow = address === undefined ? request.destination.host : formatAddress(address);
  return `Refused ${requestName(request)} to ${target} from ${client.address}:${client.port} on the far side (through ${label} on the SSH server): ${why}. Fix: ${fix}. To allow this address on purpose: --allow-ip ${allow}`;
}
