/**
 * leakcheck's UDP port for WebRTC: a socket on one of this machine's
 * addresses outside loopback (interface-addresses.ts), which the canary page
 * names as its second STUN server. Loopback would not do: browsers leave
 * loopback out of ICE gathering. The port only listens and counts; it
 * answers nothing, so it gives the page no address either (webrtc.ts says
 * what an arrival means).
 */
import { createSocket, type Socket } from "node:dgram";
import { hostPort } from "../address.ts";
import { within } from "../deadline.ts";
import { isOneOf, networkAddresses } from "../platform/interface-addresses.ts";
import { isLoopbackAddress } from "../address.ts";
import type { UdpSender } from "../platform/udp-owner.ts";
import { isStunMessage, type UdpArrival, type UdpProbe } from "./webrtc.ts";

/** Senders listed by name, at most; the rest are counted. */
const MAX_SENDERS = 8;
/** How long naming a sender's program may take. */
const NAME_WAIT_MS = 1000;

export interface StunListenerOptions {
  /** This machine's addresses outside loopback; the first is used. @default networkAddresses */
  addresses?: () => readonly string[];
  /** Names the program that sent from a source (procUdpSender on Linux). */
  senderProgram?: (from: UdpSender) => Promise<string | undefined>;
  /** Called for each STUN request, as it arrives. */
  onStun?: (from: string) => void;
}

export interface StunListener {
  /** Where it listens, or why it does not. */
  readonly endpoint: { address: string; port: number } | undefined;
  /** Stops listening; resolves with what was seen, once the senders' programs are named. Calling it again gives the same. */
  close(): Promise<UdpProbe>;
}

/**
 * @example
 * const listener = await listenForWebrtcUdp({ onStun: (from) => console.log(from) });
 * // ... the page runs ...
 * const probe = await listener.close();
 */
export async function listenForWebrtcUdp(options: StunListenerOptions = {}): Promise<StunListener> {
  const addresses = (options.addresses ?? networkAddresses)();
  const address = addresses[0];
  if (address === undefined) return failed("this machine has no network address besides loopback, and browsers leave loopback out of WebRTC");
  const socket = createSocket(address.includes(":") ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address, port: 0, exclusive: true }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    return failed(`cannot listen on ${address} (${(err as Error).message})`);
  }
  const port = socket.address().port;
  const arrivals = new Map<string, UdpArrival>();
  const naming: Promise<void>[] = [];
  let stunCount = 0;
  let otherCount = 0;
  socket.on("error", () => {});
  socket.on("message", (datagram, from) => {
    if (!isStunMessage(datagram)) {
      otherCount++;
      return;
    }
    stunCount++;
    const source = hostPort(from.address, from.port);
    options.onStun?.(source);
    if (arrivals.has(source) || arrivals.size >= MAX_SENDERS) return;
    const arrival: UdpArrival = { from: source };
    arrivals.set(source, arrival);
    // Asked now, while the browser still holds the socket it sent from; only for this machine's own
    // addresses: a datagram from elsewhere on the network says nothing about the programs here.
    const local = isLoopbackAddress(from.address) || isOneOf(from.address, addresses);
    if (!local) arrival.elsewhere = true;
    else if (options.senderProgram !== undefined) {
      naming.push(
        within(options.senderProgram({ address: from.address, port: from.port }), NAME_WAIT_MS).then((program) => {
          if (program !== undefined) arrival.program = program;
        }),
      );
    }
  });
  // Closing twice must not wait on a socket already closed (Deno 2.9 never calls back for it).
  let closing: Promise<UdpProbe> | undefined;
  return {
    endpoint: { address, port },
    close: () =>
      (closing ??= (async () => {
        await closeSocket(socket);
        await Promise.all(naming);
        return { listening: { address, port }, arrivals: [...arrivals.values()], stunCount, otherCount };
      })()),
  };
}

function failed(problem: string): StunListener {
  return { endpoint: undefined, close: async () => ({ problem }) };
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}
