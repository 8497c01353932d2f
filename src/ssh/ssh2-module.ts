/**
 * ssh2, loaded on first use. Lazy because importing it costs more start-up
 * time than everything else (`--version` in the single binary: 45 ms eager,
 * 18 ms lazy, FACTS.md). ssh2 is CommonJS: Node's ESM loader and Deno expose
 * `module.exports` as the default export but cannot see every property as a
 * named one (`utils` is built with a spread), so always go through the default.
 */
type Ssh2 = typeof import("ssh2");

let loading: Promise<Ssh2> | undefined;

export function loadSsh2(): Promise<Ssh2> {
  loading ??= import("ssh2").then((mod) => ((mod as unknown as { default?: Ssh2 }).default ?? mod) as Ssh2);
  return loading;
}
