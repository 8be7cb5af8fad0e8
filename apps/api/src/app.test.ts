import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { initBackend, resolveGenerateOptions } from '@hanmadi/model';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type AppOptions } from './app.js';
import { ChatModel, DEFAULT_BATCHING, type BatchingOptions } from './chat-model.js';
import { trainTinyModelDir } from '@hanmadi/testing';

let run: Awaited<ReturnType<typeof trainTinyModelDir>>;
const opened: { app: FastifyInstance; model: ChatModel }[] = [];

async function serve(
  options: Partial<AppOptions> = {},
  batching: Partial<BatchingOptions> = {},
  warm = true,
): Promise<{ app: FastifyInstance; model: ChatModel }> {
  const model = await ChatModel.load(run.dir, { ...DEFAULT_BATCHING, ...batching });
  if (warm) await model.warmUp();
  const app = await buildApp({ model, logger: false, ...options });
  opened.push({ app, model });
  return { app, model };
}

const chat = (app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}, query = '') =>
  app.inject({ method: 'POST', url: `/v1/chat${query}`, payload: payload as string, headers: { 'content-type': 'application/json', ...headers } });

beforeAll(async () => {
  await initBackend('wasm', () => {});
  run = await trainTinyModelDir();
});

afterAll(async () => {
  for (const { app, model } of opened) {
    await app.close();
    await model.close();
  }
  await run?.remove();
});

