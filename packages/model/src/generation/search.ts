import { sourceTensor } from '../batch.js';
import { Rng } from '../random.js';
import type { Transformer } from '../transformer.js';
import { DecoderCache } from './decoder-cache.js';
import { applyGenerationConfig, type GenerationConfig } from './generation-config.js';
import {
  argMax,
  LogitsProcessorList,
  logProbability,
  logSumExp,
  MinLengthProcessor,
  NoRepeatNgramProcessor,
  RepetitionPenaltyProcessor,
  softmax,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  topIndices,
} from './logits-processors.js';
import { EosCriterion, MaxLengthCriterion, StoppingCriteriaList, type FinishReason } from './stopping-criteria.js';
import type { GenerationHooks, JoiningSource } from './streamers.js';

export type SearchStrategy = 'greedy' | 'beam' | 'sample';

export interface GenerateOptions {
  /** 'greedy' (default): the most probable token each step; 'beam': beam search; 'sample': seeded sampling. */
  strategy?: SearchStrategy;
  /** Upper bound on generated tokens, EOS included; also capped by the model's maxLength − 1. Default 32. */
  maxNewTokens?: number;
  /** EOS is forbidden before this many tokens. Default 0. */
  minNewTokens?: number;
  /** Forbids repeating any n-gram of this size; 0 (default) is off. */
  noRepeatNgramSize?: number;
  /** CTRL repetition penalty; 1 (default) is off. */
  repetitionPenalty?: number;
  /** Sampling only: divides the scores before sampling. Default 1. */
  temperature?: number;
  /** Sampling only: keep the k most probable tokens; 0 (default) is off. */
  topK?: number;
  /** Sampling only: nucleus mass; 1 (default) is off. */
  topP?: number;
  /** Sampling only: seed of every source's generator. Default 0. */
  seed?: number;
  /** Beam search only: hypotheses kept per source. Default 4. */
  numBeams?: number;
  /** Beam search only: a finished hypothesis scores sum / len^lengthPenalty, len counting EOS. Default 1. */
  lengthPenalty?: number;
  /**
   * Beam search only: stop a source once no live hypothesis can still beat
   * its best finished one (an exact bound, so the result is the same as
   * without it, only sooner). Default true.
   */
  earlyStopping?: boolean;
}

export interface GenerateOutput {
  /** Generated ids without BOS and EOS. */
  tokens: number[];
  /**
   * Sum of the log-probabilities of the generated tokens (EOS included) under
   * the processed but not warped scores (temperature, top-k and top-p left
   * out), so that scores of all strategies compare; for beam search divided
   * by len^lengthPenalty.
   */
  score: number;
  finishReason: FinishReason;
}

/** Every option filled in with its default; what `resolveGenerateOptions` returns. */
export type ResolvedGenerateOptions = Required<GenerateOptions>;

type Resolved = ResolvedGenerateOptions;

const DEFAULTS: Resolved = {
  strategy: 'greedy',
  maxNewTokens: 32,
  minNewTokens: 0,
  noRepeatNgramSize: 0,
  repetitionPenalty: 1,
  temperature: 1,
  topK: 0,
  topP: 1,
  seed: 0,
  numBeams: 4,
  lengthPenalty: 1,
  earlyStopping: true,
};

/**
 * How each source of one batch is decoded. The options of a batch must agree
 * on everything but the per-source fields `maxNewTokens` and `seed`, since the
 * rows are stepped together and share their processors.
 */
interface Plan {
  shared: ResolvedGenerateOptions;
  /** Per source: its token limit, already capped by the model's maxLength − 1. */
  limits: number[];
  /** Per source: the seed of its sampling generator. */
  seeds: number[];
}

/**
 * Generates a reply to every source with the model's cached incremental
 * decoder. The encoder runs once for the whole batch; greedy and sampling
 * decode all sources as one batch, beam search as one batch of
 * sources × numBeams rows. Every source's result is independent of the
 * others in the batch (sampling gives each source its own generator seeded
 * with `seed`).
 *
 * `options` is either one set for every source or a list, one per source,
 * that agree on everything except `maxNewTokens` and `seed` (a RangeError
 * otherwise): a source then decodes exactly as it would alone with its own
 * options. The hooks stream tokens and abandon sources; see GenerationHooks.
 */
