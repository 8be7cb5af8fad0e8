import { sourceTensor } from '../batch.js';
import type { ModelConfig } from '../config.js';
import type { DecoderCache } from './decoder-cache.js';
import { abandoned, type GenerationHooks, type JoiningSource } from './hooks.js';
import type { LogitsProcessorList } from './logits-processors.js';
import { generationGroup, resolveJoining, tokenLimit, type Plan } from './options.js';
import { emptyOutput, type GenerateOutput } from './output.js';
import { tokenSampler, type TokenSampler } from './samplers.js';
import { EosCriterion, MaxLengthCriterion, StoppingCriteriaList } from './stopping-criteria.js';

/**
 * Greedy decoding and sampling: one hypothesis per source, the whole batch
 * stepped together until every row has finished at its own limit. A
 * finished source is reported at once (onFinish), and its row is gathered
 * out of the cache before the next step, so that a long reply neither holds
 * back the short ones nor makes every step pay for them. Before each step,
 * sources from the join hook enter the batch as new rows (continuous
 * batching); the generation ends when no row is left and none joins.
 */
export function* decodeBatch(
  config: ModelConfig,
  cache: DecoderCache,
  plan: Plan,
  processors: LogitsProcessorList,
  hooks: GenerationHooks,
): Generator<void, GenerateOutput[], void> {
  const group = generationGroup(plan.shared);
  const sources = new ActiveSources(config.eosId, tokenSampler(plan.shared), hooks);
  const outputs = plan.limits.map((limit, i) => sources.add(limit, plan.seeds[i]!).output);
  plan.limits.forEach((limit, b) => limit === 0 && sources.finish(b));
  // rows[r]: the source whose cache row r is; finished sources leave when compacted.
  let rows = plan.limits.map((_, b) => b);
  let fed = rows.map(() => config.bosId);
  for (let t = 0; ; t++) {
    // The turn comes before the check, so that an abort arriving during it stops its row at once.
    // Once every row has finished, only sources already waiting may join: the cache is freed
    // before anyone hears of the last result.
    if (t > 0 && sources.size > 0) yield;
    for (const b of abandoned(sources.indices(), hooks)) sources.finish(b);
    const joined = joinSources(config, cache, hooks.join?.() ?? [], group, sources);
    rows = [...rows, ...joined];
    fed = [...fed, ...joined.map(() => config.bosId)];
    if (sources.size === 0) break;
    const live = rows.flatMap((b, r) => (sources.has(b) ? [r] : []));
    // Gathering the cache rows costs far less than a step's vocabulary projection for a finished row.
    if (live.length < rows.length) {
      cache.select(live);
      rows = live.map((r) => rows[r]!);
      fed = live.map((r) => fed[r]!);
    }
    hooks.onStep?.(rows.length);
    const logits = cache.stepRows(fed);
    fed = logits.map((row, r) => sources.next(rows[r]!, row, processors));
  }
  return outputs;
}

/** A source still decoding: when it stops, the tokens so far, and the output it will report. */
interface ActiveSource {
  stopping: StoppingCriteriaList;
  generated: number[];
  output: GenerateOutput;
}

/**
 * The sources still decoding, by index (the call's own, then those that
 * joined, in order of arrival). A finished one is dropped at once, so that a
 * batch that runs for hours under load holds only its live rows.
 */
class ActiveSources {
  private readonly active = new Map<number, ActiveSource>();
  private count = 0;

  constructor(
    private readonly eosId: number,
    private readonly sampler: TokenSampler,
    private readonly hooks: GenerationHooks,
  ) {}

  get size(): number {
    return this.active.size;
  }

  has(b: number): boolean {
    return this.active.has(b);
  }

  indices(): Iterable<number> {
    return this.active.keys();
  }

  /** Adds the next source, with its token limit and sampling seed. */
  add(limit: number, seed: number): { index: number; output: GenerateOutput } {
    const index = this.count++;
    const output = emptyOutput();
    this.active.set(index, { stopping: new StoppingCriteriaList([new EosCriterion(this.eosId), new MaxLengthCriterion(limit)]), generated: [], output });
    this.sampler.addSource(index, seed);
    return { index, output };
  }

  /** Source b's next token from its row of scores; reports the token, and the source once it stops. */
  next(b: number, row: Float32Array, processors: LogitsProcessorList): number {
    const source = this.active.get(b)!;
    processors.process([source.generated], [row]);
    const { id, logProb } = this.sampler.choose(b, row);
    source.output.score += logProb;
    source.generated.push(id);
    const reason = source.stopping.check(source.generated);
    if (reason !== 'eos') this.hooks.onToken?.(b, id);
    if (reason) {
      source.output.finishReason = reason;
      this.finish(b);
    }
    return id;
  }

  /** Ends source b: its output takes its tokens (EOS left out) and is reported. */
  finish(b: number): void {
    const { generated, output } = this.active.get(b)!;
    this.active.delete(b);
    this.sampler.forget(b);
    output.tokens = output.finishReason === 'eos' ? generated.slice(0, -1) : generated;
    this.hooks.onFinish?.(b, output);
  }
}

/**
 * Adds the sources a join hook handed over to the running decode; → the
 * source indices of those that take a row (a limit of 0 finishes at once).
 */
function joinSources(config: ModelConfig, cache: DecoderCache, joining: readonly JoiningSource[], group: string, sources: ActiveSources): number[] {
  if (joining.length === 0) return [];
  const resolved = resolveJoining(
    joining.map((j) => j.options),
    group,
  );
  const entering: number[] = [];
  const ids: (readonly number[])[] = [];
  resolved.forEach((o, i) => {
    const limit = tokenLimit(o, config.maxLength);
    const { index } = sources.add(limit, o.seed);
    if (limit === 0) return sources.finish(index);
    entering.push(index);
    ids.push(joining[i]!.source);
  });
  if (ids.length === 0) return [];
  const source = sourceTensor(ids, config);
  try {
    cache.join(source);
  } finally {
    source.dispose();
  }
  return entering;
}
