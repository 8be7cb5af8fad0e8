import type { Example } from '@hanmadi/model';
import { describe, expect, it } from 'vitest';
import { batchTokens, epochBatches } from './batching.js';

const examples: Example[] = Array.from({ length: 200 }, (_, i) => ({
  source: Array.from({ length: 1 + (i % 13) }, (_, j) => 4 + j),
  target: Array.from({ length: 1 + ((i * 7) % 17) }, (_, j) => 4 + j),
}));

describe('epochBatches', () => {
  it('keeps every pair exactly once, each batch within the token budget', () => {
    const batches = epochBatches(examples, 128, 1, 0);
    expect(batches.flat()).toHaveLength(examples.length);
    expect(new Set(batches.flat())).toEqual(new Set(examples));
    for (const b of batches) expect(batchTokens(b)).toBeLessThanOrEqual(128);
  });

  it('groups similar lengths, so padding stays small', () => {
    const batches = epochBatches(examples, 256, 1, 0, 4);
    const real = batches.flat().reduce((n, e) => n + e.target.length + 1, 0);
    const padded = batches.reduce((n, b) => n + b.length * Math.max(...b.map((e) => e.target.length + 1)), 0);
    expect(real / padded).toBeGreaterThan(0.75);
  });

  it('batches at random without a window, so padding is larger', () => {
    const padding = (w: number) => {
      const batches = epochBatches(examples, 256, 1, 0, w);
      return batches.reduce((n, b) => n + b.length * Math.max(...b.map((e) => e.target.length + 1)), 0);
    };
    expect(padding(0)).toBeGreaterThan(padding(4));
  });

  it('depends only on seed and epoch', () => {
    expect(epochBatches(examples, 128, 1, 3)).toEqual(epochBatches(examples, 128, 1, 3));
    expect(epochBatches(examples, 128, 1, 3)).not.toEqual(epochBatches(examples, 128, 1, 4));
    expect(epochBatches(examples, 128, 2, 3)).not.toEqual(epochBatches(examples, 128, 1, 3));
  });

  it('puts an over-long pair in a batch of its own rather than dropping it', () => {
    const long: Example = { source: Array(50).fill(5), target: Array(50).fill(6) };
    const batches = epochBatches([...examples.slice(0, 10), long], 32, 1, 0);
    expect(batches.some((b) => b.length === 1 && b[0] === long)).toBe(true);
  });
});
