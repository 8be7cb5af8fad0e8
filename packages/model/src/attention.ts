import * as tf from '@tensorflow/tfjs-core';
import * as kernel from './kernels.js';
import { batchMatMul, dense, denseWeights, linear, type DenseWeights } from './ops.js';
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

/**
 * The same attention for inference, with queries already scaled by 1/√d_k
 * (folded into W^Q and b^Q once) and without the weights: three kernels, or
 * four with a mask. q [B, h, Lq, dk], k and v [B, h, Lk, dk] → [B, h, Lq, dk].
 */
function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor | undefined): tf.Tensor4D {
  const scores = batchMatMul<tf.Tensor4D>(q, k, false, true); // [B, h, Lq, Lk]
  return batchMatMul<tf.Tensor4D>(kernel.softmax(mask === undefined ? scores : kernel.add<tf.Tensor4D>(scores, mask)), v); // [B, h, Lq, dk]
}

/** Projections of multi-head attention fused into one product for inference, one letter each. */
type Fusion = 'qkv' | 'q' | 'k' | 'v' | 'kv' | 'out';

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

/** Batch size and sequence length of activations kept flat as [B·L, d]. */
export interface SequenceShape {
  batch: number;
  length: number;
  /** Inference only: the activations hold only the N real tokens, [N, d], not B·L rows with padding. */
  packing?: Packing;
}

/**
 * Where the real tokens of a padded batch [B, L] are: `pack` int32 [N, 1]
 * gives each token's padded position (b·L + i); `unpack` int32 [B·L, 1]
 * gives each padded position its packed row (a padding position any row of
 * its sequence: attention masks it, and packing drops its output again).
 * Position-wise products then skip the padding; only attention, which needs
 * each sequence whole, runs padded.
 */
export interface Packing {
  pack: tf.Tensor2D;
  unpack: tf.Tensor2D;
}

