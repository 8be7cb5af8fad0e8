import type * as tf from '@tensorflow/tfjs-core';
import type { KeyValue, MultiHeadAttention, SequenceShape } from '../attention.js';
import { batchMatMul } from '../ops.js';
import type { ParamStore } from '../params.js';
import { dense, denseWeights, type DenseWeights } from './dense.js';
import * as kernel from './kernels.js';
import type { Packing, PackedShape } from './packing.js';

/**
 * Scaled dot-product attention (§3.2.1) for inference: queries already
 * scaled by 1/√d_k (folded into W^Q and b^Q), no dropout and no weights
 * returned, so three kernels, or four with a mask.
 * q [B, h, Lq, dk], k and v [B, h, Lk, dk] → [B, h, Lq, dk].
 */
function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor | undefined): tf.Tensor4D {
  const scores = batchMatMul<tf.Tensor4D>(q, k, false, true); // [B, h, Lq, Lk]
  return batchMatMul<tf.Tensor4D>(kernel.softmax(mask === undefined ? scores : kernel.add<tf.Tensor4D>(scores, mask)), v); // [B, h, Lq, dk]
}

/** Projections of multi-head attention fused into one product, one letter each. */
type Fusion = 'qkv' | 'q' | 'k' | 'v' | 'kv' | 'out';

/**
 * Multi-head attention (§3.2.2) for inference, from a MultiHeadAttention's
 * parameters: W^Q|W^K|W^V fused into one product for self-attention, W^K|W^V
 * for the memory, and the engine's kernels called directly. Activations
 * arrive and leave flat, [B·L, d], or packed, [N, d] (see Packing).
 */
export class InferenceAttention {
  constructor(
    private readonly attention: MultiHeadAttention,
    private readonly params: ParamStore,
  ) {}

  /** Self-attention over x [B·L, d] (or [N, d], packed) with an additive mask; → the same shape. */
  selfAttention(x: tf.Tensor2D, shape: PackedShape, mask: tf.Tensor | undefined): tf.Tensor2D {
    const [q, k, v] = this.project(x, 'qkv', shape) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    return this.merge(attend(q, k, v, mask), shape.packing);
  }

  /**
   * One decoding step of self-attention with cached keys and values: x [B, d]
   * holds the newest position, `past` the earlier ones (or none at step 0),
   * `mask` [B, 1, 1, t+1] hides slots a row must not see (see DecoderCache.join).
   * Returns the output [B, d] and the cache extended by this position.
   */
  selfAttentionStep(x: tf.Tensor2D, past: KeyValue | undefined, mask?: tf.Tensor4D): { output: tf.Tensor2D; cache: KeyValue } {
    const [q, k, v] = this.project(x, 'qkv', { batch: x.shape[0], length: 1 }) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]; // [B, h, 1, dk] each
    const cache = past === undefined ? { k, v } : { k: kernel.concat<tf.Tensor4D>([past.k, k], 2), v: kernel.concat<tf.Tensor4D>([past.v, v], 2) }; // [B, h, t+1, dk]
    // The newest position may see every earlier one of its own row: a mask only hides slots from before a row joined.
    return { output: this.merge(attend(q, cache.k, cache.v, mask)), cache };
  }

  /** Keys and values of the encoder output [B·S, d] (or [N, d], packed), computed once per source: [B, h, S, dk] each. */
  memoryKeyValue(memory: tf.Tensor2D, shape: PackedShape): KeyValue {
    const [k, v] = this.project(memory, 'kv', shape) as [tf.Tensor4D, tf.Tensor4D];
    return { k, v };
  }

  /** Encoder-decoder attention: queries from x [B·L, d], keys and values from the memory; → [B·L, d]. */
  crossAttention(x: tf.Tensor2D, shape: SequenceShape, memory: KeyValue, mask: tf.Tensor | undefined): tf.Tensor2D {
    return this.merge(attend(this.project(x, 'q', shape)[0]!, memory.k, memory.v, mask));
  }

  /**
   * The fused projections, derived from the parameters once per change of
   * them; W^Q and b^Q carry the 1/√d_k of §3.2.1, so that no step scales
   * queries or keys.
   */
  private fused(which: Fusion): DenseWeights {
    const { query, key, value, output, dk, name } = this.attention;
    return this.params.derived(`${name}.${which}.inference`, () => {
      const scale = 1 / Math.sqrt(dk);
      const parts = { qkv: [query, key, value], q: [query], k: [key], v: [value], kv: [key, value], out: [output] }[which];
      const scales = parts.map((p) => (p === query ? scale : 1));
      // Spread into a plain record, the shape ParamStore.derived keeps.
      return {
        ...denseWeights(
          parts.map((p) => p.w),
          parts.map((p) => p.b),
          scales,
        ),
      };
    });
  }

  /**
   * Projection of x [B·L, d] (or [N, d], packed) into n groups of heads: n × [B, h, L, dk].
   * One row's groups are contiguous blocks of a fused product, cheap to split;
   * several rows' are interleaved, and splitting them copies element by
   * element, so a batch takes one product per group instead.
   */
  private project(x: tf.Tensor2D, which: 'qkv' | 'q' | 'kv', shape: PackedShape): tf.Tensor4D[] {
    if (shape.batch === 1 || which === 'q') return this.projectFused(x, which, shape);
    return [...which].map((group) => this.projectFused(x, group as Fusion, shape)[0]!);
  }

  /** Projection of x [B·L, d] by one fused product, split into its n groups of heads: n × [B, h, L, dk]. */
  private projectFused(x: tf.Tensor2D, which: Fusion, { batch, length, packing }: PackedShape): tf.Tensor4D[] {
    const { dModel, heads, dk } = this.attention;
    const groups = which.length; // one letter per projection
    const rows = x.shape[0]; // B·L, or N when packed
    const product = dense(kernel.reshape(x, [1, rows, dModel]), this.fused(which)); // [1, rows, n·d]
    const width = groups * dModel;
    const y = packing ? kernel.gatherNd(kernel.reshape(product, [rows, width]), packing.unpack) : product; // [B·L, n·d]
    // With one position the head split is a pure reshape; no transpose kernel runs.
    const split =
      length === 1
        ? kernel.reshape<tf.Tensor4D>(y, [batch, groups * heads, 1, dk])
        : kernel.transpose<tf.Tensor4D>(kernel.reshape(y, [batch, length, groups * heads, dk]), [0, 2, 1, 3]); // [B, n·h, L, dk]
    return groups === 1 ? [split] : kernel.split<tf.Tensor4D>(split, groups, 1); // n × [B, h, L, dk]
  }

  /** Heads [B, h, L, dk] merged and projected by W^O: → [B·L, d], or the packed rows [N, d]. */
  private merge(x: tf.Tensor4D, packing?: Packing): tf.Tensor2D {
    const { dModel } = this.attention;
    const [batch, , length] = x.shape;
    const joined = length === 1 ? x : kernel.transpose(x, [0, 2, 1, 3]); // [B, L, h, dk]
    const flat = kernel.reshape<tf.Tensor2D>(joined, [batch * length, dModel]); // [B·L, d]
    const rows = packing ? kernel.gatherNd<tf.Tensor2D>(flat, packing.pack) : flat; // [N, d] when packed
    const n = rows.shape[0];
    return kernel.reshape(dense(kernel.reshape(rows, [1, n, dModel]), this.fused('out')), [n, dModel]); // [B·L or N, d]
  }
}
