import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { procPeerLookup, procUnreadable, type AcceptedClient } from "../../src/platform/peer-lookup.ts";
import { startProcess, type Running } from "../helpers/run.ts";
import { within } from "../helpers/child.ts";

// ------------------------------------------------------------------ a /proc of our own

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const row = (sl: number, local: string, remote: string, uid: number, inode: string): string =>
  `  ${sl}: ${local} ${remote} 01 00000000:00000000 00:00000000 00000000  ${uid}        0 ${inode} 1 0000000000000000 20 4 30 10 -1`;

/** /proc/net/tcp rows, and pid -> its comm and the socket inodes its fds link to. */
async function fakeProc(tcp: string[], processes: Record<string, { comm: string; sockets: string[] }>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "safetunnel-proc-"));
  folders.push(root);
  await mkdir(join(root, "net"));
  await writeFile(join(root, "net", "tcp"), [HEADER, ...tcp, ""].join("\n"));
  await writeFile(join(root, "net", "tcp6"), [HEADER, ""].join("\n"));
  for (const [pid, { comm, sockets }] of Object.entries(processes)) {
    await mkdir(join(root, pid, "fd"), { recursive: true });
    await writeFile(join(root, pid, "comm"), `${comm}\n`);
    for (const [index, inode] of sockets.entries()) await symlink(`socket:[${inode}]`, join(root, pid, "fd", String(index + 3)));
  }
  return root;
}

/** A client at address:port (0xC350 = 50000 and up) that reached us on 127.0.0.1:9001 (0x2329). */
const client = (port: number, address = "127.0.0.1"): AcceptedClient => ({ address, port, localAddress: "127.0.0.1", localPort: 9001 });

describe("procPeerLookup against a /proc of our own", () => {
  test("gives a loopback client's uid and socket inode, and the program holding that socket", async () => {
    const root = await fakeProc(
      [row(0, "0100007F:2329", "0100007F:C350", 0, "111"), row(1, "0100007F:C350", "0100007F:2329", 1000, "222")],
      { "100": { comm: "safetunnel", sockets: ["111"] }, "200": { comm: "curl", sockets: ["222"] } },
    );
    const peers = procPeerLookup({ procRoot: root, skipPid: 100 });
    assert.deepEqual(await peers.ownerOf(client(50000)), { uid: 1000, inode: "222" });
    assert.equal(await peers.programOf(client(50000)), "curl");
  });

  test("names every client of a burst asked for at once", async () => {
    const root = await fakeProc(
      [row(0, "0100007F:C350", "0100007F:2329", 1000, "222"), row(1, "0100007F:C351", "0100007F:2329", 1000, "333"), row(2, "0100007F:C352", "0100007F:2329", 1000, "444")],
      { "200": { comm: "curl", sockets: ["222", "444"] }, "300": { comm: "firefox-esr", sockets: ["333"] } },
    );
    const peers = procPeerLookup({ procRoot: root, skipPid: 1 });
    const names = await Promise.all([50000, 50001, 50002, 50003].map((port) => peers.programOf(client(port))));
    assert.deepEqual(names, ["curl", "firefox-esr", "curl", undefined]);
  });

  test("does not look up a client that is not on loopback: another machine's programs are not in our /proc", async () => {
    // A row that would match 10.0.0.5:50000 -> 127.0.0.1:9001, if it were looked for.
    const root = await fakeProc([row(0, "0500000A:C350", "0100007F:2329", 1000, "222")], { "200": { comm: "curl", sockets: ["222"] } });
    const peers = procPeerLookup({ procRoot: root, skipPid: 1 });
    assert.equal(await peers.ownerOf(client(50000, "10.0.0.5")), undefined);
    assert.equal(await peers.programOf(client(50000, "10.0.0.5")), undefined);
  });

  test("a client /proc does not show, or no /proc at all, is unknown, not an error", async () => {
    const root = await fakeProc([], {});
    assert.equal(await procPeerLookup({ procRoot: root, skipPid: 1 }).programOf(client(50000)), undefined);
    const missing = procPeerLookup({ procRoot: join(tmpdir(), "safetunnel-no-such-proc"), skipPid: 1 });
    assert.equal(await missing.ownerOf(client(50000)), undefined);
    assert.equal(await missing.programOf(client(50000)), undefined);
  });
});

describe("procUnreadable", () => {
  test("is undefined when net/tcp can be read, and names the file and the reason when it cannot", async () => {
    assert.equal(procUnreadable(await fakeProc([], {})), undefined);
    const missing = join(tmpdir(), "safetunnel-no-such-proc");
    assert.equal(procUnreadable(missing), `cannot read ${missing}/net/tcp: ENOENT: no such file or directory, open '${missing}/net/tcp'`);
  });
});

// ------------------------------------------------------------------ this machine's /proc

describe("procPeerLookup on this machine's /proc", { skip: process.platform === "linux" ? false : "/proc is Linux-only" }, () => {
  let server: Server | undefined;
  const accepted: Socket[] = [];
  let curl: Running | undefined;
  after(async () => {
    await curl?.stop("SIGKILL");
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  test("names curl and our uid from a loopback connection curl holds open", async () => {
    let onAccept: ((socket: Socket) => void) | undefined;
    const acceptedOne = new Promise<Socket>((resolve) => (onAccept = resolve));
    server = createServer((socket) => {
      accepted.push(socket);
      socket.on("error", () => {});
      onAccept?.(socket);
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    curl = startProcess("curl", ["-s", "-m", "30", `http://127.0.0.1:${port}/`]);
    const socket = await within(acceptedOne, 10_000);
    assert.ok(socket, "curl never connected");
    const peer: AcceptedClient = { address: socket.remoteAddress!, port: socket.remotePort!, localAddress: socket.localAddress!, localPort: socket.localPort! };
    const peers = procPeerLookup();
    assert.equal((await peers.ownerOf(peer))?.uid, process.getuid!());
    assert.equal(await peers.programOf(peer), "curl");
  });
});
