/**
 * `safetunnel --print-unit ...`: a systemd user unit (systemd.service(5))
 * that runs the same tunnel at login and brings it back if it ever exits
 * with an error. It runs in the foreground (systemd supervises it, so no
 * -f) with nobody at a terminal, so it never prompts (BatchMode=yes) and a
 * forward that cannot listen is a failure systemd retries
 * (ExitOnForwardFailure=yes). Pure: the command line in, the unit's text out.
 */
import { TunnelError } from "./errors.ts";
import { LONG_WITH_VALUE, WITH_VALUE } from "./cli/tunnel-args.ts";

/** What every unit's tunnel gets first (ssh's first value wins): no waiting for an answer, and a forward that cannot listen is a failure. */
const UNIT_OPTIONS = ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"];

/** What the unit runs: this program (as selfCommand gives it) and the tunnel's words. */
export interface UnitCommand {
  /** How to run this program: the binary, or node and its script. */
  program: readonly string[];
  /** The tunnel's command line without -f and --print-unit. */
  args: readonly string[];
  /**
   * Makes a file name typed relative to the current folder absolute: a user
   * unit runs in the home folder, not where --print-unit was typed.
   * @default names kept as typed
   */
  absolute?: (path: string) => string;
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
export function unitArgs(args: readonly string[], absolute: (path: string) => string = (path) => path): string[] {
  const kept: string[] = [];
  let hasN = false;
  let optionsDone = false;
  // A file name as the unit must give it: absolute unless it starts at the home folder.
  const file = (path: string): string => (path.startsWith("/") || path.startsWith("~") || path === "none" ? path : absolute(path));
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (optionsDone || !word.startsWith("-") || word === "-") {
      kept.push(word);
      continue;
    }
    if (word === "--") {
      optionsDone = true;
      kept.push(word);
      continue;
    }
    if (word.startsWith("--")) {
      const equals = word.indexOf("=");
      const name = equals < 0 ? word : word.slice(0, equals);
      if (!LONG_WITH_VALUE.has(name)) {
        kept.push(word);
        continue;
      }
      const value = equals < 0 ? args[++i] : word.slice(equals + 1);
      if (value === undefined) {
        kept.push(word);
        continue;
      }
      kept.push(name, longValue(name, value, file));
      continue;
    }
    // A cluster of short flags: drop f, keep the rest; a flag that takes a value ends the cluster.
    let rebuilt = "-";
    for (let j = 1; j < word.length; j++) {
      const flag = word[j]!;
      if (WITH_VALUE.has(flag)) {
        const attached = word.slice(j + 1);
        const value = attached !== "" ? attached : args[++i];
        if (rebuilt !== "-") kept.push(rebuilt);
        rebuilt = "-";
        kept.push(`-${flag}`);
        if (value !== undefined) kept.push(FILE_FLAGS.has(flag) ? file(value) : value);
        break;
      }
      if (flag === "N") hasN = true;
      if (flag !== "f") rebuilt += flag;
    }
    if (rebuilt !== "-") kept.push(rebuilt);
  }
  return [...UNIT_OPTIONS, ...(hasN ? [] : ["-N"]), ...kept];
}

/** Of the flags that take a value, the ones whose value is a file: -E log, -F config, -i identity. */
const FILE_FLAGS = new Set(["E", "F", "i"]);

/**
 * A long option's value for the unit: --pid-file's file made absolute;
 * --socks-auth only in its USER:@FILE form, since the unit file and the
 * journal's "Started ..." line would otherwise hold the password.
 */
function longValue(name: string, value: string, file: (path: string) => string): string {
  if (name === "--pid-file") return file(value);
  if (name !== "--socks-auth") return value;
  const at = value.indexOf(":@");
  if (at < 0) {
    throw new TunnelError(
      "USAGE",
      "--print-unit: --socks-auth with the password itself would put it in the unit file and the journal; give it as USER:@FILE (the password on FILE's first line)",
    );
  }
  return `${value.slice(0, at)}:@${file(value.slice(at + 2))}`;
}

/**
 * @example
 * systemdUnit({ program: ["/usr/local/bin/safetunnel"], args: ["-D", "9001", "home"] })
 * // "[Unit]\nDescription=safetunnel -D 9001 home\n..."
 */
export function systemdUnit(command: UnitCommand): string {
  const args = unitArgs(command.args, command.absolute);
  // The user's words, as the unit runs them (without the options every unit gets).
  const description = ["safetunnel", ...args.slice(UNIT_OPTIONS.length)].join(" ").replace(/%/g, "%%");
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