export function generate(
  model: Transformer,
  sources: readonly (readonly number[])[],
  options: GenerateOptions | readonly GenerateOptions[] = {},
  hooks: GenerationHooks = {},
): GenerateOutput[] {
  const plan = planGeneration(model, sources, options);
  return runToEnd(generationSteps(model, sources, plan, hooks));
}

/**
 * `generate`, giving the event loop a turn between decoder steps, so that a
 * server stays responsive (new requests queue, aborts land, streamed tokens
 * flush) while a long batch decodes. Same arguments, same results; bad
 * options reject the promise with generate's RangeError.
 */
export async function generateAsync(
  model: Transformer,
  sources: readonly (readonly number[])[],
  options: GenerateOptions | readonly GenerateOptions[] = {},
  hooks: GenerationHooks = {},
): Promise<GenerateOutput[]> {
  const plan = planGeneration(model, sources, options);
  const steps = generationSteps(model, sources, plan, hooks);
  for (let r = steps.next(); ; r = steps.next()) {
    if (r.done) return r.value;
    await nextTurn();
  }
}

/**
 * A key equal for exactly the resolved options that can decode in one batch:
 * every option that shapes the search, leaving out the per-source
 * `maxNewTokens` and `seed` and the options the strategy ignores (a greedy
 * request's temperature, say). Readable, for logs: "beam numBeams=4 …".
 */
export function generationGroup(o: ResolvedGenerateOptions): string {
  const fields: (keyof ResolvedGenerateOptions)[] = ['minNewTokens', 'noRepeatNgramSize', 'repetitionPenalty'];
  if (o.strategy === 'sample') fields.push('temperature', 'topK', 'topP');
  if (o.strategy === 'beam') fields.push('numBeams', 'lengthPenalty', 'earlyStopping');
  return [o.strategy, ...fields.map((f) => `${f}=${String(o[f])}`)].join(' ');
}

function isOptionList(options: GenerateOptions | readonly GenerateOptions[]): options is readonly GenerateOptions[] {
  return Array.isArray(options);
}

function planGeneration(model: Transformer, sources: readonly (readonly number[])[], options: GenerateOptions | readonly GenerateOptions[]): Plan {
  const cap = (o: ResolvedGenerateOptions) => Math.min(o.maxNewTokens, model.config.maxLength - 1);
  if (!isOptionList(options)) {
    const shared = resolveGenerateOptions(options);
    return { shared, limits: sources.map(() => cap(shared)), seeds: sources.map(() => shared.seed) };
  }
  if (options.length !== sources.length) throw new RangeError(`got ${options.length} option sets for ${sources.length} sources`);
  const resolved = options.map((x) => resolveGenerateOptions(x));
  const shared = resolved[0] ?? { ...DEFAULTS };
  const group = generationGroup(shared);
  resolved.forEach((o, i) => {
    const other = generationGroup(o);
    if (other !== group) throw new RangeError(`options of source ${i} (${other}) cannot share a batch with those of source 0 (${group}): only maxNewTokens and seed may differ`);
  });
  return { shared, limits: resolved.map(cap), seeds: resolved.map((o) => o.seed) };
}

/** Drives a step generator synchronously to its result. */
function runToEnd<T>(steps: Generator<void, T, void>): T {
  for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
}

/** Resolves after the event loop has run pending I/O and timers once. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve);
    else setTimeout(resolve, 0);
  });
}

/**
 * The whole generation as a generator that yields after every decoder step,
 * so that one loop serves both the synchronous and the asynchronous driver.
 * The decoding state lives in its try/finally: a driver must run it to the
 * end (or until it throws), which both drivers do.
 */
