import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { disposeBatch, makeBatch } from './batch.js';
import { presetConfig } from './config.js';
import { exportWeights, importWeights } from './persist.js';
import { Transformer } from './transformer.js';

// Dawn's WebGPU: on a GPU box a CUDA-free GPU path; here, OpenGL ES on Mesa's
// llvmpipe, slow but exact, so the whole model is checked on tiny shapes.
// CI always runs it; elsewhere it runs when Dawn can start.
const webgpuStarts = await initBackend('webgpu', () => {}).then(
  () => true,
  () => false,
);

describe.runIf(process.env['CI'] === 'true' || webgpuStarts)('the Transformer on webgpu', () => {
  it('computes the loss and every gradient as cpu does', async () => {
    const config = presetConfig('tiny', { vocabSize: 32 }, { dModel: 16, numHeads: 2, dFF: 32, dropout: 0 });
    const examples = [
      { source: [5, 6, 7], target: [8, 9] },
      { source: [10, 11], target: [12, 13, 14] },
    ];
    const run = async (backend: 'cpu' | 'webgpu', weights?: ReturnType<typeof exportWeights>) => {
      await initBackend(backend, () => {});
      const model = new Transformer(config, 21);
      if (weights) importWeights(model, weights, 'weights');
      const batch = makeBatch(examples, config);
      const { value, grads } = tf.variableGrads(() => model.loss(batch, 0.1), [...model.params.variables.values()]);
      // On webgpu reads must be asynchronous.
      const loss = (await value.data())[0]!;
      const byName = new Map<string, Float32Array>();
      for (const [name, g] of Object.entries(grads)) byName.set(model.params.nameOf(name), (await g.data()) as Float32Array);
      const exported = backend === 'cpu' ? exportWeights(model) : undefined;
      tf.dispose([value, ...Object.values(grads)]);
      disposeBatch(batch);
      model.dispose();
      return { loss, grads: byName, weights: exported };
    };
    const cpu = await run('cpu');
    const gpu = await run('webgpu', cpu.weights);
    expect(gpu.loss).toBeCloseTo(cpu.loss, 4);
    for (const [name, g] of cpu.grads) {
      const other = gpu.grads.get(name)!;
      const scale = Math.max(1e-6, ...g.map(Math.abs));
      const worst = Math.max(...g.map((x, i) => Math.abs(x - other[i]!)));
      // b_K's true gradient is 0 (softmax ignores a shift shared by all keys): compare absolutely.
      if (/_attn\.k\.bias$/u.test(name)) expect(worst, name).toBeLessThan(1e-5);
      else expect(worst / scale, name).toBeLessThanOrEqual(1e-4);
    }
  }, 300_000);
});
