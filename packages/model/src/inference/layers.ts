import type * as tf from '@tensorflow/tfjs-core';
import type { KeyValue, SequenceShape } from '../attention.js';
import type { DecoderLayer, EncoderLayer, PositionwiseFeedForward, SublayerConnection } from '../layers.js';
import type { ParamStore } from '../params.js';
import { InferenceAttention } from './attention.js';
import { dense, denseWeights } from './dense.js';
import * as kernel from './kernels.js';
import { InferenceLayerNorm } from './layer-norm.js';
import type { PackedShape } from './packing.js';

/** The position-wise feed-forward network (§3.3) for inference: both products as bare kernels on [1, N, ·]. */
class InferenceFeedForward {
  constructor(
    private readonly ffn: PositionwiseFeedForward,
    private readonly params: ParamStore,
  ) {}

  /** x [N, d] → [N, d]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    const { w1, b1, w2, b2, name } = this.ffn;
    const first = this.params.derived(`${name}.w1.inference`, () => ({ ...denseWeights([w1], [b1]) }));
    const second = this.params.derived(`${name}.w2.inference`, () => ({ ...denseWeights([w2], [b2]) }));
    const hidden = dense(kernel.reshape(x, [1, ...x.shape]), first, 'relu'); // [1, N, dff]
    return kernel.reshape(dense(hidden, second), x.shape); // [N, d]
  }
}

/** A residual sublayer (§3.1) for inference: dropout is the identity, and the sum a bare kernel. */
class InferenceSublayer {
  private readonly norm: InferenceLayerNorm;

  constructor(
    private readonly sublayer: SublayerConnection,
    params: ParamStore,
  ) {
    this.norm = new InferenceLayerNorm(sublayer.norm, params);
  }

  apply(x: tf.Tensor2D, sublayer: (input: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    if (this.sublayer.style === 'pre') return kernel.add(x, sublayer(this.norm.apply(x))); // [N, d]
    return this.norm.apply(kernel.add(x, sublayer(x))); // [N, d]
  }
}

/** An encoder layer (§3.1) for inference; a padded batch may run packed. */
export class InferenceEncoderLayer {
  private readonly selfAttn: InferenceAttention;
  private readonly ffn: InferenceFeedForward;
  private readonly sublayers: InferenceSublayer[];

  constructor(layer: EncoderLayer, params: ParamStore) {
    this.selfAttn = new InferenceAttention(layer.selfAttn, params);
    this.ffn = new InferenceFeedForward(layer.ffn, params);
    this.sublayers = layer.sublayers.map((s) => new InferenceSublayer(s, params));
  }

  /** x [B·S, d], or [N, d] packed → the same shape. */
  apply(x: tf.Tensor2D, shape: PackedShape, sourceMask: tf.Tensor4D): tf.Tensor2D {
    const attended = this.sublayers[0]!.apply(x, (h) => this.selfAttn.selfAttention(h, shape, sourceMask));
    return this.sublayers[1]!.apply(attended, (h) => this.ffn.apply(h));
  }
}

/** Per-layer state of incremental decoding: the growing self-attention cache and the fixed memory keys/values. */
export interface LayerCache {
  self: KeyValue | undefined;
  memory: KeyValue;
}

/** A decoder layer (§3.1) for inference: over a whole target prefix, or one position with cached keys and values. */
export class InferenceDecoderLayer {
  readonly crossAttn: InferenceAttention;
  private readonly selfAttn: InferenceAttention;
  private readonly ffn: InferenceFeedForward;
  private readonly sublayers: InferenceSublayer[];

  constructor(layer: DecoderLayer, params: ParamStore) {
    this.selfAttn = new InferenceAttention(layer.selfAttn, params);
    this.crossAttn = new InferenceAttention(layer.crossAttn, params);
    this.ffn = new InferenceFeedForward(layer.ffn, params);
    this.sublayers = layer.sublayers.map((s) => new InferenceSublayer(s, params));
  }

  /** y [B·T, d] over the whole target prefix at once (uncached decoding) → [B·T, d]. */
  apply(y: tf.Tensor2D, shape: SequenceShape, memory: KeyValue, sourceMask: tf.Tensor4D, targetMask: tf.Tensor4D): tf.Tensor2D {
    const h1 = this.sublayers[0]!.apply(y, (h) => this.selfAttn.selfAttention(h, shape, targetMask));
    const h2 = this.sublayers[1]!.apply(h1, (h) => this.crossAttn.crossAttention(h, shape, memory, sourceMask));
    return this.sublayers[2]!.apply(h2, (h) => this.ffn.apply(h));
  }

  /**
   * One position y [B, d] with cached keys/values; returns its output [B, d]
   * and its self-attention cache extended by it. `cacheMask` [B, 1, 1, T + 1]
   * hides cache slots from rows that joined after them.
   */
  step(y: tf.Tensor2D, cache: LayerCache, sourceMask: tf.Tensor4D | undefined, cacheMask?: tf.Tensor4D): { output: tf.Tensor2D; self: KeyValue } {
    let self: KeyValue | undefined;
    const shape = { batch: y.shape[0], length: 1 };
    const h1 = this.sublayers[0]!.apply(y, (h) => {
      const r = this.selfAttn.selfAttentionStep(h, cache.self, cacheMask);
      self = r.cache;
      return r.output;
    });
    const h2 = this.sublayers[1]!.apply(h1, (h) => this.crossAttn.crossAttention(h, shape, cache.memory, sourceMask));
    const output = this.sublayers[2]!.apply(h2, (h) => this.ffn.apply(h));
    return { output, self: self! };
  }
}
