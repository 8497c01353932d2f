/**
 * Entry point: argv in, exit status out. Everything the program touches of
 * the process (argv, environment, stderr, signals, exit) is handled here and
 * passed inward, so the rest runs the same on Node, in the single binary and
 * on Deno.
 */
import process from "node:process";
import { homedir, userInfo } from "node:os";
import { parseCommandLine } from "./cli.ts";
import { createLogger } from "./log.ts";
import { TunnelError, describeError } from "./errors.ts";
import { runTunnel } from "./tunnel.ts";

async function main(argv: string[]): Promise<number> {
  const writeErr = (line: string): void => {
    process.stderr.write(line + "\n");
  };
  let plan;
  try {
    plan = parseCommandLine(argv);
  } catch (err) {
    writeErr(`safetunnel: ${describeError(err)}`);
    return err instanceof TunnelError ? err.exitCode : 255;
  }
  if (plan.command === "help" || plan.command === "version") {
    // `safetunnel --help | head` closes the pipe early; that is not an error.
    process.stdout.on("error", () => {});
    process.stdout.write(plan.text.endsWith("\n") ? plan.text : plan.text + "\n");
    return 0;
  }
  const log = createLogger({ verbosity: plan.verbosity, json: plan.json, write: writeErr });
  try {
    return await runTunnel(plan, {
      homeDir: process.env["HOME"] ?? homedir(),
      localUser: safeUserName(),
      agentSocket: process.env["SSH_AUTH_SOCK"] || undefined,
      platform: process.platform,
      env: process.env,
      log,
      onStopSignal: (handler) => {
        for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => handler(signal));
      },
    });
  } catch (err) {
    if (err instanceof TunnelError) {
      log.error(`safetunnel: ${err.message}`, { code: err.code });
      return err.exitCode;
    }
    log.error(`safetunnel: internal error: ${describeError(err)}; please report it with the -vvv output.`, { code: "INTERNAL" });
    if (log.debugEnabled(1) && err instanceof Error && err.stack) log.debug(1, err.stack);
    return 255;
  }
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env["USER"] ?? process.env["USERNAME"] ?? "user";
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    // Exit explicitly: ssh2 keepalive timers or a lingering socket must not keep us alive.
    process.exit(status);
  },
  (err: unknown) => {
    process.stderr.write(`safetunnel: internal error: ${describeError(err)}\n`);
    process.exit(255);
  },
);
