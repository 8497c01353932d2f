/**
 * Runs a blocking, self-contained agent on a worker thread, so the event loop
 * that carries every tunnel never waits for it: the /proc/net/tcp scan behind
 * the access check (socket-owner.ts), whose every read(2) walks part of the
 * kernel's TCP hash table.
 *
 * An agent is built once where it runs and then takes inputs as they come,
 * posting outputs whenever it has them, also from work it schedules itself
 * between inputs. So a long job can take new inputs while it is under way
 * (the worker's own loop delivers them whenever the agent yields with
 * `tools.setImmediate`) and report partial results as it goes.
 *
 * The agent travels to the worker as source text (`String(agent)`), so one
 * implementation serves the worker, the bundle, the single executable (an
 * eval worker needs no file beside it) and Deno (node:worker_threads with
 * `eval: true`). That is why an agent must use nothing from outside its own
 * body but `tools`. esbuild's keep-names wrapper (`__name`, which tsx adds to
 * every named function) is the one helper the worker provides.
 *
 * Where no worker can be started, or one dies, a fresh agent runs on the loop
 * instead (slower under load, never wrong) and `onRestart` asks the owner to
 * send again what it still awaits. A worker that is not busy is stopped after
 * IDLE_MS, giving back its V8 heap, and started again when next needed.
 */
import * as fs from "node:fs";
import { setImmediate, setTimeout } from "node:timers";
import { Worker } from "node:worker_threads";

/** All an agent may use besides its arguments. */
export interface AgentTools {
  fs: typeof fs;
  /** Run `callback` after the inputs that are waiting have been delivered. */
  setImmediate(callback: () => void): void;
}

/**
 * Builds the agent's input handler; `post` sends an output back, at any time.
 * The handler must return quickly: long work goes in steps through
 * `tools.setImmediate`, so inputs keep arriving while it runs.
 */
export type OffLoopAgent<Input, Output> = (post: (output: Output) => void, tools: AgentTools) => (input: Input) => void;

export interface OffLoopOptions<Output> {
  /** Each output the agent posts, on the loop. */
  onOutput(output: Output): void;
  /** The agent was replaced by a fresh one (its worker died): send again every input whose outputs are still awaited. */
  onRestart(): void;
}

/** How long a worker that is not busy is kept. */
export const IDLE_MS = 30_000;

/**
 * @example
 * const lengths = new OffLoop<string, number>((post, tools) => (path) => post(tools.fs.readFileSync(path).length), {
 *   onOutput: (length) => console.log(length),
 *   onRestart: () => {},
 * });
 * lengths.busy = true;
 * lengths.send("/proc/net/tcp") // logs 15001
 */
export class OffLoop<Input, Output> {
  readonly #agent: OffLoopAgent<Input, Output>;
  readonly #options: OffLoopOptions<Output>;
  readonly #source: string;
  #worker: Worker | undefined;
  /** The agent on the loop, once a worker failed to start or died. */
  #onLoop: ((input: Input) => void) | undefined;
  #failure: Error | undefined;
  #busy = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(agent: OffLoopAgent<Input, Output>, options: OffLoopOptions<Output>) {
    this.#agent = agent;
    this.#options = options;
    this.#source = [
      `const { parentPort } = require("node:worker_threads");`,
      `const { setImmediate } = require("node:timers");`,
      `const __name = (target) => target;`,
      `const agent = (${String(agent)});`,
      `const take = agent((output) => parentPort.postMessage(output), { fs: require("node:fs"), setImmediate });`,
      `parentPort.on("message", (input) => take(input));`,
    ].join("\n");
  }

  /** Whether the agent runs on a worker thread (false once that failed). */
  get offLoop(): boolean {
    return this.#onLoop === undefined;
  }

  /** Why the agent runs on the loop: the worker's error, or undefined while it runs off the loop. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Hand `input` to the agent. */
  send(input: Input): void {
    const worker = this.#onLoop === undefined ? this.#started() : undefined;
    if (worker !== undefined) {
      worker.postMessage(input);
      return;
    }
    try {
      this.#onLoop!(input);
    } catch {
      // As for a step that throws, below.
    }
  }

  /**
   * Whether outputs are awaited. A busy worker holds the process open (an
   * awaited answer must come); one that is not lets it exit, and is stopped
   * after IDLE_MS.
   */
  set busy(busy: boolean) {
    if (busy === this.#busy) return;
    this.#busy = busy;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const worker = this.#worker;
    if (worker === undefined) return;
    if (busy) {
      worker.ref();
      return;
    }
    worker.unref();
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#worker !== worker || this.#busy) return;
      this.#worker = undefined;
      void worker.terminate();
    }, IDLE_MS);
    this.#idleTimer.unref?.();
  }

  #started(): Worker | undefined {
    if (this.#worker !== undefined) return this.#worker;
    let worker: Worker;
    try {
      worker = new Worker(this.#source, { eval: true });
    } catch (error) {
      this.#runOnLoop(error as Error);
      return undefined;
    }
    if (this.#busy) worker.ref();
    else worker.unref();
    worker.on("message", (output: Output) => this.#options.onOutput(output));
    const died = (error: Error): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#runOnLoop(error);
      this.#options.onRestart();
    };
    worker.on("error", died);
    worker.on("exit", (code) => died(new Error(`the worker thread exited (${code})`)));
    this.#worker = worker;
    return worker;
  }

  #runOnLoop(failure: Error): void {
    this.#failure = failure;
    const { onOutput } = this.#options;
    // Outputs reach the owner on a later turn, as they would from a worker, never inside its own send().
    const post = (output: Output): void => void setImmediate(() => onOutput(output));
    this.#onLoop = this.#agent(post, {
      fs,
      setImmediate(callback) {
        setImmediate(() => {
          try {
            callback();
          } catch {
            // A broken agent must not take the process down: its owner's own deadline answers what it never will.
          }
        });
      },
    });
  }
}
