import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@hanmadi/model';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from './app.js';
import { ChatModel, DEFAULT_BATCHING } from './chat-model.js';
import { trainTinyModelDir } from '@hanmadi/testing';

let run: Awaited<ReturnType<typeof trainTinyModelDir>>;

beforeAll(async () => {
  await initBackend('wasm', () => {});
  run = await trainTinyModelDir(1);
});

afterAll(async () => {
  await run?.remove();
});

const REQUESTS = 10_000;
const WAVE = 40;

/** Every kind of request the service answers, refusals included, in turn. */
const KINDS: { url: string; payload: unknown }[] = [
  { url: '/v1/chat', payload: { message: '안녕', decoding: { maxNewTokens: 4 } } },
  { url: '/v1/chat', payload: { message: '오늘 너무 힘들어', decoding: { strategy: 'beam', numBeams: 3, maxNewTokens: 4 } } },
  { url: '/v1/chat', payload: { message: '배고파', decoding: { strategy: 'sample', seed: 3, topK: 20, maxNewTokens: 4 } } },
  { url: '/v1/chat/completions', payload: { model: 'tiny', messages: [{ role: 'user', content: '심심해' }], max_tokens: 4 } },
  { url: '/v1/chat/completions', payload: { model: 'tiny', messages: [{ role: 'user', content: '심심해' }], max_tokens: 4, stream: true } },
  { url: '/v1/chat', payload: { message: '   ' } },
  { url: '/v1/chat', payload: { message: '안녕', decoding: { numBeams: 2 } } },
];

it(`leaves tf.memory().numTensors flat across ${REQUESTS} requests`, async () => {
  const model = await ChatModel.load(run.dir, { ...DEFAULT_BATCHING, maxQueue: 1024 });
  await model.warmUp();
  const app = await buildApp({ model, logger: false });
  try {
    const send = (i: number) => {
      const kind = KINDS[i % KINDS.length]!;
      return app.inject({ method: 'POST', url: kind.url, payload: kind.payload as Record<string, unknown> });
    };
    // One round of each kind first: lazily created kernels and constants are not leaks.
    await Promise.all(KINDS.map((_, i) => send(i)));
    const before = tf.memory().numTensors;
    const statuses = new Map<number, number>();
    for (let sent = 0; sent < REQUESTS; sent += WAVE) {
      const wave = await Promise.all(Array.from({ length: Math.min(WAVE, REQUESTS - sent) }, (_, j) => send(sent + j)));
      for (const r of wave) statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    }
    const after = tf.memory().numTensors;
    const refused = Array.from({ length: REQUESTS }, (_, i) => i % KINDS.length).filter((k) => k >= 5).length;
    expect(Object.fromEntries(statuses)).toEqual({ 200: REQUESTS - refused, 400: refused });
    expect(after).toBe(before);
  } finally {
    await app.close();
    await model.close();
  }
});
