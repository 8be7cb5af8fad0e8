/**
 * `generate`: replies to a batch of sources with the model's cached
 * incremental decoder, by greedy search, sampling or beam search. Options
 * are checked in options.ts, each strategy lives in its own file
 * (batch-decoding.ts with samplers.ts, beam-search.ts), the decoder's state in
 * decoder-cache.ts; this file drives them, synchronously or giving the event
 * loop a turn between steps.
 */
import { sourceTensor } from '../batch.js';
import type { Transformer } from '../transformer.js';
import { decodeBatch } from './batch-decoding.js';
import { beamSearch } from './beam-search.js';
import { DecoderCache } from './decoder-cache.js';
import type { GenerationHooks } from './hooks.js';
import { scoreProcessors } from './logits-processors.js';
import { planGeneration, type GenerateOptions, type Plan } from './options.js';
import type { GenerateOutput } from './output.js';

export type { GenerateOptions } from './options.js';
export type { GenerateOutput } from './output.js';

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
  const plan = planGeneration(sources, options, model.config.maxLength);
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
  const plan = planGeneration(sources, options, model.config.maxLength);
  const steps = generationSteps(model, sources, plan, hooks);
  for (let r = steps.next(); ; r = steps.next()) {
    if (r.done) return r.value;
    await nextTurn();
  }
}

/**
 * The whole generation as a generator that yields after every decoder step,
 * so that one loop serves both the synchronous and the asynchronous driver.
 * The decoder cache lives in its try/finally: a driver must run it to the
 * end (or until it throws), which both drivers do.
 */
function* generationSteps(
  model: Transformer,
  sources: readonly (readonly number[])[],
  plan: Plan,
  hooks: GenerationHooks,
): Generator<void, GenerateOutput[], void> {
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
    if (o.strategy === 'beam') return yield* beamSearch(model.config, cache, plan.limits, processors, o, hooks);
    return yield* decodeBatch(model.config, cache, plan, processors, hooks);
  } finally {
    cache.dispose();
  }
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
