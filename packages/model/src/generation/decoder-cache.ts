import * as tf from '@tensorflow/tfjs-core';
import { MASKED, type KeyValue } from '../attention.js';
import * as kernel from '../inference/kernels.js';
import type { LayerCache } from '../inference/layers.js';
import { tidy } from '../ops.js';
import type { Transformer } from '../transformer.js';

/**
 * The state of cached incremental decoding for a batch of rows: the encoder
 * ran once, and each decoder layer holds the keys/values of every position
 * decoded so far and those of the encoder output. Rows join a running decode
 * (continuous batching) and leave it (finished sources, beam search's
 * reordering); each row decodes exactly as it would alone. Owns its
 * tensors: dispose it.
 */
export class DecoderCache {
  /** Slots in each layer's self-attention cache: the steps taken since the oldest row's first. */
  private slots = 0;
  /**
   * Per row, the cache slot of its first position. Rows that joined a running
   * decode start at a later slot; the slots before are zeros that a mask
   * hides, and a row's own position is `slots − firstSlot[r]`.
   */
  private firstSlot: number[];

  private constructor(
    private readonly model: Transformer,
    private layers: LayerCache[],
    private sourceMask: tf.Tensor4D, // [B, 1, 1, S]
    /** False when no source has padding: the mask is all zeros and the steps skip it. */
    private sourcePadded: boolean,
  ) {
    this.firstSlot = new Array<number>(sourceMask.shape[0]).fill(0);
  }

  /** Runs the encoder once over source ids int32 [B, S]: a cache ready for the first step. */
  static start(model: Transformer, source: tf.Tensor2D): DecoderCache {
    const memory = model.encodeForDecoding(source);
    const sourcePadded = (source.dataSync() as Int32Array).includes(model.config.padId);
    return new DecoderCache(
      model,
      memory.layers.map((kv) => ({ self: undefined, memory: kv })),
      memory.sourceMask,
      sourcePadded,
    );
  }

  get batchSize(): number {
    return this.firstSlot.length;
  }

  /** Self-attention slots held: the steps since the oldest row's first. */
  get position(): number {
    return this.slots;
  }

  /**
   * Feeds one token per row, tokens int32 [B], each at its row's next
   * position; → the next-token logits [B, V]. The cache advances by one slot
   * (the previous self-attention tensors are disposed).
   */
  step(tokens: tf.Tensor1D): tf.Tensor2D {
    const { logits, cache } = tidy(() =>
      this.model.step(
        {
          layers: this.layers,
          // An all-zero mask changes no score: adding it is a kernel per layer for nothing.
          sourceMask: this.sourcePadded ? this.sourceMask : undefined,
          cacheMask: this.cacheMask(),
          positions: this.firstSlot.map((slot) => this.slots - slot),
        },
        tokens,
      ),
    );
    for (const old of this.layers) if (old.self) tf.dispose([old.self.k, old.self.v]);
    this.layers = this.layers.map((layer, i) => ({ self: cache[i]!, memory: layer.memory }));
    this.slots++;
    return logits;
  }

  /** One step (see `step`); → the logits as one Float32Array row per batch row, free for processors to change. */
  stepRows(tokens: readonly number[]): Float32Array[] {
    const logits = tf.tidy(() => this.step(tf.tensor1d(tokens as number[], 'int32'))); // [B, V]
    let data: Float32Array;
    try {
      // Once `logits` is disposed its array belongs to no tensor (the step keeps nothing that shares it), so processors may write to it.
      data = logits.dataSync() as Float32Array;
    } finally {
      logits.dispose();
    }
    const V = this.model.config.vocabSize;
    return tokens.map((_, b) => data.subarray(b * V, (b + 1) * V));
  }

