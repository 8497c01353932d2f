/**
 * Channels a server opens that we never asked for are refused, and said so
 * in OpenSSH's words. ssh(1) refuses them with
 * SSH2_OPEN_ADMINISTRATIVELY_PROHIBITED and "open failed"
 * (clientloop.c client_input_channel_open) and logs, per kind:
 *
 * - x11 (clientloop.c client_request_x11, ForwardX11 off):
 *   "Warning: ssh server tried X11 forwarding." and
 *   "Warning: this is probably a break-in attempt by a malicious server."
 * - auth-agent@openssh.com, or agent-connect (client_request_agent, ForwardAgent off):
 *   "Warning: ssh server tried agent forwarding." and the same second line
 * - forwarded-tcpip for a port no -R asked for
 *   (channels.c channel_connect_by_listen_address):
 *   "WARNING: Server requests forwarding for unknown listen_port %d"
 * - forwarded-streamlocal@openssh.com for a path nobody asked for
 *   (channel_connect_by_listen_path):
 *   "WARNING: Server requests forwarding for unknown path %.100s"
 *
 * Our logger writes its own "Warning: " in front of a warning, so the last two
 * read "Warning: Server requests ...": OpenSSH's words, our prefix.
 *
 * safetunnel never asks for X11, agent or Unix-socket forwarding (ForwardX11
 * and ForwardAgent are ignored keywords), so every such open is unrequested.
 * ssh2's Client refuses them itself, before any event: 'x11' fires only after
 * an X11 request, 'tcp connection' only for a port it forwarded, an agent open
 * only with agentForward set (lib/client.js onCHANNEL_OPEN). Its refusals
 * are silent, so the guard sits in front of the handler ssh2 gives its
 * protocol for SSH_MSG_CHANNEL_OPEN (RFC 4254 section 5.1), refuses what was
 * not asked for, and passes the rest on unchanged.
 *
 * A hostile server can open thousands: one line per kind per 10 s, the next
 * one saying how many were folded into it, each one at -v (fold-window.ts).
 */
import type { Client } from "ssh2";
import { echoValue } from "../errors.ts";
import { FoldWindow, foldedSince } from "../fold-window.ts";
import { singleLine, type LogFields } from "../log.ts";

/** Where refused opens are reported: a Logger will do. */
export interface WarningLog {
  warn(message: string, fields?: LogFields): void;
  /** Each refused open that a full line does not show (-v). @default not written */
  debug?(depth: 1 | 2 | 3, message: string, fields?: LogFields): void;
}

/** One refused open, with what the server said about it. */
export type RefusedOpen =
  | { kind: "forwarded-tcpip"; listenAddress: string; listenPort: number; originator: string; originatorPort: number }
  | { kind: "x11"; originator: string; originatorPort: number }
  | { kind: "agent"; type: string }
  | { kind: "streamlocal"; path: string };

export interface UnrequestedOpenGuard {
  /**
   * Whether a -R port is ours now; a forwarded-tcpip open for any other port
   * is refused. The session sets it. @default no port is
   */
  listening: (port: number) => boolean;
  /** Reports one refused open (the guard calls it for those it refuses; a session calls it for ones it refuses later). */
  refused(open: RefusedOpen): void;
}

export interface GuardOptions {
  /** Replaces the log of a guard already in place. @default none: nothing is written */
  log?: WarningLog;
  /** Milliseconds now, for the fold window. @default Date.now */
  clock?: () => number;
}

/** RFC 4254 section 5.1: SSH_OPEN_ADMINISTRATIVELY_PROHIBITED, as OpenSSH's client sends it. */
const ADMINISTRATIVELY_PROHIBITED = 1;

/** What ssh2's protocol object hands the CHANNEL_OPEN handler (lib/protocol/handlers.misc.js). */
interface ChannelOpenInfo {
  type: string;
  sender: number;
  data: { destIP?: string; destPort?: number; srcIP?: string; srcPort?: number; socketPath?: string };
}

/** The parts of ssh2's (undocumented) protocol object the guard uses. */
interface Ssh2Protocol {
  _handlers?: { CHANNEL_OPEN?: (protocol: unknown, info: ChannelOpenInfo) => void };
  channelOpenFail?(recipient: number, reason: number, description: string): void;
}

/** One guard per client, so a session and its connection share it and the handler is wrapped once. */
const guards = new WeakMap<Client, { guard: UnrequestedOpenGuard; setLog(log: WarningLog): void }>();

/**
 * Guards `client` (once; later calls return the same guard, with `log` if
 * given). Call it after `client.connect()`, which creates the protocol
 * object; before that, or with an ssh2 whose internals differ, the guard only
 * reports what it is told through `refused` and ssh2 keeps refusing silently.
 *
 * @example
 * client.connect(config);
 * const guard = guardChannelOpens(client, { log });
 * guard.listening = (port) => remotePorts.has(port);
 */