function* generationSteps(model: Transformer, sources: readonly (readonly number[])[], plan: Plan, hooks: GenerationHooks): Generator<void, GenerateOutput[], void> {
  if (sources.length === 0) return [];
  const o = plan.shared;
  const processors = scoreProcessors(o, model.config.eosId);
  const source = sourceTensor(sources, model.config);
  let cache: DecoderCache;
  try {
    cache = DecoderCache.start(model, source);
  } finally {
    source.dispose();
  }
  try {
    if (o.strategy === 'beam') return yield* beamSearch(model, cache, plan.limits, processors, o, hooks);
    return yield* decodeBatch(model, cache, plan, processors, hooks);
  } finally {
    cache.dispose();
  }
}

/**
 * Every option decided, by precedence: the request's own, then the model's
 * generation config (see `applyGenerationConfig`: a strategy's own fields
 * only for that strategy), then the built-in defaults. Validates; throws a
 * RangeError naming the first bad option. Unknown keys are ignored.
 */
export function resolveGenerateOptions(request: GenerateOptions = {}, config: GenerationConfig = {}): Resolved {
  const options = applyGenerationConfig(request, config);
  const o: Resolved = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof Resolved)[]) {
    const value = options[key];
    if (value !== undefined) (o as Record<keyof Resolved, unknown>)[key] = value;
  }
  const nonNegativeInt = (name: keyof Resolved, v: number) => {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  };
  if (!['greedy', 'beam', 'sample'].includes(o.strategy)) throw new RangeError(`unknown strategy ${String(o.strategy)}`);
  nonNegativeInt('maxNewTokens', o.maxNewTokens);
  nonNegativeInt('minNewTokens', o.minNewTokens);
  nonNegativeInt('noRepeatNgramSize', o.noRepeatNgramSize);
  nonNegativeInt('topK', o.topK);
  if (!Number.isInteger(o.numBeams) || o.numBeams < 1) throw new RangeError(`numBeams must be a positive integer, got ${o.numBeams}`);
  if (!Number.isFinite(o.lengthPenalty)) throw new RangeError(`lengthPenalty must be finite, got ${o.lengthPenalty}`);
  if (!(o.temperature > 0) || !Number.isFinite(o.temperature)) throw new RangeError(`temperature must be a positive number, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${o.topP}`);
  if (!(o.repetitionPenalty > 0) || !Number.isFinite(o.repetitionPenalty)) throw new RangeError(`repetitionPenalty must be a positive number, got ${o.repetitionPenalty}`);
  if (!Number.isFinite(o.seed)) throw new RangeError(`seed must be finite, got ${o.seed}`);
  return o;
}

/** Processors that define the model's distribution for every strategy. */
function scoreProcessors(o: Resolved, eosId: number): LogitsProcessorList {
  const list = new LogitsProcessorList();
  if (o.minNewTokens > 0) list.push(new MinLengthProcessor(o.minNewTokens, eosId));
  if (o.noRepeatNgramSize > 0) list.push(new NoRepeatNgramProcessor(o.noRepeatNgramSize));
  if (o.repetitionPenalty !== 1) list.push(new RepetitionPenaltyProcessor(o.repetitionPenalty));
  return list;
}

/** Processors that only reshape the distribution sampled from. */
function samplingWarpers(o: Resolved): LogitsProcessorList {
  const list = new LogitsProcessorList([new TemperatureProcessor(o.temperature)]);
  if (o.topK > 0) list.push(new TopKProcessor(o.topK));
  if (o.topP < 1) list.push(new TopPProcessor(o.topP));
  return list;
}

/** Index drawn from softmax(row) with the uniform number u ∈ [0, 1). */
function sampleIndex(row: Float32Array, u: number): number {
  const probs = softmax(row);
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! === 0) continue;
    cumulative += probs[i]!;
    last = i;
    if (u < cumulative) return i;
  }
  // Rounding can leave the total just under u: take the last possible token.
  return last;
}

/** The unfinished sources whose caller has given up on them. */
function abandoned(unfinished: Iterable<number>, hooks: GenerationHooks): number[] {
  const shouldStop = hooks.shouldStop;
  if (!shouldStop) return [];
  return [...unfinished].filter((b) => shouldStop(b));
}

