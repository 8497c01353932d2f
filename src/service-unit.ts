/**
 * `safetunnel --print-unit ...`: a systemd user unit (systemd.service(5))
 * that runs the same tunnel at login and brings it back if it ever exits
 * with an error. It runs in the foreground (systemd supervises it, so no
 * -f) with nobody at a terminal, so it never prompts (BatchMode=yes) and a
 * forward that cannot listen is a failure systemd retries
 * (ExitOnForwardFailure=yes). Pure: the command line in, the unit's text out.
 */

/** What the unit runs: this program (as selfCommand gives it) and the tunnel's words. */
export interface UnitCommand {
  /** How to run this program: the binary, or node and its script. */
  program: readonly string[];
  /** The tunnel's command line without -f and --print-unit. */
  args: readonly string[];
}

/**
 * One word of ExecStart, quoted as systemd.service(5) "Command lines" reads
 * it: `%` is a specifier (written `%%`), `$` expands variables (`$$`), and a
 * word with a space, quote or backslash goes in double quotes with C escapes.
 *
 * @example
 * execWord("/home/me/My Tunnels/t.cjs") // '"/home/me/My Tunnels/t.cjs"'
 * execWord("50%") // "50%%"
 */
export function execWord(word: string): string {
  const escaped = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (escaped !== "" && /^[A-Za-z0-9_@%+=:,./~^-]+$/.test(escaped)) return escaped;
  const inner = escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\t/g, "\\t");
  return `"${inner}"`;
}

/**
 * The tunnel's words for the unit: `-f` dropped wherever it stands (alone or
 * in a cluster such as `-fN`), `-N` added when missing, and BatchMode and
 * ExitOnForwardFailure set first: ssh's first value wins, so a unit always
 * has them, whatever `-o` the command line had.
 *
 * @example
 * unitArgs(["-fN", "-D", "9001", "home"]) // ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-D", "9001", "home"]
 */
export function unitArgs(args: readonly string[]): string[] {
  const kept: string[] = [];
  let hasN = false;
  let optionsDone = false;
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (optionsDone || !word.startsWith("-") || word === "-" || word.startsWith("--")) {
      kept.push(word);
      if (word === "--") optionsDone = true;
      else if (word === "--pid-file" || word === "--allow-ip" || word === "--allow-users" || word === "--socks-auth" || word === "--max-connections") {
        if (i + 1 < args.length) kept.push(args[++i]!);
      }
      continue;
    }
    // A cluster of short flags: drop f, keep the rest; a flag that takes a value ends the cluster.
    let rebuilt = "-";
    let takesNext = false;
    for (let j = 1; j < word.length; j++) {
      const flag = word[j]!;
      if (FLAGS_WITH_VALUE.has(flag)) {
        rebuilt += word.slice(j);
        takesNext = j === word.length - 1;
        break;
      }
      if (flag === "N") hasN = true;
      if (flag !== "f") rebuilt += flag;
    }
    if (rebuilt !== "-") kept.push(rebuilt);
    if (takesNext && i + 1 < args.length) kept.push(args[++i]!);
  }
  return ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", ...(hasN ? [] : ["-N"]), ...kept];
}

/** ssh(1)'s flags that take a value (as cli/tunnel-args.ts reads them). */
const FLAGS_WITH_VALUE = new Set("BbcDEeFIiJLlmOoPpQRSWw".split(""));

/**
 * @example
 * systemdUnit({ program: ["/usr/local/bin/safetunnel"], args: ["-D", "9001", "home"] })
 * // "[Unit]\nDescription=safetunnel -D 9001 home\n..."
 */
export function systemdUnit(command: UnitCommand): string {
  const args = unitArgs(command.args);
  // The user's words, as the unit runs them (without the two options every unit gets).
  const description = ["safetunnel", ...args.slice(4)].join(" ").replace(/%/g, "%%");
  return [
    "# A systemd user unit for this tunnel. Save it as",
    "#   ~/.config/systemd/user/safetunnel.service",
    "# then: systemctl --user daemon-reload && systemctl --user enable --now safetunnel",
    "# It runs with nobody at a terminal: the server's host key must already be in",
    "# known_hosts and the key must need no passphrase, or be in an agent the unit",
    "# can reach (systemctl --user import-environment SSH_AUTH_SOCK).",
    "# Its log: journalctl --user -u safetunnel",
    "[Unit]",
    // No network-online.target: a user manager has none, and a first connection that fails is retried (Restart=).
    `Description=${description}`,
    "",
    "[Service]",
    `ExecStart=${[...command.program, ...args].map(execWord).join(" ")}`,
    // The tunnel reconnects by itself; a failure it gives up on (exit 255) is retried after a pause.
    "Restart=on-failure",
    "RestartSec=30",
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}
