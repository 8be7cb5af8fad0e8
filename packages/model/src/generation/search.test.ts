import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sourceTensor, type Example } from '../batch.js';
import { Transformer } from '../transformer.js';
import { greedyDecode } from './greedy.js';
import { argMax, logSoftmax } from './math.js';
import { generationGroup, resolveGenerateOptions } from './options.js';
import { generate, generateAsync, type GenerateOptions, type GenerateOutput } from './search.js';
import { overfitTinyModel, randomPairs, TEST_VOCAB } from './testing.js';

/** Its target repeats the bigram (20, 21): greedy decoding learns to repeat it. */
const REPEATING: Example = { source: [10, 11, 12], target: [20, 21, 20, 21, 20, 21, 20, 21] };

function hasRepeatedBigram(tokens: readonly number[]): boolean {
  const seen = new Set<string>();
  for (let i = 0; i + 1 < tokens.length; i++) {
    const key = `${tokens[i]},${tokens[i + 1]}`;
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

describe('generate on a tiny trained model', () => {
  const pairs = [...randomPairs(11, 21), REPEATING];
  const sources = pairs.map((p) => p.source);
  // Unseen sources too: their replies are less peaked, so strategies differ on them.
  const unseen = randomPairs(4, 99).map((p) => p.source);
  const all = [...sources, ...unseen];
  const repeating = sources.length - 1;
  let model: Transformer;

  beforeAll(async () => {
    model = await overfitTinyModel(pairs, 3);
  });

  afterAll(() => model.dispose());

  it('greedy reproduces the training pairs, matches greedyDecode and an uncached argmax reference with its score', () => {
    const out = generate(model, all, { maxNewTokens: 12 });
    out.slice(0, sources.length).forEach((o, i) => {
      expect(o.tokens).toEqual(pairs[i]!.target);
      expect(o.finishReason).toBe('eos');
    });
    expect(greedyDecode(model, all, 12)).toEqual(out.map(({ tokens, finishReason }) => ({ tokens, finishReason })));
    for (const [i, src] of [sources[0]!, unseen[0]!].entries()) {
      const prefix = [model.config.bosId];
      let score = 0;
      for (let t = 0; t < 12; t++) {
        const row = tf.tidy(() => {
          const logits = model.logitsUncached(sourceTensor([src], model.config), tf.tensor2d([prefix], [1, prefix.length], 'int32')); // [1, T, V]
          return Float32Array.from(tf.slice(logits, [0, t, 0], [1, 1, TEST_VOCAB]).dataSync());
        });
        const id = argMax(row);
        score += logSoftmax(row)[id]!;
        if (id === model.config.eosId) break;
        prefix.push(id);
      }
      const o = i === 0 ? out[0]! : out[sources.length]!;
      expect(o.tokens).toEqual(prefix.slice(1));
      expect(o.score).toBeCloseTo(score, 3);
    }
  });

  it('beam search with one beam equals greedy', () => {
    const greedy = generate(model, all, { maxNewTokens: 12 });
    const beam = generate(model, all, { strategy: 'beam', numBeams: 1, lengthPenalty: 0, maxNewTokens: 12 });
    expect(beam.map((o) => [o.tokens, o.finishReason])).toEqual(greedy.map((o) => [o.tokens, o.finishReason]));
    beam.forEach((o, i) => expect(o.score).toBeCloseTo(greedy[i]!.score, 4));
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy' }],
    ['beam 3', { strategy: 'beam', numBeams: 3 }],
    ['sampling', { strategy: 'sample', seed: 5, temperature: 1.5, topP: 0.95 }],
  ])('%s decodes a batch as it decodes each source alone', (_name, options) => {
    const batched = generate(model, all, { maxNewTokens: 12, ...options });
    all.forEach((src, i) => {
      const [alone] = generate(model, [src], { maxNewTokens: 12, ...options });
      expect(alone!.tokens).toEqual(batched[i]!.tokens);
      expect(alone!.finishReason).toBe(batched[i]!.finishReason);
      expect(alone!.score).toBeCloseTo(batched[i]!.score, 3);
    });
  });

  it('noRepeatNgramSize 2 leaves no repeated bigram where greedy repeats one', () => {
    const [plain] = generate(model, [sources[repeating]!], { maxNewTokens: 12 });
    expect(hasRepeatedBigram(plain!.tokens)).toBe(true);
    for (const strategy of ['greedy', 'beam', 'sample'] as const) {
      const out = generate(model, all, { strategy, noRepeatNgramSize: 2, maxNewTokens: 16, seed: 1 });
      for (const o of out) expect(hasRepeatedBigram(o.tokens)).toBe(false);
    }
  });

  it('minNewTokens delays EOS', () => {
    for (const strategy of ['greedy', 'beam', 'sample'] as const) {
      const out = generate(model, all, { strategy, minNewTokens: 10, maxNewTokens: 14 });
      for (const o of out) expect(o.tokens.length).toBeGreaterThanOrEqual(10);
    }
  });

  it('a repetition penalty changes a reply that repeats its tokens', () => {
    const [plain] = generate(model, [sources[repeating]!], { maxNewTokens: 12 });
    const [penalised] = generate(model, [sources[repeating]!], { maxNewTokens: 12, repetitionPenalty: 20 });
    expect(penalised!.tokens).not.toEqual(plain!.tokens);
  });

  it('sampling at a tiny temperature, or with topK 1, equals greedy', () => {
    const greedy = generate(model, all, { maxNewTokens: 12 }).map((o) => o.tokens);
    expect(generate(model, all, { strategy: 'sample', temperature: 1e-4, seed: 3, maxNewTokens: 12 }).map((o) => o.tokens)).toEqual(greedy);
    expect(generate(model, all, { strategy: 'sample', topK: 1, temperature: 2, seed: 4, maxNewTokens: 12 }).map((o) => o.tokens)).toEqual(greedy);
  });

  it('sampling is reproducible by seed and changes with it', () => {
    const sample = (seed: number) => generate(model, all, { strategy: 'sample', temperature: 3, seed, maxNewTokens: 12 }).map((o) => o.tokens);
    expect(sample(7)).toEqual(sample(7));
    expect(sample(8)).not.toEqual(sample(7));
  });

  it("beam search's best score is at least greedy's with lengthPenalty 0", () => {
    const greedy = generate(model, all, { maxNewTokens: 12 });
    const beam = generate(model, all, { strategy: 'beam', numBeams: 4, lengthPenalty: 0, maxNewTokens: 12 });
    beam.forEach((o, i) => expect(o.score).toBeGreaterThanOrEqual(greedy[i]!.score - 1e-6));
  });

  it('early stopping gives the same hypotheses as searching to the length limit, in fewer steps', () => {
    const steps = vi.spyOn(model, 'step');
    try {
      for (const lengthPenalty of [0, 1, -0.5]) {
        const options: GenerateOptions = { strategy: 'beam', numBeams: 3, lengthPenalty, maxNewTokens: 10 };
        const early = generate(model, all, { ...options, earlyStopping: true });
        const full = generate(model, all, { ...options, earlyStopping: false });
        expect(early.map((o) => o.tokens)).toEqual(full.map((o) => o.tokens));
        early.forEach((o, i) => expect(o.score).toBeCloseTo(full[i]!.score, 6));
        // A seen source's reply ends in a near-certain EOS: without a length bonus nothing can overtake it, so the search stops there.
        if (lengthPenalty === 0)
          for (const [i, src] of sources.entries()) {
            steps.mockClear();
            generate(model, [src], { ...options, earlyStopping: true });
            expect(steps.mock.calls.length).toBe(pairs[i]!.target.length + 1);
          }
      }
    } finally {
      steps.mockRestore();
    }
  });

  it("finishes with 'eos' given room and with 'length' when cut", () => {
    for (const strategy of ['greedy', 'beam'] as const) {
      const roomy = generate(model, sources, { strategy, maxNewTokens: 12 });
      expect(roomy.map((o) => o.finishReason)).toEqual(sources.map(() => 'eos'));
      // Every target has at least 2 tokens, so its EOS never fits in 2.
      const cut = generate(model, sources, { strategy, maxNewTokens: 2 });
      cut.forEach((o, i) => {
        expect(o.finishReason).toBe('length');
        expect(o.tokens).toEqual(pairs[i]!.target.slice(0, 2));
      });
    }
    expect(generate(model, [sources[0]!], { maxNewTokens: 0 })).toEqual([{ tokens: [], score: 0, finishReason: 'length' }]);
  });

  it('holds the number of live tensors across 50 generate calls', () => {
    const strategies: GenerateOptions[] = [{ strategy: 'greedy' }, { strategy: 'beam', numBeams: 3 }, { strategy: 'sample', seed: 2, topK: 5 }];
    generate(model, all, { maxNewTokens: 6 });
    const before = tf.memory().numTensors;
    for (let call = 0; call < 50; call++)
      generate(model, all.slice(call % 4, (call % 4) + 3), { maxNewTokens: 6, noRepeatNgramSize: 2, ...strategies[call % 3] });
    expect(tf.memory().numTensors).toBe(before);
    expect(() => generate(model, sources, { strategy: 'beam', numBeams: 0 })).toThrow(RangeError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy' }],
    ['beam 4', { strategy: 'beam', numBeams: 4 }],
    ['sampling', { strategy: 'sample', seed: 9, temperature: 2, topK: 10 }],
  ])('generateAsync equals generate and gives the event loop a turn between steps (%s)', async (_name, options) => {
    const sync = generate(model, all, { maxNewTokens: 12, ...options });
    // A chain of immediates runs only while the decoding loop gives up the thread.
    let turns = 0;
    let spinning = true;
    const spin = () => {
      if (!spinning) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    try {
      expect(await generateAsync(model, all, { maxNewTokens: 12, ...options })).toEqual(sync);
    } finally {
      spinning = false;
    }
    expect(turns).toBeGreaterThan(3);
    expect(await generateAsync(model, [], options)).toEqual([]);
  });

  it('generateAsync rejects bad options and leaks nothing', async () => {
    const before = tf.memory().numTensors;
    await expect(generateAsync(model, sources, { strategy: 'beam', numBeams: 0 })).rejects.toThrow(RangeError);
    await generateAsync(model, all, { strategy: 'beam', numBeams: 2, maxNewTokens: 5 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy' }],
    ['beam 3, lengthPenalty 1', { strategy: 'beam', numBeams: 3 }],
    ['beam 3, lengthPenalty 0', { strategy: 'beam', numBeams: 3, lengthPenalty: 0 }],
    ['sampling', { strategy: 'sample', temperature: 2 }],
  ])('per-source maxNewTokens and seed decode each source as alone (%s)', (_name, options) => {
    const perSource = all.map((_, i): GenerateOptions => ({ ...options, maxNewTokens: [0, 1, 3, 7, 12][i % 5], seed: 100 + i }));
    const batched = generate(model, all, perSource);
    all.forEach((src, i) => {
      const [alone] = generate(model, [src], perSource[i]);
      expect(batched[i]!.tokens).toEqual(alone!.tokens);
      expect(batched[i]!.finishReason).toBe(alone!.finishReason);
      expect(batched[i]!.score).toBeCloseTo(alone!.score, 3);
      expect(batched[i]!.tokens.length).toBeLessThanOrEqual(perSource[i]!.maxNewTokens!);
    });
  });

  it('per-source options must agree on all but maxNewTokens and seed', () => {
    expect(() => generate(model, sources.slice(0, 2), [{ strategy: 'beam' }, { strategy: 'beam', numBeams: 2 }])).toThrow(RangeError);
    expect(() => generate(model, sources.slice(0, 2), [{}, { strategy: 'sample' }])).toThrow(RangeError);
    expect(() => generate(model, sources.slice(0, 2), [{}])).toThrow(RangeError);
    // Options a strategy ignores do not split a batch.
    expect(generate(model, sources.slice(0, 2), [{ temperature: 3 }, { numBeams: 7, maxNewTokens: 12 }]).map((o) => o.tokens)).toEqual([
      generate(model, [sources[0]!])[0]!.tokens,
      generate(model, [sources[1]!], { maxNewTokens: 12 })[0]!.tokens,
    ]);
    expect(generationGroup(resolveGenerateOptions({ temperature: 3, seed: 1, maxNewTokens: 3 }))).toBe(generationGroup(resolveGenerateOptions({})));
    expect(generationGroup(resolveGenerateOptions({ strategy: 'sample', temperature: 3 }))).not.toBe(
      generationGroup(resolveGenerateOptions({ strategy: 'sample' })),
    );
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy' }],
    ['beam 4', { strategy: 'beam', numBeams: 4 }],
    ['sampling', { strategy: 'sample', seed: 3, temperature: 2 }],
  ])('onToken streams exactly each source’s tokens, in order (%s)', (_name, options) => {
    const streamed: number[][] = all.map(() => []);
    const out = generate(model, all, { maxNewTokens: 12, ...options }, { onToken: (b, id) => streamed[b]!.push(id) });
    expect(streamed).toEqual(out.map((o) => o.tokens));
    expect(streamed.flat()).not.toContain(model.config.eosId);
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy' }],
    ['beam 3', { strategy: 'beam', numBeams: 3 }],
  ])('shouldStop abandons a source early and leaves the others alone (%s)', (_name, options) => {
    const opts: GenerateOptions = { maxNewTokens: 16, minNewTokens: 16, ...options };
    const full = generate(model, all, opts);
    let calls = 0;
    const steps = vi.spyOn(model, 'step').mockImplementation(function (this: Transformer, ...args) {
      calls++;
      return Transformer.prototype.step.apply(this, args);
    });
    try {
      // Source 0 is dropped before any step, source 1 after its fourth, the rest run to the limit.
      const out = generate(model, all, opts, { shouldStop: (b) => b === 0 || (b === 1 && calls >= 4) });
      expect(calls).toBe(16);
      expect(out[0]).toEqual({ tokens: [], score: 0, finishReason: 'length' });
      expect(out[1]!.tokens).toHaveLength(4);
      expect(out[1]!.finishReason).toBe('length');
      if (options.strategy === 'greedy') expect(out[1]!.tokens).toEqual(full[1]!.tokens.slice(0, 4));
      expect(out.slice(2)).toEqual(full.slice(2));
      // With every source dropped after two steps, the batch stops there.
      calls = 0;
      const stopped = generate(model, all, opts, { shouldStop: () => calls >= 2 });
      expect(calls).toBe(2);
      for (const o of stopped) expect(o.tokens).toHaveLength(2);
    } finally {
      steps.mockRestore();
    }
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { strategy: 'greedy', maxNewTokens: 12 }],
    ['sampling', { strategy: 'sample', temperature: 2, topK: 20, maxNewTokens: 12 }],
    ['greedy with processors', { strategy: 'greedy', maxNewTokens: 12, minNewTokens: 3, noRepeatNgramSize: 2 }],
  ])('sources that join a running generation decode as each would alone (%s)', (_name, options) => {
    const own = (i: number): GenerateOptions => ({ ...options, seed: 50 + i, maxNewTokens: i === 5 ? 0 : options.maxNewTokens! });
    const expected = all.map((src, i) => generate(model, [src], own(i))[0]!);
    // Sources join before the second and third steps, then as others finish, and the last once every other has.
    const late = all.length - 1;
    const schedule: [() => boolean, number[]][] = [
      [() => calls === 1, [3]],
      [() => calls === 2, [4, 5, 6]],
      [() => finished.size >= 5, [7, 8]],
      [() => finished.size >= 7, Array.from({ length: late - 9 }, (_, i) => 9 + i)],
      [() => finished.size === late, [late]],
    ];
    const byIndex = [0, 1, 2];
    const finished = new Map<number, GenerateOutput>();
    let calls = 0;
    const streamed = new Map<number, number[]>();
    const returned = generate(
      model,
      all.slice(0, 3),
      [0, 1, 2].map((i) => own(i)),
      {
        join: () => {
          const due = schedule.filter(([when]) => when());
          calls++;
          const joining = due.flatMap(([, ids]) => ids);
          schedule.splice(0, schedule.length, ...schedule.filter((entry) => !due.includes(entry)));
          byIndex.push(...joining);
          return joining.map((i) => ({ source: all[i]!, options: own(i) }));
        },
        onToken: (b, id) => streamed.set(byIndex[b]!, [...(streamed.get(byIndex[b]!) ?? []), id]),
        onFinish: (b, out) => finished.set(byIndex[b]!, out),
      },
    );
    expect(schedule).toEqual([]);
    expect(finished.size).toBe(all.length);
    expect(returned).toEqual([0, 1, 2].map((i) => finished.get(i)));
    all.forEach((_, i) => {
      const out = finished.get(i)!;
      expect(out.tokens).toEqual(expected[i]!.tokens);
      expect(out.finishReason).toBe(expected[i]!.finishReason);
      expect(out.score).toBeCloseTo(expected[i]!.score, 3);
      expect(streamed.get(i) ?? []).toEqual(out.tokens);
    });
    expect(finished.get(5)).toEqual({ tokens: [], score: 0, finishReason: 'length' });
  });

  it('a joining source must share the batch’s options, and beam search never asks for joiners', () => {
    const before = tf.memory().numTensors;
    expect(() => generate(model, [sources[0]!], {}, { join: () => [{ source: sources[1]!, options: { strategy: 'sample' } }] })).toThrow(RangeError);
    expect(tf.memory().numTensors).toBe(before);
    const join = vi.fn(() => []);
    generate(model, [sources[0]!], { strategy: 'beam', numBeams: 2 }, { join });
    expect(join).not.toHaveBeenCalled();
  });

  it('rejects bad options', () => {
    expect(() => generate(model, sources, { maxNewTokens: -1 })).toThrow(RangeError);
    expect(() => generate(model, sources, { strategy: 'sample', temperature: 0 })).toThrow(RangeError);
    expect(() => generate(model, sources, { strategy: 'sample', topP: 1.5 })).toThrow(RangeError);
  });
});
