import * as tf from '@tensorflow/tfjs-core';
import { paddingMask, subsequentMask, type SequenceShape } from './attention.js';
import type { TensorBatch } from './batch.js';
import { checkSequenceLength, ModelConfigSchema, type ModelConfig } from './config.js';
import { InferenceTransformer, type DecoderMemory, type DecoderStepInput, type DecoderStepOutput } from './inference/transformer.js';
import { DecoderLayer, EncoderLayer, LayerNorm, positionalEncoding } from './layers.js';
import { crossEntropySum, LabelSmoothing } from './loss.js';
import { gatherRows, projectOnto } from './ops.js';
import { ForwardPass, ParamStore } from './params.js';
import { Rng } from './random.js';

export interface ForwardOptions {
  /** Seed of this step's dropout masks; without it dropout is off (evaluation). */
  dropoutSeed?: number;
}

/**
 * The Transformer encoder-decoder of "Attention Is All You Need" (Vaswani et
 * al. 2017, §3): N encoder layers and N decoder layers of multi-head attention
 * and feed-forward sublayers, sinusoidal positional encodings, and one token
 * embedding shared by the encoder input, the decoder input and the pre-softmax
 * projection (§3.4), scaled by √d_model at the input. Training runs the paper
 * modules; validation and decoding run `inference`, the same model with
 * weights fused from these parameters.
 */
export class Transformer {
  readonly config: ModelConfig;
  readonly params: ParamStore;
  readonly embedding: tf.Variable<tf.Rank.R2>; // [V, d]
  readonly positions: tf.Tensor2D; // [maxLength, d], constant
  readonly encoderLayers: EncoderLayer[];
  readonly decoderLayers: DecoderLayer[];
  readonly encoderNorm?: LayerNorm;
  readonly decoderNorm?: LayerNorm;
  /** The model's inference form: fused weights derived from `params`, engine-level kernels, packed batches, the cached step. */
  readonly inference: InferenceTransformer;

  constructor(config: ModelConfig, seed = 0) {
    this.config = ModelConfigSchema.parse(config);
    const { vocabSize, dModel, numHeads, dFF, norm } = this.config;
    this.params = new ParamStore(new Rng(seed));
    // N(0, d^-0.5): after the √d scaling the embedded tokens have unit variance.
    this.embedding = this.params.normal('embedding.weight', [vocabSize, dModel], dModel ** -0.5);
    this.zeroPaddingRow();
    this.positions = tf.keep(tf.tensor2d(positionalEncoding(this.config.maxLength, dModel), [this.config.maxLength, dModel]));
    this.encoderLayers = Array.from(
      { length: this.config.encoderLayers },
      (_, i) => new EncoderLayer(this.params, `encoder.layers.${i}`, dModel, numHeads, dFF, norm),
    );
    this.decoderLayers = Array.from(
      { length: this.config.decoderLayers },
      (_, i) => new DecoderLayer(this.params, `decoder.layers.${i}`, dModel, numHeads, dFF, norm),
    );
    if (norm === 'pre') {
      // Pre-LN leaves the residual stream unnormalised; the stacks end with a norm.
      this.encoderNorm = new LayerNorm(this.params, 'encoder.norm', dModel);
      this.decoderNorm = new LayerNorm(this.params, 'decoder.norm', dModel);
    }
    this.inference = new InferenceTransformer(this);
  }

  private zeroPaddingRow(): void {
    tf.tidy(() => {
      const { padId, vocabSize } = this.config;
      const keepRows = tf.tensor2d(
        Array.from({ length: vocabSize }, (_, i) => (i === padId ? 0 : 1)),
        [vocabSize, 1],
      ); // [V, 1]
      this.embedding.assign(tf.mul(this.embedding, keepRows));
    });
  }

  /** Call after changing parameters outside the optimizer (loading weights): drops the weights derived for inference. */
  markWeightsChanged(): void {
    this.params.invalidateDerived();
  }

