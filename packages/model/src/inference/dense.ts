import * as tf from '@tensorflow/tfjs-core';

/** An affine map prepared for inference: W as [1, in, out], the rank _FusedMatMul takes, and b [out]. */
export interface DenseWeights {
  w: tf.Tensor3D;
  b: tf.Tensor1D;
}

/**
 * Inference-only x·W + b, optionally ReLU, x [1, N, in] → [1, N, out]: the
 * bare _FusedMatMul kernel. tf.fused.matMul adds three reshapes and a
 * custom-gradient wrapper around it, which cost more than the product itself
 * at one token per decoding step. Records no gradient.
 */
export function dense(x: tf.Tensor3D, weights: DenseWeights, activation: 'linear' | 'relu' = 'linear'): tf.Tensor3D {
  return tf
    .engine()
    .runKernel('_FusedMatMul', { a: x, b: weights.w, bias: weights.b }, { transposeA: false, transposeB: false, activation, leakyreluAlpha: 0 }) as tf.Tensor3D; // [1, N, out]
}

/** W [in, out] and b [out], b's columns optionally scaled, as {@link DenseWeights} (concatenated along the outputs when several). */
export function denseWeights(ws: tf.Tensor2D[], bs: tf.Tensor1D[], scales: number[] = ws.map(() => 1)): DenseWeights {
  return tf.tidy(() => {
    const scaled = <T extends tf.Tensor>(t: T, i: number): T => (scales[i] === 1 ? t : (tf.mul(t, scales[i]!) as T));
    const w = ws.length === 1 ? scaled(ws[0]!, 0) : tf.concat(ws.map(scaled), 1); // [in, Σout]
    const b = bs.length === 1 ? scaled(bs[0]!, 0) : tf.concat(bs.map(scaled)); // [Σout]
    return { w: tf.reshape(w, [1, ...w.shape]) as tf.Tensor3D, b: bs.length === 1 && scales[0] === 1 ? tf.clone(b) : b }; // [1, in, Σout], [Σout]
  });
}
