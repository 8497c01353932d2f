/**
 * Faults only a misbehaving or instrumented server can produce. The project
 * rule is a real OpenSSH sshd for everything else; here an in-process ssh2
 * `Server` on loopback stands in, because sshd cannot be told to record the
 * authentication methods in the order they arrive, to leave a channel open
 * request unanswered, to go silent after authentication, to fail a channel
 * with a chosen RFC 4254 reason code and description, or to hang up in the
 * middle of the handshake. What OpenSSH's own ssh(1) does against the same
 * server (checked with OpenSSH 9.2) is what the CLI is held to.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { AuthContext, AuthenticationType, Connection, RejectConnection, Server as Ssh2Server, ServerChannel, TcpipRequestInfo } from "ssh2";
import { within } from "../helpers/child.ts";
import { RawClient, socks5Open, socks5Reply, socks5Request } from "../helpers/raw-socks.ts";
import { assertNoCrash, makeHomeSet, type Home, type Running, startCli, waitForExit, waitForListen } from "../helpers/run.ts";
import { makeKey, startAgent, type Agent, type KeyPair } from "../helpers/sshd.ts";
import { freePort, startEchoTarget, type EchoTarget } from "../helpers/targets.ts";
import { waitFor } from "../helpers/wait.ts";

const USER = "faultuser";
const PASSWORD = "open sesame";
const KBD_PROMPT = "Verification code: ";
const KBD_ANSWER = "not the code";

/** ssh2 is CommonJS; Node's ESM loader only sees `module.exports` as the default export. */
async function loadServerClass(): Promise<typeof Ssh2Server> {
  const mod = (await import("ssh2")) as unknown as { default: typeof import("ssh2") };
  return mod.default.Server;
}

/** The TCP socket under a server-side ssh2 connection (not in ssh2's public API). */
function rawSocket(conn: Connection): Socket {
  return (conn as unknown as { _sock: Socket })._sock;
}

/**
 * Reject a channel open with our own RFC 4254 reason code and description:
 * ssh2's `reject()` always sends CONNECT_FAILED with an empty description, so
 * swap the arguments of the one CHANNEL_OPEN_FAILURE it writes synchronously.
 */
function rejectChannel(conn: Connection, reject: RejectConnection, reason: number, description: string): void {
  type Writer = { channelOpenFail(recipient: number, reason: number, description: string): void };
  const protocol = (conn as unknown as { _protocol: Writer })._protocol;
  const original = protocol.channelOpenFail;
  protocol.channelOpenFail = (recipient: number) => original.call(protocol, recipient, reason, description);
  try {
    reject();
  } finally {
    protocol.channelOpenFail = original;
  }
}

interface Behaviour {
  /** Default: accept the first request ("none"). */
  authenticate?(ctx: AuthContext, conn: Connection): void;
  /** After USERAUTH_SUCCESS. */
  ready?(conn: Connection): void;
  /** A direct-tcpip request; default: reject it. */
  tcpip?(accept: () => ServerChannel, reject: RejectConnection, info: TcpipRequestInfo, conn: Connection): void;
  /** After key exchange, before any authentication request. */
  handshake?(conn: Connection): void;
}

interface FaultServer {
  port: number;
  /** Every SSH connection the server has seen, in order. */
  connections: Connection[];
  /** Every direct-tcpip request, in order. */
  channelRequests: TcpipRequestInfo[];
  /** `[127.0.0.1]:port ssh-ed25519 AAAA...` */
  knownHostsLine: string;
  stop(): Promise<void>;
}

let hostKey: KeyPair;

