import * as tf from '@tensorflow/tfjs-core';
import { packingOf, paddingMask, subsequentMask, type KeyValue, type SequenceShape } from './attention.js';
import type { TensorBatch } from './batch.js';
import { ModelConfigSchema, type ModelConfig } from './config.js';
import { DecoderLayer, EncoderLayer, LayerNorm, positionalEncoding, type LayerCache } from './layers.js';
import * as kernel from './kernels.js';
import { crossEntropySum, LabelSmoothing } from './loss.js';
import { batchMatMul, gatherRows, projectOnto, tidy } from './ops.js';
import { ForwardPass, ParamStore } from './params.js';
import { Rng } from './random.js';

/**
 * The encoder's output as cached decoding reads it: each decoder layer's keys
 * and values of the memory, computed once per source. Its tensors are kept
 * (they outlive any tf.tidy): the caller disposes them.
 */
export interface DecoderMemory {
  /** Per decoder layer: keys and values of the encoder output, [B, h, S, dk] each. */
  layers: KeyValue[];
  sourceMask: tf.Tensor4D; // [B, 1, 1, S]
}

/** What one cached decoder step reads; generation/decoder-cache.ts keeps it between steps. */
export interface DecoderStepInput {
  /** Per decoder layer: keys and values of the positions decoded so far (none before the first step) and of the memory. */
  layers: readonly LayerCache[];
  /** Additive mask of padded source positions, [B, 1, 1, S]; none when no source is padded. */
  sourceMask: tf.Tensor4D | undefined;
  /** Additive mask over the self-attention cache and the slot this step adds, [B, 1, 1, T + 1]; none when every row sees every slot. */
  cacheMask: tf.Tensor4D | undefined;
  /** Per row, the position of the token it is fed. */
  positions: readonly number[];
}

/** A cached decoder step's result: next-token logits and each layer's self-attention cache extended by this position (kept: the caller owns it). */
export interface DecoderStepOutput {
  logits: tf.Tensor2D; // [B, V]
  cache: KeyValue[]; // per layer, [B, h, T + 1, dk] each
}

export interface ForwardOptions {
  /** Seed of this step's dropout masks; without it dropout is off (evaluation). */
  dropoutSeed?: number;
}

/**
 * The Transformer encoder-decoder of "Attention Is All You Need" (Vaswani et
 * al. 2017, §3): N encoder layers and N decoder layers of multi-head attention
 * and feed-forward sublayers, sinusoidal positional encodings, and one token
 * embedding shared by the encoder input, the decoder input and the pre-softmax
 * projection (§3.4), scaled by √d_model at the input.
 */
export class Transformer {
  readonly config: ModelConfig;
  readonly params: ParamStore;
  private readonly embedding: tf.Variable<tf.Rank.R2>; // [V, d]
  private readonly positions: tf.Tensor2D; // [maxLength, d], constant
  private readonly encoderLayers: EncoderLayer[];
  private readonly decoderLayers: DecoderLayer[];
  private readonly encoderNorm?: LayerNorm;
  private readonly decoderNorm?: LayerNorm;

  constructor(config: ModelConfig, seed = 0) {
    this.config = ModelConfigSchema.parse(config);
    const { vocabSize, dModel, numHeads, dFF, norm } = this.config;
    this.params = new ParamStore(new Rng(seed));
    // N(0, d^-0.5): after the √d scaling the embedded tokens have unit variance.
    this.embedding = this.params.normal('embedding.weight', [vocabSize, dModel], dModel ** -0.5);
    this.zeroPaddingRow();
    this.positions = tf.keep(tf.tensor2d(positionalEncoding(this.config.maxLength, dModel), [this.config.maxLength, dModel]));
    this.encoderLayers = Array.from({ length: this.config.encoderLayers }, (_, i) => new EncoderLayer(this.params, `encoder.layers.${i}`, dModel, numHeads, dFF, norm));
    this.decoderLayers = Array.from({ length: this.config.decoderLayers }, (_, i) => new DecoderLayer(this.params, `decoder.layers.${i}`, dModel, numHeads, dFF, norm));
    if (norm === 'pre') {
      // Pre-LN leaves the residual stream unnormalised; the stacks end with a norm.
      this.encoderNorm = new LayerNorm(this.params, 'encoder.norm', dModel);
      this.decoderNorm = new LayerNorm(this.params, 'decoder.norm', dModel);
    }
  }

  private zeroPaddingRow(): void {
    tf.tidy(() => {
      const { padId, vocabSize } = this.config;
      const keepRows = tf.tensor2d(Array.from({ length: vocabSize }, (_, i) => (i === padId ? 0 : 1)), [vocabSize, 1]); // [V, 1]
      this.embedding.assign(tf.mul(this.embedding, keepRows));
    });
  }

