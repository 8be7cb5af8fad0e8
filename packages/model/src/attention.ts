import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul, linear } from './ops.js';
import type { ForwardPass, ParamStore } from './params.js';

/** Large negative score for masked keys: exp underflows to exactly 0, and a row never becomes NaN. */
export const MASKED = -1e9;

/**
 * Padding mask (§3.2.3): an additive mask hiding padded source keys.
 * ids int32 [B, S] → [B, 1, 1, S], 0 where a token is, -1e9 where padding is.
 */
export function paddingMask(ids: tf.Tensor2D, padId: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [batch, length] = ids.shape;
    const isPad = tf.cast(tf.equal(ids, padId), 'float32'); // [B, S]
    return tf.reshape(tf.mul(isPad, MASKED), [batch, 1, 1, length]); // [B, 1, 1, S]
  });
}

/**
 * Subsequent-position mask (§3.2.3): position i may attend to positions ≤ i
 * only, which keeps the decoder auto-regressive. → [1, 1, T, T] additive.
 */
export function subsequentMask(length: number): tf.Tensor4D {
  const values = new Float32Array(length * length);
  for (let i = 0; i < length; i++) for (let j = i + 1; j < length; j++) values[i * length + j] = MASKED;
  return tf.tensor4d(values, [1, 1, length, length]);
}

/**
 * Scaled dot-product attention (§3.2.1): softmax(QKᵀ/√d_k + mask)·V.
 * q [B, h, Lq, dk], k and v [B, h, Lk, dk], mask broadcastable to [B, h, Lq, Lk].
 * Returns the attended values [B, h, Lq, dk] and the weights [B, h, Lq, Lk].
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  mask: tf.Tensor | undefined,
  pass: ForwardPass,
): { output: tf.Tensor4D; weights: tf.Tensor4D } {
  const dk = q.shape[3];
  // Scaling q rather than the scores touches Lq·dk numbers instead of Lq·Lk.
  const scores = batchMatMul<tf.Tensor4D>(tf.mul(q, 1 / Math.sqrt(dk)), k, false, true); // [B, h, Lq, Lk]
  const weights = tf.softmax(mask === undefined ? scores : tf.add(scores, mask)) as tf.Tensor4D; // [B, h, Lq, Lk]
  const output = batchMatMul<tf.Tensor4D>(pass.dropout(weights), v); // [B, h, Lq, dk]
  return { output, weights };
}

/** Keys and values of one attention layer, [B, h, L, dk] each. */
export interface KeyValue {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/** One learned projection of multi-head attention: W [d, d] and b [d]. */
export interface Projection {
  w: tf.Variable<tf.Rank.R2>;
  b: tf.Variable<tf.Rank.R1>;
}

/** Batch size and sequence length of activations kept flat as [B·L, d]. */
export interface SequenceShape {
  batch: number;
  length: number;
}

/**
 * Multi-head attention (§3.2.2): h heads of scaled dot-product attention over
 * learned projections W^Q, W^K, W^V, concatenated and projected by W^O. As
 * self-attention all three come from the same sequence; as encoder-decoder
 * attention (§3.2.3) queries come from the decoder and keys and values from
 * the encoder's output. Activations arrive and leave flat, [B·L, d]: every
 * position-wise product is then one rank-2 matmul, the fast kind on wasm.
 */
export class MultiHeadAttention {
  readonly query: Projection;
  readonly key: Projection;
  readonly value: Projection;
  readonly output: Projection;
  readonly dk: number;

  constructor(
    params: ParamStore,
    /** Prefix of the parameter names: `${name}.q.weight` … */
    readonly name: string,
    readonly dModel: number,
    readonly heads: number,
  ) {
    this.dk = dModel / heads;
    const projection = (part: string): Projection => ({
      w: params.xavier(`${name}.${part}.weight`, dModel, dModel),
      b: params.zeros(`${name}.${part}.bias`, dModel),
    });
    this.query = projection('q');
    this.key = projection('k');
    this.value = projection('v');
    this.output = projection('out');
  }

  /** x [B·L, d] projected by p and split into heads: [B, h, L, dk]. */
  private project(x: tf.Tensor2D, p: Projection, { batch, length }: SequenceShape): tf.Tensor4D {
    const y = linear(x, p.w, p.b); // [B·L, d]
    // With one position the head split is a pure reshape; no transpose kernel runs.
    if (length === 1) return tf.reshape(y, [batch, this.heads, 1, this.dk]); // [B, h, 1, dk]
    return tf.transpose(tf.reshape(y, [batch, length, this.heads, this.dk]), [0, 2, 1, 3]); // [B, h, L, dk]
  }

  /** Heads [B, h, L, dk] concatenated and projected by W^O: [B·L, d]. */
  private merge(x: tf.Tensor4D): tf.Tensor2D {
    const [batch, , length] = x.shape;
    const joined = length === 1 ? x : tf.transpose(x, [0, 2, 1, 3]); // [B, L, h, dk]
    return linear(tf.reshape(joined, [batch * length, this.dModel]), this.output.w, this.output.b); // [B·L, d]
  }

  /** Self-attention over x [B·L, d] with an additive mask; → [B·L, d]. */
  selfAttention(x: tf.Tensor2D, shape: SequenceShape, mask: tf.Tensor | undefined, pass: ForwardPass): tf.Tensor2D {
    const q = this.project(x, this.query, shape);
    const k = this.project(x, this.key, shape);
    const v = this.project(x, this.value, shape);
    return this.merge(scaledDotProductAttention(q, k, v, mask, pass).output);
  }

  /** Keys and values of the encoder output [B·S, d] for encoder-decoder attention: [B, h, S, dk] each. */
  memoryKeyValue(memory: tf.Tensor2D, shape: SequenceShape): KeyValue {
    return { k: this.project(memory, this.key, shape), v: this.project(memory, this.value, shape) };
  }

  /** Encoder-decoder attention: queries from x [B·L, d], keys and values from the memory; → [B·L, d]. */
  crossAttention(x: tf.Tensor2D, shape: SequenceShape, memory: KeyValue, mask: tf.Tensor | undefined, pass: ForwardPass): tf.Tensor2D {
    const q = this.project(x, this.query, shape);
    return this.merge(scaledDotProductAttention(q, memory.k, memory.v, mask, pass).output);
  }
}
