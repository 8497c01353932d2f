import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { denoPermissionFlags, type DenoPermissionDescriptor } from "../../src/platform/deno-permissions.ts";

/** A Deno that grants what `granted` lists: "net", "read" (whole), "read:/etc/ssh" (one path), ... */
function grants(...granted: string[]): (descriptor: DenoPermissionDescriptor) => boolean {
  return (descriptor) => {
    const item = "path" in descriptor ? descriptor.path : "variable" in descriptor ? descriptor.variable : "kind" in descriptor ? descriptor.kind : "command" in descriptor ? descriptor.command : undefined;
    return granted.includes(descriptor.name) || (item !== undefined && granted.includes(`${descriptor.name}:${item}`));
  };
}

describe("denoPermissionFlags: the new run gets what this one has, no more", () => {
  test("nothing granted: only --no-prompt", () => {
    assert.deepEqual(denoPermissionFlags(grants(), { read: ["/etc/ssh"], env: ["HOME"] }), ["--no-prompt"]);
  });

  test("kinds granted whole are passed whole; the others list only the wanted resources that are granted, in order, once", () => {
    const flags = denoPermissionFlags(grants("net", "env", "run", "read:/home/me/.ssh", "read:/etc/ssh", "write:/home/me/.ssh/known_hosts", "sys:hostname"), {
      read: ["/home/me/.ssh", "/etc/ssh", "/home/me/.ssh", "/opt/other"],
      write: ["/home/me/.ssh/known_hosts", "/var/log/t.log"],
      sys: ["hostname", "uid"],
      run: ["logger"],
    });
    assert.deepEqual(flags, ["--no-prompt", "--allow-net", "--allow-read=/home/me/.ssh,/etc/ssh", "--allow-write=/home/me/.ssh/known_hosts", "--allow-env", "--allow-sys=hostname", "--allow-run"]);
  });

  test("every kind whole is --allow-all (Deno's -A, which reading other processes' /proc needs)", () => {
    assert.deepEqual(denoPermissionFlags(grants("net", "read", "write", "env", "sys", "run", "ffi"), {}), ["--no-prompt", "--allow-all"]);
  });

  test("a resource with a comma is left out: Deno would read it as two", () => {
    assert.deepEqual(denoPermissionFlags(grants("read:/a,b", "read:/c"), { read: ["/a,b", "/c"] }), ["--no-prompt", "--allow-read=/c"]);
  });
});
