/**
 * Running this program again under Deno (`-f`'s background process, `exec`'s
 * `nc`) with the permissions this run has: Deno has no way to read back the
 * flags it was started with, but it answers, for one resource at a time,
 * whether it is granted (Deno.permissions.querySync). A kind granted whole
 * becomes `--allow-KIND`; otherwise the resources the new run needs that are
 * granted become `--allow-KIND=a,b`. Nothing is widened: the new run gets at
 * most what this one has. Pure over the query, so it is tested without Deno.
 */

/** A Deno permission descriptor, as Deno.permissions.querySync takes it. */
export type DenoPermissionDescriptor =
  | { name: "net" | "ffi" }
  | { name: "read" | "write"; path?: string }
  | { name: "env"; variable?: string }
  | { name: "sys"; kind?: string }
  | { name: "run"; command?: string };

/** Whether a permission is granted without asking. */
export type DenoPermissionQuery = (descriptor: DenoPermissionDescriptor) => boolean;

/** What the new run will touch, by kind; a kind left out is given only if granted whole. */
export interface DenoResources {
  read?: readonly string[];
  write?: readonly string[];
  env?: readonly string[];
  sys?: readonly string[];
  run?: readonly string[];
}

/**
 * @example
 * denoPermissionFlags((d) => d.name === "net" || (d.name === "read" && d.path === "/etc/ssh"), { read: ["/home/me/.ssh", "/etc/ssh"] })
 * // ["--no-prompt", "--allow-net", "--allow-read=/etc/ssh"]
 */
export function denoPermissionFlags(granted: DenoPermissionQuery, wanted: DenoResources): string[] {
  const flags = ["--no-prompt"];
  // Every kind whole is --allow-all, which Deno also requires for some reads (/proc of other processes).
  const kinds = ["net", "read", "write", "env", "sys", "run", "ffi"] as const;
  if (kinds.every((name) => granted({ name } as DenoPermissionDescriptor))) return [...flags, "--allow-all"];
  if (granted({ name: "net" })) flags.push("--allow-net");
  const partial = (name: "read" | "write" | "env" | "sys" | "run", items: readonly string[] | undefined, descriptor: (item: string) => DenoPermissionDescriptor): void => {
    if (granted({ name } as DenoPermissionDescriptor)) {
      flags.push(`--allow-${name}`);
      return;
    }
    // A comma would split the list Deno reads: such a resource is left out rather than misread.
    const allowed = [...new Set(items ?? [])].filter((item) => item !== "" && !item.includes(",") && granted(descriptor(item)));
    if (allowed.length > 0) flags.push(`--allow-${name}=${allowed.join(",")}`);
  };
  partial("read", wanted.read, (path) => ({ name: "read", path }));
  partial("write", wanted.write, (path) => ({ name: "write", path }));
  partial("env", wanted.env, (variable) => ({ name: "env", variable }));
  partial("sys", wanted.sys, (kind) => ({ name: "sys", kind }));
  partial("run", wanted.run, (command) => ({ name: "run", command }));
  if (granted({ name: "ffi" })) flags.push("--allow-ffi");
  return flags;
}

/** Deno's own answer, or undefined when not running on Deno. */
export function denoPermissionQuery(): DenoPermissionQuery | undefined {
  const deno = (globalThis as { Deno?: { permissions: { querySync(descriptor: DenoPermissionDescriptor): { state: string } } } }).Deno;
  if (deno === undefined) return undefined;
  return (descriptor) => {
    try {
      return deno.permissions.querySync(descriptor).state === "granted";
    } catch {
      return false;
    }
  };
}
