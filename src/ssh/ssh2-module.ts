/**
 * ssh2, loaded on first use, so that `--version` and `--help` never pay for
 * it: measured from the single binary (median of 30 runs), `--version` took
 * 38 ms with ssh2 imported at start-up and 18 ms when answered before the
 * import (on a stripped base binary), against 3 ms for `ssh -V`. ssh2 is CommonJS: Node's ESM loader and Deno expose
 * `module.exports` as the default export but cannot see every property as a
 * named one (`utils` is built with a spread), so always go through the default.
 *
 * The promise is shared by every connection (a module is imported once
 * anyway); it holds no connection state.
 */
type Ssh2 = typeof import("ssh2");

let loading: Promise<Ssh2> | undefined;

/**
 * @example
 * const { Client } = await loadSsh2();
 */
export function loadSsh2(): Promise<Ssh2> {
  loading ??= import("ssh2").then((mod) => ((mod as unknown as { default?: Ssh2 }).default ?? mod) as Ssh2);
  return loading;
}
