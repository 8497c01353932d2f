/**
 * Holds a stream's writes for the rest of the current turn of the event loop,
 * so whatever is written in that turn leaves in one writev(2) at its check
 * phase (setImmediate), after every I/O callback of the turn has run. On
 * loopback each write(2) also runs the receiver's TCP input, so joining the
 * small writes of one turn is most of what there is to save (measured where
 * it is used: ssh/coalesce-writes.ts, forward/pipe.ts).
 */
import type { Writable } from "node:stream";
import { setImmediate } from "node:timers";

/**
 * @example
 * const cork = new TurnCork(socket);
 * cork.hold();
 * socket.write(packet); // leaves at the check phase, with the turn's other writes
 */
export class TurnCork {
  #corked = false;

  constructor(private readonly stream: Writable) {}

  /** Cork the stream until this turn's check phase, unless already held. */
  hold(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.stream.cork();
    setImmediate(this.flush);
  }

  /** Send what is held now. */
  readonly flush = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.stream.uncork();
  };
}