/** The packing of ids int32 [B, L] without their `padId` positions, or none when nothing is padded. */
export function packingOf(ids: tf.Tensor2D, padId: number): Packing | undefined {
  const [batch, length] = ids.shape;
  const values = ids.dataSync();
  const pack: number[] = [];
  const unpack = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    const first = pack.length;
    for (let i = 0; i < length; i++) {
      const at = b * length + i;
      if (values[at] === padId) continue;
      unpack[at] = pack.length;
      pack.push(at);
    }
    // Padding points at the sequence's first token (or nowhere real, for an all-padding row: row 0).
    for (let i = 0; i < length; i++) if (values[b * length + i] === padId) unpack[b * length + i] = pack.length > first ? first : 0;
  }
  if (pack.length === batch * length || pack.length === 0) return undefined;
  return { pack: tf.tensor2d(pack, [pack.length, 1], 'int32'), unpack: tf.tensor2d(unpack, [batch * length, 1], 'int32') };
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
  private readonly query: Projection;
  private readonly key: Projection;
  private readonly value: Projection;
  private readonly output: Projection;
  private readonly dk: number;

  constructor(
    private readonly params: ParamStore,
    private readonly prefix: string,
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

  /** x [B·L, d] projected and split into heads: [B, h, L, dk]. */
  private project(x: tf.Tensor2D, p: Projection, { batch, length }: SequenceShape, pass: ForwardPass): tf.Tensor4D {
    const y = linear(x, p.w, p.b, undefined, pass.differentiable); // [B·L, d]
    // With one position the head split is a pure reshape; no transpose kernel runs.
    if (length === 1) return tf.reshape(y, [batch, this.heads, 1, this.dk]); // [B, h, 1, dk]
    return tf.transpose(tf.reshape(y, [batch, length, this.heads, this.dk]), [0, 2, 1, 3]); // [B, h, L, dk]
  }

  /** [B, h, L, dk] → heads concatenated and projected by W^O: [B·L, d]. */
  private merge(x: tf.Tensor4D, pass: ForwardPass): tf.Tensor2D {
    const [batch, , length] = x.shape;
    const joined = length === 1 ? x : tf.transpose(x, [0, 2, 1, 3]); // [B, L, h, dk]
    return linear(tf.reshape(joined, [batch * length, this.dModel]), this.output.w, this.output.b, undefined, pass.differentiable); // [B·L, d]
  }

  /**
   * Projections fused for inference, derived from the parameters once per
   * change of them: W^Q|W^K|W^V in one product for self-attention, W^K|W^V for
   * the memory, W^Q alone for encoder-decoder queries; W^Q and b^Q carry the
   * 1/√d_k of §3.2.1, so that no step scales queries or keys.
   */
  private fused(which: Fusion): DenseWeights {
    return this.params.derived(`${this.prefix}.${which}.inference`, () => {
      const scale = 1 / Math.sqrt(this.dk);
      const parts = { qkv: [this.query, this.key, this.value], q: [this.query], k: [this.key], v: [this.value], kv: [this.key, this.value], out: [this.output] }[which];
      const scales = parts.map((p) => (p === this.query ? scale : 1));
      // Spread into a plain record, the shape ParamStore.derived keeps.
      return { ...denseWeights(parts.map((p) => p.w), parts.map((p) => p.b), scales) };
    });
  }

  /**
   * Inference projection of x [B·L, d] (or [N, d], packed) into n groups of heads: n × [B, h, L, dk].
   * One row's groups are contiguous blocks of a fused product, cheap to split;
   * several rows' are interleaved, and splitting them copies element by
   * element, so a batch takes one product per group instead.
   */
  private projectInference(x: tf.Tensor2D, which: 'qkv' | 'q' | 'kv', shape: SequenceShape): tf.Tensor4D[] {
    if (shape.batch === 1 || which === 'q') return this.projectFused(x, which, shape);
    return [...which].map((group) => this.projectFused(x, group as Fusion, shape)[0]!);
  }

  /** Projection of x [B·L, d] by one fused product, split into its n groups of heads: n × [B, h, L, dk]. */
  private projectFused(x: tf.Tensor2D, which: Fusion, { batch, length, packing }: SequenceShape): tf.Tensor4D[] {
    const groups = which.length; // one letter per projection
    const rows = x.shape[0]; // B·L, or N when packed
    const product = dense(kernel.reshape(x, [1, rows, this.dModel]), this.fused(which)); // [1, rows, n·d]
    const width = groups * this.dModel;
    const y = packing ? kernel.gatherNd(kernel.reshape(product, [rows, width]), packing.unpack) : product; // [B·L, n·d]
    // With one position the head split is a pure reshape; no transpose kernel runs.
    const heads =
      length === 1
        ? kernel.reshape<tf.Tensor4D>(y, [batch, groups * this.heads, 1, this.dk])
        : kernel.transpose<tf.Tensor4D>(kernel.reshape(y, [batch, length, groups * this.heads, this.dk]), [0, 2, 1, 3]); // [B, n·h, L, dk]
    return groups === 1 ? [heads] : kernel.split<tf.Tensor4D>(heads, groups, 1); // n × [B, h, L, dk]
  }

  /** Inference merge of heads [B, h, L, dk] and W^O: → [B·L, d], or the packed rows [N, d]. */
  private mergeInference(x: tf.Tensor4D, packing?: Packing): tf.Tensor2D {
    const [batch, , length] = x.shape;
    const joined = length === 1 ? x : kernel.transpose(x, [0, 2, 1, 3]); // [B, L, h, dk]
    const flat = kernel.reshape<tf.Tensor2D>(joined, [batch * length, this.dModel]); // [B·L, d]
    const rows = packing ? kernel.gatherNd<tf.Tensor2D>(flat, packing.pack) : flat; // [N, d] when packed
    const n = rows.shape[0];
    return kernel.reshape(dense(kernel.reshape(rows, [1, n, this.dModel]), this.fused('out')), [n, this.dModel]); // [B·L or N, d]
  }

  /** Self-attention over x [B·L, d] (inference: or [N, d], packed) with an additive mask; → the same shape. */
  selfAttention(x: tf.Tensor2D, shape: SequenceShape, mask: tf.Tensor | undefined, pass: ForwardPass): tf.Tensor2D {
    if (!pass.differentiable) {
      const [q, k, v] = this.projectInference(x, 'qkv', shape) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      return this.mergeInference(attend(q, k, v, mask), shape.packing);
    }
    const q = this.project(x, this.query, shape, pass);
    const k = this.project(x, this.key, shape, pass);
    const v = this.project(x, this.value, shape, pass);
    return this.merge(scaledDotProductAttention(q, k, v, mask, pass).output, pass);
  }

  /**
   * One decoding step of self-attention with cached keys and values: x [B, d]
   * holds the newest position, `past` the earlier ones (or none at step 0),
   * `mask` [B, 1, 1, t+1] hides slots a row must not see (see DecoderCache.join).
   * Returns the output [B, d] and the cache extended by this position.
   */
  selfAttentionStep(x: tf.Tensor2D, past: KeyValue | undefined, mask?: tf.Tensor4D): { output: tf.Tensor2D; cache: KeyValue } {
    const [q, k, v] = this.projectInference(x, 'qkv', { batch: x.shape[0], length: 1 }) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]; // [B, h, 1, dk] each
    const cache = past === undefined ? { k, v } : { k: kernel.concat<tf.Tensor4D>([past.k, k], 2), v: kernel.concat<tf.Tensor4D>([past.v, v], 2) }; // [B, h, t+1, dk]
    // The newest position may see every earlier one of its own row: a mask only hides slots from before a row joined.
    return { output: this.mergeInference(attend(q, cache.k, cache.v, mask)), cache };
  }

  /** Keys and values of the encoder output [B·S, d] (inference: or [N, d], packed), computed once per source. */
  memoryKeyValue(memory: tf.Tensor2D, shape: SequenceShape, pass: ForwardPass): KeyValue {
    if (!pass.differentiable) {
      const [k, v] = this.projectInference(memory, 'kv', shape) as [tf.Tensor4D, tf.Tensor4D];
      return { k, v }; // [B, h, S, dk] each
    }
    return { k: this.project(memory, this.key, shape, pass), v: this.project(memory, this.value, shape, pass) }; // [B, h, S, dk] each
  }

  /** Encoder-decoder attention: queries from x [B·L, d], keys/values from the memory; → [B·L, d]. */
  crossAttention(x: tf.Tensor2D, shape: SequenceShape, memory: KeyValue, mask: tf.Tensor | undefined, pass: ForwardPass): tf.Tensor2D {
    if (!pass.differentiable) return this.mergeInference(attend(this.projectInference(x, 'q', shape)[0]!, memory.k, memory.v, mask));
    const q = this.project(x, this.query, shape, pass);
    return this.merge(scaledDotProductAttention(q, memory.k, memory.v, mask, pass).output, pass);
  }
}
