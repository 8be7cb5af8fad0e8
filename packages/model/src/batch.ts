import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';

/** One training example in token ids, without special tokens. */
export interface Example {
  source: readonly number[];
  target: readonly number[];
}

/**
 * A batch as tensors, padded to its own longest sequence (dynamic padding):
 * source = tokens + EOS, decoder input = BOS + tokens, labels = tokens + EOS.
 * Only the non-pad label positions are listed, so the vocabulary projection
 * and the loss run on real tokens alone.
 */
export interface TensorBatch {
  source: tf.Tensor2D; // int32 [B, S]
  targetIn: tf.Tensor2D; // int32 [B, T]
  /** Flat positions b·T + t of the real label tokens. */
  labelPositions: tf.Tensor1D; // int32 [N]
  labels: tf.Tensor1D; // int32 [N]
  /** Number of real target tokens (N), EOS included. */
  targetTokens: number;
  sourceLength: number;
  targetLength: number;
}

/** Sequences longer than the model's maximum are cut, keeping room for BOS/EOS. */
export function makeBatch(examples: readonly Example[], config: Pick<ModelConfig, 'padId' | 'bosId' | 'eosId' | 'maxLength'>): TensorBatch {
  if (examples.length === 0) throw new RangeError('a batch needs at least one example');
  const keep = config.maxLength - 1;
  const sources = examples.map((e) => [...e.source.slice(0, keep), config.eosId]);
  const targets = examples.map((e) => e.target.slice(0, keep));
  const sourceLength = Math.max(...sources.map((s) => s.length));
  const targetLength = Math.max(...targets.map((t) => t.length)) + 1;
  const batch = examples.length;
  const source = new Int32Array(batch * sourceLength).fill(config.padId);
  const targetIn = new Int32Array(batch * targetLength).fill(config.padId);
  const positions: number[] = [];
  const labels: number[] = [];
  for (let b = 0; b < batch; b++) {
    source.set(sources[b]!, b * sourceLength);
    const target = targets[b]!;
    targetIn[b * targetLength] = config.bosId;
    targetIn.set(target, b * targetLength + 1);
    const labelRow = [...target, config.eosId];
    labelRow.forEach((id, t) => {
      positions.push(b * targetLength + t);
      labels.push(id);
    });
  }
  return {
    source: tf.tensor2d(source, [batch, sourceLength], 'int32'),
    targetIn: tf.tensor2d(targetIn, [batch, targetLength], 'int32'),
    labelPositions: tf.tensor1d(positions, 'int32'),
    labels: tf.tensor1d(labels, 'int32'),
    targetTokens: labels.length,
    sourceLength,
    targetLength,
  };
}

/** Source ids for decoding: each row tokens + EOS, cut to the model's maximum and padded: int32 [B, S]. */
export function sourceTensor(sources: readonly (readonly number[])[], config: Pick<ModelConfig, 'padId' | 'eosId' | 'maxLength'>): tf.Tensor2D {
  const rows = sources.map((s) => [...s.slice(0, config.maxLength - 1), config.eosId]);
  const length = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * length).fill(config.padId);
  rows.forEach((r, b) => ids.set(r, b * length));
  return tf.tensor2d(ids, [rows.length, length], 'int32');
}

export function disposeBatch(batch: TensorBatch): void {
  tf.dispose([batch.source, batch.targetIn, batch.labelPositions, batch.labels]);
}
