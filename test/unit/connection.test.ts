/**
 * Opening SSH connections without a network: the TCP error mapping and the
 * names refused before any packet (transport.ts), which error of a failed
 * handshake is reported and how (handshake-failure.ts), and connectChain
 * (connection.ts) against servers on loopback that misbehave on purpose: a
 * plain TCP server that says nothing or hangs up, and in-process ssh2 servers
 * that refuse every login, offer no cipher we speak, refuse to open a
 * channel, or change their host key at a re-key. Every message is pinned
 * exactly; timeouts are inputs, never measured.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Connection, ParsedKey, Server as Ssh2Server, ServerConfig } from "ssh2";
import { TunnelError } from "../../src/errors.ts";
import { createLogger } from "../../src/log.ts";
import type { HopSettings } from "../../src/config/settings.ts";
import { connectChain } from "../../src/ssh/connection.ts";
import { HandshakeFailure, type AuthOutcome } from "../../src/ssh/handshake-failure.ts";
import { openTcpSocket, tcpConnectError, type TcpTarget } from "../../src/ssh/transport.ts";
import { rejection } from "../helpers/rejection.ts";
import { closedPort } from "../helpers/targets.ts";
import { waitFor } from "../helpers/wait.ts";

type Ssh2 = typeof import("ssh2");

let ssh2: Ssh2;
let dir = "";
/** The in-process servers' host key, and a second one for the re-key test. */
let hostKey: { private: string; public: string };
let otherHostKey: { private: string; public: string };
const toStop: { stop(): Promise<void> }[] = [];

before(async () => {
  // ssh2 is CommonJS: Node's ESM loader only sees `module.exports` as the default export.
  ssh2 = ((await import("ssh2")) as unknown as { default: Ssh2 }).default;
  dir = await mkdtemp(join(tmpdir(), "safetunnel-connection-"));
  hostKey = ssh2.utils.generateKeyPairSync("ed25519");
  otherHostKey = ssh2.utils.generateKeyPairSync("ed25519");
});

after(async () => {
  for (const server of toStop) await server.stop();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** A logger that keeps every line; verbosity 1 shows debug1 lines as ssh -v does. */
function capture(verbosity = 0): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ verbosity, write: (line) => lines.push(line) }), lines };
}

let hopCount = 0;

/**
 * Settings for 127.0.0.1:port: no keys, no agent, BatchMode (nothing is ever
 * asked), and a known_hosts of its own that holds the in-process servers' key.
 */
