import type { Transformer } from '../transformer.js';
import type { JoiningSource } from './hooks.js';
import { generationGroup, resolveGenerateOptions, type GenerateOptions, type ResolvedGenerateOptions } from './options.js';
import type { GenerateOutput } from './output.js';
import { generateAsync } from './search.js';

export interface DecodeBatcherOptions {
  /** Most requests decoded as one batch (beam search: each brings numBeams rows). Default 32. */
  maxBatch?: number;
  /** How long the oldest waiting request waits for others to join its batch while nothing decodes. Default 0. */
  maxWaitMs?: number;
  /** Most requests waiting (those decoding not counted); more are refused with QueueFullError. Default 256. */
  maxQueue?: number;
  /** False: every request is decoded alone, one at a time (the benchmark's "batching off"). Default true. */
  batching?: boolean;
  /**
   * Called as each batch starts, and as requests join a running one, with the
   * number of requests taken and their group (see generationGroup). A throw
   * fails that batch.
   */
  onBatch?: (size: number, group: string) => void;
  /** Called before each decoder step with the requests it decodes (beam search: sources, not rows). */
  onStep?: (requests: number) => void;
}

export interface DecodeRequest {
  /** Source token ids, without EOS. */
  source: readonly number[];
  /** Decoding options; a batch is formed only of requests whose options agree except for maxNewTokens and seed. */
  options?: GenerateOptions;
  /** Each reply token as it is chosen (beam search: all at once when the request's search ends); a throw fails this request alone. */
  onToken?: (tokenId: number) => void;
  /** Aborting rejects the request with the signal's reason, whether it waits or decodes. */
  signal?: AbortSignal;
  /** Called as the request leaves the queue for a batch, new or running (a server's queue-wait metric). */
  onStart?: () => void;
}

/** The queue already holds maxQueue waiting requests (a server answers 503). */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** The batcher was closed before this request came. */
export class BatcherClosedError extends Error {
  override name = 'BatcherClosedError';
}

interface Pending {
  source: number[];
  options: ResolvedGenerateOptions;
  group: string;
  /** performance.now() at submit. */
  arrivedAt: number;
  onToken: ((tokenId: number) => void) | undefined;
  onStart: (() => void) | undefined;
  /** Set once the promise is resolved or rejected; a settled request that still decodes is abandoned. */
  settled: boolean;
  resolve: (output: GenerateOutput) => void;
  reject: (reason: unknown) => void;
  /** Removes the abort listener. */
  detach: () => void;
}

/** A pending wake-up of the batcher: a timer, or an immediate when a batch is ready now. */
interface Wake {
  due: number;
  cancel: () => void;
}

// No wait by default: a request arriving while a greedy or sampling batch decodes joins it at the
// next step anyway, so waiting while idle would only delay a lone request.
const DEFAULTS = { maxBatch: 32, maxWaitMs: 0, maxQueue: 256 };

/**
 * Gathers concurrent generation requests and decodes them together: one
 * decoder step per token for the whole batch instead of one per request,
 * which is where a server's throughput under load comes from. While nothing
 * decodes, a batch starts when its oldest request has waited maxWaitMs or a
 * full batch of compatible requests is waiting. Requests whose options
 * cannot share a batch go into separate groups, each decoded as its own batch.
 *
 * At most maxBatch requests decode at once, and each is answered as soon as
 * its own reply ends, not when its batch's longest does. Greedy and sampling
 * batches are continuous: a request of the same group that arrives while
 * one decodes joins it at the next step (the generation's join hook), so
 * that a running batch stays full. Beam search batches are fixed; once the
 * places freed can be half filled by waiting requests, those start as a new
 * batch whose steps interleave with the running one's (the model runs on one
 * thread, so interleaving is all "at once" means). Every request's result
 * is what `generate` gives for its source alone.
 */
