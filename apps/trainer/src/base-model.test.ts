import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '@hanmadi/corpus';
import { initBackend, loadModel, readGenerationConfig, TOKENIZER_FILE, type Transformer } from '@hanmadi/model';
import { Tokenizer } from '@hanmadi/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repeatsWord, replyMeasures } from './metrics/replies.js';
import { probeReplies, readProbePrompts } from './probe.js';

const BASE = join(REPO_ROOT, 'models', 'hanmadi-base');
const PROBE_FILE = join(REPO_ROOT, 'data', 'probe-prompts.txt');

describe('models/hanmadi-base, the shipped base model', () => {
  let model: Transformer;
  let tokenizer: Tokenizer;

  beforeAll(async () => {
    await initBackend('wasm', () => {});
    ({ model } = await loadModel(BASE));
    tokenizer = await Tokenizer.load(join(BASE, TOKENIZER_FILE));
  });
  afterAll(() => model.dispose());

  it('is the tutorial preset with float16 weights, its training record and its model card', () => {
    const header = readFileSync(join(BASE, 'model.safetensors'));
    const json = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype?: string }>;
    const dtypes = new Set(
      Object.entries(json)
        .filter(([name]) => name !== '__metadata__')
        .map(([, t]) => t.dtype),
    );
    expect([...dtypes]).toEqual(['F16']);
    expect(model.config).toMatchObject({ dModel: 256, encoderLayers: 2, decoderLayers: 2, numHeads: 8, dFF: 512 });
    for (const file of ['generation_config.json', 'train.json', 'metrics.jsonl', 'curves.svg', 'README.md'])
      expect(existsSync(join(BASE, file)), file).toBe(true);
  });

  it('never degenerates with its shipped decoding defaults: no reply to the probe set repeats a word three times or runs to the limit', async () => {
    const config = await readGenerationConfig(BASE);
    const prompts = await readProbePrompts(PROBE_FILE);
    for (const strategy of ['greedy', 'beam', 'sample'] as const) {
      const replies = probeReplies(model, tokenizer, prompts, strategy, 'defaults', config);
      const m = replyMeasures(replies);
      const bad = replies.filter((r) => r.finishReason === 'length' || repeatsWord(r.reply));
      expect(bad.map((r) => `${strategy}: ${r.prompt} → ${r.reply}`)).toEqual([]);
      expect(m.degenerateShare, strategy).toBe(0);
    }
  }, 120_000);
});
