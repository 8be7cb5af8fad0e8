/**
 * Decoding's golden outputs: the shipped base model's replies, token ids and
 * scores for 20 prompts, by greedy search, beam search (4 beams) and seeded
 * sampling, as `generate` gave them when this test was written. Refactoring
 * the model or the search must leave every one bit-identical; a change that
 * is meant to alter decoding rewrites golden/base-model.json on purpose
 * (HANMADI_WRITE_GOLDEN=1) and says why.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@hanmadi/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.js';
import { loadModel } from '../persist.js';
import type { Transformer } from '../transformer.js';
import { generate, type GenerateOptions } from './search.js';

const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BASE_MODEL = join(REPO_ROOT, 'models', 'hanmadi-base');
const GOLDEN = new URL('./golden/base-model.json', import.meta.url);
/** The first 20 prompts of the project's probe set. */
const PROMPTS = readFileSync(join(REPO_ROOT, 'data', 'probe-prompts.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, 20);

const STRATEGIES: Record<string, GenerateOptions> = {
  greedy: { strategy: 'greedy' },
  beam: { strategy: 'beam', numBeams: 4 },
  sample: { strategy: 'sample', seed: 7, temperature: 0.8, topP: 0.9 },
};

interface GoldenReply {
  prompt: string;
  reply: string;
  tokens: number[];
  score: number;
  finishReason: string;
}

let model: Transformer;
let tokenizer: Tokenizer;

beforeAll(async () => {
  await initBackend('wasm', () => {});
  model = (await loadModel(BASE_MODEL)).model;
  tokenizer = await Tokenizer.load(join(BASE_MODEL, 'tokenizer.model'));
});

afterAll(() => model?.dispose());

function decodeAll(options: GenerateOptions): GoldenReply[] {
  const sources = PROMPTS.map((p) => tokenizer.encode(p.normalize('NFC')));
  return generate(model, sources, options).map((out, i) => ({ prompt: PROMPTS[i]!, reply: tokenizer.decode(out.tokens), tokens: out.tokens, score: out.score, finishReason: out.finishReason }));
}

describe('decoding the shipped base model (golden outputs)', () => {
  it('gives the recorded replies, token ids and scores for 20 prompts, greedy, beam and seeded sampling', () => {
    expect(PROMPTS).toHaveLength(20);
    const actual = Object.fromEntries(Object.entries(STRATEGIES).map(([name, options]) => [name, decodeAll(options)]));
    if (process.env['HANMADI_WRITE_GOLDEN'] === '1') writeFileSync(GOLDEN, `${JSON.stringify(actual, null, 1)}\n`);
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Record<string, GoldenReply[]>;
    // Exact: JSON keeps every float64 digit, so scores must match bit for bit.
    expect(actual).toEqual(golden);
    // Strategies that differ: a test that holds whatever the search does is no test.
    expect(golden['beam']!.map((r) => r.reply)).not.toEqual(golden['sample']!.map((r) => r.reply));
  });
});