async function startFaultServer(behaviour: Behaviour): Promise<FaultServer> {
  const Server = await loadServerClass();
  const hostKeyData = await readFile(hostKey.privatePath);
  const connections: Connection[] = [];
  const channelRequests: TcpipRequestInfo[] = [];
  const sockets = new Set<Socket>();
  const server = new Server({ hostKeys: [hostKeyData] }, (conn) => {
    connections.push(conn);
    const socket = rawSocket(conn);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // The CLI going away resets the socket; unhandled, that would end this test process.
    conn.on("error", () => {});
    conn.on("handshake", () => behaviour.handshake?.(conn));
    conn.on("authentication", (ctx) => (behaviour.authenticate ? behaviour.authenticate(ctx, conn) : ctx.accept()));
    conn.on("ready", () => behaviour.ready?.(conn));
    conn.on("tcpip", (accept, reject, info) => {
      channelRequests.push(info);
      if (behaviour.tcpip) behaviour.tcpip(accept, reject, info, conn);
      else reject();
    });
  });
  server.on("error", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const [algorithm, blob] = hostKey.publicLine.split(" ");
  return {
    port,
    connections,
    channelRequests,
    knownHostsLine: `[127.0.0.1]:${port} ${algorithm} ${blob}`,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A plain TCP server that does `onSocket` with every connection and nothing else. */
async function startTcpServer(onSocket: (socket: Socket) => void): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    onSocket(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Every byte the proxy sends for a SOCKS5 CONNECT to the name host:port, up to its FIN. */
async function socks5Outcome(proxyPort: number, host: string, port: number): Promise<Buffer> {
  const client = await socks5Open(proxyPort, socks5Request(host, port));
  try {
    return await client.readToEnd(`the reply to CONNECT ${host}:${port}`);
  } finally {
    client.destroy();
  }
}

/** Every byte the proxy sends for a SOCKS4a CONNECT to host:port, up to its FIN. */
async function socks4aOutcome(proxyPort: number, host: string, port: number): Promise<Buffer> {
  const client = await RawClient.connect(proxyPort);
  const request = Buffer.concat([Buffer.from([0x04, 0x01, port >> 8, port & 0xff, 0, 0, 0, 1]), Buffer.from("fault\0", "latin1"), Buffer.from(`${host}\0`, "latin1")]);
  client.write(request);
  try {
    return await client.readToEnd(`the SOCKS4a reply to CONNECT ${host}:${port}`);
  } finally {
    client.destroy();
  }
}

function stderrLines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

let scratch: string;
let echo: EchoTarget;
const running: Running[] = [];
const servers: { stop(): Promise<void> }[] = [];
const homes = makeHomeSet();

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "safetunnel-fault-"));
  hostKey = await makeKey(scratch, "host_ed25519");
  echo = await startEchoTarget();
});

