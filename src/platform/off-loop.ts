/**
 * Runs a blocking, self-contained job on a worker thread, so the event loop
 * that carries every tunnel never waits for it: the /proc/net/tcp search
 * behind the access check (socket-owner.ts), whose every read(2) walks part
 * of the kernel's TCP hash table.
 *
 * The job travels to the worker as source text (`String(job)`), so one
 * implementation serves the worker, the bundle, the single executable (an
 * eval worker needs no file beside it) and Deno (node:worker_threads with
 * `eval: true`). That is why a job must use nothing from outside its own
 * body: it gets `node:fs` as its second argument and must not declare named
 * inner functions (a bundler may wrap them in helpers the worker lacks).
 *
 * Where no worker can be started, or one dies, the job runs on the loop
 * instead: slower under load, never wrong. An idle worker is stopped after
 * IDLE_MS, giving back its V8 heap, and started again when next needed.
 */
import * as fs from "node:fs";
import { setTimeout } from "node:timers";
import { Worker } from "node:worker_threads";

export type OffLoopJob<Request, Result> = (request: Request, filesystem: typeof fs) => Result;

/** How long a worker with nothing to do is kept. */
export const IDLE_MS = 30_000;

interface Pending<Result> {
  resolve(result: Result): void;
  reject(error: Error): void;
}

/**
 * @example
 * const lengths = new OffLoop((path: string, filesystem) => filesystem.readFileSync(path).length);
 * await lengths.run("/proc/net/tcp") // 15001
 */
export class OffLoop<Request, Result> {
  readonly #job: OffLoopJob<Request, Result>;
  readonly #source: string;
  #worker: Worker | undefined;
  /** Set once a worker failed to start or died: the job runs on the loop from then on. */
  #onLoop = false;
  #nextId = 0;
  readonly #pending = new Map<number, Pending<Result>>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(job: OffLoopJob<Request, Result>) {
    this.#job = job;
    this.#source = [
      `const { parentPort } = require("node:worker_threads");`,
      `const fs = require("node:fs");`,
      `const job = (${String(job)});`,
      `parentPort.on("message", ({ id, request }) => {`,
      `  let message;`,
      `  try { message = { id, result: job(request, fs) }; } catch (error) { message = { id, error: String(error && error.message || error) }; }`,
      `  parentPort.postMessage(message);`,
      `});`,
    ].join("\n");
  }

  /** The job's result for `request`, computed on the worker (or, without one, on the loop). */
  run(request: Request): Promise<Result> {
    const worker = this.#onLoop ? undefined : this.#started();
    if (worker === undefined) {
      try {
        return Promise.resolve(this.#job(request, fs));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const id = this.#nextId++;
    return new Promise<Result>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, request });
    });
  }

  /** Whether jobs now run on a worker thread (false once that failed). */
  get offLoop(): boolean {
    return !this.#onLoop;
  }

  #started(): Worker | undefined {
    if (this.#worker !== undefined) return this.#worker;
    let worker: Worker;
    try {
      worker = new Worker(this.#source, { eval: true });
    } catch {
      this.#onLoop = true;
      return undefined;
    }
    // Held (ref) only while a run is in flight: an idle worker must not keep the process up.
    worker.unref();
    worker.on("message", (message: { id: number; result?: Result; error?: string }) => {
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(message.result as Result);
      if (this.#pending.size === 0) {
        worker.unref();
        this.#idleLater();
      }
    });
    const died = (error: Error): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#onLoop = true;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    };
    worker.on("error", died);
    worker.on("exit", (code) => died(new Error(`the worker thread exited (${code})`)));
    this.#worker = worker;
    return worker;
  }

  #idleLater(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const worker = this.#worker;
      if (worker === undefined || this.#pending.size > 0) return;
      this.#worker = undefined;
      void worker.terminate();
    }, IDLE_MS);
    this.#idleTimer.unref?.();
  }
}
