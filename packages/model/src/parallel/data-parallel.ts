import { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../backend.js';
import type { Example } from '../batch.js';
import type { TrainStepResult } from '../train-step.js';
import type { Transformer } from '../transformer.js';
import { createFlatAdamState, type FlatAdamState } from './flat-adam.js';
import { flatLayout, readParams, writeParams, type FlatLayout } from './flat.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

export interface ParallelStepOptions {
  learningRate: number;
  labelSmoothing: number;
  clipNorm: number;
  dropoutSeed: number;
}

type Reply<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/**
 * Synchronous data-parallel training on one machine. The wasm and cpu
 * backends compute on one thread each, so every worker thread runs a replica
 * on its own core. A step splits the batch between them; each writes the
 * gradient of its part, weighted by its share of the target tokens, so that
 * the sum is the whole batch's gradient. The workers then sum one slice each,
 * the global norm clips it, and each applies Adam to its slice of the shared
 * parameters. The result equals one replica stepping on the whole batch, up to
 * float rounding and the dropout masks drawn.
 */
export class DataParallelTrainer {
  private version = 0;
  private failure: Error | undefined;
  private readonly waiting = new Map<number, (message: FromWorker) => void>();
  private backendDetail = '';

  private constructor(
    readonly layout: FlatLayout,
    readonly params: Float32Array,
    readonly adam: FlatAdamState,
    private readonly workers: Worker[],
  ) {}

  /** Starts `workers` replicas of `model`; its current weights are the starting point. */
  static async start(model: Transformer, options: { workers: number; backend: BackendChoice }): Promise<DataParallelTrainer> {
    const count = options.workers;
    if (!(Number.isInteger(count) && count >= 1)) throw new RangeError(`workers must be a positive integer, got ${count}`);
    const layout = flatLayout(model);
    const params = new Float32Array(new SharedArrayBuffer(layout.size * 4));
    readParams(model, layout, params);
    const adam = createFlatAdamState(layout.size, true);
    const grads = Array.from({ length: count }, () => new SharedArrayBuffer(layout.size * 4));
    const slice = Math.ceil(layout.size / count);
    const workers = grads.map((_, index) =>
      spawnWorker({
        index,
        backend: options.backend,
        config: model.config,
        layout,
        params: params.buffer as SharedArrayBuffer,
        grads,
        adamM: adam.m.buffer as SharedArrayBuffer,
        adamV: adam.v.buffer as SharedArrayBuffer,
        range: { from: Math.min(layout.size, index * slice), to: Math.min(layout.size, (index + 1) * slice) },
      }),
    );
    const trainer = new DataParallelTrainer(layout, params, adam, workers);
    workers.forEach((worker, i) => {
      worker.on('message', (message: FromWorker) => trainer.waiting.get(i)?.(message));
      worker.on('error', (error) => trainer.waiting.get(i)?.({ type: 'error', message: error.message }));
      worker.on('exit', (code) => trainer.waiting.get(i)?.({ type: 'error', message: `exited with code ${code}` }));
    });
    try {
      const ready = await Promise.all(workers.map((_, i) => trainer.reply(i, 'ready')));
      trainer.backendDetail = [...new Set(ready.map((r) => r.backend))].join(', ');
    } catch (error) {
      await trainer.close();
      throw error;
    }
    return trainer;
  }

  get workerCount(): number {
    return this.workers.length;
  }

  /** The backend each worker runs, as its startup reported it. */
  get backend(): string {
    return this.backendDetail;
  }

  /** One synchronous step on `examples`, split across the workers by target tokens. */
  async step(examples: readonly Example[], options: ParallelStepOptions): Promise<TrainStepResult> {
    if (this.failure) throw this.failure;
    const parts = splitByTokens(examples, this.workers.length);
    const totalTokens = examples.reduce((n, e) => n + e.target.length + 1, 0);
    const stepped = await this.all(
      'stepped',
      parts.map((part, i) => ({
        type: 'step',
        examples: part,
        labelSmoothing: options.labelSmoothing,
        // Distinct, reproducible masks per replica.
        dropoutSeed: (Math.imul(options.dropoutSeed, 0x9e3779b1) + Math.imul(i + 1, 0x85ebca6b)) >>> 0,
        totalTokens,
        paramsVersion: this.version,
      })),
    );
    const reduced = await this.all(
      'reduced',
      this.workers.map(() => ({ type: 'reduce', workers: parts.length })),
    );
    const norm = Math.sqrt(reduced.reduce((s, r) => s + r.sumSquares, 0));
    const clipped = Number.isFinite(norm) && norm > options.clipNorm;
    this.adam.step++;
    await this.all(
      'updated',
      this.workers.map(() => ({ type: 'update', step: this.adam.step, learningRate: options.learningRate, gradScale: clipped ? options.clipNorm / norm : 1 })),
    );
    this.version++;
    const lossSum = stepped.reduce((s, r) => s + r.lossSum, 0);
    const tokens = stepped.reduce((s, r) => s + r.tokens, 0);
    return { loss: lossSum / tokens, gradNorm: norm, clipped, targetTokens: tokens };
  }

  /** Copies the current parameters into a model (for validation or saving). */
  syncTo(model: Transformer): void {
    writeParams(model, this.layout, this.params);
  }

  /** Replaces parameters and optimiser state (resuming from a checkpoint). */
  restore(params: Float32Array, adam: FlatAdamState): void {
    this.params.set(params);
    this.adam.m.set(adam.m);
    this.adam.v.set(adam.v);
    this.adam.step = adam.step;
    this.version++;
  }

  async close(): Promise<void> {
    this.waiting.clear();
    for (const w of this.workers) {
      w.removeAllListeners();
      w.postMessage({ type: 'stop' } satisfies ToWorker);
    }
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  /** Sends one message to each of the first messages.length workers and awaits their replies of `type`. */
  private all<T extends FromWorker['type']>(type: T, messages: ToWorker[]): Promise<Reply<T>[]> {
    return Promise.all(
      messages.map((message, i) => {
        const reply = this.reply(i, type);
        this.workers[i]!.postMessage(message);
        return reply;
      }),
    );
  }

  private reply<T extends FromWorker['type']>(index: number, type: T): Promise<Reply<T>> {
    return new Promise((resolve, reject) => {
      this.waiting.set(index, (message) => {
        this.waiting.delete(index);
        if (message.type === type) return resolve(message as Reply<T>);
        this.failure = new Error(`training worker ${index}: ${message.type === 'error' ? message.message : `unexpected ${message.type}`}`);
        reject(this.failure);
      });
    });
  }
}

/** Contiguous parts with about equal target tokens; never an empty part. */
export function splitByTokens(examples: readonly Example[], parts: number): Example[][] {
  const n = Math.min(parts, examples.length);
  const total = examples.reduce((s, e) => s + e.target.length + 1, 0);
  const out: Example[][] = [];
  let current: Example[] = [];
  let acc = 0;
  for (const [i, e] of examples.entries()) {
    current.push(e);
    acc += e.target.length + 1;
    const partsLeft = n - out.length - 1;
    const examplesLeft = examples.length - i - 1;
    if (partsLeft > 0 && (acc >= (total * (out.length + 1)) / n || examplesLeft === partsLeft)) {
      out.push(current);
      current = [];
    }
  }
  out.push(current);
  return out;
}

/**
 * From source (development, tests) the worker starts through a small entry
 * that loads its TypeScript with tsx; a bundled build ships the worker as
 * JavaScript beside the bundle.
 */
function spawnWorker(init: WorkerInit): Worker {
  const source = new URL(import.meta.url).pathname.endsWith('.ts');
  return new Worker(new URL(source ? './worker-entry.mjs' : './training-worker.mjs', import.meta.url), { workerData: init });
}
