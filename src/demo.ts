/**
 * `safetunnel demo` (and `npm start` with no arguments): the main job on one
 * machine with nothing to set up. `serve` runs in this process on a free
 * loopback port with throwaway keys in a temporary folder, and the ordinary
 * tunnel connects to it with `-D 127.0.0.1:1080` (or the next free port), as
 * `safetunnel -D 1080 user@home` would to a home machine: the same command
 * line, host-key check and SOCKS policy. The folder is removed on the way out.
 */
import { createServer } from "node:net";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DemoPlan } from "./cli/demo-args.ts";
import { DEFAULT_LOGIN_GRACE_SECONDS } from "./cli/serve-args.ts";
import { parseTunnelArgs } from "./cli/tunnel-args.ts";
import { clientSetupHelp } from "./client-setup.ts";
import { TunnelError } from "./errors.ts";
import { loadSsh2 } from "./ssh/ssh2-module.ts";
import { knownHostsLine } from "./serve/host-key.ts";
import { startServe, serveSummary, type ServeEnvironment } from "./serve/run.ts";
import { runTunnel, type RunEnvironment } from "./tunnel.ts";
import type { Logger } from "./log.ts";

/** The port browsers' SOCKS settings and most guides use. */
export const DEMO_SOCKS_PORT = 1080;
/** How far past 1080 to look for a free port. */
const PORTS_TO_TRY = 20;

export type DemoEnvironment = RunEnvironment & Pick<ServeEnvironment, "interfaceAddresses">;

/**
 * @example
 * const status = await runDemo({ command: "demo", json: false, verbosity: 0 }, environment);
 */
export async function runDemo(plan: DemoPlan, run: DemoEnvironment): Promise<number> {
  const { log } = run;
  const dir = await mkdtemp(join(tmpdir(), "safetunnel-demo-"));
  let stopServe: (() => Promise<void>) | undefined;
  // Until the tunnel is up and takes the signals over, Ctrl-C ends the demo
  // here, so the throwaway keys are still removed: closing serve makes the
  // tunnel's connect fail, and the finally below does the rest.
  let interrupted: string | undefined;
  run.onStopSignal((signal) => {
    interrupted = signal;
    void stopServe?.();
  });
  const stopIfInterrupted = (): void => {
    if (interrupted !== undefined) throw new TunnelError("CANCELLED", `demo: interrupted by ${interrupted} before the tunnel was up.`);
  };
  try {
    const { utils } = await loadSsh2();
    const clientKey = utils.generateKeyPairSync("ed25519", { comment: "safetunnel demo client" });
    const hostKey = utils.generateKeyPairSync("ed25519", { comment: "safetunnel demo host" });
    const files = {
      clientKey: join(dir, "id_ed25519"),
      hostKey: join(dir, "host_ed25519_key"),
      authorizedKeys: join(dir, "authorized_keys"),
      knownHosts: join(dir, "known_hosts"),
    };
    await writePrivate(files.clientKey, clientKey.private);
    await writePrivate(files.hostKey, hostKey.private);
    await writePrivate(files.authorizedKeys, `${clientKey.public}\n`);

    const served = await startServe(
      {
        command: "serve",
        listen: [{ host: "127.0.0.1", port: 0 }],
        authorizedKeys: files.authorizedKeys,
        hostKey: files.hostKey,
        permitOpen: [],
        gatewayPorts: false,
        loginGraceSeconds: DEFAULT_LOGIN_GRACE_SECONDS,
        json: plan.json,
        verbosity: plan.verbosity,
      },
      { ...run, homeDir: dir, localHostname: "localhost", onStopSignal: () => {} },
      { quiet: true },
    );
    stopServe = () => served.server.close();
    stopIfInterrupted();
    await writePrivate(files.knownHosts, `${knownHostsLine(["127.0.0.1"], served.server.port, served.hostKey)}\n`);

    const socksPort = await firstFreePort(DEMO_SOCKS_PORT, PORTS_TO_TRY);
    log.info(`Demo: safetunnel serve on 127.0.0.1:${served.server.port} (throwaway keys in ${dir}), and a tunnel through it:`);
    const tunnel = parseTunnelArgs([
      "-N",
      "-D",
      `127.0.0.1:${socksPort}`,
      "-F",
      "none",
      "-i",
      files.clientKey,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "IdentityAgent=none",
      "-o",
      `UserKnownHostsFile=${files.knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=none",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "-p",
      String(served.server.port),
      ...(plan.json ? ["--json"] : []),
      ...(plan.verbosity > 0 ? [`-${"v".repeat(plan.verbosity)}`] : []),
      "demo@127.0.0.1",
    ]);
    if (tunnel.command !== "tunnel") throw new TunnelError("INTERNAL", "demo: the tunnel's own command line did not parse");
    // Printed right after the tunnel's own "listening" line, so the set-up never promises a port that is not there.
    let told = false;
    const tellSetup = (): void => {
      if (told) return;
      told = true;
      log.info(clientSetupHelp({ host: "127.0.0.1", port: socksPort }));
      log.info(`Try it: curl --socks5-hostname 127.0.0.1:${socksPort} https://example.org/ (names are resolved by the serve end). Ctrl-C stops the demo.`);
    };
    const tunnelLog: Logger = {
      get verbosity() {
        return log.verbosity;
      },
      error: (message, fields) => log.error(message, fields),
      warn: (message, fields) => log.warn(message, fields),
      info: (message, fields) => {
        log.info(message, fields);
        if (fields?.["event"] === "listening") tellSetup();
      },
      debug: (depth, message, fields) => log.debug(depth, message, fields),
      debugEnabled: (depth) => log.debugEnabled(depth),
    };
    let status: number;
    try {
      status = await runTunnel(tunnel, { ...run, log: tunnelLog });
    } catch (err) {
      stopIfInterrupted();
      throw err;
    }
    log.info(`Demo server: ${serveSummary(served.stats)}.`);
    return status;
  } finally {
    await stopServe?.();
    await rm(dir, { recursive: true, force: true });
  }
}

async function writePrivate(file: string, text: string): Promise<void> {
  const handle = await open(file, "wx", 0o600);
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

/** The first of `count` ports from `first` that 127.0.0.1 can bind now. */
async function firstFreePort(first: number, count: number): Promise<number> {
  for (let port = first; port < first + count; port++) {
    if (await canBind(port)) return port;
  }
  throw new TunnelError("PORT_IN_USE", `demo: ports ${first}-${first + count - 1} on 127.0.0.1 are all in use; stop what holds them, or run a real tunnel with -D on a free port.`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host: "127.0.0.1", port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}
