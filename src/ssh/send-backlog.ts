/**
 * Tells a channel's sender when the SSH connection underneath cannot take
 * more: the brake ssh2 does not have.
 *
 * ssh2 1.17 seals each channel packet and writes it to the connection's socket
 * without looking at write()'s answer (client.js and server.js `onWrite`), so
 * the only brake on what local readers push into channels is the peer's
 * window: 2 MiB for each channel. With many busy channels those windows add
 * up, and the sealed packets wait in our memory for a socket that cannot send
 * them any faster (measured: 1,000 concurrent 1 MiB echo transfers through
 * `-D` peaked at 1,190 MB RSS and kept it). OpenSSH turns channel input into
 * packets only while the connection's output queue is short (clientloop.c and
 * serverloop.c call channel_output_poll only when packet.c
 * ssh_packet_not_very_much_data_to_write: under 128 KiB queued); so do we:
 * senders pause while the connection's socket holds more than QUEUE_LIMIT
 * bytes and resume when it has drained.
 *
 * Through a jump host the connection's "socket" is a channel of the jump's
 * connection; the backlog then builds up in the jump's socket, so every
 * socket down the chain is watched.
 *
 * ssh2 has no public way from a channel to its connection's socket; the
 * gate reads `channel._client._sock` and, where those internals differ,
 * there is no gate and forwarding works as before.
 */
import type { Duplex, Writable } from "node:stream";

/**
 * Bytes a connection's socket may hold before senders pause. A few maximum
 * size packets (32 KiB for ssh2) per busy channel of a typical browser load
 * keep the socket busy while it drains; beyond that, queueing only costs
 * memory. The kernel's send buffer (megabytes on loopback) sits below this.
 */
export const QUEUE_LIMIT = 1024 * 1024;

/** How deep a chain of jump hosts is followed. */
const MAX_DEPTH = 16;

interface Ssh2ChannelInternals {
  _client?: { _sock?: unknown };
}

/** The sockets a channel's packets pass through, nearest first; empty when ssh2's internals differ. */
function socketsUnder(channel: Duplex): Writable[] {
  const sockets: Writable[] = [];
  let current: unknown = channel;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const sock = (current as Ssh2ChannelInternals | undefined)?._client?._sock;
    if (!isWritable(sock)) break;
    sockets.push(sock);
    current = sock;
  }
  return sockets;
}

function isWritable(value: unknown): value is Writable {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Writable).writableLength === "number" &&
    typeof (value as Writable).once === "function"
  );
}

/** One socket's backlog, shared by every channel over it. */
class SocketBacklog {
  private waiting: Array<() => void> = [];
  private listening = false;

  constructor(private readonly socket: Writable) {}

  /**
   * Over the limit, and owed a 'drain': a stream emits one only after a write
   * it refused (past its highWaterMark). A jump host's channel takes 2 MiB
   * before refusing, so it counts as full only from there; waiting on it
   * between 1 and 2 MiB would wait for a 'drain' that never comes.
   */
  get full(): boolean {
    return this.socket.writableLength > QUEUE_LIMIT && this.socket.writableNeedDrain && !this.socket.destroyed;
  }

  /** Calls `resume` after the socket has drained (or closed: then nothing will drain, and the channel is on its way down). */
  whenDrained(resume: () => void): void {
    this.waiting.push(resume);
    if (this.listening) return;
    this.listening = true;
    const release = (): void => {
      this.socket.off("drain", release);
      this.socket.off("close", release);
      this.listening = false;
      const waiting = this.waiting;
      this.waiting = [];
      for (const each of waiting) each();
    };
    this.socket.on("drain", release);
    this.socket.on("close", release);
  }
}

const backlogs = new WeakMap<Writable, SocketBacklog>();

function backlogOf(socket: Writable): SocketBacklog {
  let backlog = backlogs.get(socket);
  if (backlog === undefined) {
    backlog = new SocketBacklog(socket);
    backlogs.set(socket, backlog);
  }
  return backlog;
}

/** What pipe.ts asks before it reads more for a channel. */
export interface SendGate {
  /** Whether the connection can take more now. */
  readonly open: boolean;
  /** Calls `resume` once, when the connection may have room again (ask `open` then). */
  whenOpen(resume: () => void): void;
}

/**
 * The gate for an ssh2 channel (client or server side), or undefined for a
 * stream that is not one (an answer made here) or an ssh2 whose internals
 * differ.
 *
 * @example
 * joinStreams(socket, channel, done, { gate: sendGateOf(channel) });
 */
export function sendGateOf(channel: Duplex): SendGate | undefined {
  const sockets = socketsUnder(channel);
  if (sockets.length === 0) return undefined;
  const chain = sockets.map(backlogOf);
  return {
    get open() {
      return chain.every((backlog) => !backlog.full);
    },
    whenOpen(resume) {
      const full = chain.find((backlog) => backlog.full);
      if (full === undefined) queueMicrotask(resume);
      else full.whenDrained(resume);
    },
  };
}
