import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { paddingMask, scaledDotProductAttention, subsequentMask } from './attention.js';
import { initBackend } from './backend.js';
import { makeBatch } from './batch.js';
import { presetConfig } from './config.js';
import { positionalEncoding } from './layers.js';
import { LabelSmoothing } from './loss.js';
import { ForwardPass } from './params.js';
import { fineTuneSchedule, noamSchedule } from './schedule.js';
import { Transformer } from './transformer.js';

// §3 of the paper, checked against hand computation, on both CPU backends.
describe.each(['cpu', 'wasm'] as const)('formulas on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend, () => {});
  });

  it('positional encodings equal sin/cos of pos / 10000^(2i/d) (§3.5)', () => {
    const d = 16;
    const table = positionalEncoding(50, d);
    for (const pos of [0, 1, 7, 49]) {
      for (const i of [0, 3, 7]) {
        expect(table[pos * d + 2 * i]).toBeCloseTo(Math.sin(pos / 10000 ** ((2 * i) / d)), 6);
        expect(table[pos * d + 2 * i + 1]).toBeCloseTo(Math.cos(pos / 10000 ** ((2 * i) / d)), 6);
      }
    }
  });

  it('scaled dot-product attention equals the hand computation (§3.2.1)', () => {
    // One head, dk = 2, one query, two keys: scores (q·k)/√2 = [1/√2, 0].
    const q = tf.tensor4d([1, 0], [1, 1, 1, 2]);
    const k = tf.tensor4d([1, 0, 0, 1], [1, 1, 2, 2]);
    const v = tf.tensor4d([10, 0, 0, 20], [1, 1, 2, 2]);
    const { output, weights } = scaledDotProductAttention(q, k, v, undefined, ForwardPass.inference);
    const w0 = Math.exp(1 / Math.SQRT2) / (Math.exp(1 / Math.SQRT2) + 1);
    const w = weights.dataSync();
    expect(w[0]).toBeCloseTo(w0, 6);
    expect(w[1]).toBeCloseTo(1 - w0, 6);
    const o = output.dataSync();
    expect(o[0]).toBeCloseTo(10 * w0, 5);
    expect(o[1]).toBeCloseTo(20 * (1 - w0), 5);
    tf.dispose([q, k, v, output, weights]);
  });

  it('gives padded keys exactly zero weight (§3.2.3)', () => {
    tf.tidy(() => {
      const ids = tf.tensor2d([[5, 6, 0, 0]], [1, 4], 'int32');
      const mask = paddingMask(ids, 0);
      expect(Array.from(mask.dataSync(), (x) => x + 0)).toEqual([0, 0, -1e9, -1e9]); // + 0 turns -0 into 0
      const q = tf.randomNormal([1, 2, 3, 4]) as tf.Tensor4D;
      const k = tf.randomNormal([1, 2, 4, 4]) as tf.Tensor4D;
      const v = tf.randomNormal([1, 2, 4, 4]) as tf.Tensor4D;
      const w = scaledDotProductAttention(q, k, v, mask, ForwardPass.inference).weights.arraySync() as number[][][][];
      for (const head of w[0]!)
        for (const row of head) {
          expect(row[2]).toBe(0);
          expect(row[3]).toBe(0);
          expect(row[0]! + row[1]!).toBeCloseTo(1, 6);
        }
    });
  });

  it('builds the subsequent mask: position i sees positions ≤ i', () => {
    const m = subsequentMask(3);
    expect(Array.from(m.dataSync())).toEqual([0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0]);
    m.dispose();
  });

  it('keeps earlier decoder outputs unchanged when a later target token changes', () => {
    const config = presetConfig('tiny', { vocabSize: 40 });
    const model = new Transformer(config, 3);
    tf.tidy(() => {
      const source = tf.tensor2d([[5, 6, 7, 3]], [1, 4], 'int32');
      const a = model.logitsUncached(source, tf.tensor2d([[2, 10, 11, 12, 13]], [1, 5], 'int32'));
      const b = model.logitsUncached(source, tf.tensor2d([[2, 10, 11, 30, 31]], [1, 5], 'int32'));
      const early = (t: tf.Tensor3D) => tf.slice(t, [0, 0, 0], [1, 3, 40]);
      expect(tf.max(tf.abs(tf.sub(early(a), early(b)))).dataSync()[0]).toBe(0);
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-3);
    });
    model.dispose();
  });

  it('applies the Noam schedule of §5.3', () => {
    const d = 512;
    expect(noamSchedule(1, d, 4000)).toBeCloseTo(d ** -0.5 * 4000 ** -1.5, 12);
    expect(noamSchedule(4000, d, 4000)).toBeCloseTo(d ** -0.5 * 4000 ** -0.5, 12); // the peak, ≈ 7.0e-4
    expect(noamSchedule(4000, d, 4000)).toBeCloseTo(6.98771e-4, 8);
    expect(noamSchedule(40000, d, 4000)).toBeCloseTo(d ** -0.5 * 40000 ** -0.5, 12);
    expect(() => noamSchedule(0, d, 4000)).toThrow(RangeError);
  });

  it("fine-tuning's schedule warms up linearly to its peak, then decays linearly to zero", () => {
    expect(fineTuneSchedule(1, 1e-4, 10, 100)).toBeCloseTo(1e-5, 15);
    expect(fineTuneSchedule(10, 1e-4, 10, 100)).toBeCloseTo(1e-4, 15);
    expect(fineTuneSchedule(55, 1e-4, 10, 100)).toBeCloseTo(1e-4 * (46 / 91), 15);
    expect(fineTuneSchedule(100, 1e-4, 10, 100)).toBeCloseTo(1e-4 / 91, 15); // the last step still learns
    expect(fineTuneSchedule(101, 1e-4, 10, 100)).toBe(0);
  });

  it('label-smoothed loss and its gradient equal the hand values', () => {
    // V = 4 (pad 0), one row, target 2, ε = 0.2: q = [0, 0.1, 0.8, 0.1].
    const z = [0.5, 1, 2, -1];
    const lse = Math.log(z.reduce((s, x) => s + Math.exp(x), 0));
    const logp = z.map((x) => x - lse);
    const q = [0, 0.1, 0.8, 0.1];
    const expected = -q.reduce((s, qi, i) => s + qi * logp[i]!, 0);
    const logits = tf.tensor2d([z], [1, 4]);
    const targets = tf.tensor1d([2], 'int32');
    const smoothing = new LabelSmoothing(0.2, 0);
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => smoothing.loss(x as tf.Tensor2D, targets))([logits]);
    expect(value.dataSync()[0]).toBeCloseTo(expected, 5);
    const p = z.map((x) => Math.exp(x - lse));
    Array.from(grads[0]!.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(p[i]! - q[i]!, 5));
    tf.dispose([logits, targets, value, ...grads]);
  });

  it('averages the loss over real target tokens only', () => {
    const config = presetConfig('tiny', { vocabSize: 30 });
    const batch = makeBatch(
      [
        { source: [5, 6], target: [7] },
        { source: [8], target: [9, 10, 11, 12] },
      ],
      config,
    );
    expect(batch.targetTokens).toBe(2 + 5);
    expect(Array.from(batch.labels.dataSync())).toEqual([7, 3, 9, 10, 11, 12, 3]);
    // Row 0 has targetLength 5: its positions are 0 and 1; row 1's are 5..9.
    expect(Array.from(batch.labelPositions.dataSync())).toEqual([0, 1, 5, 6, 7, 8, 9]);
    tf.dispose([batch.source, batch.targetIn, batch.labels, batch.labelPositions]);
  });
});
