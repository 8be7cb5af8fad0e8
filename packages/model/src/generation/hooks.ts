import type { GenerateOptions } from './options.js';
import type { GenerateOutput } from './output.js';

/**
 * Hooks through which a caller watches and steers a generation while it runs,
 * after transformers.js's `generation/streamers`. They are called between
 * decoder steps, synchronously, from inside the decoding loop: keep them
 * cheap, and throw only to abort the whole call.
 */
export interface GenerationHooks {
  /**
   * Called with each token of a source's reply, in order, EOS left out: the
   * calls for one source spell exactly its output's `tokens`. Greedy decoding
   * and sampling call it as each token is chosen; beam search cannot know its
   * winner early and calls it for the best hypothesis's tokens all at once,
   * when that source's search ends.
   */
  onToken?: TokenCallback;
  /**
   * Checked for every unfinished source before each decoder step; true
   * abandons that source (a timed-out request, a client gone). An abandoned
   * source counts as finished: greedy decoding and sampling return the tokens
   * produced so far, beam search the best hypothesis among those finished and
   * those still live (cut as if at the length limit), and the finishReason is
   * whatever that hypothesis had, 'length' when it was cut. The other sources
   * of the batch go on unchanged.
   */
  shouldStop?: (sourceIndex: number) => boolean;
  /**
   * Called once per source, as soon as its output is final (EOS, its length
   * limit, or abandoned), with the output the call will also return: a
   * server answers a short reply without waiting for the batch's longest.
   */
  onFinish?: (sourceIndex: number, output: GenerateOutput) => void;
  /**
   * Greedy decoding and sampling only (beam search never calls it): called
   * before each decoder step, and the sources it returns join the running
   * batch as new rows, each decoded exactly as it would be alone (continuous
   * batching). They are numbered on after the call's own sources, in order,
   * for the other hooks; their outputs come through onFinish only, not in
   * the returned array. Their options must agree with the call's except for
   * maxNewTokens and seed (a RangeError otherwise). With this hook the
   * generation ends only when no row is left and a call returns none.
   */
  join?: () => readonly JoiningSource[];
  /** Called before each decoder step with the number of sources it decodes. */
  onStep?: (sources: number) => void;
}

/** A source entering a running generation through the join hook. */
export interface JoiningSource {
  source: readonly number[];
  options?: GenerateOptions;
}

/** Receives one token id of the reply to the source at `sourceIndex`. */
export type TokenCallback = (sourceIndex: number, tokenId: number) => void;

/** The unfinished sources whose caller has given up on them (the shouldStop hook). */
export function abandoned(unfinished: Iterable<number>, hooks: GenerationHooks): number[] {
  const shouldStop = hooks.shouldStop;
  if (!shouldStop) return [];
  return [...unfinished].filter((b) => shouldStop(b));
}