  /** Call after changing parameters outside the optimizer (loading weights): drops the weights derived for inference. */
  markWeightsChanged(): void {
    this.params.invalidateDerived();
  }

  /** Token embedding × √d_model plus positional encoding (§3.4, §3.5), then dropout: ids [B, L] → [B·L, d]. */
  embed(ids: tf.Tensor2D, offset: number, pass: ForwardPass): tf.Tensor2D {
    const [batch, length] = ids.shape;
    const { dModel } = this.config;
    if (offset + length > this.config.maxLength) {
      throw new RangeError(`sequence of ${offset + length} tokens is longer than the model's maxLength ${this.config.maxLength}`);
    }
    if (!pass.differentiable) {
      const position = kernel.slice<tf.Tensor2D>(this.positions, [offset, 0], [length, dModel]); // [L, d]
      const rows = kernel.gatherNd<tf.Tensor2D>(this.scaledEmbedding(), kernel.reshape(ids, [batch * length, 1])); // [B·L, d]
      // One position broadcasts over the batch as it is; longer ones need the [B, L, d] view.
      if (length === 1) return kernel.add(rows, position); // [B, d]
      return kernel.reshape(kernel.add(kernel.reshape(rows, [batch, length, dModel]), position), [batch * length, dModel]); // [B·L, d]
    }
    const position = tf.slice(this.positions, [offset, 0], [length, dModel]); // [L, d]
    const tokens = gatherRows(this.embedding, tf.reshape(ids, [batch * length]), pass.differentiable); // [B·L, d]
    const scaled = tf.reshape(tf.mul(tokens, Math.sqrt(dModel)), [batch, length, dModel]); // [B, L, d]
    return pass.dropout(tf.reshape(tf.add(scaled, position), [batch * length, dModel])); // [B·L, d]
  }

  /** E·√d_model, kept for inference: a product per step saved, the values the same. → [V, d] */
  private scaledEmbedding(): tf.Tensor2D {
    return this.params.derived('embedding.scaled', () => tf.mul(this.embedding, Math.sqrt(this.config.dModel)) as tf.Tensor2D); // [V, d]
  }

  /**
   * Embedding of one token per row, tokens int32 [B], each at its row's own
   * position (rows that joined later are at earlier positions) → [B, d].
   */
  private embedStep(tokens: tf.Tensor1D, positions: readonly number[]): tf.Tensor2D {
    const batchSize = positions.length;
    const first = positions[0] ?? 0;
    if (positions.every((p) => p === first)) return this.embed(kernel.reshape(tokens, [batchSize, 1]), first, ForwardPass.inference); // [B, d]
    const last = Math.max(...positions);
    if (last >= this.config.maxLength) throw new RangeError(`sequence of ${last + 1} tokens is longer than the model's maxLength ${this.config.maxLength}`);
    const rows = kernel.gatherNd<tf.Tensor2D>(this.scaledEmbedding(), kernel.reshape(tokens, [batchSize, 1])); // [B, d]
    return kernel.add(rows, kernel.gatherNd(this.positions, tf.tensor2d(positions as number[], [batchSize, 1], 'int32'))); // [B, d]
  }

  /**
   * The encoder stack over source ids [B, S]; → memory [B·S, d] and the
   * source padding mask [B, 1, 1, S]. In inference a padded batch runs
   * packed: memory holds the N real tokens only, [N, d], and `shape.packing`
   * says where they belong, so that padding costs no products.
   */
  encode(source: tf.Tensor2D, pass: ForwardPass = ForwardPass.inference): { memory: tf.Tensor2D; shape: SequenceShape; sourceMask: tf.Tensor4D } {
    const packing = pass.differentiable ? undefined : packingOf(source, this.config.padId);
    const shape: SequenceShape = { batch: source.shape[0], length: source.shape[1], ...(packing ? { packing } : {}) };
    const sourceMask = paddingMask(source, this.config.padId); // [B, 1, 1, S]
    const embedded = this.embed(source, 0, pass); // [B·S, d]
    let x = packing ? kernel.gatherNd<tf.Tensor2D>(embedded, packing.pack) : embedded; // [B·S or N, d]
    for (const layer of this.encoderLayers) x = layer.apply(x, shape, sourceMask, pass); // [B·S or N, d]
    return { memory: this.encoderNorm ? this.encoderNorm.apply(x, pass) : x, shape, sourceMask };
  }

