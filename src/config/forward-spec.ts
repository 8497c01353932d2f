/**
 * -D, -L and -R specifications as plain data, parsed the way OpenSSH's
 * readconf.c `parse_forward` does (fields split on ':', IPv6 and paths in
 * brackets, '\' escapes, Unix socket paths), plus the '/' separator that
 * ssh(1) once documented for IPv6 (`-L port/host/hostport`). OpenSSH 9.x
 * rejects the '/' form; we accept it for all three kinds because tutorials
 * written for older OpenSSH still tell users to type it.
 */
import { TunnelError, echoValue } from "../errors.ts";
import { formatAddress, hostPort, isLoopbackAddress, mappedIPv4, parseIPv6, parsePortNumber, unbracket } from "../address.ts";

export type ForwardKind = "dynamic" | "local" | "remote";

/** Where to listen. `address` is null when not given; "" (`:9001`) and "*" (`*:9001`) both mean all interfaces, kept as the user wrote them. */
export interface BindSpec {
  address: string | null;
  port: number;
}

/** A Unix-domain socket path. */
export interface PathSpec {
  path: string;
}

export interface HostPort {
  host: string;
  port: number;
}

export type ForwardSpec =
  | { kind: "dynamic"; listen: BindSpec | PathSpec; raw: string }
  | { kind: "local"; listen: BindSpec | PathSpec; target: HostPort | PathSpec; raw: string }
  | {
      kind: "remote";
      listen: BindSpec | PathSpec;
      /** null for `-R [bind_address:]port` alone: a remote dynamic (SOCKS) forward. */
      target: HostPort | PathSpec | null;
      raw: string;
    };

export type DynamicForwardSpec = Extract<ForwardSpec, { kind: "dynamic" }>;
export type LocalForwardSpec = Extract<ForwardSpec, { kind: "local" }>;
export type RemoteForwardSpec = Extract<ForwardSpec, { kind: "remote" }>;

/** A forward safetunnel can run: TCP ports on both sides. */
export type TcpForwardSpec =
  | { kind: "dynamic"; listen: BindSpec; raw: string }
  | { kind: "local"; listen: BindSpec; target: HostPort; raw: string }
  | {
      kind: "remote";
      listen: BindSpec;
      /** null: remote dynamic forwarding, a SOCKS proxy on the server's port whose CONNECTs go out from here (ssh(1) -R). */
      target: HostPort | null;
      raw: string;
    };

const FLAG: Record<ForwardKind, string> = { dynamic: "-D", local: "-L", remote: "-R" };

const USAGE: Record<ForwardKind, string> = {
  dynamic: "expected [bind_address:]port",
  local: "expected [bind_address:]port:host:hostport",
  remote: "expected [bind_address:]port:host:hostport or [bind_address:]port",
};

const CONFIG_KEYWORD: Record<ForwardKind, string> = {
  dynamic: "DynamicForward",
  local: "LocalForward",
  remote: "RemoteForward",
};

interface Field {
  text: string;
  /** Only in the ':' form: OpenSSH treats a field with a '/' as a path; we require it to start with '/', since '/' is also our separator. */
  isPath: boolean;
}

/** Thrown inside the parser and turned into one TunnelError naming the spec. */
class SpecProblem {
  constructor(readonly reason: string) {}
}

function fail(reason: string): never {
  throw new SpecProblem(reason);
}

/**
 * Parses one -D, -L or -R argument.
 *
 * @example
 * parseForwardSpec("local", "5900:localhost:5900");
 * // { kind: "local", listen: { address: null, port: 5900 },
 * //   target: { host: "localhost", port: 5900 }, raw: "5900:localhost:5900" }
 * parseForwardSpec("dynamic", "[::1]:9001").listen; // { address: "::1", port: 9001 }
 * parseForwardSpec("local", "8080/2001:db8::1/80").target; // { host: "2001:db8::1", port: 80 }
 */
export function parseForwardSpec(kind: "dynamic", spec: string): DynamicForwardSpec;
export function parseForwardSpec(kind: "local", spec: string): LocalForwardSpec;
export function parseForwardSpec(kind: "remote", spec: string): RemoteForwardSpec;
export function parseForwardSpec(kind: ForwardKind, spec: string): ForwardSpec;
export function parseForwardSpec(kind: ForwardKind, spec: string): ForwardSpec {
  try {
    const text = spec.trim();
    if (text === "") fail(USAGE[kind]);
    const slashForm = usesSlashSeparator(text);
    const fields = slashForm ? splitSlashFields(text) : splitColonFields(text);
    if (fields.length > (kind === "dynamic" ? 2 : 4)) {
      fail(slashForm ? USAGE[kind] : `${USAGE[kind]}; put IPv6 addresses in brackets, like [::1]:8080`);
    }
    return assignRoles(kind, fields, spec);
  } catch (err) {
    if (err instanceof SpecProblem) {
      throw new TunnelError(
        "BAD_FORWARD_SPEC",
        `Bad ${kind} forwarding specification ${echoValue(spec, "'")}: ${err.reason}`,
      );
    }
    throw err;
  }
}

