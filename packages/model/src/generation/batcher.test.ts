import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Transformer } from '../transformer.js';
import { DecoderCache } from './decoder-cache.js';
import { BatcherClosedError, DecodeBatcher, QueueFullError } from './batcher.js';
import { generate, generateAsync, type GenerateOptions, type GenerateOutput } from './search.js';
import { overfitTinyModel, randomPairs, TEST_VOCAB } from './testing.js';

/** A promise's outcome without throwing, to check rejections after the fact. */
function outcome<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe('DecodeBatcher on a tiny trained model', () => {
  const pairs = randomPairs(12, 31);
  const sources = pairs.map((p) => p.source);
  // Unseen sources decode to long, less peaked replies: they exercise the length limit and beam search.
  const unseen = randomPairs(8, 77).map((p) => p.source);
  const all = [...sources, ...unseen];
  let model: Transformer;

  beforeAll(async () => {
    model = await overfitTinyModel(pairs, 5);
  });

  afterAll(() => model.dispose());

  /** Each request's output as `generate` gives it for that source alone. */
  function expectAlone(outputs: readonly GenerateOutput[], requests: readonly { source: readonly number[]; options: GenerateOptions }[]): void {
    expect(outputs).toHaveLength(requests.length);
    requests.forEach((r, i) => {
      const [alone] = generate(model, [r.source], r.options);
      expect(outputs[i]!.tokens).toEqual(alone!.tokens);
      expect(outputs[i]!.finishReason).toBe(alone!.finishReason);
      expect(outputs[i]!.score).toBeCloseTo(alone!.score, 3);
    });
  }

  it.each<[string, (i: number) => GenerateOptions]>([
    ['greedy', () => ({ maxNewTokens: 12 })],
    // Sources of 2 to 6 tokens and limits from 2 to 14 share each batch.
    ['beam 4', (i) => ({ strategy: 'beam', numBeams: 4, maxNewTokens: 2 + ((i * 5) % 13) })],
    ['sampling', (i) => ({ strategy: 'sample', temperature: 1.5, topP: 0.9, seed: 40 + i, maxNewTokens: 10 })],
  ])('concurrent %s requests equal generate on each alone, decoded in batches', async (_name, optionsOf) => {
    const sizes: number[] = [];
    const batcher = new DecodeBatcher(model, { onBatch: (size) => sizes.push(size) });
    const requests = all.map((source, i) => ({ source, options: optionsOf(i) }));
    const outputs = await Promise.all(requests.map((r) => batcher.submit(r)));
    expectAlone(outputs, requests);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(all.length);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    await batcher.close();
  });

  it('puts requests whose options cannot share a batch into separate groups, each correct', async () => {
    const batches: [number, string][] = [];
    const batcher = new DecodeBatcher(model, { onBatch: (size, group) => batches.push([size, group]) });
    const kinds: GenerateOptions[] = [
      { maxNewTokens: 8 },
      { strategy: 'beam', numBeams: 2, maxNewTokens: 9 },
      { strategy: 'beam', numBeams: 3, maxNewTokens: 9 },
      { strategy: 'sample', temperature: 2, seed: 1, maxNewTokens: 9 },
      { noRepeatNgramSize: 2, maxNewTokens: 16 },
      // Differs from the first only in per-source fields and ones greedy ignores: same group.
      { maxNewTokens: 5, seed: 3, temperature: 4 },
    ];
    const requests = all.map((source, i) => ({ source, options: kinds[i % kinds.length]! }));
    expectAlone(await Promise.all(requests.map((r) => batcher.submit(r))), requests);
    // All were submitted in one window and fit in one batch per group.
    expect(batches).toHaveLength(5);
    expect(new Set(batches.map(([, group]) => group)).size).toBe(5);
    expect(batches.find(([, group]) => group.startsWith('greedy') && !group.includes('noRepeatNgramSize=2'))![0]).toBe(
      requests.filter((r) => kinds.indexOf(r.options) % 5 === 0).length,
    );
    await batcher.close();
  });

  it('respects maxBatch, and decodes every request alone without batching', async () => {
    const sizes: number[] = [];
    const decoding: number[] = [];
    const batched = new DecodeBatcher(model, {
      maxBatch: 3,
      onBatch: (size) => {
        sizes.push(size);
        decoding.push(batched.inFlight);
      },
    });
    const requests = all.slice(0, 8).map((source) => ({ source, options: { maxNewTokens: 10 } }));
    expectAlone(await Promise.all(requests.map((r) => batched.submit(r))), requests);
    // The first batch is full; later ones fill the places finished replies free, never past maxBatch.
    expect(sizes[0]).toBe(3);
    expect(sizes.reduce((a, b) => a + b)).toBe(8);
    expect(Math.max(...decoding)).toBeLessThanOrEqual(3);
    // A full batch starts without waiting out maxWaitMs.
    const eager = new DecodeBatcher(model, { maxBatch: 3, maxWaitMs: 20_000 });
    const started = performance.now();
    expectAlone(await Promise.all(requests.slice(0, 6).map((r) => eager.submit(r))), requests.slice(0, 6));
    expect(performance.now() - started).toBeLessThan(10_000);

    const single: number[] = [];
    const waiting: number[] = [];
    const unbatched = new DecodeBatcher(model, {
      batching: false,
      onBatch: (size) => {
        single.push(size);
        waiting.push(unbatched.queueLength);
      },
    });
    expectAlone(await Promise.all(requests.map((r) => unbatched.submit(r))), requests);
    expect(single).toEqual(requests.map(() => 1));
    // One at a time: each starts only once the previous one is done.
    expect(waiting).toEqual(requests.map((_, i) => requests.length - 1 - i));
    await Promise.all([batched.close(), unbatched.close(), eager.close()]);
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', {}],
    ['beam 1', { strategy: 'beam', numBeams: 1 }],
  ])('answers each request when its own reply ends, drops finished rows, and fills the places they free (%s)', async (name, options) => {
    const widths: number[] = [];
    const spy = vi.spyOn(model, 'step').mockImplementation(function (this: Transformer, ...args) {
      widths.push(args[1].shape[0]);
      return Transformer.prototype.step.apply(this, args);
    });
    try {
      const starts: number[] = [];
      const batcher = new DecodeBatcher(model, { maxBatch: 4, maxWaitMs: 1, onBatch: (size) => starts.push(size) });
      // Three short replies and one long: the long one's batch must not hold them back.
      // One minimum length for all keeps them in one group; only the limits differ.
      const long = { source: unseen[0]!, options: { ...options, maxNewTokens: 30, minNewTokens: 30 } };
      const short = sources.slice(0, 3).map((source) => ({ source, options: { ...options, maxNewTokens: 3, minNewTokens: 30 } }));
      const order: string[] = [];
      const first = [long, ...short].map((r, i) => batcher.submit(r).then((out) => (order.push(i === 0 ? 'long' : 'short'), out)));
      const shortDone = await Promise.all(first.slice(1));
      expect(batcher.inFlight).toBe(1);
      // Two requests arriving now take two of the three free places at once, not after the long reply.
      const late = sources.slice(4, 6).map((source) => ({ source, options: { ...options, maxNewTokens: 3, minNewTokens: 30 } }));
      const lateOut = await Promise.all(late.map((r) => batcher.submit(r)));
      order.push('late');
      const longOut = await first[0]!;
      const stepped = [...widths];
      expect(order).toEqual(['short', 'short', 'short', 'late', 'long']);
      expectAlone([longOut, ...shortDone, ...lateOut], [long, ...short, ...late]);
      expect(starts).toEqual([4, 2]);
      expect(stepped.slice(0, 3)).toEqual([4, 4, 4]);
      if (name === 'greedy') {
        // Continuous: the finished rows leave, the late pair joins the long reply's batch for its
        // three steps, and the long one goes on alone.
        expect(stepped).toEqual([4, 4, 4, 3, 3, 3, ...new Array<number>(24).fill(1)]);
      } else {
        // Beam search batches are fixed: the late pair decodes as a batch of its own, its three steps
        // interleaved with the long one's.
        expect(stepped.filter((w) => w === 2)).toHaveLength(3);
        expect(stepped).toHaveLength(33);
      }
      await batcher.close();
    } finally {
      spy.mockRestore();
    }
  });

  it('lets requests that arrive while a greedy batch decodes join it, so that a closed loop of clients keeps one full batch', async () => {
    const widths: number[] = [];
    const batcher = new DecodeBatcher(model, { maxBatch: 6, maxWaitMs: 0, onStep: (rows) => widths.push(rows) });
    const joins = vi.spyOn(DecoderCache.prototype, 'join');
    // Six clients, each sending its next request as soon as its reply comes, 5 requests each.
    const replies: { i: number; out: GenerateOutput }[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, client) => {
        for (let k = 0; k < 5; k++) {
          const i = (client * 5 + k) % all.length;
          replies.push({ i, out: await batcher.submit({ source: all[i]!, options: { maxNewTokens: 8 } }) });
        }
      }),
    );
    const joinCalls = joins.mock.calls.length;
    joins.mockRestore();
    expect(replies).toHaveLength(30);
    for (const { i, out } of replies) {
      const [alone] = generate(model, [all[i]!], { maxNewTokens: 8 });
      expect(out.tokens).toEqual(alone!.tokens);
      expect(out.finishReason).toBe(alone!.finishReason);
      expect(out.score).toBeCloseTo(alone!.score, 3);
    }
    // Newcomers joined the running batch rather than waiting for it to end, so that it stayed mostly full.
    expect(joinCalls).toBeGreaterThan(5);
    expect(Math.max(...widths)).toBe(6);
    expect(widths.reduce((a, b) => a + b, 0) / widths.length).toBeGreaterThan(4);
    await batcher.close();
  });

  it('keeps a lone request waiting maxWaitMs for company, and no longer', async () => {
    const sizes: number[] = [];
    const batcher = new DecodeBatcher(model, { maxWaitMs: 300, onBatch: (size) => sizes.push(size) });
    const started = performance.now();
    const first = batcher.submit({ source: sources[0]!, options: { maxNewTokens: 3 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const company = batcher.submit({ source: sources[1]!, options: { maxNewTokens: 3 } });
    await Promise.all([first, company]);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(5_000);
    // The second came within the window and joined the first.
    expect(sizes).toEqual([2]);
    await batcher.close();
  });

  it('calls onStart once per request, as it leaves the queue: in a new batch or joining a running one', async () => {
    const events: string[] = [];
    const one = new DecodeBatcher(model, { maxBatch: 1 });
    await Promise.all(
      [0, 1, 2].map((i) =>
        one.submit({ source: sources[i]!, options: { maxNewTokens: 3 }, onStart: () => events.push(`start ${i}`) }).then(() => events.push(`done ${i}`)),
      ),
    );
    // One place: a request starts only once the one before it has left its row (it may join that batch's next step).
    expect(events.filter((e) => e.startsWith('start'))).toEqual(['start 0', 'start 1', 'start 2']);
    for (const i of [0, 1, 2]) expect(events.indexOf(`start ${i}`)).toBeLessThan(events.indexOf(`done ${i}`));
    await one.close();
    const starts: number[] = [];
    const batcher = new DecodeBatcher(model);
    const first = batcher.submit({ source: unseen[0]!, options: { maxNewTokens: 12 }, onStart: () => starts.push(0) });
    // Arrives while the first decodes, and joins it at its next step.
    const joining = new Promise<GenerateOutput>((resolve, reject) => {
      setImmediate(() => batcher.submit({ source: unseen[1]!, options: { maxNewTokens: 12 }, onStart: () => starts.push(1) }).then(resolve, reject));
    });
    await Promise.all([first, joining]);
    expect(starts).toEqual([0, 1]);
    await batcher.close();
  });

  it('refuses requests beyond maxQueue with QueueFullError', async () => {
    const batcher = new DecodeBatcher(model, { maxQueue: 2, maxWaitMs: 10_000 });
    const first = outcome(batcher.submit({ source: sources[0]! }));
    const second = outcome(batcher.submit({ source: sources[1]! }));
    await expect(batcher.submit({ source: sources[2]! })).rejects.toBeInstanceOf(QueueFullError);
    expect(batcher.queueLength).toBe(2);
    // close() stops the wait for company: the two queued ones decode at once.
    await batcher.close();
    expect((await first).ok && (await second).ok).toBe(true);
  });

  it('rejects a request with bad options or source alone, without touching its batch', async () => {
    const batcher = new DecodeBatcher(model);
    const good = batcher.submit({ source: sources[0]!, options: { maxNewTokens: 12 } });
    await expect(batcher.submit({ source: sources[1]!, options: { maxNewTokens: 12, numBeams: 0 } })).rejects.toBeInstanceOf(RangeError);
    await expect(batcher.submit({ source: sources[1]!, options: { strategy: 'sample', temperature: -1 } })).rejects.toBeInstanceOf(RangeError);
    await expect(batcher.submit({ source: [5, TEST_VOCAB] })).rejects.toBeInstanceOf(RangeError);
    await expect(batcher.submit({ source: [5, 1.5] })).rejects.toBeInstanceOf(RangeError);
    expect((await good).tokens).toEqual(pairs[0]!.target);
    await batcher.close();
  });

  it('removes a request aborted while queued, rejecting it with the reason', async () => {
    const sizes: number[] = [];
    const batcher = new DecodeBatcher(model, { maxWaitMs: 30, onBatch: (size) => sizes.push(size) });
    const controller = new AbortController();
    const aborted = batcher.submit({ source: sources[0]!, signal: controller.signal });
    const kept = batcher.submit({ source: sources[1]!, options: { maxNewTokens: 12 } });
    expect(batcher.queueLength).toBe(2);
    const reason = new Error('client went away');
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    expect(batcher.queueLength).toBe(1);
    expect((await kept).tokens).toEqual(pairs[1]!.target);
    expect(sizes).toEqual([1]);
    // A signal aborted before submit rejects at once with a DOM AbortError.
    const already = new AbortController();
    already.abort();
    await expect(batcher.submit({ source: sources[0]!, signal: already.signal })).rejects.toMatchObject({ name: 'AbortError' });
    await batcher.close();
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', {}],
    ['beam 3', { strategy: 'beam', numBeams: 3 }],
  ])('abandons the row of a request aborted while decoding (%s)', async (_name, options) => {
    const long: GenerateOptions = { ...options, minNewTokens: 30, maxNewTokens: 30 };
    const controller = new AbortController();
    let steps = 0;
    const spy = vi.spyOn(model, 'step').mockImplementation(function (this: Transformer, ...args) {
      steps++;
      return Transformer.prototype.step.apply(this, args);
    });
    const batcher = new DecodeBatcher(model, {
      // The abort lands between the decoder's first steps.
      onBatch: () => setImmediate(() => controller.abort()),
    });
    try {
      const streamed: number[] = [];
      const aborted = outcome(batcher.submit({ source: unseen[0]!, options: long, signal: controller.signal, onToken: (id) => streamed.push(id) }));
      const kept = batcher.submit({ source: sources[0]!, options: { ...options, maxNewTokens: 12 } });
      expect(batcher.queueLength).toBe(2);
      const keptOut = await kept;
      const result = await aborted;
      expect(result.ok).toBe(false);
      expect(result.ok ? undefined : result.error).toMatchObject({ name: 'AbortError' });
      expect(keptOut.tokens).toEqual(pairs[0]!.target);
      // Without the abort the batch would have run 30 steps for the long request.
      expect(steps).toBeLessThan(15);
      expect(streamed.length).toBeLessThan(5);
      expect(batcher.inFlight).toBe(0);
    } finally {
      spy.mockRestore();
      await batcher.close();
    }
  });

  it('close() finishes queued and decoding requests, then refuses new ones', async () => {
    const events: string[] = [];
    const batcher = new DecodeBatcher(model, { maxBatch: 2 });
    const done = all.slice(0, 5).map((source, i) => batcher.submit({ source, options: { maxNewTokens: 10 } }).then(() => events.push(`request ${i}`)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(batcher.inFlight).toBe(2);
    expect(batcher.queueLength).toBe(3);
    await batcher.close().then(() => events.push('closed'));
    await Promise.all(done);
    expect(events).toHaveLength(6);
    expect(events[5]).toBe('closed');
    expect([batcher.queueLength, batcher.inFlight]).toEqual([0, 0]);
    await expect(batcher.submit({ source: sources[0]! })).rejects.toBeInstanceOf(BatcherClosedError);
    await batcher.close();
  });

  it.each<[string, GenerateOptions]>([
    ['greedy', { maxNewTokens: 12 }],
    ['beam 4', { strategy: 'beam', numBeams: 4, maxNewTokens: 12 }],
    ['sampling', { strategy: 'sample', temperature: 2, seed: 8, maxNewTokens: 12 }],
  ])('onToken streams exactly the final tokens, in order (%s)', async (_name, options) => {
    const batcher = new DecodeBatcher(model);
    const streamed: number[][] = all.map(() => []);
    const outputs = await Promise.all(all.map((source, i) => batcher.submit({ source, options, onToken: (id) => streamed[i]!.push(id) })));
    expect(streamed).toEqual(outputs.map((o) => o.tokens));
    expect(streamed.some((s) => s.length > 0)).toBe(true);
    await batcher.close();
  });

  it('fails only the request whose onToken throws', async () => {
    const batcher = new DecodeBatcher(model);
    const broken = batcher.submit({
      source: sources[0]!,
      onToken: () => {
        throw new Error('socket closed');
      },
    });
    const fine = batcher.submit({ source: sources[1]!, options: { maxNewTokens: 12 } });
    await expect(broken).rejects.toThrow('socket closed');
    expect((await fine).tokens).toEqual(pairs[1]!.target);
    await batcher.close();
  });

  it('rejects the whole batch when decoding throws, frees its tensors and goes on', async () => {
    const batcher = new DecodeBatcher(model);
    await batcher.submit({ source: sources[0]! });
    const before = tf.memory().numTensors;
    let calls = 0;
    const spy = vi.spyOn(model, 'step').mockImplementation(function (this: Transformer, ...args) {
      if (++calls === 3) throw new Error('kernel failed');
      return Transformer.prototype.step.apply(this, args);
    });
    try {
      const failed = await Promise.all(all.slice(0, 4).map((source) => outcome(batcher.submit({ source, options: { strategy: 'beam', numBeams: 2 } }))));
      for (const f of failed) expect(f.ok ? undefined : (f.error as Error).message).toBe('kernel failed');
    } finally {
      spy.mockRestore();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect((await batcher.submit({ source: sources[2]!, options: { maxNewTokens: 12 } })).tokens).toEqual(pairs[2]!.target);
    await batcher.close();
  });

  it('holds the number of live tensors across 200 mixed requests', async () => {
    const kinds: GenerateOptions[] = [
      { maxNewTokens: 6 },
      { strategy: 'beam', numBeams: 3, maxNewTokens: 5 },
      { strategy: 'sample', topK: 5, seed: 2, maxNewTokens: 7 },
      { noRepeatNgramSize: 2, maxNewTokens: 6 },
    ];
    const batcher = new DecodeBatcher(model, { maxBatch: 16, maxWaitMs: 2 });
    await batcher.submit({ source: sources[0]!, options: kinds[1]! });
    const before = tf.memory().numTensors;
    const requests: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const controller = new AbortController();
      requests.push(outcome(batcher.submit({ source: all[i % all.length]!, options: kinds[i % kinds.length]!, signal: controller.signal })));
      if (i % 17 === 0) controller.abort();
      // Arrivals spread over time, as a server sees them.
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(requests);
    await batcher.close();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('generateAsync equals generate', async () => {
    for (const options of [
      { maxNewTokens: 12 },
      { strategy: 'beam', numBeams: 4, maxNewTokens: 12 },
      { strategy: 'sample', seed: 4, maxNewTokens: 12 },
    ] as GenerateOptions[]) {
      expect(await generateAsync(model, all, options)).toEqual(generate(model, all, options));
    }
  });
});
