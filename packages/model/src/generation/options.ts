import type { GenerationConfig } from './generation-config.js';

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
  /** OpenAI's frequency penalty, in [-2, 2]: count · penalty off each generated token's score; 0 (default) is off. */
  frequencyPenalty?: number;
  /** OpenAI's presence penalty, in [-2, 2]: penalty off the score of every token generated at least once; 0 (default) is off. */
  presencePenalty?: number;
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

/** Every option filled in with its default; what `resolveGenerateOptions` returns. */
export type ResolvedGenerateOptions = Required<GenerateOptions>;

type Resolved = ResolvedGenerateOptions;

const DEFAULTS: Resolved = {
  strategy: 'greedy',
  maxNewTokens: 32,
  minNewTokens: 0,
  noRepeatNgramSize: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  temperature: 1,
  topK: 0,
  topP: 1,
  seed: 0,
  numBeams: 4,
  lengthPenalty: 1,
  earlyStopping: true,
};

type ConfigField = keyof GenerationConfig;

/** Fields every strategy uses. */
const SHARED_FIELDS = ['maxNewTokens', 'minNewTokens', 'noRepeatNgramSize', 'repetitionPenalty'] as const satisfies readonly ConfigField[];

/** Fields only one strategy uses: taken from the config only for that strategy, so a stored numBeams cannot break a greedy request. */
const STRATEGY_FIELDS: Record<SearchStrategy, readonly ConfigField[]> = {
  greedy: [],
  sample: ['temperature', 'topK', 'topP'],
  beam: ['numBeams', 'lengthPenalty', 'earlyStopping'],
};

/**
 * A request's options with the generation config's filling what it leaves
 * out: strategy = request's ?? config's ?? 'greedy'; shared fields from the
 * config when the request omits them; a strategy's own fields from the
 * config only when that is the strategy decided on. Built-in defaults are
 * left to `resolveGenerateOptions`.
 */
export function applyGenerationConfig(request: GenerateOptions, config: GenerationConfig): GenerateOptions {
  const strategy = request.strategy ?? config.strategy ?? 'greedy';
  const merged: Record<string, unknown> = {};
  // An unknown strategy takes nothing from the config; resolveGenerateOptions names it.
  for (const field of [...SHARED_FIELDS, ...(STRATEGY_FIELDS[strategy] ?? [])]) {
    if (config[field] !== undefined) merged[field] = config[field];
  }
  // A field present but undefined in the request is "not given", not "unset the config's".
  for (const [field, value] of Object.entries(request)) if (value !== undefined) merged[field] = value;
  return { ...(merged as GenerateOptions), strategy };
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
  if (!(o.repetitionPenalty > 0) || !Number.isFinite(o.repetitionPenalty))
    throw new RangeError(`repetitionPenalty must be a positive number, got ${o.repetitionPenalty}`);
  for (const name of ['frequencyPenalty', 'presencePenalty'] as const) {
    if (!(o[name] >= -2 && o[name] <= 2)) throw new RangeError(`${name} must be in [-2, 2], got ${o[name]}`);
  }
  if (!Number.isFinite(o.seed)) throw new RangeError(`seed must be finite, got ${o.seed}`);
  return o;
}

/**
 * A key equal for exactly the resolved options that can decode in one batch:
 * every option that shapes the search, leaving out the per-source
 * `maxNewTokens` and `seed` and the options the strategy ignores (a greedy
 * request's temperature, say). Readable, for logs: "beam numBeams=4 …".
 */
export function generationGroup(o: ResolvedGenerateOptions): string {
  const fields: (keyof ResolvedGenerateOptions)[] = ['minNewTokens', 'noRepeatNgramSize', 'repetitionPenalty', 'frequencyPenalty', 'presencePenalty'];
  if (o.strategy === 'sample') fields.push('temperature', 'topK', 'topP');
  if (o.strategy === 'beam') fields.push('numBeams', 'lengthPenalty', 'earlyStopping');
  return [o.strategy, ...fields.map((f) => `${f}=${String(o[f])}`)].join(' ');
}

/** A source's token limit: its maxNewTokens, capped by the model's maxLength − 1 (BOS takes a position). */
export function tokenLimit(o: ResolvedGenerateOptions, maxLength: number): number {
  return Math.min(o.maxNewTokens, maxLength - 1);
}

/**
 * How each source of one batch is decoded. The options of a batch must agree
 * on everything but the per-source fields `maxNewTokens` and `seed`, since the
 * rows are stepped together and share their processors.
 */
export interface Plan {
  shared: ResolvedGenerateOptions;
  /** Per source: its token limit, already capped by the model's maxLength − 1. */
  limits: number[];
  /** Per source: the seed of its sampling generator. */
  seeds: number[];
}

/**
 * The plan of one `generate` call: `options` is one set for every source or
 * one per source; a list must agree on its group (a RangeError otherwise).
 */
export function planGeneration(sources: readonly (readonly number[])[], options: GenerateOptions | readonly GenerateOptions[], maxLength: number): Plan {
  if (!isOptionList(options)) {
    const shared = resolveGenerateOptions(options);
    return { shared, limits: sources.map(() => tokenLimit(shared, maxLength)), seeds: sources.map(() => shared.seed) };
  }
  if (options.length !== sources.length) throw new RangeError(`got ${options.length} option sets for ${sources.length} sources`);
  const resolved = options.map((x) => resolveGenerateOptions(x));
  const shared = resolved[0] ?? { ...DEFAULTS };
  const group = generationGroup(shared);
  resolved.forEach((o, i) => {
    const other = generationGroup(o);
    if (other !== group)
      throw new RangeError(`options of source ${i} (${other}) cannot share a batch with those of source 0 (${group}): only maxNewTokens and seed may differ`);
  });
  return { shared, limits: resolved.map((o) => tokenLimit(o, maxLength)), seeds: resolved.map((o) => o.seed) };
}

/** The options of sources joining a running batch of `group`, resolved; a RangeError if any cannot share it. */
export function resolveJoining(options: readonly (GenerateOptions | undefined)[], group: string): ResolvedGenerateOptions[] {
  const resolved = options.map((o) => resolveGenerateOptions(o));
  for (const o of resolved) {
    const other = generationGroup(o);
    if (other !== group)
      throw new RangeError(`a joining source's options (${other}) cannot share the running batch (${group}): only maxNewTokens and seed may differ`);
  }
  return resolved;
}

function isOptionList(options: GenerateOptions | readonly GenerateOptions[]): options is readonly GenerateOptions[] {
  return Array.isArray(options);
}
