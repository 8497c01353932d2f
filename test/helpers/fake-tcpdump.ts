/**
 * A stand-in for tcpdump(8) that live-capture.ts can spawn as `command`: an
 * executable node script in a fresh temporary folder. Like `tcpdump -w -`, it
 * says "listening on any, ..." on stderr, writes a capture to stdout, and then
 * runs until SIGTERM, after which it exits 0 once its output is written. It
 * records the arguments it was given and the signal that ended it, so tests can
 * check how it was started and stopped. It ends itself after a minute if nobody
 * stops it.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { forgetDir, removeOnExit } from "./cleanup.ts";

/** What real tcpdump prints for `-i any` once it captures (its stderr, with -w). */
export const LISTENING_LINE = "tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes";

/** How long the fake runs when nobody signals it: a test that forgets it must not leave it behind for long. */
const SELF_EXIT_MS = 60_000;

export interface FakeTcpdump {
  /** The script's path, to pass as `command`. */
  command: string;
  /** The arguments it was started with; fails if it never ran. */
  args(): Promise<string[]>;
  /** "SIGTERM" once it has received one, otherwise undefined. */
  terminatedBy(): Promise<string | undefined>;
  /** Remove its folder. */
  cleanup(): Promise<void>;
}

/**
 * The script is plain JavaScript that works whether node loads it as CommonJS
 * or as a module (it has no extension, so that depends on package.json files
 * above the temporary folder): it uses only `process` and a dynamic import.
 * The capture is read from a file written once here, so the fake does no work
 * of its own to produce it.
 */
function script(folder: string): string {
  const at = (name: string) => JSON.stringify(join(folder, name));
  return `${shebang()}
import("node:fs").then(({ readFileSync, writeFileSync }) => {
  writeFileSync(${at("args.json")}, JSON.stringify(process.argv.slice(2)));
  let written = false;
  let terminated = false;
  process.on("SIGTERM", () => {
    terminated = true;
    writeFileSync(${at("signal")}, "SIGTERM");
    if (written) process.exit(0);
  });
  setTimeout(() => process.exit(3), ${SELF_EXIT_MS});
  process.stderr.write(${JSON.stringify(`${LISTENING_LINE}\n`)});
  process.stdout.write(readFileSync(${at("capture.pcap")}), () => {
    written = true;
    if (terminated) process.exit(0);
  });
});
`;
}

/**
 * The interpreter line: this node, or under `deno test` this deno, which
 * needs its `run` subcommand (env -S splits the line into arguments, which
 * the kernel does not).
 */
function shebang(): string {
  return "Deno" in globalThis ? `#!/usr/bin/env -S ${process.execPath} run --allow-all` : `#!${process.execPath}`;
}

/**
 * @example
 * const fake = await fakeTcpdump(pcapFile({ endian: "little", linkType: LinkType.LINUX_SLL2 }, records));
 * after(() => fake.cleanup());
 * const capture = await startLiveCapture({ command: fake.command });
 */
export async function fakeTcpdump(capture: Uint8Array): Promise<FakeTcpdump> {
  // The shebang names this node; a path with blanks would be split by the kernel.
  if (/\s/.test(process.execPath)) throw new Error(`cannot write a shebang for node at ${JSON.stringify(process.execPath)}`);
  const folder = await mkdtemp(join(tmpdir(), "safetunnel-fake-tcpdump-"));
  removeOnExit(folder);
  await writeFile(join(folder, "capture.pcap"), capture);
  const command = join(folder, "tcpdump");
  await writeFile(command, script(folder));
  await chmod(command, 0o755);
  return {
    command,
    async args() {
      return JSON.parse(await readFile(join(folder, "args.json"), "utf8")) as string[];
    },
    async terminatedBy() {
      try {
        return await readFile(join(folder, "signal"), "utf8");
      } catch {
        return undefined;
      }
    },
    async cleanup() {
      await rm(folder, { recursive: true, force: true });
      forgetDir(folder);
    },
  };
}
