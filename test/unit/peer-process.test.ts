import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { peerProcessName, procNetAddress, type PeerSocket } from "../../src/platform/peer-process.ts";
import { startProcess, type Running } from "../helpers/run.ts";
import { within } from "../helpers/child.ts";

const onLinux = process.platform === "linux";
const NOT_LINUX = onLinux ? false : "/proc is Linux-only";

describe("procNetAddress", () => {
  test("127.0.0.1:9001 is 0100007F:2329, as /proc/net/tcp prints it on little-endian hosts", () => {
    assert.equal(procNetAddress("127.0.0.1", 9001), "0100007F:2329");
  });

  test("::1:9001 is 00000000000000000000000001000000:2329", () => {
    assert.equal(procNetAddress("::1", 9001), "00000000000000000000000001000000:2329");
  });

  test("an IPv4-mapped address is looked up as its IPv4 form", () => {
    assert.equal(procNetAddress("::ffff:127.0.0.1", 9001), "0100007F:2329");
  });

  test("other IPv4 addresses and ports pad to four hex digits in upper case", () => {
    assert.equal(procNetAddress("10.1.2.3", 80), "0302010A:0050");
    assert.equal(procNetAddress("192.168.254.171", 65535), "ABFEA8C0:FFFF");
  });

  test("a string that is not an address gives null", () => {
    assert.equal(procNetAddress("localhost", 80), null);
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
async function holdingServer(host: string, ipv6Only = false): Promise<{ port: number; next: () => Promise<Socket> }> {
  const waiting: ((s: Socket) => void)[] = [];
  const queue: Socket[] = [];
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
  const port = (server.address() as { port: number }).port;
  return {
    port,
    next: async () => {
      const ready = queue.shift();
      if (ready) return ready;
      const socket = await within(new Promise<Socket>((resolve) => waiting.push(resolve)), 10_000);
      assert.ok(socket, "the child never connected");
      return socket;
    },
  };
}

function peerOf(socket: Socket): PeerSocket {
  return {
    clientAddress: socket.remoteAddress!,
    clientPort: socket.remotePort!,
    serverAddress: socket.localAddress!,
    serverPort: socket.localPort!,
  };
}

/** A node child that connects to host:port and then waits to be killed. */
function nodeClient(host: string, port: number): Running {
  const script = `const s = require("node:net").connect(${port}, ${JSON.stringify(host)}); s.on("error", () => process.exit(3)); setInterval(() => {}, 60000);`;
  const child = startProcess(process.execPath, ["-e", script]);
  children.push(child);
  return child;
}

async function commOf(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
}

describe("peerProcessName", { skip: NOT_LINUX }, () => {
  test("names curl as the owner of a loopback IPv4 connection", async () => {
    const server = await holdingServer("127.0.0.1");
    const curl = startProcess("curl", ["-s", "-m", "30", `http://127.0.0.1:${server.port}/`]);
    children.push(curl);
    const socket = await server.next();
    assert.equal(await peerProcessName(peerOf(socket)), "curl");
    await curl.stop("SIGKILL");
  });

  test("names a node child as the owner of a loopback IPv4 connection", async () => {
    const server = await holdingServer("127.0.0.1");
    const child = nodeClient("127.0.0.1", server.port);
    const socket = await server.next();
    const name = await peerProcessName(peerOf(socket));
    assert.equal(name, await commOf(child.pid));
    assert.equal(name, "node");
  });

  test("names the owner of a loopback IPv6 connection", async () => {
    const server = await holdingServer("::1", true);
    const child = nodeClient("::1", server.port);
    const socket = await server.next();
    assert.equal(socket.remoteAddress, "::1");
    assert.equal(await peerProcessName(peerOf(socket)), await commOf(child.pid));
  });

  test("names the owner when a dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1", async () => {
    const server = await holdingServer("::", false);
    const child = nodeClient("127.0.0.1", server.port);
    const socket = await server.next();
    assert.equal(socket.remoteAddress, "::ffff:127.0.0.1");
    assert.equal(await peerProcessName(peerOf(socket)), await commOf(child.pid));
  });

  test("names the owner of an IPv6 socket connected to a mapped IPv4 address (a tcp6 entry)", async () => {
    const server = await holdingServer("::", false);
    const child = nodeClient("::ffff:127.0.0.1", server.port);
    const socket = await server.next();
    assert.equal(await peerProcessName(peerOf(socket)), await commOf(child.pid));
  });

  test("gives undefined for a connection that does not exist", async () => {
    assert.equal(
      await peerProcessName({ clientAddress: "127.0.0.1", clientPort: 1, serverAddress: "127.0.0.1", serverPort: 2 }),
      undefined,
    );
  });

  test("gives undefined when /proc has nothing to tell", async () => {
    const empty = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
    try {
      assert.equal(
        await peerProcessName({ clientAddress: "127.0.0.1", clientPort: 50000, serverAddress: "127.0.0.1", serverPort: 9001 }, empty),
        undefined,
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test("gives undefined for an address /proc/net cannot be searched for", async () => {
    assert.equal(
      await peerProcessName({ clientAddress: "localhost", clientPort: 50000, serverAddress: "127.0.0.1", serverPort: 9001 }),
      undefined,
    );
  });
});