after(async () => {
  for (const cli of running) await cli.stop("SIGKILL");
  for (const server of servers) await server.stop();
  await homes.cleanup();
  await echo?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

/** A HOME whose known_hosts trusts `server` (none for undefined), and no keys. */
function trustingHome(server: { knownHostsLine: string } | undefined): Promise<Home> {
  return server === undefined ? homes.make() : homes.trusting({ knownHostsLine: () => server.knownHostsLine });
}

function start(args: string[], home: Home, env: Record<string, string> = {}): Running {
  const cli = startCli(args, { home: home.home, env });
  running.push(cli);
  return cli;
}

/** `-N -D socksPort -p serverPort ...extra faultuser@127.0.0.1` */
function tunnelArgs(socksPort: number, serverPort: number, extra: string[] = []): string[] {
  return ["-N", "-D", String(socksPort), "-p", String(serverPort), ...extra, `${USER}@127.0.0.1`];
}

/** Pipe an accepted direct-tcpip channel to the loopback echo server, whatever name it asked for. */
function pipeToEcho(channel: ServerChannel): void {
  const upstream = connect({ port: echo.port, host: "127.0.0.1" });
  upstream.on("error", () => channel.destroy());
  channel.on("error", () => upstream.destroy());
  channel.pipe(upstream).pipe(channel);
}

describe("authentication against a server that records every attempt", () => {
  let agent: Agent;
  let keyA: KeyPair;
  let keyB: KeyPair;
  let askpass: string;
  /** What each connection since the last reset tried, e.g. ["none", "publickey A", "publickey B", "keyboard-interactive", "password"]. */
  let attempts: string[][];
  /** The answers keyboard-interactive got, per connection. */
  let kbdAnswers: string[][];
  let server: FaultServer;
  const recorded = new WeakMap<Connection, { tried: string[]; answers: string[] }>();
  /** When false, the server stops offering keyboard-interactive once it has been tried, so it is tried once. */
  let offerKbdAgain = false;

  function keyName(blob: Buffer): string {
    const base64 = blob.toString("base64");
    if (base64 === keyA.publicLine.split(" ")[1]) return "A";
    if (base64 === keyB.publicLine.split(" ")[1]) return "B";
    return "unknown";
  }

  before(async () => {
    keyA = await makeKey(scratch, "keyA");
    keyB = await makeKey(scratch, "keyB");
    agent = await startAgent();
    await agent.add(keyA);
    // The prompt (argv[1]) is logged NUL-terminated; the answer depends on the prompt, as a user's would.
    askpass = join(scratch, "askpass.sh");
    await writeFile(
      askpass,
      [
        "#!/bin/sh",
        `printf '%s\\0' "$1" >> "$FAULT_PROMPT_LOG"`,
        `case "$1" in`,
        `  *"'s password: ") printf '%s\\n' '${PASSWORD}' ;;`,
        `  *) printf '%s\\n' '${KBD_ANSWER}' ;;`,
        "esac",
        "",
      ].join("\n"),
      { mode: 0o700 },
    );
    server = await startFaultServer({
      authenticate(ctx, conn) {
        let record = recorded.get(conn);
        if (record === undefined) {
          record = { tried: [], answers: [] };
          recorded.set(conn, record);
          attempts.push(record.tried);
          kbdAnswers.push(record.answers);
        }
        const { tried, answers } = record;
        const everything: AuthenticationType[] = ["publickey", "keyboard-interactive", "password"];
        const withoutKbd: AuthenticationType[] = ["publickey", "password"];
        const left = (): AuthenticationType[] => (offerKbdAgain || !tried.includes("keyboard-interactive") ? everything : withoutKbd);
        if (ctx.method === "publickey") {
          // Only the unsigned query is expected: rejecting it means the client never signs.
          tried.push(`publickey ${keyName(ctx.key.data)}${ctx.signature === undefined ? "" : " (signed)"}`);
          ctx.reject(left());
        } else if (ctx.method === "keyboard-interactive") {
          tried.push("keyboard-interactive");
          ctx.prompt([{ prompt: KBD_PROMPT, echo: false }], (responses) => {
            answers.push(...responses);
            ctx.reject(left());
          });
        } else if (ctx.method === "password") {
          tried.push("password");
          if (ctx.password === PASSWORD) ctx.accept();
          else ctx.reject(left());
        } else {
          tried.push(ctx.method);
          ctx.reject(left());
        }
      },
      tcpip(accept) {
        pipeToEcho(accept());
      },
    });
    servers.push(server);
  });

  after(async () => {
    await agent?.stop();
  });

  /** Start the CLI with the agent (key A), -i key B and the askpass script; `extra` goes before the destination. */
  async function login(extra: string[] = []): Promise<{ cli: Running; socksPort: number; promptLog: string; home: Home }> {
    attempts = [];
    kbdAnswers = [];
    const home = await trustingHome(server);
    const promptLog = join(home.home, "prompts");
    const socksPort = await freePort();
    const args = tunnelArgs(socksPort, server.port, ["-i", keyB.privatePath, ...extra]);
    const cli = start(args, home, {
      SSH_AUTH_SOCK: agent.socketPath,
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
      FAULT_PROMPT_LOG: promptLog,
    });
    return { cli, socksPort, promptLog, home };
  }

  async function promptsSeen(promptLog: string): Promise<string[]> {
    if (!existsSync(promptLog)) return [];
    return (await readFile(promptLog, "utf8")).split("\0").filter((prompt) => prompt !== "");
  }

  test("tries none, the agent's key, the -i key, keyboard-interactive, then password, and then the -D proxy works", async () => {
    offerKbdAgain = false;
    const { cli, socksPort } = await login();
    await waitForListen(socksPort, "127.0.0.1", cli);
    assert.deepEqual(attempts, [["none", "publickey A", "publickey B", "keyboard-interactive", "password"]]);
    assert.deepEqual(kbdAnswers, [[KBD_ANSWER]]);

    const client = await socks5Open(socksPort, socks5Request("echo.fault.test", 7));
    try {
      assert.deepEqual(await client.read(10, "the CONNECT reply"), socks5Reply(0x00));
      client.write("ping through the fault server");
      assert.equal((await client.read(29, "the echo")).toString(), "ping through the fault server");
    } finally {
      client.destroy();
    }
    // The name went to the server as a name: it, not this machine, resolves it.
    assert.equal(server.channelRequests.at(-1)?.destIP, "echo.fault.test");
    assert.equal(server.channelRequests.at(-1)?.destPort, 7);
    await cli.stop("SIGTERM");
  });

  test("asks askpass with OpenSSH's exact prompts: \"(user@host) \" before a keyboard-interactive prompt, \"user@host's password: \"", async () => {
    offerKbdAgain = false;
    const { cli, socksPort, promptLog } = await login();
    await waitForListen(socksPort, "127.0.0.1", cli);
    // sshconnect2.c: input_userauth_info_req() prefixes "(%s@%s) "; userauth_passwd() asks "%s@%s's password: ".
    assert.deepEqual(await promptsSeen(promptLog), [`(${USER}@127.0.0.1) ${KBD_PROMPT}`, `${USER}@127.0.0.1's password: `]);
    await cli.stop("SIGTERM");
  });

  test("names the HostName, not the Host alias, in the password prompt, as OpenSSH does", async () => {
    offerKbdAgain = false;
    attempts = [];
    kbdAnswers = [];
    const home = await trustingHome(server);
    await home.writeConfig(`Host faulty\n  HostName 127.0.0.1\n  Port ${server.port}\n  User ${USER}\n  PreferredAuthentications password\n`);
    const promptLog = join(home.home, "prompts");
    const socksPort = await freePort();
    const cli = start(["-N", "-D", String(socksPort), "faulty"], home, {
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
      FAULT_PROMPT_LOG: promptLog,
    });
    await waitForListen(socksPort, "127.0.0.1", cli);
    assert.deepEqual(attempts, [["none", "password"]]);
    assert.deepEqual(await promptsSeen(promptLog), [`${USER}@127.0.0.1's password: `]);
    await cli.stop("SIGTERM");
  });

  test("retries keyboard-interactive up to NumberOfPasswordPrompts (3) times while the server keeps offering it, as OpenSSH does", async () => {
    offerKbdAgain = true;
    const { cli, socksPort } = await login();
    await waitForListen(socksPort, "127.0.0.1", cli);
    // sshconnect2.c userauth_kbdint(): attempt_kbdint++ >= number_of_password_prompts.
    assert.deepEqual(attempts, [
      ["none", "publickey A", "publickey B", "keyboard-interactive", "keyboard-interactive", "keyboard-interactive", "password"],
    ]);
    await cli.stop("SIGTERM");
  });

  test("with BatchMode=yes tries only none and the public keys, never prompts, and exits 255 with Permission denied", async () => {
    offerKbdAgain = false;
    const { cli, promptLog } = await login(["-o", "BatchMode=yes"]);
    const code = await waitForExit(cli);
    assert.equal(code, 255, cli.stderr());
    assert.deepEqual(attempts, [["none", "publickey A", "publickey B"]]);
    assert.deepEqual(await promptsSeen(promptLog), []);
    assert.match(cli.stderr(), new RegExp(`${USER}@127\\.0\\.0\\.1: Permission denied \\(publickey,keyboard-interactive,password\\)`));
    assertNoCrash(cli.stderr());
  });
});

describe("keyboard-interactive and password rounds, counted as OpenSSH's sshconnect2.c counts them", () => {
  /**
   * What the server does with a keyboard-interactive request:
   * "two prompts": one info request with FIRST_PROMPT and SECOND_PROMPT, then failure;
   * "reject at once": failure with no info request (sshd without PAM or BSD auth devices does this);
   * "prompt each round": one info request with KBD_PROMPT every time;
   * "prompt on the first round only": KBD_PROMPT on the connection's first round, then failure at once.
   */
  type KbdMode = "two prompts" | "reject at once" | "prompt each round" | "prompt on the first round only";
  const FIRST_PROMPT = "First code: ";
  const SECOND_PROMPT = "Second code: ";
  let server: FaultServer;
  let askpass: string;
  let kbdMode: KbdMode;
  /** The methods the server offers after a failure. */
  let offered: AuthenticationType[];
  /** What each connection since the last reset tried, in order. */
  let attempts: string[][];
  /** The answers each keyboard-interactive reply carried, per connection and round. */
  let kbdReplies: string[][][];
  /** Passwords received, per connection. */
  let passwords: string[][];
  const recorded = new WeakMap<Connection, { tried: string[]; replies: string[][]; passwords: string[] }>();

  before(async () => {
    // argv[1] is logged NUL-terminated. The password prompt is answered with
    // $FAULT_PASSWORD; keyboard-interactive prompts as $FAULT_KBD says:
    // "answer", "silent" (prints nothing, exits 1), "cancelled" (prints text,
    // exits 1: a dialog's Cancel after typing), "first" (answers FIRST_PROMPT only).
    askpass = join(scratch, "rounds-askpass.sh");
    await writeFile(
      askpass,
      [
        "#!/bin/sh",
        `printf '%s\\0' "$1" >> "$FAULT_PROMPT_LOG"`,
        `case "$1" in *"'s password: ") printf '%s\\n' "$FAULT_PASSWORD"; exit 0 ;; esac`,
        `case "$FAULT_KBD" in`,
        `  answer) printf '%s\\n' '${KBD_ANSWER}' ;;`,
        "  silent) exit 1 ;;",
        "  cancelled) printf '%s\\n' 'half typed'; exit 1 ;;",
        `  first) case "$1" in *"${FIRST_PROMPT}") printf '%s\\n' 'first answer' ;; *) exit 1 ;; esac ;;`,
        "esac",
        "",
      ].join("\n"),
      { mode: 0o700 },
    );
    server = await startFaultServer({
      authenticate(ctx, conn) {
        let record = recorded.get(conn);
        if (record === undefined) {
          record = { tried: [], replies: [], passwords: [] };
          recorded.set(conn, record);
          attempts.push(record.tried);
          kbdReplies.push(record.replies);
          passwords.push(record.passwords);
        }
        const { tried, replies } = record;
        tried.push(ctx.method);
        if (ctx.method === "keyboard-interactive") {
          const round = tried.filter((method) => method === "keyboard-interactive").length;
          const prompts =
            kbdMode === "two prompts"
              ? [{ prompt: FIRST_PROMPT, echo: false }, { prompt: SECOND_PROMPT, echo: false }]
              : kbdMode === "prompt each round" || (kbdMode === "prompt on the first round only" && round === 1)
                ? [{ prompt: KBD_PROMPT, echo: false }]
                : [];
          if (prompts.length === 0) {
            ctx.reject(offered);
            return;
          }
          ctx.prompt(prompts, (responses) => {
            replies.push([...responses]);
            // sshd (auth2-chall.c input_userauth_info_response): "wrong number of replies" is fatal.
            if (responses.length !== prompts.length) rawSocket(conn).destroy();
            else ctx.reject(offered);
          });
        } else if (ctx.method === "password") {
          record.passwords.push(ctx.password);
          if (ctx.password === PASSWORD) ctx.accept();
          else ctx.reject(offered);
        } else {
          ctx.reject(offered);
        }
      },
      tcpip(accept) {
        pipeToEcho(accept());
      },
    });
    servers.push(server);
  });

  /** Start the CLI (no keys, no agent) with the rounds askpass; `env` may replace SSH_ASKPASS. */
  async function login(
    options: { kbd?: string; password?: string; extra?: string[]; env?: Record<string, string> } = {},
  ): Promise<{ cli: Running; socksPort: number; promptLog: string }> {
    attempts = [];
    kbdReplies = [];
    passwords = [];
    const home = await trustingHome(server);
    const promptLog = join(home.home, "prompts");
    const socksPort = await freePort();
    const cli = start(tunnelArgs(socksPort, server.port, options.extra ?? []), home, {
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
      FAULT_PROMPT_LOG: promptLog,
      FAULT_KBD: options.kbd ?? "answer",
      FAULT_PASSWORD: options.password ?? PASSWORD,
      ...options.env,
    });
    return { cli, socksPort, promptLog };
  }

  async function promptsSeen(promptLog: string): Promise<string[]> {
    if (!existsSync(promptLog)) return [];
    return (await readFile(promptLog, "utf8")).split("\0").filter((prompt) => prompt !== "");
  }

  const declines: [string, string][] = [
    ["prints nothing and exits 1", "silent"],
    ["prints an answer but exits 1 (Cancel after typing)", "cancelled"],
  ];
  for (const [how, kbd] of declines) {
    test(`when askpass ${how} at a two-prompt keyboard-interactive request, the reply still carries two (empty) answers and password is tried next`, async () => {
      kbdMode = "two prompts";
      offered = ["keyboard-interactive", "password"];
      const { cli, socksPort, promptLog } = await login({ kbd });
      await waitForListen(socksPort, "127.0.0.1", cli);
      // sshd drops a reply with fewer answers than prompts; OpenSSH answers a declined prompt with "".
      assert.deepEqual(kbdReplies, [[["", ""]]]);
      // Declined: no second keyboard-interactive round, though the server still offers it.
      assert.deepEqual(attempts, [["none", "keyboard-interactive", "password"]]);
      assert.deepEqual(passwords, [[PASSWORD]]);
      assert.equal((await promptsSeen(promptLog)).at(-1), `${USER}@127.0.0.1's password: `);
      await cli.stop("SIGTERM");
      assertNoCrash(cli.stderr());
    });
  }

  test("when askpass answers the first of two prompts and declines the second, the reply carries the answer and one empty answer", async () => {
    kbdMode = "two prompts";
    offered = ["keyboard-interactive", "password"];
    const { cli, socksPort, promptLog } = await login({ kbd: "first" });
    await waitForListen(socksPort, "127.0.0.1", cli);
    assert.deepEqual(kbdReplies, [[["first answer", ""]]]);
    assert.deepEqual(attempts, [["none", "keyboard-interactive", "password"]]);
    assert.deepEqual((await promptsSeen(promptLog)).slice(0, 2), [`(${USER}@127.0.0.1) ${FIRST_PROMPT}`, `(${USER}@127.0.0.1) ${SECOND_PROMPT}`]);
    await cli.stop("SIGTERM");
  });

  test("a server that fails keyboard-interactive without an info request gets one keyboard-interactive attempt, then password", async () => {
    kbdMode = "reject at once";
    offered = ["keyboard-interactive", "password"];
    const { cli, socksPort, promptLog } = await login();
    await waitForListen(socksPort, "127.0.0.1", cli);
    // sshconnect2.c userauth_kbdint(): no second round unless the last one brought an info request.
    assert.deepEqual(attempts, [["none", "keyboard-interactive", "password"]]);
    assert.deepEqual(kbdReplies, [[]]);
    assert.deepEqual(await promptsSeen(promptLog), [`${USER}@127.0.0.1's password: `]);
    await cli.stop("SIGTERM");
  });

  test("a server that prompts on the first round only gets a second round, which fails at once, and no third", async () => {
    kbdMode = "prompt on the first round only";
    offered = ["keyboard-interactive", "password"];
    const { cli, socksPort } = await login();
    await waitForListen(socksPort, "127.0.0.1", cli);
    assert.deepEqual(attempts, [["none", "keyboard-interactive", "keyboard-interactive", "password"]]);
    assert.deepEqual(kbdReplies, [[[KBD_ANSWER]]]);
    await cli.stop("SIGTERM");
  });

  const roundLimits: [string, string[], number][] = [
    ["NumberOfPasswordPrompts (default 3)", [], 3],
    ["-o NumberOfPasswordPrompts=2", ["-o", "NumberOfPasswordPrompts=2"], 2],
  ];
  for (const [what, extra, rounds] of roundLimits) {
    test(`a server that sends an info request every round gets ${rounds} keyboard-interactive rounds under ${what}, then password`, async () => {
      kbdMode = "prompt each round";
      offered = ["keyboard-interactive", "password"];
      const { cli, socksPort } = await login({ extra });
      await waitForListen(socksPort, "127.0.0.1", cli);
      assert.deepEqual(attempts, [["none", ...new Array<string>(rounds).fill("keyboard-interactive"), "password"]]);
      assert.deepEqual(kbdReplies, [new Array<string[]>(rounds).fill([KBD_ANSWER])]);
      await cli.stop("SIGTERM");
    });
  }

  test("with no way to ask for a password (askpass missing, SSH_ASKPASS_REQUIRE=force, no tty), password is not attempted and no 'please try again' line is printed", async () => {
    kbdMode = "reject at once";
    offered = ["password"];
    const { cli, promptLog } = await login({ env: { SSH_ASKPASS: join(scratch, "no-such-askpass") } });
    assert.equal(await waitForExit(cli), 255, cli.stderr());
    assert.deepEqual(attempts, [["none"]]);
    assert.deepEqual(await promptsSeen(promptLog), []);
    assert.doesNotMatch(cli.stderr(), /please try again/);
    assert.match(cli.stderr(), new RegExp(`${USER}@127\\.0\\.0\\.1: Permission denied \\(password\\)`));
    assertNoCrash(cli.stderr());
  });

  const passwordLimits: [string, string[], number][] = [
    ["NumberOfPasswordPrompts (default 3)", [], 3],
    ["-o NumberOfPasswordPrompts=2", ["-o", "NumberOfPasswordPrompts=2"], 2],
    ["-o NumberOfPasswordPrompts=1", ["-o", "NumberOfPasswordPrompts=1"], 1],
  ];
  const times = (n: number): string => (n === 0 ? "never" : n === 1 ? "once" : `${n} times`);
  for (const [what, extra, tries] of passwordLimits) {
    test(`a wrong password from askpass reaches the server ${times(tries)} under ${what}, 'Permission denied, please try again.' is printed ${times(tries - 1)}, then exit 255`, async () => {
      kbdMode = "reject at once";
      offered = ["password"];
      const { cli, promptLog } = await login({ password: "wrong password", extra });
      assert.equal(await waitForExit(cli), 255, cli.stderr());
      assert.deepEqual(attempts, [["none", ...new Array<string>(tries).fill("password")]]);
      assert.deepEqual(passwords, [new Array<string>(tries).fill("wrong password")]);
      assert.deepEqual(await promptsSeen(promptLog), new Array<string>(tries).fill(`${USER}@127.0.0.1's password: `));
      const lines = stderrLines(cli.stderr());
      assert.equal(lines.filter((line) => line === "Permission denied, please try again.").length, tries - 1, cli.stderr());
      assert.equal(lines.filter((line) => line.includes("please try again")).length, tries - 1, cli.stderr());
      assert.match(cli.stderr(), new RegExp(`${USER}@127\\.0\\.0\\.1: Permission denied \\(password\\)`));
      assertNoCrash(cli.stderr());
    });
  }
});

describe("the SSH connection is lost while a SOCKS request waits for its channel", () => {
  const drops: [string, (socket: Socket) => void][] = [
    ["closes the TCP connection (FIN)", (socket) => socket.destroy()],
    ["resets the TCP connection (RST)", (socket) => socket.resetAndDestroy()],
  ];
  for (const [how, drop] of drops) {
    test(`when the server ${how}, the SOCKS5 client gets reply 0x03 (network unreachable) and with --no-reconnect safetunnel exits 255 saying the connection closed`, async () => {
      const server = await startFaultServer({
        // Never answered: no confirmation, no failure.
        tcpip() {},
      });
      servers.push(server);
      const home = await trustingHome(server);
      const socksPort = await freePort();
      // --no-reconnect: ssh's behaviour, exit 255 (reconnect.test.ts covers the default).
      const cli = start(tunnelArgs(socksPort, server.port, ["--no-reconnect"]), home);
      await waitForListen(socksPort, "127.0.0.1", cli);

      const client = await socks5Open(socksPort, socks5Request("pending.fault.test", 443));
      try {
        await waitFor(() => server.channelRequests.length === 1, "the direct-tcpip request at the server", () => cli.stderr());
        assert.equal(server.channelRequests[0]?.destIP, "pending.fault.test");
        drop(rawSocket(server.connections[0]!));
        assert.deepEqual(await client.readToEnd("the CONNECT reply after the connection dropped"), socks5Reply(0x03));
      } finally {
        client.destroy();
      }
      assert.equal(await waitForExit(cli), 255, cli.stderr());
      assert.match(cli.stderr(), /Connection to 127\.0\.0\.1 closed/);
      assertNoCrash(cli.stderr());
    });
  }
});

describe("keepalive against a server that goes silent after authentication", () => {
  test("ServerAliveInterval=1 with ServerAliveCountMax=2 and --no-reconnect ends the tunnel with exit 255 and a keepalive timeout message", async () => {
    const server = await startFaultServer({
      // Stop reading: keepalive requests pile up unanswered, as behind a dead link.
      ready: (conn) => rawSocket(conn).pause(),
    });
    servers.push(server);
    const home = await trustingHome(server);
    const socksPort = await freePort();
    const cli = start(tunnelArgs(socksPort, server.port, ["--no-reconnect", "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"]), home);
    await waitForListen(socksPort, "127.0.0.1", cli);
    assert.equal(await waitForExit(cli), 255, cli.stderr());
    assert.match(cli.stderr(), /timeout|not responding/i);
    assert.match(cli.stderr(), /127\.0\.0\.1/);
    assertNoCrash(cli.stderr());
  });
});

describe("channel open failures from the server become exact SOCKS replies", () => {
  /** name -> [RFC 4254 reason code, description], as OpenSSH's sshd would send them. */
  const failures: Record<string, [number, string]> = {
    "refused.fault.test": [2, "Connection refused"],
    "noroute.fault.test": [2, "No route to host"],
    "netunreach.fault.test": [2, "Network is unreachable"],
    "unknown-name.fault.test": [2, "Name or service not known"],
    "prohibited.fault.test": [1, "open failed"],
    "shortage.fault.test": [4, "resource shortage"],
    "unknown-type.fault.test": [3, "unknown channel type"],
    "silent.fault.test": [2, ""],
  };
  let socksPort: number;
  let cli: Running;

  before(async () => {
    const server = await startFaultServer({
      tcpip(_accept, reject, info, conn) {
        const failure = failures[info.destIP];
        if (failure === undefined) reject();
        else rejectChannel(conn, reject, failure[0], failure[1]);
      },
    });
    servers.push(server);
    const home = await trustingHome(server);
    socksPort = await freePort();
    // -v: failure lines of one kind fold to one per 10 s; -v writes each one (as debug1).
    cli = start(tunnelArgs(socksPort, server.port, ["-v"]), home);
    await waitForListen(socksPort, "127.0.0.1", cli);
  });

  const cases: [string, string, number][] = [
    ["reason 2 \"Connection refused\"", "refused.fault.test", 0x05],
    ["reason 2 \"No route to host\"", "noroute.fault.test", 0x04],
    ["reason 2 \"Network is unreachable\"", "netunreach.fault.test", 0x03],
    ["reason 2 \"Name or service not known\"", "unknown-name.fault.test", 0x04],
    ["reason 1 (administratively prohibited)", "prohibited.fault.test", 0x02],
    ["reason 4 \"resource shortage\"", "shortage.fault.test", 0x01],
    ["reason 3 (unknown channel type)", "unknown-type.fault.test", 0x01],
    ["reason 2 with no description", "silent.fault.test", 0x01],
  ];
  for (const [what, host, code] of cases) {
    test(`${what} becomes the 10-byte SOCKS5 reply 0x0${code} and the proxy keeps running`, async () => {
      assert.deepEqual(await socks5Outcome(socksPort, host, 80), socks5Reply(code));
      assert.equal(await within(cli.exited, 0), undefined, `safetunnel exited; stderr:\n${cli.stderr()}`);
    });
  }

  test("a refused channel becomes the 8-byte SOCKS4a reply 0x5B", async () => {
    assert.deepEqual(await socks4aOutcome(socksPort, "refused.fault.test", 80), Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
  });

  test("every failure is logged and none crashes the process", async () => {
    // One notice per failed CONNECT, as OpenSSH's "channel N: open failed: ..." but naming the destination and the reply.
    const label = `-D ${socksPort}`;
    const expected = [
      `${label}: connect to refused.fault.test:80 failed: Connection refused (SOCKS5 reply 0x05).`,
      `${label}: connect to noroute.fault.test:80 failed: No route to host (SOCKS5 reply 0x04).`,
      `${label}: connect to netunreach.fault.test:80 failed: Network is unreachable (SOCKS5 reply 0x03).`,
      `${label}: connect to unknown-name.fault.test:80 failed: Name or service not known (SOCKS5 reply 0x04).`,
      `${label}: connect to prohibited.fault.test:80 failed: administratively prohibited by the server (AllowTcpForwarding or PermitOpen): open failed (SOCKS5 reply 0x02).`,
      `${label}: connect to shortage.fault.test:80 failed: resource shortage (SOCKS5 reply 0x01).`,
      `${label}: connect to unknown-type.fault.test:80 failed: unknown channel type (SOCKS5 reply 0x01).`,
      `${label}: connect to silent.fault.test:80 failed: the server gave no reason (SOCKS5 reply 0x01).`,
    ];
    const failureLines = (): string[] =>
      stderrLines(cli.stderr())
        .filter((line) => line.includes(": connect to "))
        .map((line) => line.replace(/^debug1: /, "").replace(/ \(\d+ more failed since the last such line\)$/, ""));
    // The tests above made one SOCKS5 CONNECT per kind and one SOCKS4a CONNECT to refused.fault.test.
    await waitFor(() => failureLines().length >= expected.length + 1, "a log line for every failed CONNECT", () => `stderr:\n${cli.stderr()}`);
    const lines = failureLines();
    for (const line of expected) {
      assert.ok(lines.includes(line), `missing log line ${JSON.stringify(line)}; stderr:\n${cli.stderr()}`);
    }
    const refused = lines.filter((line) => line.startsWith(`${label}: connect to refused.fault.test:80 failed: Connection refused (`));
    assert.equal(refused.length, 2, `one line for the SOCKS5 and one for the SOCKS4a CONNECT; stderr:\n${cli.stderr()}`);
    assert.equal(lines.length, expected.length + 1, `no other failure lines; stderr:\n${cli.stderr()}`);
    assertNoCrash(cli.stderr());
  });
});

describe("a server that hangs up during the handshake", () => {
  const variants: [string, () => Promise<{ port: number; knownHostsLine?: string; stop(): Promise<void> }>][] = [
    ["right after accepting, before any banner", () => startTcpServer((socket) => socket.destroy())],
    ["after sending its banner", () => startTcpServer((socket) => socket.end("SSH-2.0-OpenSSH_9.6 fault\r\n"))],
    ["in the middle of the key exchange", () => startTcpServer((socket) => {
      socket.write("SSH-2.0-OpenSSH_9.6 fault\r\n");
      // Wait for the client's banner and KEXINIT, then hang up without answering it.
      socket.once("data", () => setTimeout(() => socket.destroy(), 100));
    })],
    ["after the key exchange, before authentication", () => startFaultServer({ handshake: (conn) => rawSocket(conn).destroy() })],
    ["with a disconnect message at the first authentication request", () => startFaultServer({ authenticate: (_ctx, conn) => conn.end() })],
  ];
  for (const [when, startServer] of variants) {
    test(`${when}: exits 255 with one clear line on stderr and no stack trace`, async () => {
      const server = await startServer();
      servers.push(server);
      const home = await trustingHome(server.knownHostsLine === undefined ? undefined : { knownHostsLine: server.knownHostsLine });
      const socksPort = await freePort();
      const cli = start(tunnelArgs(socksPort, server.port, ["-o", "BatchMode=yes"]), home);
      assert.equal(await waitForExit(cli), 255, cli.stderr());
      const lines = stderrLines(cli.stderr());
      assert.equal(lines.length, 1, `expected one line, got:\n${cli.stderr()}`);
      // OpenSSH: "Connection closed by 127.0.0.1 port N" / "Connection reset by ..."; ours names the same host and port.
      assert.match(lines[0]!, new RegExp(`127\\.0\\.0\\.1 port ${server.port}\\b`));
      assert.match(lines[0]!, /closed|reset/i);
      assertNoCrash(cli.stderr());
    });
  }
});
