import * as tf from '@tensorflow/tfjs-core';
import { MultiHeadAttention, type KeyValue } from './attention.js';
import { linear } from './ops.js';
import type { Dropout, ParamStore } from './params.js';

/**
 * Layer normalisation (Ba et al. 2016), used around every sublayer (§3.1):
 * (x − mean) / √(var + ε) · γ + β over the model dimension.
 */
export class LayerNorm {
  private readonly gamma: tf.Variable<tf.Rank.R1>;
  private readonly beta: tf.Variable<tf.Rank.R1>;

  constructor(
    params: ParamStore,
    prefix: string,
    size: number,
    private readonly epsilon = 1e-5,
  ) {
    this.gamma = params.ones(`${prefix}.weight`, size);
    this.beta = params.zeros(`${prefix}.bias`, size);
  }

  apply(x: tf.Tensor3D): tf.Tensor3D {
    const { mean, variance } = tf.moments(x, -1, true); // [B, L, 1] each
    const normalized = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.epsilon))); // [B, L, d]
    return tf.add(tf.mul(normalized, this.gamma), this.beta); // [B, L, d]
  }
}

/** Position-wise feed-forward network (§3.3): max(0, x·W1 + b1)·W2 + b2, applied to each position alike. */
export class PositionwiseFeedForward {
  private readonly w1: tf.Variable<tf.Rank.R2>;
  private readonly b1: tf.Variable<tf.Rank.R1>;
  private readonly w2: tf.Variable<tf.Rank.R2>;
  private readonly b2: tf.Variable<tf.Rank.R1>;

  constructor(params: ParamStore, prefix: string, dModel: number, dFF: number) {
    this.w1 = params.xavier(`${prefix}.w1.weight`, dModel, dFF);
    this.b1 = params.zeros(`${prefix}.w1.bias`, dFF);
    this.w2 = params.xavier(`${prefix}.w2.weight`, dFF, dModel);
    this.b2 = params.zeros(`${prefix}.w2.bias`, dModel);
  }

  apply(x: tf.Tensor3D, dropout: Dropout): tf.Tensor3D {
    const [batch, length, dModel] = x.shape;
    const hidden = linear(tf.reshape(x, [batch * length, dModel]), this.w1, this.b1, 'relu'); // [B·L, dff]
    return tf.reshape(linear(dropout.apply(hidden), this.w2, this.b2), [batch, length, dModel]); // [B, L, d]
  }
}

/**
 * Sinusoidal positional encoding (§3.5):
 * PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
 * Returns the table [maxLength, d] as plain numbers; the model keeps it as a constant.
 */
export function positionalEncoding(maxLength: number, dModel: number): Float32Array {
  const table = new Float32Array(maxLength * dModel);
  for (let pos = 0; pos < maxLength; pos++) {
    for (let i = 0; i < dModel; i += 2) {
      const angle = pos / Math.pow(10000, i / dModel);
      table[pos * dModel + i] = Math.sin(angle);
      table[pos * dModel + i + 1] = Math.cos(angle);
    }
  }
  return table;
}

/**
 * Residual connection around a sublayer, followed by dropout (§5.4) and layer
 * normalisation: post-LN as in §3.1, LayerNorm(x + Dropout(Sublayer(x))), or
 * pre-LN, x + Dropout(Sublayer(LayerNorm(x))), which trains more stably deep.
 */
export class SublayerConnection {
  readonly norm: LayerNorm;

  constructor(
    params: ParamStore,
    prefix: string,
    dModel: number,
    private readonly style: 'post' | 'pre',
  ) {
    this.norm = new LayerNorm(params, prefix, dModel);
  }

  apply(x: tf.Tensor3D, dropout: Dropout, sublayer: (input: tf.Tensor3D) => tf.Tensor3D): tf.Tensor3D {
    if (this.style === 'pre') return tf.add(x, dropout.apply(sublayer(this.norm.apply(x)))); // [B, L, d]
    return this.norm.apply(tf.add(x, dropout.apply(sublayer(x)))); // [B, L, d]
  }
}