export function guardChannelOpens(client: Client, options: GuardOptions = {}): UnrequestedOpenGuard {
  const existing = guards.get(client);
  if (existing !== undefined) {
    if (options.log !== undefined) existing.setLog(options.log);
    return existing.guard;
  }
  let log: WarningLog | undefined = options.log;
  const folds = new FoldWindow({ clock: options.clock ?? Date.now });
  const guard: UnrequestedOpenGuard = {
    listening: () => false,
    refused(open) {
      if (log === undefined) return;
      const folded = folds.admit(open.kind);
      const fields = { event: "unrequested-channel", channel: channelType(open) };
      if (folded === undefined) {
        log.debug?.(1, `Refused ${describeOpen(open)}.`, fields);
        return;
      }
      const [first, second] = warningLines(open);
      log.warn(first + foldedSince(folded, "refused"), { ...fields, folded });
      if (second !== undefined) log.warn(second, fields);
    },
  };
  guards.set(client, { guard, setLog: (next) => (log = next) });

  const protocol = (client as unknown as { _protocol?: Ssh2Protocol })._protocol;
  const handlers = protocol?._handlers;
  const original = handlers?.CHANNEL_OPEN;
  if (protocol === undefined || handlers === undefined || typeof original !== "function" || typeof protocol.channelOpenFail !== "function") return guard;
  handlers.CHANNEL_OPEN = (self, info) => {
    const open = unrequested(info, guard.listening);
    if (open === undefined) {
      original(self, info);
      return;
    }
    protocol.channelOpenFail!(info.sender, ADMINISTRATIVELY_PROHIBITED, "open failed");
    guard.refused(open);
  };
  return guard;
}

/** The open as a RefusedOpen when nobody asked for it; undefined passes it on to ssh2. */
function unrequested(info: ChannelOpenInfo, listening: (port: number) => boolean): RefusedOpen | undefined {
  const { data } = info;
  switch (info.type) {
    case "x11":
      return { kind: "x11", originator: data.srcIP ?? "", originatorPort: data.srcPort ?? 0 };
    case "auth-agent@openssh.com":
    case "agent-connect":
      return { kind: "agent", type: info.type };
    case "forwarded-streamlocal@openssh.com":
      return { kind: "streamlocal", path: data.socketPath ?? "" };
    case "forwarded-tcpip":
      // Port 0 is ssh2's to map (its DYN_RPORT_BUG workaround for servers
      // that name a server-chosen port as 0); the session still catches it
      // if the port is not ours.
      if (data.destPort === undefined || data.destPort === 0 || listening(data.destPort)) return undefined;
      return {
        kind: "forwarded-tcpip",
        listenAddress: data.destIP ?? "",
        listenPort: data.destPort,
        originator: data.srcIP ?? "",
        originatorPort: data.srcPort ?? 0,
      };
    default:
      return undefined;
  }
}

/** Text the server chose, inside our line: short, one line, no control characters. */
function shown(text: string, max = 100): string {
  return singleLine(echoValue(text, "", max));
}

function channelType(open: RefusedOpen): string {
  switch (open.kind) {
    case "forwarded-tcpip":
      return "forwarded-tcpip";
    case "x11":
      return "x11";
    case "agent":
      return open.type;
    case "streamlocal":
      return "forwarded-streamlocal@openssh.com";
  }
}

const BREAK_IN = "this is probably a break-in attempt by a malicious server.";

/** OpenSSH's lines for a refused open (see the top of this file); the fold count goes after the first. */
function warningLines(open: RefusedOpen): [string, string?] {
  switch (open.kind) {
    case "forwarded-tcpip":
      return [`Server requests forwarding for unknown listen_port ${open.listenPort}`];
    case "x11":
      return ["ssh server tried X11 forwarding.", BREAK_IN];
    case "agent":
      return ["ssh server tried agent forwarding.", BREAK_IN];
    case "streamlocal":
      return [`Server requests forwarding for unknown path ${shown(open.path)}`];
  }
}

/** The -v line's words for one refused open. */
function describeOpen(open: RefusedOpen): string {
  switch (open.kind) {
    case "forwarded-tcpip":
      return `a forwarded-tcpip channel from the server for ${shown(open.listenAddress)} listen_port ${open.listenPort} (originator ${shown(open.originator)} port ${open.originatorPort}): no -R asked for that port`;
    case "x11":
      return `an x11 channel from the server (originator ${shown(open.originator)} port ${open.originatorPort}): X11 forwarding was not requested`;
    case "agent":
      return `an ${open.type} channel from the server: agent forwarding was not requested`;
    case "streamlocal":
      return `a forwarded-streamlocal@openssh.com channel from the server for ${shown(open.path)}: no Unix socket forwarding was requested`;
  }
}
