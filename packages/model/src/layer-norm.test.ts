import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { LayerNorm, layerNorm } from './layers.js';
import { InferenceLayerNorm } from './inference/layer-norm.js';
import { ParamStore } from './params.js';
import { LAYER_NORM_KERNEL } from './wasm-kernels.js';
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

describe('LayerNorm inference on wasm (the fused kernel)', () => {
  it('runs one kernel and gives the textbook values for one row, a few and many, on rows far from zero', async () => {
    await initBackend('wasm', () => {});
    expect(tf.getKernel(LAYER_NORM_KERNEL, 'wasm')).toBeDefined();
    const rng = new Rng(9);
    const d = 256;
    const params = new ParamStore(rng);
    const norm = new InferenceLayerNorm(new LayerNorm(params, 'norm', d), params);
    // γ and β away from 1 and 0, so that a kernel that forgot them would fail.
    tf.tidy(() => {
      const [gamma, beta] = [params.get('norm.weight'), params.get('norm.bias')];
      gamma.assign(tf.tensor1d(Float32Array.from({ length: d }, () => 0.5 + rng.next())));
      beta.assign(tf.tensor1d(Float32Array.from({ length: d }, () => rng.next() - 0.5)));
    });
    for (const n of [1, 5, 40]) {
      const x = tf.tensor2d(
        Float32Array.from({ length: n * d }, (_, i) => 100 + (i % 7) + 20 * (rng.next() - 0.5)),
        [n, d],
      );
      const profile = await tf.profile(() => norm.apply(x));
      tf.dispose(profile.result as tf.Tensor);
      expect(profile.kernels.map((k) => k.name)).toEqual([LAYER_NORM_KERNEL]);
      const before = tf.memory().numTensors;
      const ours = tf.tidy(() => norm.apply(x).dataSync() as Float32Array);
      expect(tf.memory().numTensors).toBe(before);
      const reference = tf.tidy(
        () => autodiffLayerNorm(x, params.get('norm.weight') as tf.Tensor1D, params.get('norm.bias') as tf.Tensor1D, 1e-5).dataSync() as Float32Array,
      );
      expect(maxRelativeError(ours, reference)).toBeLessThan(1e-5);
      x.dispose();
    }
    params.dispose();
  });

  it('refuses a γ or β of the wrong size, naming the shapes', async () => {
    await initBackend('wasm', () => {});
    tf.tidy(() => {
      const x = tf.zeros([2, 4]);
      expect(() => tf.engine().runKernel(LAYER_NORM_KERNEL, { x, gamma: tf.ones([3]), beta: tf.zeros([4]) }, { epsilon: 1e-5 })).toThrow(/gamma \[3\]/u);
    });
  });
});
