/**
 * Waiting for an answer that is only worth having soon: a lookup that helps a
 * log line must not hold the reply the line is about.
 */

/**
 * The promise's value, or undefined if it rejects or takes longer than `ms`.
 * Never rejects. The timer is not unref'd: whoever awaits the answer must get
 * it even when nothing else keeps the event loop running (it is cleared as
 * soon as the promise settles, so it holds nothing up for longer than `ms`).
 *
 * @example
 * const program = await within(peers.programOf(client), 200); // "curl", or undefined after 200 ms
 */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}
