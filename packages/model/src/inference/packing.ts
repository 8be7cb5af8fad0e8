import * as tf from '@tensorflow/tfjs-core';
import type { SequenceShape } from '../attention.js';

/**
 * Where the real tokens of a padded batch [B, L] are: `pack` int32 [N, 1]
 * gives each token's padded position (b·L + i); `unpack` int32 [B·L, 1]
 * gives each padded position its packed row (a padding position any row of
 * its sequence: attention masks it, and packing drops its output again).
 * Position-wise products then skip the padding; only attention, which needs
 * each sequence whole, runs padded.
 */
export interface Packing {
  pack: tf.Tensor2D;
  unpack: tf.Tensor2D;
}

/** A sequence shape whose activations may hold only the N real tokens, [N, d], not B·L rows with padding. */
export interface PackedShape extends SequenceShape {
  packing?: Packing;
}

/** The packing of ids int32 [B, L] without their `padId` positions, or none when nothing is padded. */
export function packingOf(ids: tf.Tensor2D, padId: number): Packing | undefined {
  const [batch, length] = ids.shape;
  const values = ids.dataSync();
  const pack: number[] = [];
  const unpack = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    const first = pack.length;
    for (let i = 0; i < length; i++) {
      const at = b * length + i;
      if (values[at] === padId) continue;
      unpack[at] = pack.length;
      pack.push(at);
    }
    // Padding points at the sequence's first token (or nowhere real, for an all-padding row: row 0).
    for (let i = 0; i < length; i++) if (values[b * length + i] === padId) unpack[b * length + i] = pack.length > first ? first : 0;
  }
  if (pack.length === batch * length || pack.length === 0) return undefined;
  return { pack: tf.tensor2d(pack, [pack.length, 1], 'int32'), unpack: tf.tensor2d(unpack, [batch * length, 1], 'int32') };
}