  /** Token embedding × √d_model plus positional encoding (§3.4, §3.5), then dropout: ids [B, L] → [B·L, d]. */
  embed(ids: tf.Tensor2D, pass: ForwardPass): tf.Tensor2D {
    const [batch, length] = ids.shape;
    const { dModel } = this.config;
    checkSequenceLength(length, this.config.maxLength);
    const position = tf.slice(this.positions, [0, 0], [length, dModel]); // [L, d]
    const tokens = gatherRows(this.embedding, tf.reshape(ids, [batch * length])); // [B·L, d]
    const scaled = tf.reshape(tf.mul(tokens, Math.sqrt(dModel)), [batch, length, dModel]); // [B, L, d]
    return pass.dropout(tf.reshape(tf.add(scaled, position), [batch * length, dModel])); // [B·L, d]
  }

  /** The encoder stack (§3.1) over source ids [B, S]; → memory [B·S, d] and the source padding mask [B, 1, 1, S]. */
  encode(source: tf.Tensor2D, pass: ForwardPass): { memory: tf.Tensor2D; shape: SequenceShape; sourceMask: tf.Tensor4D } {
    const shape = { batch: source.shape[0], length: source.shape[1] };
    const sourceMask = paddingMask(source, this.config.padId); // [B, 1, 1, S]
    let x = this.embed(source, pass); // [B·S, d]
    for (const layer of this.encoderLayers) x = layer.apply(x, shape, sourceMask, pass); // [B·S, d]
    return { memory: this.encoderNorm ? this.encoderNorm.apply(x) : x, shape, sourceMask };
  }

  /** The decoder stack (§3.1) over the whole target prefix [B, T] at once; → [B·T, d]. */
  decode(targetIn: tf.Tensor2D, memory: tf.Tensor2D, memoryShape: SequenceShape, sourceMask: tf.Tensor4D, pass: ForwardPass): tf.Tensor2D {
    const shape = { batch: targetIn.shape[0], length: targetIn.shape[1] };
    const targetMask = subsequentMask(shape.length); // [1, 1, T, T]
    let y = this.embed(targetIn, pass); // [B·T, d]
    for (const layer of this.decoderLayers) {
      y = layer.apply(y, shape, layer.crossAttn.memoryKeyValue(memory, memoryShape), sourceMask, targetMask, pass); // [B·T, d]
    }
    return this.decoderNorm ? this.decoderNorm.apply(y) : y;
  }

  /** Pre-softmax projection with the shared embedding (§3.4): h [N, d] → logits [N, V]. */
  project(h: tf.Tensor2D): tf.Tensor2D {
    return projectOnto(h, this.embedding); // [N, V]
  }

  /** Label-smoothed training loss (§5.4) of a batch, averaged over its target tokens (scalar). */
  loss(batch: TensorBatch, labelSmoothing: number, options: ForwardOptions = {}): tf.Scalar {
    const pass = ForwardPass.training(this.config.dropout, options.dropoutSeed);
    const { memory, shape, sourceMask } = this.encode(batch.source, pass);
    const decoded = this.decode(batch.targetIn, memory, shape, sourceMask, pass); // [B·T, d]
    // Only the real label positions reach the vocabulary projection.
    const logits = this.project(gatherRows(decoded, batch.labelPositions)); // [N, V]
    return new LabelSmoothing(labelSmoothing, this.config.padId).loss(logits, batch.labels);
  }

  /** Summed plain cross-entropy of a batch without dropout, for validation: exp(sum / tokens) is perplexity. */
  crossEntropy(batch: TensorBatch): number {
    return tf.tidy(() => crossEntropySum(this.inference.labelLogits(batch), batch.labels).dataSync()[0]!);
  }

  /** Logits at every target position without a cache, [B, T, V]: the reference the cached step must match. */
  logitsUncached(source: tf.Tensor2D, targetIn: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => this.inference.forward(source, targetIn)); // [B, T, V]
  }

  /**
   * Runs the encoder once over source ids [B, S] and projects its output to
   * every decoder layer's keys and values: what cached decoding attends to.
   */
  encodeForDecoding(source: tf.Tensor2D): DecoderMemory {
    return this.inference.encodeForDecoding(source);
  }

  /**
   * One cached decoder step: feeds one token per row, tokens int32 [B], each
   * at its row's position; → the next-token logits [B, V] and every layer's
   * self-attention cache extended by this position. The input is left as it was.
   */
  step(input: DecoderStepInput, tokens: tf.Tensor1D): DecoderStepOutput {
    return this.inference.step(input, tokens);
  }

  dispose(): void {
    this.params.dispose();
    this.positions.dispose();
  }
}
