import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { layerNorm } from './layers.js';
import { Rng } from './random.js';

/** The textbook forward pass, differentiated by autodiff: the reference for the written-out gradient. */
function autodiffLayerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1] each
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), gamma), beta); // [N, d]
}

function maxRelativeError(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  const scale = Math.max(...b.map(Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / scale);
  return worst;
}

describe.each(['cpu', 'wasm'] as const)('layerNorm on %s', (backend) => {
  it('has the value and the gradients (x, γ, β) of autodiff through the textbook formula', async () => {
    await initBackend(backend, () => {});
    const rng = new Rng(4);
    const random = (n: number, scale: number, offset = 0) => Float32Array.from({ length: n }, () => offset + scale * (rng.next() * 2 - 1));
    const [n, d] = [7, 16];
    const x = tf.tensor2d(random(n * d, 3, 0.5), [n, d]);
    const gamma = tf.variable(tf.tensor1d(random(d, 0.5, 1)));
    const beta = tf.variable(tf.tensor1d(random(d, 0.5)));
    // A weighting that makes every output matter differently.
    const weights = tf.tensor2d(random(n * d, 1), [n, d]);
    const run = (f: typeof layerNorm) => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(x, gamma, beta, 1e-5), weights)) as tf.Scalar, [gamma, beta]);
      const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D, gamma, beta, 1e-5), weights)))(x);
      const out = {
        y: f(x, gamma, beta, 1e-5).dataSync() as Float32Array,
        loss: value.dataSync()[0]!,
        dx: dx.dataSync() as Float32Array,
        dGamma: grads[gamma.name]!.dataSync() as Float32Array,
        dBeta: grads[beta.name]!.dataSync() as Float32Array,
      };
      tf.dispose([value, dx, ...Object.values(grads)]);
      return out;
    };
    const before = tf.memory().numTensors;
    const ours = tf.tidy(() => run(layerNorm));
    expect(tf.memory().numTensors).toBe(before);
    const reference = tf.tidy(() => run(autodiffLayerNorm));
    expect(maxRelativeError(ours.y, reference.y)).toBeLessThan(1e-5);
    expect(ours.loss).toBeCloseTo(reference.loss, 3);
    expect(maxRelativeError(ours.dx, reference.dx)).toBeLessThan(1e-4);
    expect(maxRelativeError(ours.dGamma, reference.dGamma)).toBeLessThan(1e-5);
    expect(maxRelativeError(ours.dBeta, reference.dBeta)).toBeLessThan(1e-5);
    tf.dispose([x, gamma, beta, weights]);
  });
});
