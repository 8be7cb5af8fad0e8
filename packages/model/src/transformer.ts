import * as tf from '@tensorflow/tfjs-core';
import { paddingMask, subsequentMask, type KeyValue, type SequenceShape } from './attention.js';
import type { TensorBatch } from './batch.js';
import { ModelConfigSchema, type ModelConfig } from './config.js';
import { DecoderLayer, EncoderLayer, LayerNorm, positionalEncoding, type LayerCache } from './layers.js';
import { crossEntropySum, LabelSmoothing } from './loss.js';
import { batchMatMul, gatherRows, projectOnto, tidy } from './ops.js';
import { ForwardPass, ParamStore } from './params.js';
import { Rng } from './random.js';

/**
 * State of incremental decoding for a batch of sources: the encoder ran once;
 * each decoder layer holds the keys/values of every position decoded so far
 * and the keys/values of the encoder output. Owned by the caller: dispose it.
 */
export interface DecodingState {
  /** Number of target positions already fed (the next token's position). */
  position: number;
  batchSize: number;
  sourceMask: tf.Tensor4D; // [B, 1, 1, S]
  /** False when no source has padding: the mask is all zeros and the steps skip it. Absent: assumed true. */
  sourcePadded?: boolean;
  layers: LayerCache[];
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
    const position = tf.slice(this.positions, [offset, 0], [length, dModel]); // [L, d]
    if (!pass.differentiable) {
      // E·√d_model kept for inference saves a product per step; the values are the same.
      const scaledTable = this.params.derived('embedding.scaled', () => tf.mul(this.embedding, Math.sqrt(dModel)) as tf.Tensor2D); // [V, d]
      const rows = tf.gatherND(scaledTable, tf.reshape(ids, [batch * length, 1])) as tf.Tensor2D; // [B·L, d]
      // One position broadcasts over the batch as it is; longer ones need the [B, L, d] view.
      if (length === 1) return tf.add(rows, position); // [B, d]
      return tf.reshape(tf.add(tf.reshape(rows, [batch, length, dModel]), position), [batch * length, dModel]); // [B·L, d]
    }
    const tokens = gatherRows(this.embedding, tf.reshape(ids, [batch * length]), pass.differentiable); // [B·L, d]
    const scaled = tf.reshape(tf.mul(tokens, Math.sqrt(dModel)), [batch, length, dModel]); // [B, L, d]
    return pass.dropout(tf.reshape(tf.add(scaled, position), [batch * length, dModel])); // [B·L, d]
  }

  /** The encoder stack over source ids [B, S]; → memory [B·S, d] and the source padding mask [B, 1, 1, S]. */
  encode(source: tf.Tensor2D, pass: ForwardPass = ForwardPass.inference): { memory: tf.Tensor2D; shape: SequenceShape; sourceMask: tf.Tensor4D } {
    const shape = { batch: source.shape[0], length: source.shape[1] };
    const sourceMask = paddingMask(source, this.config.padId); // [B, 1, 1, S]
    let x = this.embed(source, 0, pass); // [B·S, d]
    for (const layer of this.encoderLayers) x = layer.apply(x, shape, sourceMask, pass); // [B·S, d]
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

  /** Runs the encoder once and precomputes every layer's memory keys/values for incremental decoding. */
  startDecoding(source: tf.Tensor2D): DecodingState {
    // The state outlives any tf.tidy its caller may run in: its tensors are kept.
    return tidy((): DecodingState => {
      const { memory, shape, sourceMask } = this.encode(source);
      const layers = this.decoderLayers.map((layer) => ({ self: undefined, memory: keepKeyValue(layer.crossAttn.memoryKeyValue(memory, shape, ForwardPass.inference)) }));
      const sourcePadded = (source.dataSync() as Int32Array).includes(this.config.padId);
      return { position: 0, batchSize: source.shape[0], sourceMask: tf.keep(sourceMask), sourcePadded, layers };
    });
  }

  /**
   * Feeds one token per row, tokens int32 [B], at `state.position`; returns the
   * next-token logits [B, V] and advances the state in place (the previous
   * cache tensors are disposed).
   */
  step(state: DecodingState, tokens: tf.Tensor1D): tf.Tensor2D {
    const pass = ForwardPass.inference;
    const { logits, layers } = tidy(() => {
      let y = this.embed(tf.reshape(tokens, [state.batchSize, 1]), state.position, pass); // [B, d]
      // An all-zero mask changes no score: adding it is a kernel per layer for nothing.
      const mask = state.sourcePadded === false ? undefined : state.sourceMask;
      const next: LayerCache[] = [];
      this.decoderLayers.forEach((layer, i) => {
        const r = layer.step(y, state.layers[i]!, mask, pass);
        y = r.output; // [B, d]
        next.push({ self: keepKeyValue(r.cache.self!), memory: r.cache.memory });
      });
      return { logits: this.project(this.decoderNorm ? this.decoderNorm.apply(y, pass) : y, pass), layers: next }; // [B, V]
    });
    for (const old of state.layers) if (old.self) tf.dispose([old.self.k, old.self.v]);
    state.layers = layers;
    state.position++;
    return logits;
  }

  /** Keeps only the given rows of a decoding state (beam search reorders and prunes hypotheses). */
  selectRows(state: DecodingState, rows: tf.Tensor1D): void {
    const pick = (kv: KeyValue): KeyValue => keepKeyValue({ k: tf.gather(kv.k, rows), v: tf.gather(kv.v, rows) });
    const old = state.layers;
    const oldMask = state.sourceMask;
    tf.tidy(() => {
      state.layers = old.map((l) => ({ self: l.self && pick(l.self), memory: pick(l.memory) }));
      state.sourceMask = tf.keep(tf.gather(oldMask, rows));
    });
    state.batchSize = rows.shape[0];
    disposeLayers(old);
    oldMask.dispose();
  }

  disposeDecoding(state: DecodingState): void {
    disposeLayers(state.layers);
    state.sourceMask.dispose();
    state.layers = [];
  }

  dispose(): void {
    this.params.dispose();
    this.positions.dispose();
  }
}

function keepKeyValue(kv: KeyValue): KeyValue {
  return { k: tf.keep(kv.k), v: tf.keep(kv.v) };
}

function disposeLayers(layers: LayerCache[]): void {
  for (const l of layers) {
    if (l.self) tf.dispose([l.self.k, l.self.v]);
    tf.dispose([l.memory.k, l.memory.v]);
  }
}
