import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelDirError } from '../model-dir.js';
import { DEFAULT_GENERATION_CONFIG, GENERATION_CONFIG_FILE, readGenerationConfig, writeGenerationConfig, type GenerationConfig } from './generation-config.js';
import { applyGenerationConfig, resolveGenerateOptions } from './options.js';

const root = mkdtempSync(join(tmpdir(), 'hanmadi-genconfig-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

/** A fresh directory holding `text` as its generation_config.json (none when undefined). */
function dirWith(text?: string): string {
  const dir = join(root, `m${dirs++}`);
  mkdirSync(dir);
  if (text !== undefined) writeFileSync(join(dir, GENERATION_CONFIG_FILE), text);
  return dir;
}

/** The ModelDirError reading `text` gives. */
async function readError(text: string): Promise<ModelDirError> {
  const dir = dirWith(text);
  const error = await readGenerationConfig(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelDirError);
  expect((error as ModelDirError).file).toBe(join(dir, GENERATION_CONFIG_FILE));
  expect((error as ModelDirError).message).toContain(GENERATION_CONFIG_FILE);
  return error as ModelDirError;
}

describe('generation_config.json', () => {
  it('is optional: a directory without one has no defaults', async () => {
    expect(await readGenerationConfig(dirWith())).toEqual({});
  });

  it('accepts every field in range, and the trainer defaults', async () => {
    const full: GenerationConfig = {
      strategy: 'beam',
      maxNewTokens: 512,
      minNewTokens: 0,
      noRepeatNgramSize: 16,
      repetitionPenalty: 0.01,
      temperature: 10,
      topK: 100_000,
      topP: 1,
      numBeams: 16,
      lengthPenalty: -5,
      earlyStopping: false,
    };
    expect(await readGenerationConfig(dirWith(JSON.stringify(full)))).toEqual(full);
    expect(await readGenerationConfig(dirWith(JSON.stringify(DEFAULT_GENERATION_CONFIG)))).toEqual(DEFAULT_GENERATION_CONFIG);
  });

  it.each([
    ['an unknown field', { numBeams: 2, max_new_tokens: 5 }, 'max_new_tokens: unknown field'],
    ['a seed (a request option)', { seed: 1 }, 'seed: unknown field'],
    ['a temperature out of range', { temperature: 0 }, 'temperature:'],
    ['too many beams', { numBeams: 17 }, 'numBeams:'],
    ['a fractional length', { maxNewTokens: 2.5 }, 'maxNewTokens:'],
    ['top-p above 1', { topP: 1.5 }, 'topP:'],
    ['an unknown strategy', { strategy: 'nucleus' }, 'strategy:'],
    ['a minimum above the maximum', { minNewTokens: 5, maxNewTokens: 2 }, 'minNewTokens:'],
    ['a list', [1], 'not a JSON object'],
  ])('refuses %s, naming the file and the field', async (_what, raw, expected) => {
    expect((await readError(JSON.stringify(raw))).message).toContain(expected);
  });

  it('refuses text that is not JSON, naming the file', async () => {
    expect((await readError('{ "numBeams": 4,')).message).toContain('not valid JSON');
  });

  it('writes atomically what it reads back, and refuses to write an invalid config', async () => {
    const dir = dirWith();
    await writeGenerationConfig(dir, DEFAULT_GENERATION_CONFIG);
    expect(await readGenerationConfig(dir)).toEqual(DEFAULT_GENERATION_CONFIG);
    expect(readdirSync(dir)).toEqual([GENERATION_CONFIG_FILE]);
    const text = readFileSync(join(dir, GENERATION_CONFIG_FILE), 'utf8');
    expect(text).toMatch(/^\{\n {2}"\w+": [^\n]+,\n[\s\S]*\n\}\n$/u); // indented for a person to edit
    expect(JSON.parse(text)).toEqual(DEFAULT_GENERATION_CONFIG);
    await expect(writeGenerationConfig(dir, { numBeams: 0 })).rejects.toThrow(/generation_config\.json: invalid generation config: numBeams:/u);
    expect(await readGenerationConfig(dir)).toEqual(DEFAULT_GENERATION_CONFIG);
  });
});

describe('precedence: request, then generation config, then built-in defaults', () => {
  const config: GenerationConfig = {
    maxNewTokens: 7,
    noRepeatNgramSize: 3,
    repetitionPenalty: 1.2,
    numBeams: 4,
    lengthPenalty: 0.6,
    temperature: 0.8,
    topP: 0.9,
  };

  it('takes what the request gives over the config, and the config over the built-ins', () => {
    const o = resolveGenerateOptions({ maxNewTokens: 3, repetitionPenalty: 1 }, config);
    expect(o).toMatchObject({ strategy: 'greedy', maxNewTokens: 3, repetitionPenalty: 1, noRepeatNgramSize: 3, minNewTokens: 0 });
    expect(resolveGenerateOptions({}, {})).toEqual(resolveGenerateOptions());
    expect(resolveGenerateOptions({ maxNewTokens: undefined }, config).maxNewTokens).toBe(7);
  });

  it('decides the strategy: the request, else the config, else greedy', () => {
    expect(resolveGenerateOptions({}, {}).strategy).toBe('greedy');
    expect(resolveGenerateOptions({}, { strategy: 'beam' }).strategy).toBe('beam');
    expect(resolveGenerateOptions({ strategy: 'sample' }, { strategy: 'beam' }).strategy).toBe('sample');
  });

  it("takes a strategy's own fields from the config only for that strategy", () => {
    const greedy = applyGenerationConfig({}, config);
    expect(greedy).toEqual({ strategy: 'greedy', maxNewTokens: 7, noRepeatNgramSize: 3, repetitionPenalty: 1.2 });
    expect(applyGenerationConfig({ strategy: 'beam' }, config)).toMatchObject({ numBeams: 4, lengthPenalty: 0.6 });
    expect(applyGenerationConfig({ strategy: 'beam' }, config)).not.toHaveProperty('temperature');
    const sample = applyGenerationConfig({ strategy: 'sample', topP: 0.5 }, config);
    expect(sample).toMatchObject({ temperature: 0.8, topP: 0.5 });
    expect(sample).not.toHaveProperty('numBeams');
    // The built-ins fill what neither gives: the config's beam width does not reach a sampling request.
    expect(resolveGenerateOptions({ strategy: 'sample' }, config).numBeams).toBe(resolveGenerateOptions().numBeams);
  });

  it('keeps the config strategy’s fields when the config chooses the strategy', () => {
    const o = resolveGenerateOptions({ seed: 5 }, { ...config, strategy: 'sample', topK: 20 });
    expect(o).toMatchObject({ strategy: 'sample', temperature: 0.8, topP: 0.9, topK: 20, seed: 5, maxNewTokens: 7 });
  });

  it('still refuses bad options by name', () => {
    expect(() => resolveGenerateOptions({ strategy: 'nucleus' as 'greedy' }, config)).toThrow(/unknown strategy nucleus/u);
    expect(() => resolveGenerateOptions({ temperature: -1 }, config)).toThrow(/temperature/u);
  });
});
