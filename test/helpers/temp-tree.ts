/**
 * Fixture folders for tests that read files (browser profiles, /proc copies):
 * a fresh temporary folder holding the given files, removed by `cleanup()`.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface TempTrees {
  /** A new folder holding `files` (path relative to it -> text); returns its path. */
  make(files: Record<string, string>): Promise<string>;
  /** Remove every folder made so far. */
  cleanup(): Promise<void>;
}

/**
 * @example
 * const trees = tempTrees("safetunnel-browsers-");
 * after(() => trees.cleanup());
 * const home = await trees.make({ ".mozilla/firefox/profiles.ini": "..." });
 */
export function tempTrees(prefix: string): TempTrees {
  const folders: string[] = [];
  return {
    async make(files) {
      const root = await mkdtemp(join(tmpdir(), prefix));
      folders.push(root);
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(root, path)), { recursive: true });
        await writeFile(join(root, path), text);
      }
      return root;
    },
    async cleanup() {
      for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
    },
  };
}
