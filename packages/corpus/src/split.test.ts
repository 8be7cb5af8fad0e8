import { describe, expect, it } from 'vitest';
import type { QaPair } from './reader.js';
import { dedupePairs, splitPairs } from './split.js';

const pairs = (n: number, offset = 0): QaPair[] =>
  Array.from({ length: n }, (_, i) => ({ question: `질문 ${i + offset}`, answer: `대답 ${i + offset}`, line: i + offset + 2 }));

describe('dedupePairs', () => {
  it('removes exact repeats and keeps the first occurrence in order', () => {
    const input: QaPair[] = [
      { question: '안녕', answer: '안녕하세요', line: 2 },
      { question: '안녕', answer: '반가워요', line: 3 },
      { question: '안녕', answer: '안녕하세요', line: 4 },
    ];
    const { pairs: kept, removed } = dedupePairs(input);
    expect(removed).toBe(1);
    expect(kept.map((p) => p.line)).toEqual([2, 3]);
  });
});

describe('splitPairs', () => {
  it('holds out about 5% by default', () => {
    const { train, valid } = splitPairs(pairs(10000));
    expect(train.length + valid.length).toBe(10000);
    expect(valid.length).toBeGreaterThan(400);
    expect(valid.length).toBeLessThan(600);
  });

  it('is deterministic and depends on the seed', () => {
    const a = splitPairs(pairs(2000), { seed: 1 });
    const b = splitPairs(pairs(2000), { seed: 1 });
    const c = splitPairs(pairs(2000), { seed: 2 });
    expect(a.valid).toEqual(b.valid);
    expect(c.valid.map((p) => p.question)).not.toEqual(a.valid.map((p) => p.question));
  });

  it('does not move existing pairs when rows are appended', () => {
    const before = splitPairs(pairs(1000));
    const after = splitPairs([...pairs(1000), ...pairs(500, 1000)]);
    const validBefore = new Set(before.valid.map((p) => p.question));
    const validAfter = new Set(after.valid.map((p) => p.question));
    for (const p of pairs(1000)) expect(validAfter.has(p.question)).toBe(validBefore.has(p.question));
  });

  it('keeps every answer to one question on the same side', () => {
    const many = pairs(3000).flatMap((p) => [p, { ...p, answer: `${p.answer}!` }]);
    const { train } = splitPairs(many);
    const trainQuestions = new Set(train.map((p) => p.question));
    const { valid } = splitPairs(many);
    expect(valid.length).toBeGreaterThan(0);
    for (const p of valid) expect(trainQuestions.has(p.question)).toBe(false);
  });

  it('rejects a fraction outside [0, 1)', () => {
    expect(() => splitPairs(pairs(3), { validFraction: 1 })).toThrow(/validFraction/u);
  });
});
