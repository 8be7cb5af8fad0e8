import * as tf from '@tensorflow/tfjs-core';
import { MultiHeadAttention, type KeyValue, type SequenceShape } from './attention.js';
import { customOp, linear } from './ops.js';
import type { ForwardPass, ParamStore } from './params.js';

/**
 * Layer normalisation (Ba et al. 2016), used around every sublayer (§3.1):
 * (x − mean) / √(var + ε) · γ + β over the model dimension of x [N, d].
 */
export class LayerNorm {
  readonly gamma: tf.Variable<tf.Rank.R1>;
  readonly beta: tf.Variable<tf.Rank.R1>;

  constructor(
    params: ParamStore,
    prefix: string,
    size: number,
    readonly epsilon = 1e-5,
  ) {
    this.gamma = params.ones(`${prefix}.weight`, size);
    this.beta = params.zeros(`${prefix}.bias`, size);
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.gamma, this.beta, this.epsilon); // [N, d]
  }
}

/**
 * Layer normalisation (Ba et al. 2016, §2) with its gradient written out:
 * x̂ = (x − μ)·r, r = 1/√(σ² + ε), y = x̂·γ + β over rows of x [N, d], and
 * ∂x = r·(g − mean(g) − x̂·mean(g·x̂)) with g = ∂y·γ, ∂γ = Σ_rows ∂y·x̂,
 * ∂β = Σ_rows ∂y. Autodiff through the same forward records about twice the
 * kernels (the broadcasts of μ and r each need their own reduction back);
 * only x̂ and r are kept for the backward pass. γ and β must be variables.
 */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor2D {
  return customOp<tf.Tensor2D>([x, gamma, beta], ([xi], save) => {
    const centered = tf.sub(xi!, tf.mean(xi!, -1, true)); // [N, d]
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), epsilon)); // [N, 1]
    const normalized = tf.mul(centered, rstd); // [N, d]
    save([normalized, rstd]);
    return {
      value: tf.add(tf.mul(normalized, gamma), beta), // [N, d]
      gradFunc: (dy, [xHat, r]) => {
        const g = tf.mul(dy, gamma); // [N, d]
        const projection = tf.mul(xHat!, tf.mean(tf.mul(g, xHat!), -1, true)); // [N, d]
        const dx = tf.mul(tf.sub(tf.sub(g, tf.mean(g, -1, true)), projection), r!); // [N, d]
        return [dx, tf.sum(tf.mul(dy, xHat!), 0), tf.sum(dy, 0)]; // [N, d], [d], [d]
      },
    };
  });
}

/** Position-wise feed-forward network (§3.3): max(0, x·W1 + b1)·W2 + b2 on x [N, d], each position alike. */
export class PositionwiseFeedForward {
  readonly w1: tf.Variable<tf.Rank.R2>;
  readonly b1: tf.Variable<tf.Rank.R1>;
  readonly w2: tf.Variable<tf.Rank.R2>;
  readonly b2: tf.Variable<tf.Rank.R1>;

  constructor(
    params: ParamStore,
    /** Prefix of the parameter names: `${name}.w1.weight` … */
    readonly name: string,
    dModel: number,
    dFF: number,
  ) {
    this.w1 = params.xavier(`${name}.w1.weight`, dModel, dFF);
    this.b1 = params.zeros(`${name}.w1.bias`, dFF);
    this.w2 = params.xavier(`${name}.w2.weight`, dFF, dModel);
    this.b2 = params.zeros(`${name}.w2.bias`, dModel);
  }

  apply(x: tf.Tensor2D, pass: ForwardPass): tf.Tensor2D {
    const hidden = linear(x, this.w1, this.b1, 'relu'); // [N, dff]
    return linear(pass.dropout(hidden), this.w2, this.b2); // [N, d]
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
    readonly style: 'post' | 'pre',
  ) {
    this.norm = new LayerNorm(params, prefix, dModel);
  }

  apply(x: tf.Tensor2D, pass: ForwardPass, sublayer: (input: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    if (this.style === 'pre') return tf.add(x, pass.dropout(sublayer(this.norm.apply(x)))); // [N, d]
    return this.norm.apply(tf.add(x, pass.dropout(sublayer(x)))); // [N, d]
  }
}

/** Encoder layer (§3.1): self-attention, then the feed-forward network, each a residual sublayer. */
export class EncoderLayer {
  readonly selfAttn: MultiHeadAttention;
  readonly ffn: PositionwiseFeedForward;
  readonly sublayers: [SublayerConnection, SublayerConnection];

  constructor(params: ParamStore, prefix: string, dModel: number, heads: number, dFF: number, norm: 'post' | 'pre') {
    this.selfAttn = new MultiHeadAttention(params, `${prefix}.self_attn`, dModel, heads);
    this.ffn = new PositionwiseFeedForward(params, `${prefix}.ffn`, dModel, dFF);
    this.sublayers = [new SublayerConnection(params, `${prefix}.norm1`, dModel, norm), new SublayerConnection(params, `${prefix}.norm2`, dModel, norm)];
  }

  /** x [B·S, d] → [B·S, d]. */
  apply(x: tf.Tensor2D, shape: SequenceShape, sourceMask: tf.Tensor4D, pass: ForwardPass): tf.Tensor2D {
    const attended = this.sublayers[0].apply(x, pass, (h) => this.selfAttn.selfAttention(h, shape, sourceMask, pass));
    return this.sublayers[1].apply(attended, pass, (h) => this.ffn.apply(h, pass));
  }
}

/**
 * Decoder layer (§3.1): masked self-attention, encoder-decoder attention over
 * the encoder's output, then the feed-forward network.
 */
export class DecoderLayer {
  readonly selfAttn: MultiHeadAttention;
  readonly crossAttn: MultiHeadAttention;
  readonly ffn: PositionwiseFeedForward;
  readonly sublayers: [SublayerConnection, SublayerConnection, SublayerConnection];

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

  /** y [B·T, d] over the whole target prefix at once, each position seeing those before it → [B·T, d]. */
  apply(y: tf.Tensor2D, shape: SequenceShape, memory: KeyValue, sourceMask: tf.Tensor4D, targetMask: tf.Tensor4D, pass: ForwardPass): tf.Tensor2D {
    const h1 = this.sublayers[0].apply(y, pass, (h) => this.selfAttn.selfAttention(h, shape, targetMask, pass));
    const h2 = this.sublayers[1].apply(h1, pass, (h) => this.crossAttn.crossAttention(h, shape, memory, sourceMask, pass));
    return this.sublayers[2].apply(h2, pass, (h) => this.ffn.apply(h, pass));
  }
}
