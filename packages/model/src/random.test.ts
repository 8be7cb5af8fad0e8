import { describe, expect, it } from 'vitest';
import { Rng } from './random.js';

describe('Rng.dropoutMask', () => {
  it.each([0, 0.1, 0.5, 0.9999])('draws the mask nextUint32 would, and leaves the same state (rate %s)', (rate) => {
    for (const seed of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 12345]) {
      const fast = new Rng(seed);
      const reference = new Rng(seed);
      const mask = fast.dropoutMask(5000, rate);
      const keep = Math.fround(1 / (1 - rate));
      const expected = Float32Array.from({ length: 5000 }, () => (reference.nextUint32() < rate * 4294967296 ? 0 : keep));
      expect(mask).toEqual(expected);
      expect(fast.state).toBe(reference.state);
    }
  });
});
