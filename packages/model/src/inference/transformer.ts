import * as tf from '@tensorflow/tfjs-core';
import { paddingMask, subsequentMask, type KeyValue } from '../attention.js';
import type { TensorBatch } from '../batch.js';
import { checkSequenceLength, type ModelConfig } from '../config.js';
import { batchMatMul, tidy } from '../ops.js';
import type { ParamStore } from '../params.js';
import type { DecoderLayer, EncoderLayer, LayerNorm } from '../layers.js';
import * as kernel from './kernels.js';
import { InferenceDecoderLayer, InferenceEncoderLayer, type LayerCache } from './layers.js';
import { InferenceLayerNorm } from './layer-norm.js';
import { packingOf, type PackedShape } from './packing.js';

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

/** What the inference form reads of a Transformer: its configuration and the paper modules' parameters. */
export interface TransformerParts {
  readonly config: ModelConfig;
  readonly params: ParamStore;
  readonly embedding: tf.Variable<tf.Rank.R2>; // [V, d]
  readonly positions: tf.Tensor2D; // [maxLength, d]
  readonly encoderLayers: readonly EncoderLayer[];
  readonly decoderLayers: readonly DecoderLayer[];
  readonly encoderNorm?: LayerNorm;
  readonly decoderNorm?: LayerNorm;
}

/**
 * A Transformer's inference form, computing what its paper modules compute
 * without dropout or gradients: weights derived once per change of the
 * parameters (fused projections, pre-scaled queries, E·√d_model, Eᵀ), the
 * engine's kernels called directly, a padded source batch encoded packed,
 * and the cached decoder step.
 */
export class InferenceTransformer {
  private readonly config: ModelConfig;
  private readonly params: ParamStore;
  private readonly encoderLayers: InferenceEncoderLayer[];
  private readonly decoderLayers: InferenceDecoderLayer[];
  private readonly encoderNorm?: InferenceLayerNorm;
  private readonly decoderNorm?: InferenceLayerNorm;

  constructor(private readonly model: TransformerParts) {
    const { params } = model;
    this.config = model.config;
    this.params = params;
    this.encoderLayers = model.encoderLayers.map((layer) => new InferenceEncoderLayer(layer, params));
    this.decoderLayers = model.decoderLayers.map((layer) => new InferenceDecoderLayer(layer, params));
    if (model.encoderNorm) this.encoderNorm = new InferenceLayerNorm(model.encoderNorm, params);
    if (model.decoderNorm) this.decoderNorm = new InferenceLayerNorm(model.decoderNorm, params);
  }

  /** Scaled token embedding plus positional encoding (§3.4, §3.5) from position `offset` on: ids [B, L] → [B·L, d]. */
  embed(ids: tf.Tensor2D, offset: number): tf.Tensor2D {
    const [batch, length] = ids.shape;
    const { dModel } = this.config;
    checkSequenceLength(offset + length, this.config.maxLength);
    const position = kernel.slice<tf.Tensor2D>(this.model.positions, [offset, 0], [length, dModel]); // [L, d]
    const rows = kernel.gatherNd<tf.Tensor2D>(this.scaledEmbedding(), kernel.reshape(ids, [batch * length, 1])); // [B·L, d]
    // One position broadcasts over the batch as it is; longer ones need the [B, L, d] view.
    if (length === 1) return kernel.add(rows, position); // [B, d]
    return kernel.reshape(kernel.add(kernel.reshape(rows, [batch, length, dModel]), position), [batch * length, dModel]); // [B·L, d]
  }

  /**
   * The encoder stack over source ids [B, S]; → memory [B·S, d] and the
   * source padding mask [B, 1, 1, S]. A padded batch runs packed: memory
   * holds the N real tokens only, [N, d], and `shape.packing` says where
   * they belong, so that padding costs no products.
   */
  encode(source: tf.Tensor2D): { memory: tf.Tensor2D; shape: PackedShape; sourceMask: tf.Tensor4D } {
    const packing = packingOf(source, this.config.padId);
    const shape: PackedShape = { batch: source.shape[0], length: source.shape[1], ...(packing ? { packing } : {}) };
    const sourceMask = paddingMask(source, this.config.padId); // [B, 1, 1, S]
    const embedded = this.embed(source, 0); // [B·S, d]
    let x = packing ? kernel.gatherNd<tf.Tensor2D>(embedded, packing.pack) : embedded; // [B·S or N, d]
    for (const layer of this.encoderLayers) x = layer.apply(x, shape, sourceMask); // [B·S or N, d]
    return { memory: this.encoderNorm ? this.encoderNorm.apply(x) : x, shape, sourceMask };
  }