export class DecodeBatcher {
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxQueue: number;
  private readonly onBatch: ((size: number, group: string) => void) | undefined;
  private readonly onStep: ((requests: number) => void) | undefined;
  /** Groups of the running continuous batches: their waiting requests join at the next step. */
  private readonly joinable = new Set<string>();
  private readonly queue: Pending[] = [];
  /** Requests taken into a batch and not yet settled. */
  private readonly decoding = new Set<Pending>();
  /** Batches decoding now, their steps interleaved. */
  private running = 0;
  private closed = false;
  private wake: Wake | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly model: Transformer,
    options: DecodeBatcherOptions = {},
  ) {
    const batching = options.batching ?? true;
    this.maxBatch = batching ? (options.maxBatch ?? DEFAULTS.maxBatch) : 1;
    this.maxWaitMs = batching ? (options.maxWaitMs ?? DEFAULTS.maxWaitMs) : 0;
    this.maxQueue = options.maxQueue ?? DEFAULTS.maxQueue;
    this.onBatch = options.onBatch;
    this.onStep = options.onStep;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${this.maxBatch}`);
    if (!(this.maxWaitMs >= 0) || !Number.isFinite(this.maxWaitMs)) throw new RangeError(`maxWaitMs must be a non-negative number, got ${this.maxWaitMs}`);
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 0) throw new RangeError(`maxQueue must be a non-negative integer, got ${this.maxQueue}`);
  }

  /** Requests waiting, not yet decoding. */
  get queueLength(): number {
    return this.queue.length;
  }

  /** Requests being decoded (abandoned ones no longer count). */
  get inFlight(): number {
    return this.decoding.size;
  }

  /**
   * Queues one request; → its output. Rejects with BatcherClosedError after
   * close(), QueueFullError when maxQueue requests wait, the RangeError of
   * option or source validation, the signal's reason on abort, or the error
   * that broke its batch's decoding.
   */
  submit(request: DecodeRequest): Promise<GenerateOutput> {
    return new Promise<GenerateOutput>((resolve, reject) => {
      if (this.closed) throw new BatcherClosedError('the decode batcher is closed');
      const options = resolveGenerateOptions(request.options);
      const source = this.checkSource(request.source);
      const signal = request.signal;
      if (signal?.aborted) throw abortReason(signal);
      if (this.queue.length >= this.maxQueue) throw new QueueFullError(`the decode queue is full (${this.maxQueue} requests waiting)`);
      const pending: Pending = {
        source,
        options,
        group: generationGroup(options),
        arrivedAt: performance.now(),
        onToken: request.onToken,
        onStart: request.onStart,
        settled: false,
        resolve,
        reject,
        detach: () => {},
      };
      if (signal) {
        const onAbort = () => this.abort(pending, abortReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        pending.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(pending);
      this.pump();
    });
  }

  /**
   * Stops taking requests (later submits reject with BatcherClosedError) and
   * resolves once every request already taken, waiting or decoding, has
   * finished. Waiting requests no longer wait for company.
   */
  close(): Promise<void> {
    this.closed = true;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.pump();
    this.notifyIfIdle();
    return idle;
  }

  private checkSource(source: readonly number[]): number[] {
    const { vocabSize } = this.model.config;
    if (!Array.isArray(source)) throw new RangeError('source must be an array of token ids');
    for (const id of source) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`source token id ${id} is not in [0, ${vocabSize})`);
    }
    return [...source];
  }

  private abort(pending: Pending, reason: unknown): void {
    if (pending.settled) return;
    this.settle(pending, () => pending.reject(reason));
    // A decoding request keeps its row until the next step, where shouldStop drops it.
    const at = this.queue.indexOf(pending);
    if (at >= 0) {
      this.queue.splice(at, 1);
      this.notifyIfIdle();
    }
  }

  private settle(pending: Pending, finish: () => void): void {
    if (pending.settled) return;
    pending.settled = true;
    pending.detach();
    finish();
    // A row freed in a running batch may let the waiting requests start.
    if (this.decoding.delete(pending)) this.pump();
  }

  /**
   * Whether another batch may start: while fewer than maxBatch requests are
   * decoding. Batches then overlap, their steps interleaved, so that requests
   * that arrive while a batch finishes its longest reply need not wait for it.
   */
  private canStart(): boolean {
    return this.decoding.size < this.maxBatch;
  }

  /** Arranges for the next batch to start as soon as one is ready and may start. */
  private pump(): void {
    if (this.queue.length === 0 || !this.canStart()) return;
    const now = performance.now();
    const ready = this.readyGroup(now) !== undefined;
    if (!ready && this.running > 0) return;
    const due = ready ? now : this.queue[0]!.arrivedAt + this.maxWaitMs;
    if (this.wake && this.wake.due <= due) return;
    this.wake?.cancel();
    const fire = () => {
      this.wake = undefined;
      this.startNext();
    };
    // An immediate, not a timer, when ready: submit returns at once, yet a burst of submits still lands in one batch.
    if (ready) {
      const handle = setImmediate(fire);
      this.wake = { due, cancel: () => clearImmediate(handle) };
    } else {
      const handle = setTimeout(fire, Math.max(0, due - now));
      this.wake = { due, cancel: () => clearTimeout(handle) };
    }
  }

  /**
   * The group to decode next, or undefined to keep gathering. While nothing
   * decodes: the oldest request's once it has waited maxWaitMs (at once when
   * closing), or any group that fills a batch. While batches decode: a group
   * that fills half the free places; fewer wait for the running batches to
   * end, since a batch of one or two would only slow the others' steps.
   */
  private readyGroup(now: number): string | undefined {
    const oldest = this.queue[0];
    if (!oldest) return undefined;
    const free = this.maxBatch - this.decoding.size;
    if (this.running === 0 && (this.closed || now - oldest.arrivedAt >= this.maxWaitMs)) return oldest.group;
    const enough = this.running === 0 ? free : Math.ceil(free / 2);
    const counts = new Map<string, number>();
    for (const p of this.queue) {
      // These join their running batch at its next step.
      if (this.joinable.has(p.group)) continue;
      const count = (counts.get(p.group) ?? 0) + 1;
      if (count >= enough) return p.group;
      counts.set(p.group, count);
    }
    return undefined;
  }

  private startNext(): void {
    if (!this.canStart()) return;
    const group = this.readyGroup(performance.now());
    if (group === undefined) {
      this.pump();
      return;
    }
    const batch: Pending[] = [];
    const room = this.maxBatch - this.decoding.size;
    for (let i = 0; i < this.queue.length && batch.length < room;) {
      if (this.queue[i]!.group === group) batch.push(...this.queue.splice(i, 1));
      else i++;
    }
    void this.decode(batch, group);
  }

  /**
   * Decodes one batch, settling each request as soon as its output is final;
   * never rejects. `members` maps the generation's source indices to the
   * requests still decoding: the batch, then those that joined it.
   */
  private async decode(batch: Pending[], group: string): Promise<void> {
    const members = new Map(batch.map((p, i) => [i, p]));
    const member = (i: number): Pending => members.get(i)!;
    const numbering = { next: batch.length };
    const continuous = batch[0]!.options.strategy !== 'beam';
    this.running++;
    if (continuous) this.joinable.add(group);
    for (const p of batch) this.decoding.add(p);
    try {
      for (const p of batch) p.onStart?.();
      this.onBatch?.(batch.length, group);
      const onStep = this.onStep;
      const outputs = await generateAsync(
        this.model,
        batch.map((p) => p.source),
        batch.map((p) => p.options),
        {
          onToken: (i, id) => this.streamToken(member(i), id),
          shouldStop: (i) => member(i).settled,
          onFinish: (i, output) => {
            const p = member(i);
            // A continuous batch may run for as long as requests keep coming: keep only the live ones.
            members.delete(i);
            this.settle(p, () => p.resolve(output));
          },
          ...(onStep ? { onStep } : {}),
          ...(continuous ? { join: () => this.admit(group, members, numbering) } : {}),
        },
      );
      batch.forEach((p, i) => this.settle(p, () => p.resolve(outputs[i]!)));
    } catch (error) {
      // generateAsync has disposed its decoding state; nothing of this batch can be trusted.
      for (const p of [...batch, ...members.values()]) this.settle(p, () => p.reject(error));
    } finally {
      // Every request of the batch is settled by now, and settling took it out of `decoding`.
      if (continuous) this.joinable.delete(group);
      this.running--;
      this.pump();
      this.notifyIfIdle();
    }
  }

  /**
   * The join hook of a continuous batch: waiting requests of its group, as
   * many as there are free places, numbered on from the generation's last source.
   */
  private admit(group: string, members: Map<number, Pending>, numbering: { next: number }): JoiningSource[] {
    const room = this.maxBatch - this.decoding.size;
    const joining: Pending[] = [];
    for (let i = 0; i < this.queue.length && joining.length < room;) {
      if (this.queue[i]!.group === group) joining.push(...this.queue.splice(i, 1));
      else i++;
    }
    if (joining.length === 0) return [];
    for (const p of joining) {
      this.decoding.add(p);
      members.set(numbering.next++, p);
      p.onStart?.();
    }
    this.onBatch?.(joining.length, group);
    return joining.map((p) => ({ source: p.source, options: p.options }));
  }

  /** Passes a token to its request's callback; a callback that throws fails its own request only. */
  private streamToken(pending: Pending, id: number): void {
    if (pending.settled || !pending.onToken) return;
    try {
      pending.onToken(id);
    } catch (error) {
      this.settle(pending, () => pending.reject(error));
    }
  }

  private notifyIfIdle(): void {
    if (!this.closed || this.running > 0 || this.queue.length > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** The reason an aborted signal carries, or a DOM-style AbortError where it carries none. */
function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}
