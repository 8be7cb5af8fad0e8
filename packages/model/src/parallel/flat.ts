import * as tf from '@tensorflow/tfjs-core';
import type { Transformer } from '../transformer.js';

/** Where each parameter lives in one flat float32 buffer, in name order. */
export interface FlatLayout {
  entries: { name: string; shape: number[]; offset: number; size: number }[];
  size: number;
}

export function flatLayout(model: Transformer): FlatLayout {
  let offset = 0;
  const entries = [...model.params.variables.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, v]) => {
      const entry = { name, shape: [...v.shape], offset, size: v.size };
      offset += v.size;
      return entry;
    });
  return { entries, size: offset };
}

/** Copies every parameter of the model into `out` at its layout offset. */
export function readParams(model: Transformer, layout: FlatLayout, out: Float32Array): void {
  for (const e of layout.entries) out.set(model.params.get(e.name).dataSync() as Float32Array, e.offset);
}

/** Assigns every parameter of the model from `source`. */
export function writeParams(model: Transformer, layout: FlatLayout, source: Float32Array): void {
  tf.tidy(() => {
    for (const e of layout.entries) model.params.get(e.name).assign(tf.tensor(source.subarray(e.offset, e.offset + e.size), e.shape, 'float32'));
  });
  model.markWeightsChanged();
}

/** L2 norm of a flat vector, accumulated in double precision. */
export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}
