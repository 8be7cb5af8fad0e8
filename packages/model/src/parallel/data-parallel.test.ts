import { describe, expect, it } from 'vitest';
import { initBackend } from '../backend.js';
import { disposeBatch, makeBatch, type Example } from '../batch.js';
import { presetConfig } from '../config.js';
import { Adam } from '../optimizer.js';
import { exportWeights } from '../persist.js';
import { trainStep } from '../train-step.js';
import { Transformer } from '../transformer.js';
import { DataParallelTrainer, splitByTokens } from './data-parallel.js';

const examples: Example[] = [
  { source: [5, 6, 7], target: [8, 9] },
  { source: [10, 11], target: [12, 13, 14, 15] },
  { source: [16, 17, 18, 19], target: [20] },
  { source: [21], target: [22, 23, 24] },
  { source: [25, 26], target: [27, 28] },
];

describe('splitByTokens', () => {
  it('cuts contiguous parts of about equal target tokens, never an empty one', () => {
    const parts = splitByTokens(examples, 2);
    expect(parts.flat()).toEqual(examples);
    const tokens = parts.map((p) => p.reduce((n, e) => n + e.target.length + 1, 0));
    expect(tokens).toEqual([10, 7]);
    expect(splitByTokens(examples.slice(0, 1), 4)).toEqual([examples.slice(0, 1)]);
    expect(splitByTokens(examples, 5).every((p) => p.length === 1)).toBe(true);
  });
});

describe('DataParallelTrainer', () => {
  it('takes the same step with two workers as one replica on the whole batch', async () => {
    await initBackend('wasm', () => {});
    const config = presetConfig('tiny', { vocabSize: 40 }, { dropout: 0 });
    const single = new Transformer(config, 8);
    const parallelModel = new Transformer(config, 8);
    const trainer = await DataParallelTrainer.start(parallelModel, { workers: 2, backend: 'wasm' });
    try {
      const optimizer = new Adam(single.params.variables);
      for (let step = 1; step <= 3; step++) {
        const options = { learningRate: 1e-3, labelSmoothing: 0.1, clipNorm: 0.5, dropoutSeed: step };
        const batch = makeBatch(examples, config);
        const expected = trainStep(single, optimizer, batch, options);
        disposeBatch(batch);
        const got = await trainer.step(examples, options);
        expect(got.loss).toBeCloseTo(expected.loss, 4);
        expect(got.gradNorm).toBeCloseTo(expected.gradNorm, 3);
        expect(got.clipped).toBe(expected.clipped);
        expect(got.targetTokens).toBe(expected.targetTokens);
      }
      trainer.syncTo(parallelModel);
      const a = exportWeights(single);
      const b = exportWeights(parallelModel);
      let worst = 0;
      let worstName = '';
      for (const [name, t] of a) {
        // b_K's true gradient is 0; Adam turns its rounding noise into full-size
        // steps of either sign, so the two runs need not agree there.
        if (/_attn\.k\.bias$/u.test(name)) continue;
        const other = b.get(name)!.data;
        t.data.forEach((x, i) => {
          if (Math.abs(x - other[i]!) > worst) [worst, worstName] = [Math.abs(x - other[i]!), name];
        });
      }
      // Three Adam steps of 1e-3 move each weight by up to 3e-3; the two runs agree to 1% of that.
      expect(worst, worstName).toBeLessThan(3e-5);
      optimizer.dispose();
    } finally {
      await trainer.close();
      single.dispose();
      parallelModel.dispose();
    }
  });
});
