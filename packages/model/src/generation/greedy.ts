import * as tf from '@tensorflow/tfjs-core';
import { sourceTensor } from '../batch.js';
import type { Transformer } from '../transformer.js';

export interface GreedyOutput {
  /** Generated ids without BOS and EOS. */
  tokens: number[];
  finishReason: 'eos' | 'length';
}

/**
 * Greedy decoding with the cached decoder step: the encoder runs once, then
 * each step feeds one token per row and takes the most probable next token,
 * until every row has produced EOS or `maxNewTokens` tokens.
 */
export function greedyDecode(model: Transformer, sources: readonly (readonly number[])[], maxNewTokens: number): GreedyOutput[] {
  const { bosId, eosId, maxLength } = model.config;
  const limit = Math.min(maxNewTokens, maxLength - 1);
  const source = sourceTensor(sources, model.config);
  const state = model.startDecoding(source);
  source.dispose();
  const outputs: GreedyOutput[] = sources.map(() => ({ tokens: [], finishReason: 'length' }));
  const done = sources.map(() => false);
  let previous = sources.map(() => bosId);
  try {
    for (let t = 0; t < limit && done.includes(false); t++) {
      const next = tf.tidy(() => {
        const logits = model.step(state, tf.tensor1d(previous, 'int32')); // [B, V]
        return tf.argMax(logits, 1); // [B]
      });
      const ids = Array.from(next.dataSync());
      next.dispose();
      ids.forEach((id, b) => {
        if (done[b]) return;
        if (id === eosId) {
          done[b] = true;
          outputs[b]!.finishReason = 'eos';
        } else {
          outputs[b]!.tokens.push(id);
        }
      });
      previous = ids;
    }
  } finally {
    model.disposeDecoding(state);
  }
  return outputs;
}