/**
 * Chooses each next token of greedy decoding (the argmax) or sampling (drawn
 * from the warped distribution with the source's own generator); → the
 * token and the log-probability the score counts.
 */
class TokenChooser {
  private readonly warpers: LogitsProcessorList;
  private readonly rngs = new Map<number, Rng>();

  constructor(private readonly o: Resolved) {
    this.warpers = o.strategy === 'sample' ? samplingWarpers(o) : new LogitsProcessorList();
  }

  /** Registers source b, with its sampling seed. */
  addSource(b: number, seed: number): void {
    if (this.o.strategy === 'sample') this.rngs.set(b, new Rng(seed));
  }

  forget(b: number): void {
    this.rngs.delete(b);
  }

  choose(b: number, row: Float32Array): { id: number; logProb: number } {
    if (this.o.strategy !== 'sample') {
      const id = argMax(row);
      // The maximum is row[id]: logSumExp need not look for it again.
      return { id, logProb: logProbability(row, id, logSumExp(row, row[id])) };
    }
    // Warpers shape the sampling distribution only; the score stays on `row`.
    const warped = row.slice();
    this.warpers.process([[]], [warped]);
    const id = sampleIndex(warped, this.rngs.get(b)!.next());
    return { id, logProb: logProbability(row, id) };
  }
}

/**
 * Greedy decoding and sampling: one hypothesis per source, the whole batch
 * stepped together until every row has finished at its own limit. A
 * finished source is reported at once (onFinish), and its row is gathered
 * out of the cache before the next step, so that a long reply neither holds
 * back the short ones nor makes every step pay for them. Before each step,
 * sources from the join hook enter the batch as new rows (continuous
 * batching); the generation ends when no row is left and none joins.
 */
function* decodeBatch(model: Transformer, cache: DecoderCache, plan: Plan, processors: LogitsProcessorList, hooks: GenerationHooks): Generator<void, GenerateOutput[], void> {
  const { bosId, eosId } = model.config;
  const group = generationGroup(plan.shared);
  const chooser = new TokenChooser(plan.shared);
  // Sources still decoding, by index (the call's own, then those that joined, in order of
  // arrival); a finished one is dropped at once, so that a batch that runs for hours under
  // load holds only its live rows.
  const active = new Map<number, { stopping: StoppingCriteriaList; generated: number[]; output: GenerateOutput }>();
  let sourceCount = 0;
  const finish = (b: number) => {
    const { generated, output } = active.get(b)!;
    active.delete(b);
    chooser.forget(b);
    output.tokens = output.finishReason === 'eos' ? generated.slice(0, -1) : generated;
    hooks.onFinish?.(b, output);
  };
  const addSource = (limit: number, seed: number): number => {
    const b = sourceCount++;
    const output: GenerateOutput = { tokens: [], score: 0, finishReason: 'length' };
    active.set(b, { stopping: new StoppingCriteriaList([new EosCriterion(eosId), new MaxLengthCriterion(limit)]), generated: [], output });
    chooser.addSource(b, seed);
    return b;
  };
  const outputs = plan.limits.map((limit, i) => active.get(addSource(limit, plan.seeds[i]!))!.output);
  plan.limits.forEach((limit, b) => limit === 0 && finish(b));
  // rows[r]: the source whose cache row r is; finished sources leave when compacted.
  let rows = plan.limits.map((_, b) => b);
  let fed = rows.map(() => bosId);
  for (let t = 0; ; t++) {
    // The turn comes before the check, so that an abort arriving during it stops its row at once.
    // Once every row has finished, only sources already waiting may join: the cache is freed
    // before anyone hears of the last result.
    if (t > 0 && active.size > 0) yield;
    for (const b of abandoned(active.keys(), hooks)) finish(b);
    const joined = joinSources(model, cache, hooks.join?.() ?? [], group, addSource, finish);
    rows = [...rows, ...joined];
    fed = [...fed, ...joined.map(() => bosId)];
    if (active.size === 0) break;
    const live = rows.flatMap((b, r) => (active.has(b) ? [r] : []));
    // Gathering the cache rows costs far less than a step's vocabulary projection for a finished row.
    if (live.length < rows.length) {
      cache.select(live);
      rows = live.map((r) => rows[r]!);
      fed = live.map((r) => fed[r]!);
    }
    hooks.onStep?.(rows.length);
    const logits = cache.stepRows(fed);
    fed = logits.map((row, r) => {
      const b = rows[r]!;
      const source = active.get(b)!;
      processors.process([source.generated], [row]);
      const { id, logProb } = chooser.choose(b, row);
      source.output.score += logProb;
      source.generated.push(id);
      const reason = source.stopping.check(source.generated);
      if (reason !== 'eos') hooks.onToken?.(b, id);
      if (reason) {
        source.output.finishReason = reason;
        finish(b);
      }
      return id;
    });
  }
  return outputs;
}