async function hopTo(port: number, overrides: Partial<HopSettings> = {}): Promise<HopSettings> {
  const knownHosts = join(dir, `known_hosts-${++hopCount}`);
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey.public.split(" ").slice(0, 2).join(" ")}\n`);
  return {
    alias: `hop${hopCount}`,
    hostname: "127.0.0.1",
    port,
    user: "tester",
    addressFamily: "any",
    connectTimeoutMs: undefined,
    serverAliveIntervalMs: 0,
    serverAliveCountMax: 3,
    hostKey: { host: "127.0.0.1", port, userKnownHostsFiles: [knownHosts], globalKnownHostsFiles: [], strict: "yes", hashKnownHosts: undefined, batchMode: true },
    auth: { identityFiles: [], identitiesOnly: false, agent: undefined, batchMode: true, passwordPrompts: 3, preferredAuthentications: undefined },
    ...overrides,
  };
}

function deps(log: ReturnType<typeof createLogger>): Parameters<typeof connectChain>[1] {
  return { prompt: async () => assert.fail("nothing may be asked under BatchMode"), log };
}

function assertError(err: TunnelError, code: string, message: string): void {
  assert.equal(err.message, message);
  assert.equal(err.code, code);
  assert.equal(err.exitCode, 255);
}

/** A loopback TCP server doing `onSocket` with each connection and nothing else; counts what it accepted. */
async function tcpServer(onSocket: (socket: Socket) => void): Promise<{ port: number; accepted: number }> {
  const accepted: Socket[] = [];
  const server: NetServer = createServer((socket) => {
    accepted.push(socket.on("error", () => {}));
    onSocket(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  toStop.push({
    async stop() {
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return {
    port: (server.address() as { port: number }).port,
    get accepted() {
      return accepted.length;
    },
  };
}

interface SshServer {
  port: number;
  connections: Connection[];
  /** Every connection's end, in order. */
  closed: Promise<void>[];
}

/** An in-process ssh2 server on loopback with `hostKey`, handing every connection to `onConnection`. */
async function sshServer(onConnection: (conn: Connection) => void, config: Partial<ServerConfig> = {}): Promise<SshServer> {
  const state: SshServer = { port: 0, connections: [], closed: [] };
  const server: Ssh2Server = new ssh2.Server({ hostKeys: [hostKey.private], ...config }, (conn) => {
    state.connections.push(conn);
    state.closed.push(new Promise((resolve) => conn.once("close", () => resolve())));
    // A client going away resets the socket; unhandled, that would end this test process.
    conn.on("error", () => {});
    onConnection(conn);
  });
  server.on("error", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.port = (server.address() as { port: number }).port;
  toStop.push({
    async stop() {
      for (const conn of state.connections) conn.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return state;
}

/** Lets everyone in without credentials ("none"), as a jump host under test needs. */
function acceptAnyone(conn: Connection): void {
  conn.on("authentication", (ctx) => ctx.accept());
}

const AUTH_HINT = "load a key into ssh-agent or pass one with -i, and check the user name (-l).";

describe("tcpConnectError: ssh's words for a failed TCP connect, and what to check", () => {
  const target: TcpTarget = { hostname: "gw.example", port: 2222, addressFamily: "any", connectTimeoutMs: undefined };
  const errno = (code: string, message = `connect ${code}`): NodeJS.ErrnoException => Object.assign(new Error(message), { code });

  for (const code of ["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME"]) {
    test(`${code} is HOST_UNREACHABLE: Could not resolve hostname`, () => {
      assertError(
        tcpConnectError(target, errno(code)),
        "HOST_UNREACHABLE",
        "Could not resolve hostname gw.example: Name or service not known; check the spelling or the HostName in your ssh config.",
      );
    });
  }

  const cases: [string, string, string][] = [
    ["ECONNREFUSED", "HOST_UNREACHABLE", "connect to host gw.example port 2222: Connection refused; is sshd running there, and is the port (-p) right?"],
    ["ETIMEDOUT", "CONNECT_TIMEOUT", "connect to host gw.example port 2222: Connection timed out; check the address and that the network lets SSH through."],
    ["EHOSTUNREACH", "HOST_UNREACHABLE", "connect to host gw.example port 2222: No route to host; check the address and your network."],
    ["ENETUNREACH", "HOST_UNREACHABLE", "connect to host gw.example port 2222: Network is unreachable; check the address and your network."],
  ];
  for (const [code, tunnelCode, message] of cases) {
    test(`${code} is ${tunnelCode}: ${message.split(": ")[1]!.split(";")[0]}`, () => {
      assertError(tcpConnectError(target, errno(code)), tunnelCode, message);
    });
  }

  test("any other error keeps the system's own text after 'connect to host H port P'", () => {
    assertError(tcpConnectError(target, errno("EACCES", "connect EACCES 192.0.2.1:2222")), "HOST_UNREACHABLE", "connect to host gw.example port 2222: connect EACCES 192.0.2.1:2222");
  });
});

describe("openTcpSocket", () => {
  const target = (hostname: string, addressFamily: TcpTarget["addressFamily"], port = 22): TcpTarget => ({ hostname, port, addressFamily, connectTimeoutMs: undefined });

  const refusals: [string, TcpTarget, string][] = [
    ["-4 with an IPv6 literal", target("::1", "inet"), "::1 is an IPv6 address but -4 (AddressFamily inet) was asked for: Address family for hostname not supported; drop -4 or give an IPv4 address."],
    ["-6 with an IPv4 literal", target("127.0.0.1", "inet6"), "127.0.0.1 is an IPv4 address but -6 (AddressFamily inet6) was asked for: Address family for hostname not supported; drop -6 or give an IPv6 address."],
    ["a .onion name", target("duskgytldkxiuqc6.onion", "any"), "duskgytldkxiuqc6.onion is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor."],
    ["a .ONION. name (any case, trailing dot)", target("Hidden.ONION.", "inet"), "Hidden.ONION. is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor."],
  ];
  for (const [what, tcpTarget, message] of refusals) {
    test(`${what} is refused with HOST_UNREACHABLE before any lookup or connect`, async () => {
      const { log, lines } = capture(1);
      assertError(await rejection(openTcpSocket(tcpTarget, log), TunnelError), "HOST_UNREACHABLE", message);
      assert.deepEqual(lines, [], "no 'Connecting to' line: nothing was tried");
    });
  }

  test("-4 with an IPv4 literal connects", async () => {
    const server = await tcpServer(() => {});
    const { log, lines } = capture(1);
    const sock = await openTcpSocket(target("127.0.0.1", "inet", server.port), log);
    sock.destroy();
    assert.deepEqual(lines, [`debug1: Connecting to 127.0.0.1 port ${server.port}.`]);
  });

  test("a port nobody listens on is 'Connection refused' (ECONNREFUSED from a real connect)", async () => {
    const port = await closedPort();
    const { log } = capture();
    assertError(
      await rejection(openTcpSocket(target("127.0.0.1", "any", port), log), TunnelError),
      "HOST_UNREACHABLE",
      `connect to host 127.0.0.1 port ${port}: Connection refused; is sshd running there, and is the port (-p) right?`,
    );
  });
});

describe("HandshakeFailure: which of ssh2's errors is reported", () => {
  const hop = { user: "alice", hostname: "gw.example", port: 2222 };
  const auth = (methods: string[], cancelled?: TunnelError): AuthOutcome => ({ cancelled: () => cancelled, serverMethods: () => methods });
  const ssh2Error = (message: string, level?: string): Error & { level?: string } => Object.assign(new Error(message), level === undefined ? {} : { level });
  const authEnd = (): Error => ssh2Error("All configured authentication methods failed", "client-authentication");

  test("the end of authentication is Permission denied with the methods the server allowed last", () => {
    const failure = new HandshakeFailure();
    failure.record(authEnd());
    assertError(failure.explain(hop, auth(["publickey", "password"])), "AUTH_FAILED", `alice@gw.example: Permission denied (publickey,password); ${AUTH_HINT}`);
  });

  test("Permission denied says (publickey) when the server never named its methods", () => {
    const failure = new HandshakeFailure();
    failure.record(authEnd());
    assertError(failure.explain(hop, auth([])), "AUTH_FAILED", `alice@gw.example: Permission denied (publickey); ${AUTH_HINT}`);
  });

  test("the end of authentication wins over an earlier error; any other later error is an echo of the first", () => {
    const failure = new HandshakeFailure();
    failure.record(ssh2Error("Cannot parse privateKey: Unsupported key format", "client-authentication"));
    failure.record(authEnd());
    failure.record(ssh2Error("read ECONNRESET", "client-socket"));
    assertError(failure.explain(hop, auth(["publickey"])), "AUTH_FAILED", `alice@gw.example: Permission denied (publickey); ${AUTH_HINT}`);
  });

  test("a failed negotiation is 'Unable to negotiate with H port P', and the ECONNRESET after it is not reported", () => {
    const failure = new HandshakeFailure();
    failure.record(ssh2Error("Handshake failed: no matching host key format", "handshake"));
    failure.record(ssh2Error("read ECONNRESET", "client-socket"));
    assertError(failure.explain(hop, auth([])), "SSH_DISCONNECTED", "Unable to negotiate with gw.example port 2222: Handshake failed: no matching host key format");
  });

  test("any other first error is 'Connection to H port P closed', its control characters escaped so the server cannot forge a line", () => {
    const failure = new HandshakeFailure();
    failure.record(ssh2Error("Too many connections\r\nsafetunnel: all good", "protocol"));
    assertError(failure.explain(hop, auth([])), "SSH_DISCONNECTED", "Connection to gw.example port 2222 closed: Too many connections\\x0d\\nsafetunnel: all good");
  });

  test("no error at all is 'connection closed during the SSH handshake'", () => {
    assertError(new HandshakeFailure().explain(hop, auth([])), "SSH_DISCONNECTED", "Connection to gw.example port 2222 closed: connection closed during the SSH handshake");
  });

  test("a reason of our own (the first given) beats a cancelled prompt, which beats ssh2's errors", () => {
    const ours = new TunnelError("HOST_KEY_CHANGED", "changed");
    const cancelled = new TunnelError("CANCELLED", "cancelled");
    const failure = new HandshakeFailure();
    failure.record(ssh2Error("Host denied (verification failed)", "handshake"));
    assert.equal(failure.explain(hop, auth([], cancelled)), cancelled);
    failure.refuse(ours);
    failure.refuse(new TunnelError("CONNECT_TIMEOUT", "later"));
    assert.equal(failure.explain(hop, auth([], cancelled)), ours);
  });
});

describe("connectChain against servers that fail the handshake", () => {
  test("a TCP server that accepts and says nothing: ConnectTimeout ends it with CONNECT_TIMEOUT 'timed out during banner exchange'", async () => {
    const server = await tcpServer(() => {});
    const hop = await hopTo(server.port, { connectTimeoutMs: 200 });
    const { log } = capture();
    assertError(
      await rejection(connectChain([hop], deps(log)), TunnelError),
      "CONNECT_TIMEOUT",
      `Connection to 127.0.0.1 port ${server.port} timed out during banner exchange (ConnectTimeout 0.2 s); is that an SSH server?`,
    );
  });

  for (const [how, onSocket] of [
    ["closes the connection at once", (socket: Socket) => socket.resume().end()],
    ["resets the connection at once", (socket: Socket) => socket.destroy()],
  ] as const) {
    // Should ssh2 get the socket late, the close goes unseen and this hangs: the test timeout makes that a failure.
    test(`a server that ${how} gives SSH_DISCONNECTED naming the host and port, without waiting for a timeout`, { timeout: 10_000 }, async () => {
      const server = await tcpServer(onSocket);
      // No ConnectTimeout: only the close itself can end this attempt.
      const hop = await hopTo(server.port);
      const { log } = capture();
      assertError(
        await rejection(connectChain([hop], deps(log)), TunnelError),
        "SSH_DISCONNECTED",
        `Connection to 127.0.0.1 port ${server.port} closed: Connection lost before handshake`,
      );
      assert.equal(server.accepted, 1);
    });
  }

  test("a server that refuses every login: AUTH_FAILED, Permission denied with the methods it allows", async () => {
    const server = await sshServer((conn) => conn.on("authentication", (ctx) => ctx.reject(["publickey", "keyboard-interactive"])));
    const hop = await hopTo(server.port);
    const { log, lines } = capture();
    assertError(await rejection(connectChain([hop], deps(log)), TunnelError), "AUTH_FAILED", `tester@127.0.0.1: Permission denied (publickey,keyboard-interactive); ${AUTH_HINT}`);
    assert.deepEqual(lines, []);
  });

  test("an agent that cannot be reached is a debug1 line only: the error is still Permission denied", async () => {
    const server = await sshServer((conn) => conn.on("authentication", (ctx) => ctx.reject(["publickey"])));
    const agent = join(dir, "no-such-agent.sock");
    const base = await hopTo(server.port);
    const hop = { ...base, auth: { ...base.auth, agent } };
    const quiet = capture(0);
    assertError(await rejection(connectChain([hop], deps(quiet.log)), TunnelError), "AUTH_FAILED", `tester@127.0.0.1: Permission denied (publickey); ${AUTH_HINT}`);
    assert.deepEqual(quiet.lines, []);

    const verbose = capture(1);
    assertError(await rejection(connectChain([hop], deps(verbose.log)), TunnelError), "AUTH_FAILED", `tester@127.0.0.1: Permission denied (publickey); ${AUTH_HINT}`);
    assert.ok(verbose.lines.includes(`debug1: Offering keys from the agent at ${agent}`), verbose.lines.join("\n"));
    assert.ok(verbose.lines.includes("debug1: agent: Failed to connect to agent"), verbose.lines.join("\n"));
  });

  test("a server offering only a cipher we do not: SSH_DISCONNECTED 'Unable to negotiate with H port P'", async () => {
    const server = await sshServer(() => {}, { algorithms: { cipher: ["aes128-cbc"] } });
    const hop = await hopTo(server.port);
    const { log } = capture();
    assertError(await rejection(connectChain([hop], deps(log)), TunnelError), "SSH_DISCONNECTED", `Unable to negotiate with 127.0.0.1 port ${server.port}: Handshake failed: no matching C->S cipher`);
  });

  test("a host key refused by the check is the reported cause, not ssh2's 'Host denied', and the socket is closed", async () => {
    const server = await sshServer(acceptAnyone);
    const hop = await hopTo(server.port);
    await writeFile(hop.hostKey.userKnownHostsFiles[0]!, "");
    const { log } = capture();
    const err = await rejection(connectChain([hop], deps(log)), TunnelError);
    assert.equal(err.code, "HOST_KEY_UNKNOWN");
    assert.match(err.message, /^No ED25519 host key is known for \[127\.0\.0\.1\]:\d+ and you have requested strict checking\. Host key verification failed\./);
    await Promise.all(server.closed);
  });
});

describe("connectChain with jump hosts", () => {
  test("a jump host that cannot be reached is named by its alias: 'jump host gw: connect to host ...'", async () => {
    const port = await closedPort();
    const jump = await hopTo(port, { alias: "gw" });
    const destination = await hopTo(22, { hostname: "10.1.2.3" });
    const { log } = capture();
    assertError(
      await rejection(connectChain([jump, destination], deps(log)), TunnelError),
      "HOST_UNREACHABLE",
      `jump host gw: connect to host 127.0.0.1 port ${port}: Connection refused; is sshd running there, and is the port (-p) right?`,
    );
  });

  test("a jump host's refusal before any connect is named too; the destination's own error is not", async () => {
    const onion = await hopTo(22, { alias: "tor-gw", hostname: "duskgytldkxiuqc6.onion" });
    const { log } = capture();
    assertError(
      await rejection(connectChain([onion, await hopTo(22)], deps(log)), TunnelError),
      "HOST_UNREACHABLE",
      "jump host tor-gw: duskgytldkxiuqc6.onion is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor.",
    );
    assertError(
      await rejection(connectChain([await hopTo(22, { alias: "tor-dest", hostname: "duskgytldkxiuqc6.onion" })], deps(log)), TunnelError),
      "HOST_UNREACHABLE",
      "duskgytldkxiuqc6.onion is a Tor onion address: it cannot be resolved or reached directly (and must not be looked up in DNS); reach it with ProxyJump through a host that runs Tor.",
    );
  });

  test("a jump host that refuses the channel to the destination: HOST_UNREACHABLE, and the jump host's connection is closed", async () => {
    const server = await sshServer((conn) => {
      acceptAnyone(conn);
      conn.on("tcpip", (_accept, reject) => reject());
    });
    const jump = await hopTo(server.port, { alias: "gw" });
    const destination = await hopTo(22, { hostname: "10.1.2.3" });
    const { log } = capture();
    assertError(
      await rejection(connectChain([jump, destination], deps(log)), TunnelError),
      "HOST_UNREACHABLE",
      "jump host could not open a channel to 10.1.2.3 port 22: the server gave no reason; check the destination's name and port as the jump host sees them.",
    );
    await Promise.all(server.closed);
  });

  test("through a jump host that forwards to the destination, the chain connects, closes, and connects again with the same settings", async () => {
    const destinationServer = await sshServer(acceptAnyone);
    const channelRequests: string[] = [];
    const jumpServer = await sshServer((conn) => {
      acceptAnyone(conn);
      conn.on("tcpip", (accept, _reject, info) => {
        channelRequests.push(`${info.destIP}:${info.destPort} from ${info.srcIP}:${info.srcPort}`);
        const channel = accept();
        const upstream = connect(destinationServer.port, "127.0.0.1");
        upstream.on("error", () => channel.destroy());
        channel.on("error", () => upstream.destroy());
        channel.pipe(upstream).pipe(channel);
      });
    });
    const hops = [await hopTo(jumpServer.port, { alias: "gw" }), await hopTo(destinationServer.port)];
    const { log } = capture();

    for (const round of [1, 2]) {
      const chain = await connectChain(hops, deps(log));
      assert.equal(jumpServer.connections.length, round);
      assert.equal(destinationServer.connections.length, round);
      await chain.close();
      await Promise.all([...jumpServer.closed, ...destinationServer.closed]);
    }
    // ssh -W's originator: 127.0.0.1 port 0.
    assert.deepEqual(channelRequests, [`127.0.0.1:${destinationServer.port} from 127.0.0.1:0`, `127.0.0.1:${destinationServer.port} from 127.0.0.1:0`]);
  });
});

describe("connectChain after login", () => {
  test("a re-key presenting another host key ends the connection, with an error line saying so", async () => {
    let swapKey: (() => void) | undefined;
    const server = await sshServer((conn) => {
      acceptAnyone(conn);
      conn.once("ready", () => {
        // ssh2 keeps the server's host keys in its protocol object; a re-key
        // signs with whatever is there by then (RFC 4253 section 9).
        swapKey = () => {
          const keys = (conn as unknown as { _protocol: { _hostKeys: Record<string, ParsedKey> } })._protocol._hostKeys;
          keys["ssh-ed25519"] = ssh2.utils.parseKey(otherHostKey.private) as ParsedKey;
          conn.rekey();
        };
      });
    });
    const hop = await hopTo(server.port);
    const { log, lines } = capture();
    const chain = await connectChain([hop], deps(log));
    // Not events.once: it would reject at the "Host denied" error ssh2 emits before closing.
    const closed = new Promise<void>((resolve) => chain.client.once("close", () => resolve()));
    // The client's "ready" may come before the server's: wait for the server's side of the login.
    await waitFor(() => swapKey !== undefined, "the server to see the login");
    swapKey!();
    await closed;
    assert.deepEqual(lines, ["127.0.0.1 presented a different host key while re-keying; disconnecting. Host key verification failed."]);
    await chain.close();
  });

  test("a re-key with the same host key keeps the connection, without reading known_hosts again", async () => {
    let serverReady = false;
    const server = await sshServer((conn) => {
      acceptAnyone(conn);
      conn.once("ready", () => (serverReady = true));
      conn.on("session", (accept) => {
        const session = accept();
        session.on("exec", (acceptExec) => {
          const stream = acceptExec();
          stream.exit(0);
          stream.end("done\n");
        });
      });
    });
    const hop = await hopTo(server.port);
    const { log, lines } = capture();
    const chain = await connectChain([hop], deps(log));
    // Checked again under StrictHostKeyChecking=yes, the key would now be unknown.
    await writeFile(hop.hostKey.userKnownHostsFiles[0]!, "");
    await waitFor(() => serverReady, "the server to see the login");
    const conn = server.connections[0]!;
    await new Promise<void>((resolve, reject) => {
      conn.once("close", () => reject(new Error("the client hung up during the re-key")));
      conn.rekey(() => resolve());
    });
    // Still usable after the re-key: a command runs and its output arrives.
    const output = await new Promise<string>((resolve, reject) => {
      chain.client.once("close", () => reject(new Error("the connection closed")));
      chain.client.exec("anything", (err, stream) => {
        if (err) return reject(err);
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("close", () => resolve(Buffer.concat(chunks).toString()));
      });
    });
    assert.equal(output, "done\n");
    assert.deepEqual(lines, []);
    await chain.close();
  });
});
