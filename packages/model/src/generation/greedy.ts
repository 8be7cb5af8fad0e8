import type { Transformer } from '../transformer.js';
import { generate } from './search.js';
import type { FinishReason } from './stopping-criteria.js';

export interface GreedyOutput {
  /** Generated ids without BOS and EOS. */
  tokens: number[];
  finishReason: FinishReason;
}

/**
 * Greedy decoding with the cached decoder step: the encoder runs once, then
 * each step feeds one token per row and takes the most probable next token,
 * until every row has produced EOS or `maxNewTokens` tokens. Kept for its
 * callers; `generate` offers the other strategies and the scores.
 */
export function greedyDecode(model: Transformer, sources: readonly (readonly number[])[], maxNewTokens: number): GreedyOutput[] {
  return generate(model, sources, { strategy: 'greedy', maxNewTokens }).map(({ tokens, finishReason }) => ({ tokens, finishReason }));
}