/**
 * Adds the sources a join hook handed over to the running decode; → the
 * source indices of those that take a row (a limit of 0 finishes at once).
 */
function joinSources(
  model: Transformer,
  cache: DecoderCache,
  joining: readonly JoiningSource[],
  group: string,
  addSource: (limit: number, seed: number) => number,
  finish: (b: number) => void,
): number[] {
  if (joining.length === 0) return [];
  const resolved = joining.map((j) => resolveGenerateOptions(j.options));
  for (const o of resolved) {
    const other = generationGroup(o);
    if (other !== group) throw new RangeError(`a joining source's options (${other}) cannot share the running batch (${group}): only maxNewTokens and seed may differ`);
  }
  const entering: number[] = [];
  const sources: (readonly number[])[] = [];
  resolved.forEach((o, i) => {
    const limit = Math.min(o.maxNewTokens, model.config.maxLength - 1);
    const b = addSource(limit, o.seed);
    if (limit === 0) return finish(b);
    entering.push(b);
    sources.push(joining[i]!.source);
  });
  if (sources.length === 0) return [];
  const source = sourceTensor(sources, model.config);
  try {
    cache.join(source);
  } finally {
    source.dispose();
  }
  return entering;
}

interface Hypothesis {
  tokens: number[];
  /** Sum of log-probabilities so far. */
  sum: number;
}

interface FinishedHypothesis extends Hypothesis {
  score: number;
  finishReason: FinishReason;
}

/**
 * Beam search over B sources × K beams in one batch: beam j of source b lives
 * in row b·K + j, and after every step the cache is gathered so that each row
 * holds its new hypothesis's parent. Each source searches up to its own limit;
 * the batch steps until the last of them is done.
 */
