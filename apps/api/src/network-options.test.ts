import { Writable } from 'node:stream';
import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { initBackend } from '@hanmadi/model';
import { trainTinyModelDir } from '@hanmadi/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type AppOptions } from './app.js';
import { ChatModel } from './chat-model.js';
import { parseCorsOrigin, parseTrustProxy } from './network-options.js';
import { serveOptions, startServer, type ServeSettings } from './serve-command.js';
import { testServeSettings } from './testing/serve-settings.js';

describe('parsing --cors-origin and --trust-proxy', () => {
  it('takes * or a comma list of origins, and refuses what a browser never sends as an Origin', () => {
    expect(parseCorsOrigin('*')).toBe('*');
    expect(parseCorsOrigin('https://chat.example.com, http://localhost:5173')).toEqual(['https://chat.example.com', 'http://localhost:5173']);
    for (const bad of ['https://chat.example.com/', 'chat.example.com', 'ftp://x.example', '']) expect(() => parseCorsOrigin(bad), bad).toThrow(/origin/);
  });

  it('takes true, a hop count, or a comma list of addresses and CIDRs', () => {
    expect(parseTrustProxy('true')).toBe(true);
    expect(parseTrustProxy('false')).toBe(false);
    expect(parseTrustProxy('2')).toBe(2);
    expect(parseTrustProxy('10.0.0.0/8, 192.168.1.7,::1,fd00::/8')).toEqual(['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8']);
    for (const bad of ['0', 'yes', '10.0.0.0/33', '10.0.0', 'fd00::/129', '1.2.3.4/8/8']) expect(() => parseTrustProxy(bad), bad).toThrow();
  });

  it('reads each flag from its HANMADI_* variable too, the flag winning', () => {
    const env = { HANMADI_CORS_ORIGIN: 'https://a.example', HANMADI_SERVED_MODEL_NAME: 'hanmadi-ko', HANMADI_TRUST_PROXY: '10.0.0.0/8' };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const fromEnv = serveOptions(new Command()).parse([], { from: 'user' }).opts<ServeSettings>();
      expect(fromEnv).toMatchObject({ corsOrigin: ['https://a.example'], servedModelName: 'hanmadi-ko', trustProxy: ['10.0.0.0/8'] });
      const fromFlags = serveOptions(new Command())
        .parse(['--cors-origin', '*', '--served-model-name', 'other', '--trust-proxy', '1'], { from: 'user' })
        .opts<ServeSettings>();
      expect(fromFlags).toMatchObject({ corsOrigin: '*', servedModelName: 'other', trustProxy: 1 });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const defaults = serveOptions(new Command()).parse([], { from: 'user' }).opts<ServeSettings>();
    expect(defaults.corsOrigin).toBeUndefined();
    expect(defaults.trustProxy).toBeUndefined();
  });
});

