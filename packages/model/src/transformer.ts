import * as tf from '@tensorflow/tfjs-core';
import { MASKED, packingOf, paddingMask, subsequentMask, type KeyValue, type SequenceShape } from './attention.js';
import type { TensorBatch } from './batch.js';
import { ModelConfigSchema, type ModelConfig } from './config.js';
import { DecoderLayer, EncoderLayer, LayerNorm, positionalEncoding, type LayerCache } from './layers.js';
import * as kernel from './kernels.js';
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
  /** Slots in each layer's self-attention cache: the steps taken since the oldest row's first. */
  position: number;
  batchSize: number;
  /**
   * Per row, the cache slot of its first position. Rows that joined a running
   * decode (joinDecoding) start at a later slot; the slots before are zeros
   * that a mask hides, and a row's own position is `position − firstSlot[r]`.
   */
  firstSlot: number[];
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
  private embedStep(tokens: tf.Tensor1D, state: DecodingState): tf.Tensor2D {
    const { batchSize, firstSlot, position } = state;
    const first = firstSlot[0] ?? 0;
    if (firstSlot.every((slot) => slot === first)) return this.embed(kernel.reshape(tokens, [batchSize, 1]), position - first, ForwardPass.inference); // [B, d]
    const rowPositions = firstSlot.map((slot) => position - slot);
    const last = Math.max(...rowPositions);
    if (last >= this.config.maxLength) throw new RangeError(`sequence of ${last + 1} tokens is longer than the model's maxLength ${this.config.maxLength}`);
    const rows = kernel.gatherNd<tf.Tensor2D>(this.scaledEmbedding(), kernel.reshape(tokens, [batchSize, 1])); // [B, d]
    return kernel.add(rows, kernel.gatherNd(this.positions, tf.tensor2d(rowPositions, [batchSize, 1], 'int32'))); // [B, d]
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

  /** Runs the encoder once and precomputes every layer's memory keys/values for incremental decoding. */
  startDecoding(source: tf.Tensor2D): DecodingState {
    // The state outlives any tf.tidy its caller may run in: its tensors are kept.
    return tidy((): DecodingState => {
      const { memory, shape, sourceMask } = this.encode(source);
      const layers = this.decoderLayers.map((layer) => ({ self: undefined, memory: keepKeyValue(layer.crossAttn.memoryKeyValue(memory, shape, ForwardPass.inference)) }));
      const sourcePadded = (source.dataSync() as Int32Array).includes(this.config.padId);
      const batchSize = source.shape[0];
      return { position: 0, batchSize, firstSlot: new Array<number>(batchSize).fill(0), sourceMask: tf.keep(sourceMask), sourcePadded, layers };
    });
  }

  /**
   * Adds the sources int32 [B', S'] to a running decode as rows B…B+B'−1,
   * their first step the state's next: continuous batching, where a request
   * need not wait for a batch to end. The new rows' self-attention caches are
   * zeros up to now, hidden by a mask; sources of different lengths are padded
   * to the longer and masked. Each row decodes exactly as it would alone.
   */
  joinDecoding(state: DecodingState, source: tf.Tensor2D): void {
    const added = this.startDecoding(source);
    const old = { layers: state.layers, sourceMask: state.sourceMask };
    const slots = state.position;
    const length = Math.max(old.sourceMask.shape[3], added.sourceMask.shape[3]);
    // Pads axis 2 (keys/values) or 3 (masks) of a [B, ·, ·, ·] tensor up to the longer source.
    const padTo = (t: tf.Tensor4D, axis: 2 | 3, value = 0): tf.Tensor4D => {
      const missing = length - t.shape[axis];
      if (missing === 0) return t;
      const paddings: [number, number][] = [[0, 0], [0, 0], [0, 0], [0, 0]];
      paddings[axis] = [0, missing];
      return tf.pad(t, paddings, value);
    };
    const joinRows = (a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D => kernel.concat([a, b], 0); // [B + B', ·, ·, ·]
    let joined: { layers: LayerCache[]; sourceMask: tf.Tensor4D };
    try {
      joined = tidy(() => ({
        layers: old.layers.map((layer, i): LayerCache => {
          const fresh = added.layers[i]!.memory;
          const memory = keepKeyValue({ k: joinRows(padTo(layer.memory.k, 2), padTo(fresh.k, 2)), v: joinRows(padTo(layer.memory.v, 2), padTo(fresh.v, 2)) }); // [B + B', h, S, dk]
          if (!layer.self) return { self: undefined, memory };
          const [, heads, , dk] = layer.self.k.shape;
          const empty = tf.zeros([added.batchSize, heads, slots, dk]) as tf.Tensor4D; // [B', h, T, dk]
          return { self: keepKeyValue({ k: joinRows(layer.self.k, empty), v: joinRows(layer.self.v, empty) }), memory };
        }),
        sourceMask: tf.keep(joinRows(padTo(old.sourceMask, 3, MASKED), padTo(added.sourceMask, 3, MASKED))), // [B + B', 1, 1, S]
      }));
    } finally {
      this.disposeDecoding(added);
    }
    state.layers = joined.layers;
    state.sourceMask = joined.sourceMask;
    state.sourcePadded = state.sourcePadded !== false || added.sourcePadded !== false || old.sourceMask.shape[3] !== added.sourceMask.shape[3];
    state.firstSlot = [...state.firstSlot, ...new Array<number>(added.batchSize).fill(slots)];
    state.batchSize += added.batchSize;
    disposeLayers(old.layers);
    old.sourceMask.dispose();
  }

  /**
   * Feeds one token per row, tokens int32 [B], each at its row's next position; returns the
   * next-token logits [B, V] and advances the state in place (the previous
   * cache tensors are disposed).
   */
  step(state: DecodingState, tokens: tf.Tensor1D): tf.Tensor2D {
    const pass = ForwardPass.inference;
    const { logits, layers } = tidy(() => {
      let y = this.embedStep(tokens, state); // [B, d]
      // An all-zero mask changes no score: adding it is a kernel per layer for nothing.
      const mask = state.sourcePadded === false ? undefined : state.sourceMask;
      const selfMask = cacheMask(state); // [B, 1, 1, T + 1] or none
      const next: LayerCache[] = [];
      this.decoderLayers.forEach((layer, i) => {
        const r = layer.step(y, state.layers[i]!, mask, pass, selfMask);
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

  /**
   * Keeps only the given rows of a decoding state, in that order (beam search
   * reorders and prunes hypotheses; finished rows leave). Cache slots that
   * no row kept can still see are cut off.
   */
  selectRows(state: DecodingState, rows: readonly number[]): void {
    const firstSlot = rows.map((r) => state.firstSlot[r]!);
    const cut = firstSlot.length === 0 ? 0 : Math.min(...firstSlot);
    const old = state.layers;
    const oldMask = state.sourceMask;
    tf.tidy(() => {
      // GatherNd copies each row as one block; GatherV2 runs far slower on wasm.
      const index = tf.tensor2d(rows as number[], [rows.length, 1], 'int32'); // [B', 1]
      const pick = <T extends tf.Tensor>(t: T): T => kernel.gatherNd<T>(t, index); // [B', ·, ·, ·]
      const kept = state.position - cut;
      // Cut along the slot axis with the rows flattened: a rank-4 slice copies dk numbers at a time, this a row of slots.
      const cutSlots = (t: tf.Tensor4D): tf.Tensor4D => {
        const [batch, heads, slots, dk] = t.shape;
        if (cut === 0) return t;
        const flat = kernel.reshape(t, [batch * heads, slots * dk]); // [B'·h, T·dk]
        return kernel.reshape(kernel.slice(flat, [0, cut * dk], [batch * heads, kept * dk]), [batch, heads, kept, dk]); // [B', h, T − cut, dk]
      };
      state.layers = old.map((l) => ({
        self: l.self && keepKeyValue({ k: cutSlots(pick(l.self.k)), v: cutSlots(pick(l.self.v)) }),
        memory: keepKeyValue({ k: pick(l.memory.k), v: pick(l.memory.v) }),
      }));
      state.sourceMask = tf.keep(pick(oldMask));
    });
    state.batchSize = rows.length;
    state.firstSlot = firstSlot.map((slot) => slot - cut);
    state.position -= cut;
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

/**
 * Additive mask over the self-attention cache plus the slot a step adds,
 * [B, 1, 1, T + 1]: a row that joined at slot f sees only slots ≥ f. None
 * while every row started together.
 */
function cacheMask(state: DecodingState): tf.Tensor4D | undefined {
  const { batchSize, firstSlot } = state;
  if (firstSlot.every((slot) => slot === 0)) return undefined;
  const slots = state.position + 1;
  const values = new Float32Array(batchSize * slots);
  firstSlot.forEach((first, r) => values.fill(MASKED, r * slots, r * slots + first));
  return tf.tensor4d(values, [batchSize, 1, 1, slots]);
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
