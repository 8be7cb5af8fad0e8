import { describe, expect, it } from 'vitest';
import {
  LogitsProcessorList,
  FrequencyPenaltyProcessor,
  MinLengthProcessor,
  NoRepeatNgramProcessor,
  PresencePenaltyProcessor,
  RepetitionPenaltyProcessor,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
} from './logits-processors.js';
import { argMax, logSoftmax, logSumExp, softmax, topIndices } from './math.js';
import { EosCriterion, MaxLengthCriterion, StoppingCriteriaList } from './stopping-criteria.js';

const row = (...values: number[]) => Float32Array.from(values);
const list = (r: Float32Array) => Array.from(r);

describe('logits processors on hand-made rows', () => {
  it('MinLengthProcessor forbids EOS only before the minimum', () => {
    const p = new MinLengthProcessor(2, 3);
    const rows = [row(1, 2, 3, 4), row(1, 2, 3, 4)];
    p.process([[5], [5, 6]], rows);
    expect(list(rows[0]!)).toEqual([1, 2, 3, -Infinity]);
    expect(list(rows[1]!)).toEqual([1, 2, 3, 4]);
  });

  it('NoRepeatNgramProcessor bans the token that would repeat an n-gram', () => {
    const bigram = new NoRepeatNgramProcessor(2);
    expect([...bigram.bannedTokens([1, 2, 3, 1])]).toEqual([2]);
    expect([...bigram.bannedTokens([1, 2, 1, 3, 1])].sort()).toEqual([2, 3]);
    expect([...bigram.bannedTokens([1])]).toEqual([]);
    const trigram = new NoRepeatNgramProcessor(3);
    expect([...trigram.bannedTokens([4, 5, 6, 4, 5])]).toEqual([6]);
    expect([...trigram.bannedTokens([4, 5, 6, 5, 4])]).toEqual([]);
    const unigram = new NoRepeatNgramProcessor(1);
    expect([...unigram.bannedTokens([2, 0])].sort()).toEqual([0, 2]);
    const r = row(0, 0, 0, 0);
    bigram.process([[1, 2, 3, 1]], [r]);
    expect(list(r)).toEqual([0, 0, -Infinity, 0]);
  });

  it('RepetitionPenaltyProcessor divides positive and multiplies negative scores of generated tokens once', () => {
    const r = row(4, -4, 4, -4);
    new RepetitionPenaltyProcessor(2).process([[0, 1, 0, 1]], [r]);
    expect(list(r)).toEqual([2, -8, 4, -4]);
  });

  it("OpenAI's penalties: logit[t] -= count[t]·frequency + (count[t] > 0)·presence", () => {
    // Token 0 came twice, token 1 once, token 2 never.
    const r = row(4, -4, 4);
    new LogitsProcessorList([new FrequencyPenaltyProcessor(0.5), new PresencePenaltyProcessor(1.5)]).process([[0, 1, 0]], [r]);
    expect(list(r)).toEqual([4 - 2 * 0.5 - 1.5, -4 - 1 * 0.5 - 1.5, 4]);
    const favoured = row(0, 0);
    new FrequencyPenaltyProcessor(-2).process([[1, 1]], [favoured]);
    expect(list(favoured)).toEqual([0, 4]);
    expect(() => new PresencePenaltyProcessor(2.5)).toThrow(RangeError);
    expect(() => new FrequencyPenaltyProcessor(Number.NaN)).toThrow(RangeError);
  });

  it('TemperatureProcessor divides every score', () => {
    const r = row(1, -2, 4);
    new TemperatureProcessor(0.5).process([[]], [r]);
    expect(list(r)).toEqual([2, -4, 8]);
    expect(() => new TemperatureProcessor(0)).toThrow(RangeError);
  });

  it('TopKProcessor keeps exactly k tokens, ties to the lower id', () => {
    const r = row(1, 5, 3, 5, 2);
    new TopKProcessor(2).process([[]], [r]);
    expect(list(r)).toEqual([-Infinity, 5, -Infinity, 5, -Infinity]);
    const tie = row(1, 5, 3, 5, 2);
    new TopKProcessor(1).process([[]], [tie]);
    expect(list(tie)).toEqual([-Infinity, 5, -Infinity, -Infinity, -Infinity]);
    // The insertion path (k small next to V) must agree with a full sort, ties included.
    const big = Float32Array.from({ length: 200 }, (_, i) => (i * 37) % 50);
    const sorted = Array.from(big.keys()).sort((x, y) => big[y]! - big[x]! || x - y);
    expect(topIndices(big, 7)).toEqual(sorted.slice(0, 7));
  });

  it('TopPProcessor keeps the smallest nucleus reaching p', () => {
    // Probabilities 0.5, 0.3, 0.2 (in log space).
    const make = () => row(Math.log(0.5), Math.log(0.3), Math.log(0.2));
    const a = make();
    new TopPProcessor(0.5).process([[]], [a]);
    expect(list(a).map(Number.isFinite)).toEqual([true, false, false]);
    const b = make();
    new TopPProcessor(0.7).process([[]], [b]);
    expect(list(b).map(Number.isFinite)).toEqual([true, true, false]);
    const c = make();
    new TopPProcessor(0.1, 2).process([[]], [c]);
    expect(list(c).map(Number.isFinite)).toEqual([true, true, false]);
  });

  it('LogitsProcessorList applies processors in order on every row', () => {
    const rows = [row(2, 2, 2), row(2, 2, 2)];
    new LogitsProcessorList([new RepetitionPenaltyProcessor(2), new TemperatureProcessor(0.5)]).process([[0], [2]], rows);
    expect(rows.map(list)).toEqual([
      [2, 4, 4],
      [4, 4, 2],
    ]);
  });

  it('logSoftmax, softmax and argMax agree with the definitions', () => {
    const r = row(1, 2, 3, -Infinity);
    const lp = logSoftmax(r);
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(lp[2]).toBeCloseTo(3 - Math.log(z), 6);
    expect(lp[3]).toBe(-Infinity);
    expect(softmax(r).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
    expect(argMax([1, 3, 3])).toBe(1);
  });

  it('logSumExp matches the Math.exp definition to 1e-10 on rows of every spread, with −∞, NaN and a known maximum', () => {
    const definition = (r: Float32Array): number => {
      const max = Math.max(...r);
      return max + Math.log(r.reduce((s, v) => s + Math.exp(v - max), 0));
    };
    let seed = 7;
    const uniform = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const spread of [0.001, 1, 10, 30, 100, 1000]) {
      const r = Float32Array.from({ length: 8000 }, () => (uniform() - 0.5) * spread);
      expect(Math.abs(logSumExp(r) - definition(r))).toBeLessThan(1e-10 * Math.max(1, Math.abs(definition(r))));
      expect(logSumExp(r, Math.max(...r))).toBe(logSumExp(r));
    }
    // Exactly one step of the table apart, and between steps.
    expect(logSumExp(row(0, -1 / 64, -0.3, -39.99, -40.01))).toBeCloseTo(definition(row(0, -1 / 64, -0.3, -39.99, -40.01)), 12);
    expect(logSumExp(row(5))).toBe(5);
    expect(logSumExp(row(1, 2, -Infinity))).toBeCloseTo(definition(row(1, 2)), 12);
    expect(logSumExp(row(-Infinity, -Infinity))).toBe(-Infinity);
    expect(logSumExp(row(1, NaN, 2))).toBeNaN();
  });
});

describe('stopping criteria', () => {
  it('reports eos before length and nothing while running', () => {
    const criteria = new StoppingCriteriaList([new EosCriterion(3), new MaxLengthCriterion(2)]);
    expect(criteria.check([5])).toBeUndefined();
    expect(criteria.check([3])).toBe('eos');
    expect(criteria.check([5, 6])).toBe('length');
    expect(criteria.check([5, 3])).toBe('eos');
  });
});