describe('the flags on a running service', () => {
  let run: Awaited<ReturnType<typeof trainTinyModelDir>>;
  let model: ChatModel;
  const apps: FastifyInstance[] = [];
  const app = async (options: Partial<AppOptions>) => {
    const built = await buildApp({ model, logger: false, ...options });
    apps.push(built);
    return built;
  };

  beforeAll(async () => {
    await initBackend('wasm', () => {});
    run = await trainTinyModelDir();
    model = await ChatModel.load(run.dir);
  });

  afterAll(async () => {
    for (const a of apps) await a.close();
    await model?.close();
    await run?.remove();
  });

  it('--cors-origin: allowed origins get CORS headers, preflights pass before the API key, others and the default get none', async () => {
    const cors = await app({ corsOrigins: ['https://chat.example.com'], apiKey: 'k' });
    const allowed = await cors.inject({ url: '/v1/models', headers: { origin: 'https://chat.example.com', authorization: 'Bearer k' } });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://chat.example.com');
    const refusedKey = await cors.inject({ url: '/v1/models', headers: { origin: 'https://chat.example.com' } });
    expect(refusedKey.statusCode).toBe(401);
    expect(refusedKey.headers['access-control-allow-origin']).toBe('https://chat.example.com');
    const preflight = await cors.inject({
      method: 'OPTIONS',
      url: '/v1/chat/completions',
      headers: { origin: 'https://chat.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(String(preflight.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
    const other = await cors.inject({ url: '/v1/models', headers: { origin: 'https://evil.example', authorization: 'Bearer k' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const any = await app({ corsOrigins: '*' });
    expect((await any.inject({ url: '/v1/models', headers: { origin: 'https://x.example' } })).headers['access-control-allow-origin']).toBe('*');
    const off = await app({});
    expect((await off.inject({ url: '/v1/models', headers: { origin: 'https://chat.example.com' } })).headers['access-control-allow-origin']).toBeUndefined();
  });

  it('--trust-proxy: rate limits and logs see the client named by X-Forwarded-For, only from trusted proxies', async () => {
    const models = (a: FastifyInstance, xff: string, remoteAddress = '10.1.2.3') =>
      a.inject({ url: '/v1/models', remoteAddress, headers: { 'x-forwarded-for': xff } });
    const trusted = await app({ rateLimitPerMinute: 1, trustProxy: ['10.0.0.0/8'] });
    expect((await models(trusted, '203.0.113.1')).statusCode).toBe(200);
    expect((await models(trusted, '203.0.113.2')).statusCode).toBe(200);
    expect((await models(trusted, '203.0.113.1')).statusCode).toBe(429);
    // A peer outside the trusted list is the client itself, whatever it forwards.
    expect((await models(trusted, '203.0.113.3', '198.51.100.9')).statusCode).toBe(200);
    expect((await models(trusted, '203.0.113.4', '198.51.100.9')).statusCode).toBe(429);
    const untrusted = await app({ rateLimitPerMinute: 1 });
    expect((await models(untrusted, '203.0.113.1')).statusCode).toBe(200);
    expect((await models(untrusted, '203.0.113.2')).statusCode).toBe(429);

    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
    const logged = await app({ trustProxy: 1, logger: pino({ level: 'info' }, sink) });
    await models(logged, '198.51.100.7, 203.0.113.5');
    const addresses = lines
      .map((l) => JSON.parse(l) as { req?: { remoteAddress?: string } })
      .flatMap((l) => (l.req?.remoteAddress ? [l.req.remoteAddress] : []));
    expect(addresses).toEqual(['203.0.113.5']);
    const everyProxy = await app({ rateLimitPerMinute: 1, trustProxy: true });
    expect((await models(everyProxy, '198.51.100.7, 203.0.113.5')).statusCode).toBe(200);
    expect((await models(everyProxy, '198.51.100.7, 203.0.113.6')).statusCode).toBe(429);
  });

  it('--served-model-name: the id /v1/models and replies report, and the one requests must name', async () => {
    const server = await startServer(testServeSettings(run.dir, { servedModelName: 'hanmadi-ko' }), pino({ level: 'silent' }));
    try {
      await server.ready;
      const listed = (await (await fetch(`${server.url}v1/models`)).json()) as { data: { id: string }[] };
      expect(listed.data.map((m) => m.id)).toEqual(['hanmadi-ko']);
      const complete = (name: string) =>
        fetch(`${server.url}v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: name, messages: [{ role: 'user', content: '안녕' }], max_tokens: 4 }),
        });
      const ok = await complete('hanmadi-ko');
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { model: string }).model).toBe('hanmadi-ko');
      const wrong = await complete('tiny');
      expect(wrong.status).toBe(404);
      expect(((await wrong.json()) as { error: { message: string } }).error.message).toContain('"hanmadi-ko"');
      expect(((await (await fetch(`${server.url}readyz`)).json()) as { model: string }).model).toBe('hanmadi-ko');
    } finally {
      await server.close();
    }
  });
});
