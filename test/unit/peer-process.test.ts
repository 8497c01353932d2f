import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { SocketProgramFinder } from "../../src/platform/peer-process.ts";
import { SocketOwnerLookup, type AcceptedClient } from "../../src/platform/socket-owner.ts";
import { startProcess, type Running } from "../helpers/run.ts";
import { within } from "../helpers/child.ts";

const onLinux = process.platform === "linux";
const NOT_LINUX = onLinux ? false : "/proc is Linux-only";

// ------------------------------------------------------------------ a /proc of our own

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** pid -> its comm and the socket inodes its fds link to (plus a regular file, as real processes have). */
async function fakeProc(processes: Record<string, { comm: string; sockets: string[] }>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
  folders.push(root);
  await writeFile(join(root, "uptime"), "1.00 1.00\n");
  for (const [pid, { comm, sockets }] of Object.entries(processes)) {
    await mkdir(join(root, pid, "fd"), { recursive: true });
    await writeFile(join(root, pid, "comm"), `${comm}\n`);
    await symlink("/dev/null", join(root, pid, "fd", "0"));
    for (const [index, inode] of sockets.entries()) await symlink(`socket:[${inode}]`, join(root, pid, "fd", String(index + 3)));
  }
  return root;
}

describe("SocketProgramFinder against a /proc of our own", () => {
  test("names the process whose fd links to socket:[inode], by its comm", async () => {
    const root = await fakeProc({ "100": { comm: "curl", sockets: ["555"] }, "200": { comm: "firefox-esr", sockets: ["777", "778"] } });
    const programs = new SocketProgramFinder({ procRoot: root, skipPid: 1 });
    assert.equal(await programs.find("555"), "curl");
    assert.equal(await programs.find("778"), "firefox-esr");
  });

  test("answers finds made at the same time, each with its own holder, and unknown inodes with undefined", async () => {
    const root = await fakeProc({ "100": { comm: "curl", sockets: ["555"] }, "200": { comm: "chromium", sockets: ["777"] } });
    const programs = new SocketProgramFinder({ procRoot: root, skipPid: 1 });
    const names = await Promise.all([programs.find("777"), programs.find("555"), programs.find("999"), programs.find("777")]);
    assert.deepEqual(names, ["chromium", "curl", undefined, "chromium"]);
  });

  test("does not search the process it is told to skip (our own holds only server ends)", async () => {
    const root = await fakeProc({ "100": { comm: "safetunnel", sockets: ["555"] } });
    assert.equal(await new SocketProgramFinder({ procRoot: root, skipPid: 100 }).find("555"), undefined);
    assert.equal(await new SocketProgramFinder({ procRoot: root, skipPid: 1 }).find("555"), "safetunnel");
  });

  test("a shared socket is named after the holder that held the last one asked for: recent owners are searched first", async () => {
    // After fork(), parent and child hold the same socket; whichever is searched first names it.
    const root = await fakeProc({
      "100": { comm: "first", sockets: ["555", "100100"] },
      "200": { comm: "second", sockets: ["555", "200200"] },
    });
    const programs = new SocketProgramFinder({ procRoot: root, skipPid: 1 });
    assert.equal(await programs.find("100100"), "first");
    assert.equal(await programs.find("555"), "first");
    assert.equal(await programs.find("200200"), "second");
    assert.equal(await programs.find("555"), "second");
  });

  test("no /proc at all is unknown, and the finder still answers later finds", async () => {
    const missing = join(tmpdir(), "safetunnel-no-such-proc");
    const programs = new SocketProgramFinder({ procRoot: missing, skipPid: 1 });
    assert.equal(await programs.find("555"), undefined);
    assert.equal(await programs.find("556"), undefined);
  });
});

// ------------------------------------------------------------------ against real connections

const servers: Server[] = [];
const accepted: Socket[] = [];
const children: Running[] = [];

