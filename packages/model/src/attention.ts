import * as tf from '@tensorflow/tfjs-core';
import { linear3d } from './ops.js';
import { Dropout, type ParamStore } from './params.js';

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
  dropout: Dropout,
): { output: tf.Tensor4D; weights: tf.Tensor4D } {
  const dk = q.shape[3];
  // Scaling q rather than the scores touches Lq·dk numbers instead of Lq·Lk.
  const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(dk)), k, false, true); // [B, h, Lq, Lk]
  const weights = tf.softmax(mask === undefined ? scores : tf.add(scores, mask)) as tf.Tensor4D; // [B, h, Lq, Lk]
  const output = tf.matMul(dropout.apply(weights), v) as tf.Tensor4D; // [B, h, Lq, dk]
  return { output, weights };
}

/** Keys and values of one attention layer, [B, h, L, dk] each: the decoder's cache entries. */
export interface KeyValue {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/** One learned projection of multi-head attention: W [d, d] and b [d]. */
interface Projection {
  w: tf.Variable<tf.Rank.R2>;
  b: tf.Variable<tf.Rank.R1>;
}

/**
 * Multi-head attention (§3.2.2): h heads of scaled dot-product attention over
 * learned projections W^Q, W^K, W^V, concatenated and projected by W^O. As
 * self-attention all three come from the same sequence; as encoder-decoder
 * attention (§3.2.3) queries come from the decoder and keys and values from
 * the encoder's output.
 */
export class MultiHeadAttention {
  private readonly query: Projection;
  private readonly key: Projection;
  private readonly value: Projection;
  private readonly output: Projection;
  private readonly dk: number;

  constructor(
    params: ParamStore,
    prefix: string,
    private readonly dModel: number,
    private readonly heads: number,
  ) {
    this.dk = dModel / heads;
    const projection = (name: string): Projection => ({
      w: params.xavier(`${prefix}.${name}.weight`, dModel, dModel),
      b: params.zeros(`${prefix}.${name}.bias`, dModel),
    });
    this.query = projection('q');
    this.key = projection('k');
    this.value = projection('v');
    this.output = projection('out');
  }

  /** x [B, L, d] projected and split into heads: [B, h, L, dk]. */
  private project(x: tf.Tensor3D, p: Projection): tf.Tensor4D {
    const [batch, length] = x.shape;
    const y = linear3d(x, p.w, p.b); // [B, L, d]
    return tf.transpose(tf.reshape(y, [batch, length, this.heads, this.dk]), [0, 2, 1, 3]); // [B, h, L, dk]
  }

  /** [B, h, L, dk] → heads concatenated and projected by W^O: [B, L, d]. */
  private merge(x: tf.Tensor4D): tf.Tensor3D {
    const [batch, , length] = x.shape;
    const joined = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, length, this.dModel]) as tf.Tensor3D; // [B, L, d]
    return linear3d(joined, this.output.w, this.output.b); // [B, L, d]
  }

  /** Self-attention over x [B, L, d] with an additive mask; → [B, L, d]. */
  selfAttention(x: tf.Tensor3D, mask: tf.Tensor | undefined, dropout: Dropout): tf.Tensor3D {
    const { output } = scaledDotProductAttention(this.project(x, this.query), this.project(x, this.key), this.project(x, this.value), mask, dropout);
    return this.merge(output);
  }

  /**
   * One decoding step of self-attention with cached keys and values: x [B, 1, d]
   * holds the newest position, `past` the earlier ones (or none at step 0).
   * Returns the output [B, 1, d] and the cache extended by this position.
   */
  selfAttentionStep(x: tf.Tensor3D, past: KeyValue | undefined): { output: tf.Tensor3D; cache: KeyValue } {
    const k = this.project(x, this.key); // [B, h, 1, dk]
    const v = this.project(x, this.value); // [B, h, 1, dk]
    const cache = past === undefined ? { k, v } : { k: tf.concat([past.k, k], 2), v: tf.concat([past.v, v], 2) }; // [B, h, t+1, dk]
    // The newest position may see every cached one: no mask is needed.
    const { output } = scaledDotProductAttention(this.project(x, this.query), cache.k, cache.v, undefined, Dropout.off);
    return { output: this.merge(output), cache };
  }

  /** Keys and values of the encoder output [B, S, d], computed once per source. */
  memoryKeyValue(memory: tf.Tensor3D): KeyValue {
    return { k: this.project(memory, this.key), v: this.project(memory, this.value) }; // [B, h, S, dk] each
  }

  /** Encoder-decoder attention: queries from x [B, L, d], keys/values from the memory; → [B, L, d]. */
  crossAttention(x: tf.Tensor3D, memory: KeyValue, mask: tf.Tensor | undefined, dropout: Dropout): tf.Tensor3D {
    return this.merge(scaledDotProductAttention(this.project(x, this.query), memory.k, memory.v, mask, dropout).output);
  }
}
