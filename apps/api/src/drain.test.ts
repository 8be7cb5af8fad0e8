/**
 * The drain before a stop (`--drain-ms`): out of readiness at once, still
 * serving for the drain, then closing as without it.
 */
import { initBackend } from '@hanmadi/model';
import { trainTinyModelDir } from '@hanmadi/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from './serve-command.js';
import { testServeSettings } from './testing/serve-settings.js';

let run: Awaited<ReturnType<typeof trainTinyModelDir>>;

beforeAll(async () => {
  await initBackend('wasm', () => {});
  run = await trainTinyModelDir();
});

afterAll(async () => {
  await run?.remove();
});

const chat = (url: string) =>
  fetch(`${url}v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: '안녕', decoding: { maxNewTokens: 4 } }),
  });

describe('draining before close (drainMs)', () => {
  it('turns /readyz 503 at once, answers /v1/chat 200 throughout the drain, then closes', async () => {
    const drainMs = 1500;
    const server = await startServer(testServeSettings(run.dir, { drainMs }), pino({ level: 'silent' }));
    await server.ready;
    expect((await fetch(`${server.url}readyz`)).status).toBe(200);
    const started = performance.now();
    let closedAt: number | undefined;
    const closed = server.close().then(() => (closedAt = performance.now()));

    const ready = await fetch(`${server.url}readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'closing', model: 'tiny' });
    // New requests, well into the drain, are still answered.
    for (const at of [0, drainMs / 2]) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + at - performance.now())));
      const res = await chat(server.url);
      expect(res.status).toBe(200);
      expect(typeof ((await res.json()) as { reply: string }).reply).toBe('string');
      expect((await fetch(`${server.url}healthz`)).status).toBe(200);
    }
    expect(closedAt).toBeUndefined();

    await closed;
    expect(closedAt! - started).toBeGreaterThanOrEqual(drainMs - 5);
    await expect(fetch(`${server.url}readyz`)).rejects.toThrow();
  });

  it('closes at once without a drain (the default)', async () => {
    const server = await startServer(testServeSettings(run.dir), pino({ level: 'silent' }));
    await server.ready;
    const started = performance.now();
    await server.close();
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(fetch(`${server.url}readyz`)).rejects.toThrow();
  });
});