  /** The decoder stack over the whole target prefix [B, T] at once, without a cache; → [B·T, d]. */
  decode(targetIn: tf.Tensor2D, memory: tf.Tensor2D, memoryShape: PackedShape, sourceMask: tf.Tensor4D): tf.Tensor2D {
    const shape = { batch: targetIn.shape[0], length: targetIn.shape[1] };
    const targetMask = subsequentMask(shape.length); // [1, 1, T, T]
    let y = this.embed(targetIn, 0); // [B·T, d]
    for (const layer of this.decoderLayers) {
      y = layer.apply(y, shape, layer.crossAttn.memoryKeyValue(memory, memoryShape), sourceMask, targetMask); // [B·T, d]
    }
    return this.decoderNorm ? this.decoderNorm.apply(y) : y;
  }

  /** Pre-softmax projection with the shared embedding (§3.4), as h·Eᵀ with Eᵀ kept: h [N, d] → logits [N, V]. */
  project(h: tf.Tensor2D): tf.Tensor2D {
    return batchMatMul(
      h,
      this.params.derived('embedding.transposed', () => tf.transpose(this.model.embedding)),
    ); // [N, V]
  }

  /** Logits at every target position without a cache: source [B, S], targetIn [B, T] → [B, T, V]. */
  forward(source: tf.Tensor2D, targetIn: tf.Tensor2D): tf.Tensor3D {
    const { memory, shape, sourceMask } = this.encode(source);
    const decoded = this.decode(targetIn, memory, shape, sourceMask); // [B·T, d]
    const [batch, length] = targetIn.shape;
    return tf.reshape(this.project(decoded), [batch, length, this.config.vocabSize]); // [B, T, V]
  }

  /** Logits at the batch's real label positions only: → [N, V]. */
  labelLogits(batch: TensorBatch): tf.Tensor2D {
    const { memory, shape, sourceMask } = this.encode(batch.source);
    const decoded = this.decode(batch.targetIn, memory, shape, sourceMask); // [B·T, d]
    return this.project(kernel.gatherNd(decoded, tf.expandDims(batch.labelPositions, 1))); // [N, V]
  }

  /** The encoder once over source ids [B, S], and every decoder layer's keys and values of its output. */
  encodeForDecoding(source: tf.Tensor2D): DecoderMemory {
    // The memory outlives any tf.tidy its caller may run in: its tensors are kept.
    return tidy((): DecoderMemory => {
      const { memory, shape, sourceMask } = this.encode(source);
      const layers = this.decoderLayers.map((layer) => keepKeyValue(layer.crossAttn.memoryKeyValue(memory, shape)));
      return { layers, sourceMask: tf.keep(sourceMask) };
    });
  }

  /** One cached decoder step over tokens int32 [B]; see Transformer.step. */
  step(input: DecoderStepInput, tokens: tf.Tensor1D): DecoderStepOutput {
    return tidy(() => {
      let y = this.embedStep(tokens, input.positions); // [B, d]
      const cache = this.decoderLayers.map((layer, i) => {
        const r = layer.step(y, input.layers[i]!, input.sourceMask, input.cacheMask);
        y = r.output; // [B, d]
        return keepKeyValue(r.self);
      });
      return { logits: this.project(this.decoderNorm ? this.decoderNorm.apply(y) : y), cache }; // [B, V]
    });
  }

  /** E·√d_model, kept: a product per step saved, the values the same. → [V, d] */
  private scaledEmbedding(): tf.Tensor2D {
    return this.params.derived('embedding.scaled', () => tf.mul(this.model.embedding, Math.sqrt(this.config.dModel)) as tf.Tensor2D); // [V, d]
  }

  /**
   * Embedding of one token per row, tokens int32 [B], each at its row's own
   * position (rows that joined later are at earlier positions) → [B, d].
   */
  private embedStep(tokens: tf.Tensor1D, positions: readonly number[]): tf.Tensor2D {
    const batchSize = positions.length;
    const first = positions[0] ?? 0;
    if (positions.every((p) => p === first)) return this.embed(kernel.reshape(tokens, [batchSize, 1]), first); // [B, d]
    checkSequenceLength(Math.max(...positions) + 1, this.config.maxLength);
    const rows = kernel.gatherNd<tf.Tensor2D>(this.scaledEmbedding(), kernel.reshape(tokens, [batchSize, 1])); // [B, d]
    return kernel.add(rows, kernel.gatherNd(this.model.positions, tf.tensor2d(positions as number[], [batchSize, 1], 'int32'))); // [B, d]
  }
}

function keepKeyValue(kv: KeyValue): KeyValue {
  return { k: tf.keep(kv.k), v: tf.keep(kv.v) };
}