function* beamSearch(
  model: Transformer,
  cache: DecoderCache,
  limits: readonly number[],
  processors: LogitsProcessorList,
  o: Resolved,
  hooks: GenerationHooks,
): Generator<void, GenerateOutput[], void> {
  const { bosId, eosId } = model.config;
  const K = o.numBeams;
  const batch = limits.length;
  const maxLimit = Math.max(0, ...limits);
  const normalise = (sum: number, length: number) => sum / Math.max(length, 1) ** o.lengthPenalty;
  // Best live score reachable from `sum` at `length` tokens: sums only fall, so the
  // bound is the current sum at the most favourable final length.
  const bestReachable = (sum: number, length: number, limit: number) => (o.lengthPenalty > 0 ? normalise(sum, limit) : normalise(sum, length + 1));
  // Every source starts with one live beam: K copies of the same BOS would only tie.
  let live: Hypothesis[][] = limits.map((limit) => (limit > 0 ? [{ tokens: [], sum: 0 }] : []));
  const finished: FinishedHypothesis[][] = Array.from({ length: batch }, () => []);
  const addFinished = (b: number, h: FinishedHypothesis) => {
    const pool = finished[b]!;
    pool.push(h);
    pool.sort((x, y) => y.score - x.score);
    if (pool.length > K) pool.pop();
  };
  // A source's pool is final once it has no live beam left: only then is its winner known.
  const result = (b: number): GenerateOutput => {
    const best = finished[b]![0];
    if (!best) return { tokens: [], score: 0, finishReason: 'length' };
    return { tokens: best.tokens, score: best.score, finishReason: best.finishReason };
  };
  const streamBest = (b: number) => {
    const onToken = hooks.onToken;
    if (onToken) for (const id of finished[b]![0]?.tokens ?? []) onToken(b, id);
    hooks.onFinish?.(b, result(b));
  };
  limits.forEach((limit, b) => limit === 0 && hooks.onFinish?.(b, result(b)));
  if (maxLimit > 0) cache.select(Array.from({ length: batch * K }, (_, r) => Math.floor(r / K)));

  for (let t = 0; t < maxLimit; t++) {
    if (t > 0) yield;
    for (const b of abandoned(
      live.flatMap((beams, b) => (beams.length > 0 ? [b] : [])),
      hooks,
    )) {
      // Cut as at the length limit, so that the best hypothesis so far is the answer.
      for (const h of live[b]!) addFinished(b, { ...h, score: normalise(h.sum, t), finishReason: 'length' });
      live[b] = [];
      streamBest(b);
    }
    if (!live.some((beams) => beams.length > 0)) break;
    const fed = Array.from({ length: batch * K }, (_, r) => {
      const h = live[Math.floor(r / K)]![r % K];
      return h ? (h.tokens[h.tokens.length - 1] ?? bosId) : eosId;
    });
    hooks.onStep?.(live.filter((beams) => beams.length > 0).length);
    const rows = cache.stepRows(fed);
    const parents: number[] = [];
    live = live.map((beams, b) => {
      if (beams.length === 0) {
        parents.push(...Array.from({ length: K }, () => b * K));
        return [];
      }
      const limit = limits[b]!;
      const beamRows = beams.map((_, j) => rows[b * K + j]!);
      processors.process(
        beams.map((h) => h.tokens),
        beamRows,
      );
      // 2K candidates guarantee K live ones even if K of them are EOS.
      const candidates: { j: number; id: number; sum: number }[] = [];
      beamRows.forEach((row, j) => {
        const logZ = logSumExp(row);
        for (const id of topIndices(row, Math.min(2 * K, row.length))) {
          const logProb = logProbability(row, id, logZ);
          if (logProb > -Infinity) candidates.push({ j, id, sum: beams[j]!.sum + logProb });
        }
      });
      // Stable sort: ties stay in (beam, token id) order, as argmax breaks them.
      candidates.sort((x, y) => y.sum - x.sum);
      const next: Hypothesis[] = [];
      const nextParents: number[] = [];
      for (const [rank, c] of candidates.slice(0, 2 * K).entries()) {
        const tokens = beams[c.j]!.tokens;
        if (c.id === eosId) {
          // An EOS below the top K would not have survived as a beam either.
          if (rank < K) addFinished(b, { tokens, sum: c.sum, score: normalise(c.sum, tokens.length + 1), finishReason: 'eos' });
          continue;
        }
        next.push({ tokens: [...tokens, c.id], sum: c.sum });
        nextParents.push(b * K + c.j);
        if (next.length === K) break;
      }
      const length = t + 1;
      const pool = finished[b]!;
      let stop = next.length === 0;
      if (!stop && length >= limit) {
        for (const h of next) addFinished(b, { ...h, score: normalise(h.sum, length), finishReason: 'length' });
        stop = true;
      }
      // Only the best finished hypothesis is returned: once no live one can beat it, the search is over.
      if (!stop && o.earlyStopping && pool.length > 0) {
        const best = pool[0]!.score;
        stop = !next.some((h) => bestReachable(h.sum, length, limit) > best);
      }
      if (stop) {
        parents.push(...Array.from({ length: K }, () => b * K));
        streamBest(b);
        return [];
      }
      // Rows past the live beams are filler: any row of this source will do.
      parents.push(...nextParents, ...Array.from({ length: K - next.length }, () => b * K));
      return next;
    });
    if (!live.some((beams) => beams.length > 0)) break;
    if (t + 1 < maxLimit) cache.select(parents);
  }

  return finished.map((_, b) => result(b));
}