  /**
   * Adds the sources int32 [B', S'] as rows B…B+B'−1, their first step the
   * cache's next: continuous batching, where a request need not wait for a
   * batch to end. The new rows' self-attention caches are zeros up to now,
   * hidden by a mask; sources of different lengths are padded to the longer
   * and masked.
   */
  join(source: tf.Tensor2D): void {
    const added = DecoderCache.start(this.model, source);
    const old = { layers: this.layers, sourceMask: this.sourceMask };
    const slots = this.slots;
    const length = Math.max(old.sourceMask.shape[3], added.sourceMask.shape[3]);
    // Pads axis 2 (keys/values) or 3 (masks) of a [B, ·, ·, ·] tensor up to the longer source.
    const padTo = (t: tf.Tensor4D, axis: 2 | 3, value = 0): tf.Tensor4D => {
      const missing = length - t.shape[axis];
      if (missing === 0) return t;
      const paddings: [number, number][] = [
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
      ];
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
      added.dispose();
    }
    this.layers = joined.layers;
    this.sourceMask = joined.sourceMask;
    this.sourcePadded = this.sourcePadded || added.sourcePadded || old.sourceMask.shape[3] !== added.sourceMask.shape[3];
    this.firstSlot = [...this.firstSlot, ...new Array<number>(added.batchSize).fill(slots)];
    disposeLayers(old.layers);
    old.sourceMask.dispose();
  }

  /**
   * Keeps only the given rows, in that order (beam search reorders and
   * prunes hypotheses; finished rows leave), then cuts the slots that no row
   * kept can still see.
   */
  select(rows: readonly number[]): void {
    const old = { layers: this.layers, sourceMask: this.sourceMask };
    tf.tidy(() => {
      // GatherNd copies each row as one block; GatherV2 runs far slower on wasm.
      const index = tf.tensor2d(rows as number[], [rows.length, 1], 'int32'); // [B', 1]
      const pick = <T extends tf.Tensor>(t: T): T => kernel.gatherNd<T>(t, index); // [B', ·, ·, ·]
      this.layers = old.layers.map((l) => ({
        self: l.self && keepKeyValue({ k: pick(l.self.k), v: pick(l.self.v) }),
        memory: keepKeyValue({ k: pick(l.memory.k), v: pick(l.memory.v) }),
      }));
      this.sourceMask = tf.keep(pick(old.sourceMask));
    });
    this.firstSlot = rows.map((r) => this.firstSlot[r]!);
    disposeLayers(old.layers);
    old.sourceMask.dispose();
    this.cut();
  }

  /** Drops the leading self-attention slots that no row can see (every row joined after them). */
  cut(): void {
    const cut = this.firstSlot.length === 0 ? 0 : Math.min(...this.firstSlot);
    if (cut === 0) return;
    const kept = this.slots - cut;
    // Cut along the slot axis with the rows flattened: a rank-4 slice copies dk numbers at a time, this a row of slots.
    const cutSlots = (t: tf.Tensor4D): tf.Tensor4D => {
      const [batch, heads, slots, dk] = t.shape;
      const flat = kernel.reshape(t, [batch * heads, slots * dk]); // [B·h, T·dk]
      return kernel.reshape(kernel.slice(flat, [0, cut * dk], [batch * heads, kept * dk]), [batch, heads, kept, dk]); // [B, h, T − cut, dk]
    };
    const old = this.layers;
    this.layers = tidy(() => old.map((l) => ({ self: l.self && keepKeyValue({ k: cutSlots(l.self.k), v: cutSlots(l.self.v) }), memory: l.memory })));
    for (const l of old) if (l.self) tf.dispose([l.self.k, l.self.v]);
    this.firstSlot = this.firstSlot.map((slot) => slot - cut);
    this.slots = kept;
  }

  /** Releases every tensor of the cache. */
  dispose(): void {
    disposeLayers(this.layers);
    this.sourceMask.dispose();
    this.layers = [];
  }

  /**
   * Additive mask over the self-attention cache plus the slot a step adds,
   * [B, 1, 1, T + 1]: a row that joined at slot f sees only slots ≥ f. None
   * while every row started together.
   */
  private cacheMask(): tf.Tensor4D | undefined {
    const { batchSize, firstSlot } = this;
    if (firstSlot.every((slot) => slot === 0)) return undefined;
    const slots = this.slots + 1;
    const values = new Float32Array(batchSize * slots);
    firstSlot.forEach((first, r) => values.fill(MASKED, r * slots, r * slots + first));
    return tf.tensor4d(values, [batchSize, 1, 1, slots]);
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
