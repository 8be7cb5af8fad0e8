import * as tf from '@tensorflow/tfjs-core';

/**
 * Kernels of the inference path, called through the engine directly: each
 * tf.* op opens and closes a named scope and converts and checks its
 * arguments first, bookkeeping that weighs as much as a decoding step's
 * arithmetic at one token per row. These take tensors only (no scalars, no -1
 * in shapes, no negative axes), checked by the kernels themselves; the paper
 * modules keep the tf.* ops.
 */

function run<T extends tf.Tensor>(kernel: string, inputs: tf.NamedTensorMap | tf.Tensor[], attrs: Record<string, unknown> = {}): T {
  return tf.engine().runKernel(kernel, inputs as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as T;
}

/** a + b, broadcasting. */
export function add<T extends tf.Tensor>(a: tf.Tensor, b: tf.Tensor): T {
  return run<T>('Add', { a, b });
}

/** a · b elementwise, broadcasting. */
export function mul<T extends tf.Tensor>(a: tf.Tensor, b: tf.Tensor): T {
  return run<T>('Multiply', { a, b });
}

/** x². */
export function square<T extends tf.Tensor>(x: T): T {
  return run<T>('Square', { x });
}

/** 1 / √x. */
export function rsqrt<T extends tf.Tensor>(x: T): T {
  return run<T>('Rsqrt', { x });
}

/** The same values in another shape, every dimension given. */
export function reshape<T extends tf.Tensor>(x: tf.Tensor, shape: number[]): T {
  return run<T>('Reshape', { x }, { shape });
}

/** Softmax over the last axis. */
export function softmax<T extends tf.Tensor>(logits: T): T {
  return run<T>('Softmax', { logits }, { dim: logits.rank - 1 });
}

/** Tensors joined along `axis` (≥ 0). */
export function concat<T extends tf.Tensor>(tensors: tf.Tensor[], axis: number): T {
  return run<T>('Concat', tensors, { axis });
}

/** x cut into `parts` equal pieces along `axis` (≥ 0). */
export function split<T extends tf.Tensor>(x: tf.Tensor, parts: number, axis: number): T[] {
  return tf.engine().runKernel('SplitV', { x }, { numOrSizeSplits: parts, axis }) as unknown as T[];
}

/** The block of x starting at `begin` of extent `size`, both given in full. */
export function slice<T extends tf.Tensor>(x: tf.Tensor, begin: number[], size: number[]): T {
  return run<T>('Slice', { x }, { begin, size });
}

/** Slices of params picked by the last axis of int32 indices. */
export function gatherNd<T extends tf.Tensor>(params: tf.Tensor, indices: tf.Tensor): T {
  return run<T>('GatherNd', { params, indices });
}

/** x with its axes permuted. */
export function transpose<T extends tf.Tensor>(x: tf.Tensor, perm: number[]): T {
  return run<T>('Transpose', { x }, { perm });
}
