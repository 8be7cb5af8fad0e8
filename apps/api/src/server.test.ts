import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './testing/test-server.js';
import { runChatCli } from './chat-command.js';
import { startServer, type RunningServer } from './serve-command.js';
import { testServeSettings } from './testing/serve-settings.js';

let testServer: TestServer | undefined;
let run: TestServer['run'];
let server: RunningServer;

beforeAll(async () => {
  testServer = await startTestServer();
  ({ run, server } = testServer);
});

afterAll(() => testServer?.stop());

describe('the OpenAI-compatible endpoint, through the official openai client', () => {
  const client = () => new OpenAI({ baseURL: `${server.url}v1`, apiKey: 'unused', maxRetries: 0 });

  it('answers a chat completion like /v1/chat answers the message', async () => {
    const completion = await client().chat.completions.create({
      model: 'tiny',
      messages: [
        { role: 'system', content: '친절하게 답해' },
        { role: 'user', content: '오늘 뭐 먹지' },
      ],
      max_tokens: 10,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('tiny');
    const choice = completion.choices[0]!;
    expect(choice.message.role).toBe('assistant');
    expect(['stop', 'length']).toContain(choice.finish_reason);
    const own = await fetch(`${server.url}v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: '오늘 뭐 먹지', decoding: { maxNewTokens: 10 } }),
    }).then((r) => r.json() as Promise<{ reply: string; tokens: number }>);
    expect(choice.message.content).toBe(own.reply);
    expect(completion.usage?.completion_tokens).toBe(own.tokens);
  });

  it('streams the same reply as server-sent events, with usage when asked', async () => {
    const whole = await client().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: '심심해' }], max_tokens: 12 });
    const stream = await client().chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: '심심해' }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice?.delta.content) text += choice.delta.content;
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage?.completion_tokens).toBe(whole.usage?.completion_tokens);
    // Role chunk, at least one text chunk per token of a non-empty reply, finish chunk, usage chunk.
    expect(chunks).toBeGreaterThanOrEqual(3 + (text === '' ? 0 : 1));
  });

  it('ends the raw stream with "data: [DONE]"', async () => {
    const res = await fetch(`${server.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', stream: true, messages: [{ role: 'user', content: '안녕' }] }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await res.text();
    expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
    for (const event of body.trimEnd().split('\n\n')) expect(event.startsWith('data: ')).toBe(true);
  });

  it('maps the client-visible errors: unknown model 404, bad fields 400, unsupported options named', async () => {
    await expect(client().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: '안녕' }] })).rejects.toMatchObject({
      status: 404,
      param: 'model',
    });
    await expect(client().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: '안녕' }], n: 2 })).rejects.toMatchObject({
      status: 400,
      param: 'n',
    });
    await expect(client().chat.completions.create({ model: 'tiny', messages: [{ role: 'assistant', content: '안녕' }] })).rejects.toMatchObject({
      status: 400,
      param: 'messages',
    });
    await expect(client().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: '  ' }], stream: true })).rejects.toMatchObject({
      status: 400,
      param: 'messages.0.content',
    });
  });

  it('samples reproducibly with a seed and temperature', async () => {
    const ask = () =>
      client().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: '안녕' }], temperature: 1.3, seed: 11, max_tokens: 8 });
    const [a, b] = [await ask(), await ask()];
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
  });
});

describe('shutting down', () => {
  /** Sends the rest of a request begun on `socket` and reads the whole response (the server closes the connection). */
  async function finish(socket: Socket, rest: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    let raw = '';
    socket.on('data', (d: Buffer) => (raw += d.toString()));
    socket.write(rest);
    await once(socket, 'close');
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }

  it('finishes requests in flight and refuses later ones in the API error shape, with Retry-After', async () => {
    // A long batching window keeps the first request in flight while close() begins.
    const closing = await startServer(testServeSettings(run.dir, { maxWaitMs: 1500 }), pino({ level: 'silent' }));
    await closing.ready;
    const { port } = new URL(closing.url);
    const inFlight = fetch(`${closing.url}v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: '안녕' }),
    });
    // Requests begun before close() but complete only after it: their connections are busy, so close() keeps them open.
    const late = connect(Number(port), '127.0.0.1');
    const probe = connect(Number(port), '127.0.0.1');
    await Promise.all([once(late, 'connect'), once(probe, 'connect')]);
    late.write('GET /v1/models HTTP/1.1\r\nHost: localhost\r\n');
    probe.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n');
    await new Promise((r) => setTimeout(r, 300));
    const closed = closing.close();
    await new Promise((r) => setTimeout(r, 50));
    const [refused, ready] = await Promise.all([finish(late, '\r\n'), finish(probe, '\r\n')]);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['connection']).toBe('close');
    expect(JSON.parse(refused.body)).toEqual({ error: { message: 'the server is shutting down', type: 'server_error', param: null, code: 'shutting_down' } });
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'closing', model: 'tiny' });
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(typeof ((await res.json()) as { reply: string }).reply).toBe('string');
    await closed;
  });
});

describe('pnpm chat', () => {
  const io = (input = '') => {
    const stdin = new PassThrough();
    stdin.end(input);
    const out: string[] = [];
    const err: string[] = [];
    const output = new PassThrough();
    output.on('data', (d: Buffer) => out.push(d.toString()));
    return { io: { input: stdin, output, err: (l: string) => err.push(l), interactive: false }, out, err };
  };

  it('answers one message, as the server does', async () => {
    const t = io();
    expect(await runChatCli(['--model', run.dir, '--backend', 'wasm', '--max-new-tokens', '10', '오늘 뭐 먹지'], t.io)).toBe(0);
    const own = await fetch(`${server.url}v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: '오늘 뭐 먹지', decoding: { maxNewTokens: 10 } }),
    }).then((r) => r.json() as Promise<{ reply: string }>);
    expect(t.out.join('')).toBe(`${own.reply}\n`);
  });

  it('answers each line of its input in the loop, skipping blank ones', async () => {
    const t = io('안녕\n\n배고파\n');
    expect(await runChatCli(['--model', run.dir, '--backend', 'wasm', '--strategy', 'beam', '--beams', '2'], t.io)).toBe(0);
    // One reply line per non-blank input line (a reply may itself be empty).
    expect(t.out.join('').match(/\n/g)).toHaveLength(2);
  });

  it('refuses bad options with one line', async () => {
    const t = io();
    expect(await runChatCli(['--model', run.dir, '--temperature', '0.5', '안녕'], t.io)).toBe(2);
    expect(t.err.join('\n')).toContain('temperature: only used with strategy "sample"');
    const u = io();
    expect(await runChatCli(['--model', run.dir, '--strategy', 'beam', '--beams', '99', '안녕'], u.io)).toBe(2);
    expect(u.err.join('\n')).toContain('numBeams');
    const w = io();
    expect(await runChatCli(['--model', run.dir, '--wasm-threads', '0', '안녕'], w.io)).toBe(2);
    expect(w.err.join('\n')).toMatch(/--wasm-threads <n>.*expected a whole number of threads from 1 to 8, or auto; got "0"/u);
  });
});
