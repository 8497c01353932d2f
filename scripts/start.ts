/**
 * `npm start`: with no arguments, `safetunnel demo` (the main job on this one
 * machine, nothing to set up); with arguments, the command line as given
 * (`npm start -- -D 9001 user@home`). Runs the sources, so no build is needed.
 */
import process from "node:process";

if (process.argv.length <= 2) process.argv.push("demo");
await import("../src/main.ts");
