/**
 * The layers of src/ as rules on import lines: pure data below, I/O above.
 * A new import that crosses a layer the wrong way fails here, naming the file.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

/** Every .ts file under src/, relative to it ("config/settings.ts"). */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [relative(SRC, path)] : [];
  });
}

/** The src/-relative files a source imports (relative imports only; packages are skipped). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), "utf8");
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms)].map((m) => m[1]!);
  return specifiers.filter((s) => s.startsWith(".")).map((s) => relative(SRC, resolve(dirname(join(SRC, file)), s)));
}

/** Files of `from` that import anything under one of `forbidden` (a folder with "/", or a file). */
function violations(from: string, forbidden: string[]): string[] {
  const found: string[] = [];
  for (const file of sources().filter((f) => f.startsWith(from))) {
    for (const target of importsOf(file)) {
      if (forbidden.some((rule) => (rule.endsWith("/") ? target.startsWith(rule) : target === rule))) found.push(`${file} imports ${target}`);
    }
  }
  return found;
}

describe("layering of src/", () => {
  test("the rule reader sees imports (it finds config/ importing errors.ts)", () => {
    assert.ok(importsOf("config/settings.ts").includes("errors.ts"), importsOf("config/settings.ts").join(", "));
  });

  test("config/ is plain data: it imports nothing from ssh/, socks/, forward/, platform/, cli or the run", () => {
    assert.deepEqual(violations("config/", ["ssh/", "socks/", "forward/", "platform/", "cli/", "cli.ts", "tunnel.ts", "main.ts", "log.ts"]), []);
  });

  test("socks/ knows nothing of SSH, forwarding or the platform, and ssh/ nothing of SOCKS", () => {
    assert.deepEqual(violations("socks/", ["ssh/", "forward/", "platform/", "cli/", "cli.ts", "tunnel.ts", "main.ts"]), []);
    assert.deepEqual(violations("ssh/", ["socks/", "forward/", "cli/", "cli.ts", "tunnel.ts", "main.ts"]), []);
  });

  test("http-proxy/, like socks/, knows nothing of SSH, forwarding or the platform", () => {
    assert.deepEqual(violations("http-proxy/", ["ssh/", "forward/", "platform/", "cli/", "cli.ts", "tunnel.ts", "main.ts"]), []);
  });

  test("forward/ knows nothing of leakcheck: the canary service is handed in (LocalAnswers)", () => {
    assert.deepEqual(violations("forward/", ["leakcheck/", "cli/", "cli.ts", "tunnel.ts", "main.ts"]), []);
  });

  test("only main.ts and demo.ts (which runs serve and a tunnel together) import the run; nothing imports main.ts", () => {
    assert.deepEqual(violations("", ["main.ts"]), []);
    const importers = sources().filter((file) => importsOf(file).includes("tunnel.ts"));
    assert.deepEqual(importers.filter((file) => file !== "main.ts" && file !== "demo.ts" && !file.startsWith("cli")), []);
  });
});