/** Encoder layer (§3.1): self-attention, then the feed-forward network, each a residual sublayer. */
export class EncoderLayer {
  private readonly selfAttn: MultiHeadAttention;
  private readonly ffn: PositionwiseFeedForward;
  private readonly sublayers: [SublayerConnection, SublayerConnection];

  constructor(params: ParamStore, prefix: string, dModel: number, heads: number, dFF: number, norm: 'post' | 'pre') {
    this.selfAttn = new MultiHeadAttention(params, `${prefix}.self_attn`, dModel, heads);
    this.ffn = new PositionwiseFeedForward(params, `${prefix}.ffn`, dModel, dFF);
    this.sublayers = [new SublayerConnection(params, `${prefix}.norm1`, dModel, norm), new SublayerConnection(params, `${prefix}.norm2`, dModel, norm)];
  }

  apply(x: tf.Tensor3D, srcMask: tf.Tensor4D, dropout: Dropout): tf.Tensor3D {
    const attended = this.sublayers[0].apply(x, dropout, (h) => this.selfAttn.selfAttention(h, srcMask, dropout)); // [B, S, d]
    return this.sublayers[1].apply(attended, dropout, (h) => this.ffn.apply(h, dropout)); // [B, S, d]
  }
}

/** Per-layer state of incremental decoding: the growing self-attention cache and the fixed memory keys/values. */
export interface LayerCache {
  self: KeyValue | undefined;
  memory: KeyValue;
}

/**
 * Decoder layer (§3.1): masked self-attention, encoder-decoder attention over
 * the encoder's output, then the feed-forward network.
 */
export class DecoderLayer {
  private readonly selfAttn: MultiHeadAttention;
  readonly crossAttn: MultiHeadAttention;
  private readonly ffn: PositionwiseFeedForward;
  private readonly sublayers: [SublayerConnection, SublayerConnection, SublayerConnection];

  constructor(params: ParamStore, prefix: string, dModel: number, heads: number, dFF: number, norm: 'post' | 'pre') {
    this.selfAttn = new MultiHeadAttention(params, `${prefix}.self_attn`, dModel, heads);
    this.crossAttn = new MultiHeadAttention(params, `${prefix}.cross_attn`, dModel, heads);
    this.ffn = new PositionwiseFeedForward(params, `${prefix}.ffn`, dModel, dFF);
    this.sublayers = [
      new SublayerConnection(params, `${prefix}.norm1`, dModel, norm),
      new SublayerConnection(params, `${prefix}.norm2`, dModel, norm),
      new SublayerConnection(params, `${prefix}.norm3`, dModel, norm),
    ];
  }

  /** y [B, T, d] over the whole target prefix at once (training, or uncached decoding). */
  apply(y: tf.Tensor3D, memory: KeyValue, srcMask: tf.Tensor4D, tgtMask: tf.Tensor4D, dropout: Dropout): tf.Tensor3D {
    const h1 = this.sublayers[0].apply(y, dropout, (h) => this.selfAttn.selfAttention(h, tgtMask, dropout)); // [B, T, d]
    const h2 = this.sublayers[1].apply(h1, dropout, (h) => this.crossAttn.crossAttention(h, memory, srcMask, dropout)); // [B, T, d]
    return this.sublayers[2].apply(h2, dropout, (h) => this.ffn.apply(h, dropout)); // [B, T, d]
  }

  /** One position y [B, 1, d] with cached keys/values; returns its output and the extended cache. */
  step(y: tf.Tensor3D, cache: LayerCache, srcMask: tf.Tensor4D, dropout: Dropout): { output: tf.Tensor3D; cache: LayerCache } {
    let self: KeyValue | undefined;
    const h1 = this.sublayers[0].apply(y, dropout, (h) => {
      const r = this.selfAttn.selfAttentionStep(h, cache.self);
      self = r.cache;
      return r.output;
    }); // [B, 1, d]
    const h2 = this.sublayers[1].apply(h1, dropout, (h) => this.crossAttn.crossAttention(h, cache.memory, srcMask, dropout)); // [B, 1, d]
    const output = this.sublayers[2].apply(h2, dropout, (h) => this.ffn.apply(h, dropout)); // [B, 1, d]
    return { output, cache: { self: self!, memory: cache.memory } };
  }
}
