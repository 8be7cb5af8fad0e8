import type { FinishReason } from './stopping-criteria.js';

/** What `generate` gives for one source. */
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

/** The output of a source that produced nothing: a limit of 0, or abandoned before its first token. */
export function emptyOutput(): GenerateOutput {
  return { tokens: [], score: 0, finishReason: 'length' };
}