describe('health, readiness, models, docs', () => {
  it('is live at once, ready only after warm-up, and not ready while closing', async () => {
    const { app, model } = await serve({}, {}, false);
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const before = await app.inject('/readyz');
    expect(before.statusCode).toBe(503);
    expect(before.json()).toEqual({ status: 'loading', model: 'tiny' });
    expect((await chat(app, { message: '안녕' })).headers['retry-after']).toBe('1');
    await model.warmUp();
    const after = await app.inject('/readyz');
    expect(after.statusCode).toBe(200);
    expect(after.json().status).toBe('ready');
  });

  it('lists the served model and documents the API from the schemas', async () => {
    const { app } = await serve();
    const models = (await app.inject('/v1/models')).json();
    expect(models.object).toBe('list');
    expect(models.data.map((m: { id: string }) => m.id)).toEqual(['tiny']);
    const spec = (await app.inject('/docs/json')).json();
    const chatBody = spec.paths['/v1/chat'].post.requestBody.content['application/json'].schema;
    expect(chatBody.required).toContain('message');
    expect(Object.keys(chatBody.properties.decoding.properties)).toContain('noRepeatNgramSize');
    expect(spec.paths['/v1/chat/completions'].post).toBeDefined();
    const page = await app.inject('/docs');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('swagger');
  });

  it('serves the chat page with the model id and answers unknown routes with a JSON 404', async () => {
    const { app } = await serve();
    const page = await app.inject('/');
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('const MODEL = "tiny"');
    const missing = await app.inject('/nope');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('not_found');
  });

  it('sends security headers: a CSP on the page that admits its own inline code only, nosniff on the API', async () => {
    const { app } = await serve();
    const page = await app.inject('/');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    // Each inline <script> and <style> of the page is admitted by its hash.
    for (const [, tag, body] of page.body.matchAll(/<(script|style)[^>]*>([\s\S]*?)<\/\1>/g)) {
      const hash = `'sha256-${createHash('sha256').update(body!).digest('base64')}'`;
      expect(new RegExp(`${tag}-src [^;]*${hash.replace(/[+/]/g, '\\$&')}`).test(csp), `${tag} ${hash}`).toBe(true);
    }
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    for (const res of [await app.inject('/v1/models'), await chat(app, { message: '' })]) {
      expect(res.headers['content-type']).toMatch(/application\/json/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('serves the page with the message limit the server enforces', async () => {
    const { app } = await serve({ limits: { maxMessageChars: 123, requestTimeoutMs: 30_000 } });
    const page = (await app.inject('/')).body;
    expect(page).toMatch(/<input id="message"[^>]* maxlength="123"/);
    expect(page).not.toContain('maxlength="2000"');
  });
});

describe('POST /v1/chat', () => {
  let app: FastifyInstance;
  let model: ChatModel;
  beforeAll(async () => ({ app, model } = await serve()));

  it('replies with text, finish reason, tokens and latency, as the model decodes alone', async () => {
    const res = await chat(app, { message: '오늘 날씨 어때?', decoding: { maxNewTokens: 12 } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['finishReason', 'latencyMs', 'reply', 'score', 'tokenIds', 'tokens']);
    expect(typeof body.reply).toBe('string');
    expect(['eos', 'length']).toContain(body.finishReason);
    expect(body.tokens).toBe(body.tokenIds.length);
    expect(body.latencyMs).toBeGreaterThan(0);
    const direct = await model.reply('오늘 날씨 어때?', resolveGenerateOptions({ maxNewTokens: 12 }, model.generationConfig));
    expect(body.tokenIds).toEqual(direct.tokenIds);
    expect(body.reply).toBe(direct.reply);
  });

  it('normalises messages to NFC: decomposed Hangul gets the same reply', async () => {
    const nfc = (await chat(app, { message: '배고파' })).json();
    const nfd = (await chat(app, { message: '배고파'.normalize('NFD') })).json();
    expect('배고파'.normalize('NFD')).not.toBe('배고파');
    expect(nfd.tokenIds).toEqual(nfc.tokenIds);
  });

  it('applies decoding options: beam search, sampling with a seed, a length cap', async () => {
    const capped = (await chat(app, { message: '안녕', decoding: { maxNewTokens: 1, minNewTokens: 1 } })).json();
    expect(capped.tokens).toBe(1);
    expect(capped.finishReason).toBe('length');
    const beam = await chat(app, { message: '안녕', decoding: { strategy: 'beam', numBeams: 3, lengthPenalty: 0.6 } });
    expect(beam.statusCode).toBe(200);
    const a = (await chat(app, { message: '안녕', decoding: { strategy: 'sample', seed: 7, temperature: 1.5, topK: 50 } })).json();
    const b = (await chat(app, { message: '안녕', decoding: { strategy: 'sample', seed: 7, temperature: 1.5, topK: 50 } })).json();
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  const bad: [string, unknown, number, string | null][] = [
    ['an empty message', { message: '' }, 400, 'message'],
    ['a whitespace-only message', { message: ' \t\n\u3000' }, 400, 'message'],
    ['a message of the wrong type', { message: 5 }, 400, 'message'],
    ['a missing message', {}, 400, 'message'],
    ['an unknown field', { message: '안녕', mesage: 'x' }, 400, 'mesage'],
    ['an unknown decoding field', { message: '안녕', decoding: { beams: 2 } }, 400, 'decoding.beams'],
    ['history of the wrong shape', { message: '안녕', history: [{ role: 'bot', content: 'x' }] }, 400, 'history.0.role'],
    ['a temperature out of range', { message: '안녕', decoding: { strategy: 'sample', temperature: 0 } }, 400, 'decoding.temperature'],
    ['too many beams', { message: '안녕', decoding: { strategy: 'beam', numBeams: 64 } }, 400, 'decoding.numBeams'],
    ['a fractional length', { message: '안녕', decoding: { maxNewTokens: 2.5 } }, 400, 'decoding.maxNewTokens'],
    ['top-p above 1', { message: '안녕', decoding: { strategy: 'sample', topP: 1.5 } }, 400, 'decoding.topP'],
    ['a sampling option with greedy decoding', { message: '안녕', decoding: { temperature: 0.7 } }, 400, 'decoding.temperature'],
    ['a minimum above the maximum', { message: '안녕', decoding: { minNewTokens: 5, maxNewTokens: 2 } }, 400, 'decoding.minNewTokens'],
    ['a message over the limit', { message: '가'.repeat(501) }, 413, 'message'],
    ['a length far beyond its limit', { message: '안녕', decoding: { maxNewTokens: 1e308 } }, 400, 'decoding.maxNewTokens'],
    ['a field named __proto__', '{"message": "안녕", "__proto__": {"admin": true}}', 400, '__proto__'],
    ['a nested __proto__', '{"message": "안녕", "decoding": {"__proto__": {}}}', 400, 'decoding.__proto__'],
    ['a constructor prototype', '{"message": "안녕", "constructor": {"prototype": {}}}', 400, 'constructor.prototype'],
  ];
  it.each(bad)('refuses %s, naming the field', async (_what, payload, status, param) => {
    const res = await chat(app, typeof payload === 'string' ? payload : JSON.stringify(payload));
    expect(res.statusCode).toBe(status);
    const { error } = res.json();
    expect(error.param).toBe(param);
    expect(error.message).toContain(param);
    if (status === 413) expect(error.message).toContain('500');
    // The limit named is the schema's, not zod's safe-integer bound.
    expect(error.message).not.toContain(String(Number.MAX_SAFE_INTEGER));
  });

  it('names the real limit of max_tokens on /v1/chat/completions, however far beyond it', async () => {
    for (const max_tokens of [513, 1e308]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        payload: { model: 'tiny', messages: [{ role: 'user', content: '안녕' }], max_tokens },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ param: 'max_tokens', code: 'invalid_value' });
      expect(res.json().error.message).toMatch(/^max_tokens: .*512/);
    }
  });

  it('accepts a message of exactly the limit', async () => {
    expect((await chat(app, { message: '가'.repeat(500), decoding: { maxNewTokens: 2 } })).statusCode).toBe(200);
  });

  it('refuses bad JSON and empty bodies with 400, other content types with 415, huge bodies with 413', async () => {
    const broken = await chat(app, '{"message": "안녕"');
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error.code).toBe('invalid_json');
    const empty = await chat(app, '');
    expect(empty.statusCode).toBe(400);
    const text = await app.inject({ method: 'POST', url: '/v1/chat', payload: 'message=안녕', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('unsupported_media_type');
    const huge = await chat(app, JSON.stringify({ message: '가'.repeat(100_000) }));
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error.code).toBe('body_too_large');
  });
});

describe('queue, timeout, key, rate limit, logs', () => {
  it('answers 503 with Retry-After when the queue is full, and serves the rest', async () => {
    const { app } = await serve({}, { maxQueue: 2, maxBatch: 2, maxWaitMs: 100 });
    const results = await Promise.all(Array.from({ length: 8 }, () => chat(app, { message: '안녕', decoding: { maxNewTokens: 3 } })));
    const refused = results.filter((r) => r.statusCode === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.statusCode === 200).length).toBeGreaterThanOrEqual(2);
    for (const r of refused) {
      expect(r.headers['retry-after']).toBe('1');
      expect(r.json().error.code).toBe('queue_full');
    }
  });

  it('answers 504 when a request outlives its time limit', async () => {
    const { app } = await serve({ limits: { maxMessageChars: 500, requestTimeoutMs: 5 } });
    // 39 decoder steps, each followed by a turn of the event loop, outlast 5 ms.
    const res = await chat(app, { message: '안녕', decoding: { minNewTokens: 39, maxNewTokens: 39 } });
    expect(res.statusCode).toBe(504);
    expect(res.json().error.code).toBe('timeout');
  });

  it('requires the bearer key on /v1 only when one is set', async () => {
    const { app } = await serve({ apiKey: 's3cret' });
    const none = await chat(app, { message: '안녕' });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.type).toBe('authentication_error');
    expect((await chat(app, { message: '안녕' }, { authorization: 'Bearer wrong' })).statusCode).toBe(401);
    expect((await chat(app, { message: '안녕' }, { authorization: 'Bearer s3cret' })).statusCode).toBe(200);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    expect((await app.inject('/v1/models')).statusCode).toBe(401);
  });

  it('rate-limits /v1 per client with 429 and Retry-After', async () => {
    const { app } = await serve({ rateLimitPerMinute: 2 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await chat(app, { message: '안녕', decoding: { maxNewTokens: 2 } })).statusCode);
    expect(codes).toEqual([200, 200, 429]);
    const limited = await chat(app, { message: '안녕' });
    expect(limited.json().error.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
  });

  it('does not log message text at info level', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const { app } = await serve({ logger: pino({ level: 'info' }, sink) });
    const secret = '비밀번호는코끼리';
    expect((await chat(app, { message: secret })).statusCode).toBe(200);
    expect((await chat(app, { message: secret, extra: 1 })).statusCode).toBe(400);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain(secret);
  });

  it('logs request paths without their query strings, which may hold keys', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const { app } = await serve({ logger: pino({ level: 'info' }, sink) });
    expect((await app.inject('/v1/models?api_key=sk-live-123&token=tok-456')).statusCode).toBe(200);
    expect((await chat(app, { message: '안녕', decoding: { maxNewTokens: 2 } }, {}, '?access_token=at-789')).statusCode).toBe(200);
    const log = lines.join('');
    for (const secret of ['sk-live-123', 'tok-456', 'at-789']) expect(log).not.toContain(secret);
    expect(log).toContain('"url":"/v1/models?api_key=[Redacted]&token=[Redacted]"');
    expect(log).toContain('"url":"/v1/chat?access_token=[Redacted]"');
  });
});

describe('GET /metrics', () => {
  it('exposes latency, generated tokens, queue length, batch sizes and requests per decoder step', async () => {
    const { app } = await serve();
    await Promise.all(Array.from({ length: 4 }, () => chat(app, { message: '배고파', decoding: { maxNewTokens: 4 } })));
    const res = await app.inject('/metrics');
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    const text = res.body;
    expect(text).toMatch(/hanmadi_http_request_duration_seconds_count\{method="POST",route="\/v1\/chat",status="200"\} 4/);
    const generated = Number(/hanmadi_generated_tokens_total (\d+)/.exec(text)?.[1]);
    expect(generated).toBeGreaterThan(0);
    expect(text).toMatch(/hanmadi_queue_length 0/);
    // Warm-up ran before the app existed: the batches hold exactly the four requests.
    expect(Number(/hanmadi_batch_size_sum (\d+)/.exec(text)?.[1])).toBe(4);
    // Each of the four requests takes one step at least and four at most (maxNewTokens 4).
    const steps = Number(/hanmadi_decode_step_requests_count (\d+)/.exec(text)?.[1]);
    const requestSteps = Number(/hanmadi_decode_step_requests_sum (\d+)/.exec(text)?.[1]);
    expect(steps).toBeGreaterThanOrEqual(1);
    expect(requestSteps).toBeGreaterThanOrEqual(4);
    expect(requestSteps).toBeLessThanOrEqual(16);
  });
});
