import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { GENERATION_CONFIG_FILE, initBackend, ModelDirError, type GenerationConfig } from '@hanmadi/model';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from './app.js';
import { runChatCli } from './chat-command.js';
import { ChatModel } from './chat-model.js';
import { startServer } from './serve-command.js';
import { trainTinyModelDir } from '@hanmadi/testing';
import { testServeSettings } from './testing/serve-settings.js';

// Sampling, exactly three tokens (EOS forbidden before the third), and a beam width that only beam search may take.
const CONFIG: GenerationConfig = { strategy: 'sample', temperature: 1.5, topK: 5, maxNewTokens: 3, minNewTokens: 3, noRepeatNgramSize: 2, numBeams: 3 };
const MESSAGE = '오늘 뭐 먹지';

let run: Awaited<ReturnType<typeof trainTinyModelDir>>;
let dir: string;
let app: FastifyInstance;
let model: ChatModel;

/** A copy of the trained run whose generation_config.json holds `text`. */
function copyWith(name: string, text: string): string {
  const copy = join(dirname(run.dir), name);
  cpSync(run.dir, copy, { recursive: true });
  writeFileSync(join(copy, GENERATION_CONFIG_FILE), text);
  return copy;
}

beforeAll(async () => {
  await initBackend('wasm', () => {});
  run = await trainTinyModelDir(1);
  dir = copyWith('configured', JSON.stringify(CONFIG));
  model = await ChatModel.load(dir);
  await model.warmUp();
  app = await buildApp({ model, logger: false });
});

afterAll(async () => {
  await app?.close();
  await model?.close();
  await run?.remove();
});

const chat = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/chat', payload: payload as Record<string, unknown> });
const completion = (payload: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'configured', messages: [{ role: 'user', content: MESSAGE }], ...payload } });

describe('a model directory with a generation_config.json', () => {
  it('is loaded with the model', () => {
    expect(model.generationConfig).toEqual(CONFIG);
  });

  it('decodes what /v1/chat leaves out with the config: its strategy, sampling fields and lengths', async () => {
    const res = (await chat({ message: MESSAGE })).json();
    expect(res.tokens).toBe(3);
    expect(res.finishReason).toBe('length');
    const direct = await model.reply(MESSAGE, { strategy: 'sample', temperature: 1.5, topK: 5, maxNewTokens: 3, minNewTokens: 3, noRepeatNgramSize: 2 });
    expect(res.tokenIds).toEqual(direct.tokenIds);
  });

  it("lets the request's options win, and gives beam search the config's beam width", async () => {
    expect((await chat({ message: MESSAGE, decoding: { maxNewTokens: 6, minNewTokens: 6 } })).json().tokens).toBe(6);
    expect((await chat({ message: MESSAGE, decoding: { maxNewTokens: 1 } })).json().tokens).toBe(1);
    const greedy = (await chat({ message: MESSAGE, decoding: { strategy: 'greedy' } })).json();
    expect(greedy.tokenIds).toEqual((await model.reply(MESSAGE, { maxNewTokens: 3, minNewTokens: 3, noRepeatNgramSize: 2 })).tokenIds);
    const beam = (await chat({ message: MESSAGE, decoding: { strategy: 'beam' } })).json();
    expect(beam.tokenIds).toEqual(
      (await model.reply(MESSAGE, { strategy: 'beam', numBeams: 3, maxNewTokens: 3, minNewTokens: 3, noRepeatNgramSize: 2 })).tokenIds,
    );
  });

  it('judges options of another strategy against the strategy decided on, and a minimum against the maximum', async () => {
    expect((await chat({ message: MESSAGE, decoding: { temperature: 0.7, seed: 3 } })).statusCode).toBe(200);
    const res = await chat({ message: MESSAGE, decoding: { numBeams: 2 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('decoding.numBeams');
    const long = await chat({ message: MESSAGE, decoding: { minNewTokens: 6 } });
    expect(long.statusCode).toBe(400);
    expect(long.json().error.message).toBe("decoding.minNewTokens: must not exceed maxNewTokens 3 of the model's generation_config.json");
  });

  it('decodes an OpenAI request without temperature with the config, and one with temperature 0 greedily', async () => {
    const own = (await chat({ message: MESSAGE })).json();
    const absent = (await completion({})).json();
    expect(absent.choices[0].message.content).toBe(own.reply);
    expect(absent.usage.completion_tokens).toBe(3);
    const greedy = (await completion({ temperature: 0, max_tokens: 5 })).json();
    const ownGreedy = (await chat({ message: MESSAGE, decoding: { strategy: 'greedy', maxNewTokens: 5 } })).json();
    expect(greedy.choices[0].message.content).toBe(ownGreedy.reply);
    // top_p needs sampling: the config's strategy gives it, temperature 0 takes it away.
    expect((await completion({ top_p: 0.5 })).statusCode).toBe(200);
    const refused = await completion({ temperature: 0, top_p: 0.5 });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.param).toBe('top_p');
  });

  it('decodes pnpm chat with the config where no flag is given', async () => {
    const own = (await chat({ message: MESSAGE })).json();
    expect(await cli([MESSAGE])).toEqual({ code: 0, out: `${own.reply}\n`, err: '' });
    const ownGreedy = (await chat({ message: MESSAGE, decoding: { strategy: 'greedy', maxNewTokens: 5, minNewTokens: 5 } })).json();
    expect(await cli(['--strategy', 'greedy', '--max-new-tokens', '5', '--min-new-tokens', '5', MESSAGE])).toEqual({
      code: 0,
      out: `${ownGreedy.reply}\n`,
      err: '',
    });
  });

  it('names the defaults in one log line when the server starts', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const server = await startServer(testServeSettings(dir), pino({ level: 'info' }, sink));
    await server.close();
    expect(lines.join('')).toContain(
      'decoding defaults from generation_config.json: strategy=sample maxNewTokens=3 minNewTokens=3 noRepeatNgramSize=2 temperature=1.5 topK=5 numBeams=3',
    );
  });
});

describe('a bad generation_config.json', () => {
  it('fails the load, naming the file and the field', async () => {
    const bad = copyWith('bad', JSON.stringify({ numBeams: 4, beams: 2 }));
    try {
      const error = await ChatModel.load(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ModelDirError);
      expect((error as Error).message).toContain(join(bad, GENERATION_CONFIG_FILE));
      expect((error as Error).message).toContain('beams: unknown field');
      const { code, err } = await cli([MESSAGE], bad);
      expect(code).toBe(1);
      expect(err).toMatch(/^error: .*generation_config\.json: invalid generation config: beams: unknown field/u);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});

/** `pnpm chat` on the configured copy (or `model`), its output and error lines. */
async function cli(args: string[], modelDir = dir): Promise<{ code: number; out: string; err: string }> {
  const input = new PassThrough();
  input.end();
  const output = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  output.on('data', (d: Buffer) => out.push(d.toString()));
  const code = await runChatCli(['--model', modelDir, '--backend', 'wasm', ...args], { input, output, err: (line) => err.push(line), interactive: false });
  return { code, out: out.join(''), err: err.join('\n') };
}
