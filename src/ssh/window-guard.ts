/**
 * Holds a server to the flow-control window we advertised (RFC 4254 section
 * 5.2: the sender must not send more data than the window allows). ssh2 1.17
 * drops channel data only when the window is exactly 0; a server that sends
 * past it drives the window negative and every byte is still buffered, so one
 * that ignores the window can grow our memory without bound (measured: 54 to
 * 914 MB). OpenSSH disconnects such a peer ("channel %d: peer ignored channel
 * window", channels.c channel_input_data); so do we, once it is more than one
 * maximum-size packet past the window, which no honest sender reaches.
 *
 * ssh2 has no hook for this: its protocol object's CHANNEL_DATA handler is
 * wrapped, as unrequested-opens.ts wraps CHANNEL_OPEN. With an ssh2 whose
 * internals differ the guard does nothing (and says so at -v).
 */
import type { Client } from "ssh2";
import type { Logger } from "../log.ts";

/** ssh2's channel packet size (Channel.js PACKET_SIZE): one packet past the window is tolerated. */
const TOLERATED_EXCESS = 32 * 1024;

interface Ssh2Channel {
  incoming?: { window?: number };
}

/** The parts of ssh2's (undocumented) client internals the guard uses. */
interface Ssh2Internals {
  _protocol?: {
    _handlers?: {
      CHANNEL_DATA?: (protocol: unknown, recipient: number, data: Uint8Array) => void;
      CHANNEL_EXTENDED_DATA?: (protocol: unknown, recipient: number, data: Uint8Array, type: number) => void;
    };
  };
  _chanMgr?: { get(id: number): unknown };
  destroy?(): void;
}

/**
 * @example
 * client.connect(config);
 * guardChannelWindows(client, log, "home");
 */
export function guardChannelWindows(client: Client, log: Pick<Logger, "error" | "debug">, host: string): void {
  const internals = client as unknown as Ssh2Internals;
  const handlers = internals._protocol?._handlers;
  const original = handlers?.CHANNEL_DATA;
  const channels = internals._chanMgr;
  if (handlers === undefined || typeof original !== "function" || channels === undefined) {
    log.debug(1, "ssh2's internals are not as expected: the SSH window is not enforced for this connection");
    return;
  }
  let broken = false;
  // Bytes each channel has received beyond its window, in all; stderr (extended) data counts against the same window.
  const excess = new WeakMap<object, number>();
  /** False (and the connection ended) once the server is more than a packet past a channel's window. */
  const withinWindow = (recipient: number, length: number): boolean => {
    if (broken) return false;
    const channel = channels.get(recipient) as Ssh2Channel | undefined;
    const window = typeof channel === "object" && channel !== null ? channel.incoming?.window : undefined;
    const over = typeof window === "number" ? Math.max(0, length - Math.max(window, 0)) : 0;
    if (over === 0) return true;
    const total = (excess.get(channel!) ?? 0) + over;
    excess.set(channel!, total);
    if (total <= TOLERATED_EXCESS) return true;
    broken = true;
    log.error(
      `The server ${host} sent ${total} bytes beyond the SSH flow-control window on channel ${recipient} (RFC 4254 section 5.2; OpenSSH: "peer ignored channel window"); disconnecting. A broken or hostile server: check what runs there.`,
      { code: "SSH_WINDOW_IGNORED" },
    );
    if (typeof internals.destroy === "function") internals.destroy();
    else client.end();
    return false;
  };
  handlers.CHANNEL_DATA = (protocol, recipient, data) => {
    if (withinWindow(recipient, data.length)) original(protocol, recipient, data);
  };
  // ssh2 pushes stderr data into a stream nobody reads on a forwarded channel: the same bound must hold there.
  const extended = handlers.CHANNEL_EXTENDED_DATA;
  if (typeof extended === "function") {
    handlers.CHANNEL_EXTENDED_DATA = (protocol, recipient, data, type) => {
      if (withinWindow(recipient, data.length)) extended(protocol, recipient, data, type);
    };
  }
}