  /** The decoder stack over the whole target prefix [B, T] at once (training); → [B·T, d]. */
  decode(targetIn: tf.Tensor2D, memory: tf.Tensor2D, memoryShape: SequenceShape, sourceMask: tf.Tensor4D, pass: ForwardPass = ForwardPass.inference): tf.Tensor2D {
    const shape = { batch: targetIn.shape[0], length: targetIn.shape[1] };
    const targetMask = subsequentMask(shape.length); // [1, 1, T, T]
    let y = this.embed(targetIn, 0, pass); // [B·T, d]
    for (const layer of this.decoderLayers) {
      y = layer.apply(y, shape, layer.crossAttn.memoryKeyValue(memory, memoryShape, pass), sourceMask, targetMask, pass); // [B·T, d]
    }
    return this.decoderNorm ? this.decoderNorm.apply(y, pass) : y;
  }

  /** Pre-softmax projection with the shared embedding (§3.4): h [N, d] → logits [N, V]. */
  project(h: tf.Tensor2D, pass: ForwardPass): tf.Tensor2D {
    if (!pass.differentiable) return batchMatMul(h, this.params.derived('embedding.transposed', () => tf.transpose(this.embedding))); // [N, V]
    return projectOnto(h, this.embedding); // [N, V]
  }

  /** Decoder outputs at the batch's real label positions only: → [N, d]. */
  private labelStates(batch: TensorBatch, pass: ForwardPass): tf.Tensor2D {
    const { memory, shape, sourceMask } = this.encode(batch.source, pass);
    const decoded = this.decode(batch.targetIn, memory, shape, sourceMask, pass); // [B·T, d]
    return gatherRows(decoded, batch.labelPositions, pass.differentiable); // [N, d]
  }

  /** Label-smoothed training loss of a batch, averaged over its target tokens (scalar). */
  loss(batch: TensorBatch, labelSmoothing: number, options: ForwardOptions = {}): tf.Scalar {
    const pass = ForwardPass.training(this.config.dropout, options.dropoutSeed);
    const logits = this.project(this.labelStates(batch, pass), pass); // [N, V]
    return new LabelSmoothing(labelSmoothing, this.config.padId).loss(logits, batch.labels);
  }

  /** Summed plain cross-entropy of a batch without dropout, for validation: exp(sum / tokens) is perplexity. */
  crossEntropy(batch: TensorBatch): number {
    const pass = ForwardPass.inference;
    return tf.tidy(() => crossEntropySum(this.project(this.labelStates(batch, pass), pass), batch.labels).dataSync()[0]!);
  }

  /** Logits at every target position without a cache, [B, T, V]: the reference the cached step must match. */
  logitsUncached(source: tf.Tensor2D, targetIn: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const { memory, shape, sourceMask } = this.encode(source);
      const decoded = this.decode(targetIn, memory, shape, sourceMask); // [B·T, d]
      const [batch, length] = targetIn.shape;
      return tf.reshape(this.project(decoded, ForwardPass.inference), [batch, length, this.config.vocabSize]); // [B, T, V]
    });
  }

  /**
   * Runs the encoder once over source ids [B, S] and projects its output to
   * every decoder layer's keys and values: what cached decoding attends to.
   */
  encodeForDecoding(source: tf.Tensor2D): DecoderMemory {
    // The memory outlives any tf.tidy its caller may run in: its tensors are kept.
    return tidy((): DecoderMemory => {
      const { memory, shape, sourceMask } = this.encode(source);
      const layers = this.decoderLayers.map((layer) => keepKeyValue(layer.crossAttn.memoryKeyValue(memory, shape, ForwardPass.inference)));
      return { layers, sourceMask: tf.keep(sourceMask) };
    });
  }

  /**
   * One cached decoder step: feeds one token per row, tokens int32 [B], each
   * at its row's position; → the next-token logits [B, V] and every layer's
   * self-attention cache extended by this position. The input is left as it was.
   */
  step(input: DecoderStepInput, tokens: tf.Tensor1D): DecoderStepOutput {
    const pass = ForwardPass.inference;
    return tidy(() => {
      let y = this.embedStep(tokens, input.positions); // [B, d]
      const cache: KeyValue[] = [];
      this.decoderLayers.forEach((layer, i) => {
        const r = layer.step(y, input.layers[i]!, input.sourceMask, pass, input.cacheMask);
        y = r.output; // [B, d]
        cache.push(keepKeyValue(r.cache.self!));
      });
      return { logits: this.project(this.decoderNorm ? this.decoderNorm.apply(y, pass) : y, pass), cache }; // [B, V]
    });
  }

  dispose(): void {
    this.params.dispose();
    this.positions.dispose();
  }
}

function keepKeyValue(kv: KeyValue): KeyValue {
  return { k: tf.keep(kv.k), v: tf.keep(kv.v) };
}