after(async () => {
  for (const child of children) await child.stop("SIGKILL");
  for (const socket of accepted) socket.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A server that keeps every connection open and hands out the next one accepted. */
async function holdingServer(host = "127.0.0.1", ipv6Only = false): Promise<{ port: number; next: () => Promise<Socket> }> {
  const queue: Socket[] = [];
  const waiting: ((s: Socket) => void)[] = [];
  const server = createServer((socket) => {
    accepted.push(socket);
    socket.on("error", () => {});
    const waiter = waiting.shift();
    if (waiter) waiter(socket);
    else queue.push(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port: 0, ipv6Only }, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    next: async () => {
      const socket = queue.shift() ?? (await within(new Promise<Socket>((resolve) => waiting.push(resolve)), 10_000));
      assert.ok(socket, "the child never connected");
      return socket;
    },
  };
}

function peerOf(socket: Socket): AcceptedClient {
  return { address: socket.remoteAddress!, port: socket.remotePort!, localAddress: socket.localAddress!, localPort: socket.localPort! };
}

/** A node child that connects to host:port and then waits to be killed. */
function nodeClient(host: string, port: number): Running {
  const script = `const s = require("node:net").connect(${port}, ${JSON.stringify(host)}); s.on("error", () => process.exit(3)); setInterval(() => {}, 60000);`;
  const child = startProcess(process.execPath, ["-e", script]);
  children.push(child);
  return child;
}

/** The socket inodes a process holds, from its /proc/<pid>/fd links. */
async function socketInodes(pid: number): Promise<string[]> {
  const inodes: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""))?.[1];
    if (inode !== undefined) inodes.push(inode);
  }
  return inodes;
}

describe("SocketOwnerLookup on this machine's /proc", { skip: NOT_LINUX }, () => {
  const cases: [what: string, listen: string, ipv6Only: boolean, connectTo: string][] = [
    ["a loopback IPv4 connection", "127.0.0.1", false, "127.0.0.1"],
    ["a loopback IPv6 connection", "::1", true, "::1"],
    ["an IPv4 client of a dual-stack listener (::ffff:127.0.0.1)", "::", false, "127.0.0.1"],
    ["an IPv6 socket connected to a mapped IPv4 address (a tcp6 row)", "::", false, "::ffff:127.0.0.1"],
  ];
  for (const [what, listen, ipv6Only, connectTo] of cases) {
    test(`gives our uid and the client process's own socket inode for ${what}`, async () => {
      const server = await holdingServer(listen, ipv6Only);
      const child = nodeClient(connectTo, server.port);
      const socket = await server.next();
      const owner = await new SocketOwnerLookup().find(peerOf(socket));
      assert.ok(owner !== undefined, `no row for ${JSON.stringify(peerOf(socket))}`);
      assert.equal(owner.uid, process.getuid!());
      assert.ok((await socketInodes(child.pid)).includes(owner.inode), `inode ${owner.inode} is the child's`);
      assert.equal((await socketInodes(process.pid)).includes(owner.inode), false, "not our accepted end");
    });
  }

  test("gives undefined for a connection that does not exist", async () => {
    assert.equal(await new SocketOwnerLookup().find({ address: "127.0.0.1", port: 1, localAddress: "127.0.0.1", localPort: 2 }), undefined);
  });
});

describe("SocketProgramFinder on this machine's /proc", { skip: NOT_LINUX }, () => {
  test("names curl from the inode of its loopback connection, found at accept time", async () => {
    const server = await holdingServer();
    const curl = startProcess("curl", ["-s", "-m", "30", `http://127.0.0.1:${server.port}/`]);
    children.push(curl);
    const owner = await new SocketOwnerLookup().find(peerOf(await server.next()));
    assert.ok(owner !== undefined);
    assert.equal(await new SocketProgramFinder().find(owner.inode), "curl");
  });

  test("names two different programs asked for at once", async () => {
    const server = await holdingServer();
    const curl = startProcess("curl", ["-s", "-m", "30", `http://127.0.0.1:${server.port}/`]);
    children.push(curl);
    const node = nodeClient("127.0.0.1", server.port);
    const owners = new SocketOwnerLookup();
    const inodes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const owner = await owners.find(peerOf(await server.next()));
      assert.ok(owner !== undefined);
      inodes.push(owner.inode);
    }
    const programs = new SocketProgramFinder();
    const names = await Promise.all(inodes.map((inode) => programs.find(inode)));
    assert.deepEqual(names.sort(), ["curl", (await readFile(`/proc/${node.pid}/comm`, "utf8")).trim()].sort());
  });

  test("gives undefined for a socket nobody holds any more", async () => {
    const server = await holdingServer();
    const child = nodeClient("127.0.0.1", server.port);
    const owner = await new SocketOwnerLookup().find(peerOf(await server.next()));
    assert.ok(owner !== undefined);
    await child.stop("SIGKILL");
    assert.equal(await new SocketProgramFinder().find(owner.inode), undefined);
  });
});