/**
 * Parses the whitespace-separated ssh_config form (`LocalForward 9001 host:80`,
 * `DynamicForward 9001`, `RemoteForward 9001` for a remote dynamic forward).
 * Like readconf.c, the listen and target arguments are joined with ':' (or
 * with '/' when the user wrote the '/' form) and parsed as one spec.
 *
 * @example
 * parseForwardConfigArgs("local", ["9001", "wikileaks.org:80"]).raw; // "9001:wikileaks.org:80"
 */
export function parseForwardConfigArgs(kind: "dynamic", args: string[]): DynamicForwardSpec;
export function parseForwardConfigArgs(kind: "local", args: string[]): LocalForwardSpec;
export function parseForwardConfigArgs(kind: "remote", args: string[]): RemoteForwardSpec;
export function parseForwardConfigArgs(kind: ForwardKind, args: string[]): ForwardSpec;
export function parseForwardConfigArgs(kind: ForwardKind, args: string[]): ForwardSpec {
  const keyword = CONFIG_KEYWORD[kind];
  const shape =
    kind === "dynamic"
      ? "DynamicForward [bind_address:]port"
      : kind === "local"
        ? "LocalForward [bind_address:]port host:hostport"
        : "RemoteForward [bind_address:]port [host:hostport]";
  const given = args.filter((a) => a !== "");
  if (given.length === 0) {
    throw new TunnelError("BAD_FORWARD_SPEC", `${keyword} is missing its argument; expected ${shape}`);
  }
  const maxArgs = kind === "dynamic" ? 1 : 2;
  if (given.length > maxArgs) {
    throw new TunnelError(
      "BAD_FORWARD_SPEC",
      `${keyword} ${echoValue(given.join(" "), "'")} has too many arguments; expected ${shape}`,
    );
  }
  if (kind === "local" && given.length === 1) {
    throw new TunnelError(
      "BAD_FORWARD_SPEC",
      `${keyword} ${echoValue(given[0]!, "'")} is missing its target argument; expected ${shape}`,
    );
  }
  if (given.length === 1) return parseForwardSpec(kind, given[0]!);
  const separator = given.some(usesSlashSeparator) ? "/" : ":";
  return parseForwardSpec(kind, given.join(separator));
}

/**
 * How to show a bind in messages, in the syntax the user would type.
 *
 * @example
 * formatBind({ address: null, port: 9001 }); // "9001"
 * formatBind({ address: "::1", port: 9001 }); // "[::1]:9001"
 */
export function formatBind(b: BindSpec): string {
  return b.address === null ? String(b.port) : hostPort(b.address, b.port);
}

/**
 * The option as the user would have typed it, for messages.
 *
 * @example
 * forwardLabel(parseForwardSpec("dynamic", "0.0.0.0:9001")); // "-D 0.0.0.0:9001"
 */
export function forwardLabel(spec: ForwardSpec): string {
  return `${FLAG[spec.kind]} ${spec.raw}`;
}

/**
 * The spec as something that can run, or a BAD_FORWARD_SPEC error naming
 * what is not supported and the form to use instead. Called for every spec
 * before connecting, so an unsupported form never costs a password prompt.
 *
 * @example
 * requireTcpForward(parseForwardSpec("local", "9001:example.org:80")).kind; // "local"
 * requireTcpForward(parseForwardSpec("remote", "1080")).target; // null: remote dynamic forwarding
 * requireTcpForward(parseForwardSpec("local", "8080:/run/app.sock")); // throws: forwarding to a Unix socket is not supported
 */
