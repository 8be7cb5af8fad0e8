import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import type { RunningServer } from '../serve-command.js';

let testServer: TestServer | undefined;
let server: RunningServer;

beforeAll(async () => {
  testServer = await startTestServer();
  ({ server } = testServer);
});

afterAll(() => testServer?.stop());

const client = () => new OpenAI({ baseURL: `${server.url}v1`, apiKey: 'unused', maxRetries: 0 });
const MESSAGE = '오늘 뭐 먹지';
const ask = (extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
  client().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: MESSAGE }], temperature: 0, max_tokens: 16, ...extra });

/** A stop string from the middle of the unstopped reply, and the text before its first occurrence. */
async function stopInReply(): Promise<{ whole: OpenAI.ChatCompletion; stop: string; before: string }> {
  const whole = await ask();
  const text = whole.choices[0]!.message.content!;
  expect(text.length, `reply "${text}" too short to cut`).toBeGreaterThanOrEqual(3);
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  return { whole, stop, before: text.slice(0, text.indexOf(stop)) };
}

describe('stop (OpenAI: the reply ends before the stop sequence)', () => {
  it('ends the reply before the first stop string, with finish_reason "stop" and fewer tokens', async () => {
    const { whole, stop, before } = await stopInReply();
    for (const stops of [stop, ['없는말', stop]]) {
      const cut = await ask({ stop: stops });
      expect(cut.choices[0]!.message.content).toBe(before);
      expect(cut.choices[0]!.finish_reason).toBe('stop');
      expect(cut.usage!.completion_tokens).toBeLessThanOrEqual(whole.usage!.completion_tokens);
    }
    // A stop string that never appears changes nothing.
    const same = await ask({ stop: ['없는말'] });
    expect(same.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
    expect(same.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
  });

  it('streams the same cut reply, and no chunk ever holds the stop string', async () => {
    const { stop, before } = await stopInReply();
    const stream = await client().chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: MESSAGE }],
      temperature: 0,
      max_tokens: 16,
      stream: true,
      stop: [stop],
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) text += choice.delta.content;
      if (choice?.finish_reason) finish = choice.finish_reason;
      expect(text.includes(stop)).toBe(false);
    }
    expect(text).toBe(before);
    expect(finish).toBe('stop');
  });

  it('cuts beam search replies too, and /v1/chat takes stop as well', async () => {
    const beam = await fetch(`${server.url}v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: MESSAGE, decoding: { strategy: 'beam', numBeams: 2, maxNewTokens: 16 } }),
    }).then((r) => r.json() as Promise<{ reply: string }>);
    expect(beam.reply.length).toBeGreaterThanOrEqual(2);
    const stop = beam.reply.slice(1, 2);
    const cut = await fetch(`${server.url}v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: MESSAGE, decoding: { strategy: 'beam', numBeams: 2, maxNewTokens: 16 }, stop: [stop] }),
    }).then((r) => r.json() as Promise<{ reply: string; finishReason: string; score: number | null }>);
    expect(cut).toMatchObject({ reply: beam.reply.slice(0, beam.reply.indexOf(stop)), finishReason: 'stop', score: null });
  });
});

describe('the fields real clients send', () => {
  it('accepts user, logprobs: false, response_format text, empty tools and tool_choice "none", and answers as without them', async () => {
    const plain = await ask();
    const dressed = await ask({
      user: 'user-1234',
      logprobs: false,
      response_format: { type: 'text' },
      tools: [],
      tool_choice: 'none',
      frequency_penalty: 0,
      presence_penalty: 0,
    });
    expect(dressed.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
  });

  const refused: [string, Record<string, unknown>, string][] = [
    ['logprobs: true', { logprobs: true }, 'logprobs'],
    ['JSON mode', { response_format: { type: 'json_object' } }, 'response_format.type'],
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
    ['a tool choice', { tool_choice: 'auto' }, 'tool_choice'],
    ['five stop strings', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['an empty stop string', { stop: '' }, 'stop'],
    ['a penalty beyond 2', { presence_penalty: 2.5 }, 'presence_penalty'],
    ['an unsupported field', { top_logprobs: 2 }, 'top_logprobs'],
    ['another', { logit_bias: { '1': 5 } }, 'logit_bias'],
  ];
  it.each(refused)('refuses %s with a 400 naming the field', async (_what, extra, param) => {
    const res = await fetch(`${server.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: MESSAGE }], ...extra }),
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { param: string; message: string } };
    expect(error.param).toBe(param);
    expect(error.message.startsWith(`${param}:`)).toBe(true);
  });

  it('applies frequency and presence penalties: they change greedy replies, and 0 is the same as none', async () => {
    const prompts = ['안녕', '심심해', '오늘 뭐 먹지', '배고파', '좋은 아침'];
    let changed = 0;
    for (const content of prompts) {
      const base = { model: 'tiny', messages: [{ role: 'user' as const, content }], temperature: 0, max_tokens: 16 };
      const [plain, zero, penalised] = await Promise.all([
        client().chat.completions.create(base),
        client().chat.completions.create({ ...base, frequency_penalty: 0, presence_penalty: 0 }),
        client().chat.completions.create({ ...base, frequency_penalty: -2, presence_penalty: -2 }),
      ]);
      expect(zero.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
      if (penalised.choices[0]!.message.content !== plain.choices[0]!.message.content) changed++;
    }
    expect(changed).toBeGreaterThan(0);
  });
});

describe("a second client library: LangChain's ChatOpenAI", () => {
  const chat = (options: { stop?: string[] } = {}) =>
    new ChatOpenAI({
      model: 'tiny',
      apiKey: 'unused',
      temperature: 0,
      maxTokens: 16,
      maxRetries: 0,
      configuration: { baseURL: `${server.url}v1` },
      ...options,
    });

  it('invokes and streams the same reply as the openai client gets', async () => {
    const expected = (await ask()).choices[0]!.message.content;
    const message = await chat().invoke(MESSAGE);
    expect(message.content).toBe(expected);
    let streamed = '';
    for await (const chunk of await chat().stream(MESSAGE)) streamed += String(chunk.content);
    expect(streamed).toBe(expected);
  });

  it('passes stop through', async () => {
    const { stop, before } = await stopInReply();
    expect((await chat({ stop: [stop] }).invoke(MESSAGE)).content).toBe(before);
  });
});
