/**
 * A small seeded generator (SplitMix32) for everything random in training:
 * weight initialisation, dropout seeds, data shuffling. One integer of state
 * makes a run reproducible and resumable exactly.
 */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /**
   * `size` draws of the inverted-dropout mask (§5.4): 0 where the draw falls
   * below `rate`, 1/(1 − rate) elsewhere; the same numbers as calling
   * nextUint32 per element. The generator is inlined on a local state: a
   * method call per element would cost more than the draw itself.
   */
  dropoutMask(size: number, rate: number): Float32Array {
    const keep = 1 / (1 - rate);
    // Everything stays in int32, which V8 keeps unboxed: the constants are
    // nextUint32's as signed 32-bit values, and unsigned x < t is signed
    // (x − 2³¹) < t − 2³¹, flipping the top bit subtracting 2³¹.
    const threshold = rate * 4294967296 - 2147483648;
    const mask = new Float32Array(size);
    let state = this.state | 0;
    for (let i = 0; i < size; i++) {
      state = (state - 0x61c88647) | 0; // + 0x9e3779b9
      let z = Math.imul(state ^ (state >>> 16), -0x7a143595); // 0x85ebca6b
      z = Math.imul(z ^ (z >>> 13), -0x3d4d51cb); // 0xc2b2ae35
      if ((z ^ (z >>> 16) ^ -0x80000000) >= threshold) mask[i] = keep;
    }
    this.state = state >>> 0;
    return mask;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