export function requireTcpForward(spec: ForwardSpec): TcpForwardSpec {
  const label = forwardLabel(spec);
  const unsupported = (what: string, instead: string): never => {
    throw new TunnelError("BAD_FORWARD_SPEC", `${label}: ${what} is not supported; give ${instead}`);
  };
  const listen = isPathSpec(spec.listen) ? unsupported("listening on a Unix socket", "[bind_address:]port") : spec.listen;
  if (spec.kind === "dynamic") return { kind: "dynamic", listen, raw: spec.raw };
  const usage = "[bind_address:]port:host:hostport";
  const tcpTarget = (target: HostPort | PathSpec): HostPort => (isPathSpec(target) ? unsupported("forwarding to a Unix socket", usage) : target);
  if (spec.kind === "local") return { kind: "local", listen, target: tcpTarget(spec.target), raw: spec.raw };
  // ssh(1) -R with no host:hostport: the server listens, and we speak SOCKS on each connection it hands us.
  return { kind: "remote", listen, target: spec.target === null ? null : tcpTarget(spec.target), raw: spec.raw };
}

/**
 * Narrows a listen or target side to a Unix socket path.
 *
 * @example
 * isPathSpec(parseForwardSpec("local", "8080:/run/app.sock").target); // true
 */
export function isPathSpec(side: BindSpec | HostPort | PathSpec | null): side is PathSpec {
  return side !== null && "path" in side;
}

const LOOPBACK_HOSTS = ["127.0.0.1", "::1"];
const ALL_HOSTS = ["0.0.0.0", "::"];

/**
 * The local addresses a -D or -L listener should bind, given GatewayPorts.
 *
 * Deliberately stricter than the OpenSSH client, which binds any explicit
 * address even with GatewayPorts off: here, with GatewayPorts off, only
 * loopback addresses are honoured and anything else falls back to loopback
 * with a warning, so a typo'd `-D 0.0.0.0:9001` never opens a SOCKS proxy
 * to the network. "localhost" means both loopbacks, as in OpenSSH. Bind "::"
 * with `ipv6Only: true` so it does not collide with "0.0.0.0".
 *
 * @example
 * listenAddresses({ address: null, port: 9001 }, false); // { hosts: ["127.0.0.1", "::1"], warning: null }
 * listenAddresses({ address: "0.0.0.0", port: 9001 }, false, "-D 0.0.0.0:9001").warning;
 * // "Ignoring bind address '0.0.0.0' (all interfaces) for -D 0.0.0.0:9001: GatewayPorts is off, ..."
 */
export function listenAddresses(
  bind: BindSpec,
  gatewayPorts: boolean,
  label: string = formatBind(bind),
): { hosts: string[]; warning: string | null } {
  const address = bind.address === null ? null : unmapped(unbracket(bind.address));
  if (address === null) {
    return { hosts: gatewayPorts ? [...ALL_HOSTS] : [...LOOPBACK_HOSTS], warning: null };
  }
  if (address.toLowerCase() === "localhost") return { hosts: [...LOOPBACK_HOSTS], warning: null };
  if (gatewayPorts) {
    const all = address === "" || address === "*";
    return { hosts: all ? [...ALL_HOSTS] : [address], warning: null };
  }
  if (isLoopbackAddress(address)) return { hosts: [address], warning: null };
  const allInterfaces = ["", "*", "0.0.0.0", "::"].includes(address) ? " (all interfaces)" : "";
  return {
    hosts: [...LOOPBACK_HOSTS],
    warning:
      `Ignoring bind address ${echoValue(address, "'")}${allInterfaces} for ${label}: GatewayPorts is off, ` +
      `so listening on loopback only; pass -g (or -o GatewayPorts=yes) to listen on it.`,
  };
}

/**
 * An IPv4-mapped address (RFC 4291 section 2.5.5.2) as the IPv4 address it
 * maps: an IPv6 socket cannot bind one while it refuses IPv4 (IPV6_V6ONLY,
 * which keeps "::" apart from "0.0.0.0"), and the IPv4 socket serves it.
 */
function unmapped(address: string): string {
  const bytes = parseIPv6(address);
  const v4 = bytes === null ? null : mappedIPv4(bytes);
  return v4 === null ? address : formatAddress(v4);
}

/**
 * The '/' form is in use when the first '/' does not start a field, i.e. it
 * cannot be the start of a Unix socket path (`/tmp/s:...`, `8080:/tmp/s`,
 * `[/tmp/s]:...`).
 */
function usesSlashSeparator(text: string): boolean {
  const i = text.indexOf("/");
  if (i <= 0) return false;
  const before = text[i - 1];
  return before !== ":" && before !== "[";
}

function splitSlashFields(text: string): Field[] {
  return text.split("/").map((part) => {
    const inner = unbracket(part);
    if (inner.includes("[") || inner.includes("]")) fail(`unbalanced '[' or ']' in ${echoValue(part, "'")}`);
    return { text: inner, isPath: false };
  });
}

