import * as tf from '@tensorflow/tfjs-core';
import type { LayerNorm } from '../layers.js';
import { batchMatMul } from '../ops.js';
import type { ParamStore } from '../params.js';
import { LAYER_NORM_KERNEL } from '../wasm-kernels.js';
import * as kernel from './kernels.js';

/**
 * Layer normalisation for inference, from a LayerNorm's γ and β: where the
 * backend has it (wasm), the fused LAYER_NORM_KERNEL, one kernel instead of
 * eight. Elsewhere the same normalisation with both row means taken as
 * products with a [d, 1] column of 1/d: a rank-2 matmul beats the Mean kernel
 * for short rows, which matters at one token per decoding step.
 */
export class InferenceLayerNorm {
  /** Up to this many rows centring is itself one product, with I − 11ᵀ/d [d, d]: one kernel instead of two, cheaper than a launch for few rows. */
  private static readonly CENTRING_PRODUCT_ROWS = 16;

  constructor(
    private readonly norm: LayerNorm,
    private readonly params: ParamStore,
  ) {}

  /** x [N, d] → [N, d]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    const { gamma, beta, epsilon } = this.norm;
    if (tf.getKernel(LAYER_NORM_KERNEL, tf.getBackend()) !== undefined) {
      return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma, beta }, { epsilon }) as tf.Tensor2D; // [N, d]
    }
    const [n, d] = x.shape;
    const averager = this.params.constant(`averager.${d}`, () => tf.fill([d, 1], 1 / d) as tf.Tensor2D); // [d, 1]
    const eps = this.params.constant(`epsilon.${epsilon}`, () => tf.scalar(epsilon));
    const centered =
      n <= InferenceLayerNorm.CENTRING_PRODUCT_ROWS
        ? batchMatMul<tf.Tensor2D>(
            x,
            this.params.constant(`centring.${d}`, () => tf.sub(tf.eye(d), 1 / d) as tf.Tensor2D),
          ) // [N, d]
        : tf.sub(x, batchMatMul(x, averager)); // [N, d]
    const variance = batchMatMul<tf.Tensor2D>(kernel.square(centered), averager); // [N, 1]
    const normalized = kernel.mul(centered, kernel.rsqrt(kernel.add(variance, eps))); // [N, d]
    return kernel.add(kernel.mul(normalized, gamma), beta); // [N, d]
  }
}
