import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from './backend.js';
import { disposeBatch, makeBatch, type Example } from './batch.js';
import { presetConfig, type ModelConfig } from './config.js';
import { exportWeights, importWeights } from './persist.js';
import type { NamedTensor } from './safetensors.js';
import { Transformer } from './transformer.js';

const examples: Example[] = [
  { source: [5, 6, 7, 8, 9], target: [10, 11, 12] },
  { source: [13, 5], target: [14, 15, 16, 17, 18, 19] },
  { source: [20, 21, 22], target: [23] },
  { source: [24, 25, 26, 27, 28, 29, 30], target: [31, 32] },
];

/** Loss and the gradient of every parameter on one backend, from the given weights. */
async function gradientsOn(backend: BackendName, config: ModelConfig, weights: Map<string, NamedTensor> | undefined) {
  await initBackend(backend, () => {});
  const model = new Transformer(config, 11);
  if (weights) importWeights(model, weights, 'weights');
  const batch = makeBatch(examples, config);
  const variables = [...model.params.variables.values()];
  // Same dropout seed on both backends: the masks are drawn in JavaScript, identically.
  const { value, grads } = tf.variableGrads(() => model.loss(batch, 0.1, { dropoutSeed: 1234 }), variables);
  const out = new Map(Object.entries(grads).map(([name, g]) => [model.params.nameOf(name), Float32Array.from(g.dataSync())]));
  const loss = value.dataSync()[0]!;
  const exported = exportWeights(model);
  tf.dispose([value, ...Object.values(grads)]);
  disposeBatch(batch);
  model.dispose();
  return { loss, grads: out, weights: exported };
}

const KEY_BIAS = /_attn\.k\.bias$/u;

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

describe.each(['post', 'pre'] as const)('gradients with %s-LN', (norm) => {
  it('are the same on wasm as on cpu for every parameter (relative error ≤ 1e-4)', async () => {
    const config = presetConfig('tiny', { vocabSize: 40 }, { norm, dropout: 0.1 });
    const cpu = await gradientsOn('cpu', config, undefined);
    const wasm = await gradientsOn('wasm', config, cpu.weights);
    expect(wasm.loss).toBeCloseTo(cpu.loss, 4);
    expect([...wasm.grads.keys()].sort()).toEqual([...cpu.grads.keys()].sort());
    expect(cpu.grads.size).toBe(cpu.weights.size);
    for (const [name, g] of cpu.grads) {
      if (KEY_BIAS.test(name)) {
        // Adding b_K shifts every score of a query by the same q·b_K, which the
        // softmax ignores: its true gradient is 0, and both backends say so up
        // to rounding.
        expect(Math.max(...g.map(Math.abs), ...wasm.grads.get(name)!.map(Math.abs)), name).toBeLessThan(1e-6);
        continue;
      }
      expect(relativeError(wasm.grads.get(name)!, g), name).toBeLessThanOrEqual(1e-4);
      expect(
        g.some((x) => x !== 0),
        `${name} gets a gradient`,
      ).toBe(true);
    }
  });
});