/** readconf.c parse_fwd_field: '[...]' protects ':' and must be followed by ':' or the end; '\' escapes one character. */
function splitColonFields(text: string): Field[] {
  const fields: Field[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === "[") {
      const close = text.indexOf("]", i + 1);
      if (close < 0) fail(`unbalanced '[' or ']' in ${echoValue(text.slice(i), "'")}`);
      const inner = text.slice(i + 1, close);
      if (inner.includes("[")) fail(`unbalanced '[' or ']' in ${echoValue(text.slice(i, close + 1), "'")}`);
      fields.push({ text: inner, isPath: inner.startsWith("/") });
      i = close + 1;
      if (i < text.length && text[i] !== ":") fail(`expected ':' after ${echoValue(text.slice(0, i), "'")}`);
    } else {
      let field = "";
      const start = i;
      while (i < text.length && text[i] !== ":") {
        let c = text[i]!;
        if (c === "\\") {
          i++;
          if (i >= text.length) fail("it ends with a lone backslash");
          c = text[i]!;
        } else if (c === "[" || c === "]") {
          fail(`unbalanced '[' or ']' in ${echoValue(text.slice(start).split(":")[0]!, "'")}`);
        }
        field += c;
        i++;
      }
      fields.push({ text: field, isPath: text[start] === "/" });
    }
    if (i >= text.length) return fields;
    i++;
  }
}

function listenPort(field: Field): number {
  return parsePort(field, 0);
}

function targetPort(field: Field): number {
  return parsePort(field, 1);
}

function parsePort(field: Field, min: 0 | 1): number {
  if (field.text === "") fail("a port is missing");
  return parsePortNumber(field.text, min) ?? fail(`port ${echoValue(field.text, "'")} is not a number from ${min} to 65535`);
}

function bindAddress(field: Field, usage: string): string {
  if (field.isPath) fail(usage);
  return field.text;
}

function targetHost(field: Field, usage: string): string {
  if (field.isPath) fail(usage);
  if (field.text === "") fail("the target host is empty");
  return field.text;
}

function assignRoles(kind: ForwardKind, fields: Field[], raw: string): ForwardSpec {
  const usage = USAGE[kind];
  const [a, b, c, d] = fields;
  if (kind === "dynamic") {
    if (fields.length === 1 && a!.isPath) return { kind, listen: { path: a!.text }, raw };
    if (fields.length === 1) return { kind, listen: { address: null, port: listenPort(a!) }, raw };
    if (fields.length === 2 && !b!.isPath) {
      return { kind, listen: { address: bindAddress(a!, usage), port: listenPort(b!) }, raw };
    }
    fail(usage);
  }

  // -L and -R share every shape; -R alone also takes the dynamic ones.
  const dynamicShape = fields.length === 1 || (fields.length === 2 && !b!.isPath);
  if (kind === "local" && dynamicShape) fail(usage);
  let listen: BindSpec | PathSpec;
  let target: HostPort | PathSpec | null;
  switch (fields.length) {
    case 1:
      listen = a!.isPath ? { path: a!.text } : { address: null, port: listenPort(a!) };
      target = null;
      break;
    case 2:
      if (a!.isPath && b!.isPath) {
        listen = { path: a!.text };
        target = { path: b!.text };
      } else if (b!.isPath) {
        listen = { address: null, port: listenPort(a!) };
        target = { path: b!.text };
      } else if (!a!.isPath) {
        // `-R host:80` is more likely a mistyped -R than a bind address with a named port.
        if (!/^[0-9]+$/.test(b!.text)) fail(usage);
        listen = { address: a!.text, port: listenPort(b!) };
        target = null;
      } else {
        fail(usage);
      }
      break;
    case 3:
      if (a!.isPath) {
        listen = { path: a!.text };
        target = { host: targetHost(b!, usage), port: targetPort(c!) };
      } else if (c!.isPath) {
        listen = { address: bindAddress(a!, usage), port: listenPort(b!) };
        target = { path: c!.text };
      } else {
        listen = { address: null, port: listenPort(a!) };
        target = { host: targetHost(b!, usage), port: targetPort(c!) };
      }
      break;
    default:
      if (fields.some((f) => f.isPath)) fail(usage);
      listen = { address: a!.text, port: listenPort(b!) };
      target = { host: targetHost(c!, usage), port: targetPort(d!) };
  }
  if (kind === "local") return { kind, listen, target: target!, raw };
  return { kind, listen, target, raw };
}
