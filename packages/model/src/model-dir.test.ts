import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  CONFIG_FILE,
  isModelDir,
  loadModelDir,
  MODEL_FORMAT_VERSION,
  ModelDirError,
  saveModelDir,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  type SaveModelDirOptions,
} from './model-dir.js';
import { encodeSafetensors, type NamedTensor } from './safetensors.js';

// fs/promises as model-dir.ts sees it: unchanged, except that renames and
// directory opens (for fsync) are logged, and a rename can be made to fail
// as if the process died there. The tests use node:fs, which stays real.
const fsProbe = vi.hoisted(() => ({ events: [] as string[], renamesBeforeCrash: Number.POSITIVE_INFINITY }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof FsPromises>();
  return {
    ...fs,
    rename: async (from: string, to: string): Promise<void> => {
      if (fsProbe.renamesBeforeCrash <= 0) throw new Error('simulated crash');
      fsProbe.renamesBeforeCrash -= 1;
      await fs.rename(from, to);
      fsProbe.events.push(`rename ${basename(to)}`);
    },
    open: async (path: string, flags?: string, mode?: number): Promise<FsPromises.FileHandle> => {
      if (flags === 'r') fsProbe.events.push(`open-dir ${basename(path)}`);
      return fs.open(path, flags, mode);
    },
  };
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

afterEach(() => {
  fsProbe.events = [];
  fsProbe.renamesBeforeCrash = Number.POSITIVE_INFINITY;
});

const root = mkdtempSync(join(tmpdir(), 'hanmadi-model-dir-'));
let dirs = 0;
const freshDir = (): string => join(root, `m${++dirs}`);

interface TinyConfig {
  dModel: number;
  layers: number;
}

/** Stands in for the model's own config parser: throws on anything it does not accept. */
function parseTiny(raw: unknown): TinyConfig {
  const { dModel, layers } = (raw ?? {}) as Partial<TinyConfig>;
  if (typeof dModel !== 'number' || dModel <= 0) throw new Error(`dModel must be a positive number, got ${JSON.stringify(dModel)}`);
  if (typeof layers !== 'number') throw new Error('layers must be a number');
  return { dModel, layers };
}

const TOKENIZER_BYTES = new TextEncoder().encode('\n\x0b\n\x05<pad>\x15\0\0\0\0 stands in for a SentencePiece model');

function options(seed = 1): SaveModelDirOptions {
  const values = (n: number): number[] => Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed * 100 + i)));
  return {
    modelConfig: { dModel: 4, layers: 2 },
    tokenizerBytes: TOKENIZER_BYTES,
    tokenizer: { vocabSize: 6, specialIds: { pad: 0, unk: 1, bos: 2, eos: 3 } },
    tensors: new Map<string, NamedTensor>([
      ['encoder.embedding', { dtype: 'F32', shape: [6, 4], data: Float32Array.from(values(24)) }],
      ['decoder.output.bias', { dtype: 'F32', shape: [6], data: Float32Array.from(values(6)) }],
      ['step', { dtype: 'I32', shape: [], data: Int32Array.of(seed) }],
    ]),
    layout: 'Row-major [in, out] matrices named <stack>.<layer>.<sublayer>.<param>.',
    training: { epochs: seed, loss: 1.25 },
    metadata: { format: 'hanmadi' },
  };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function saved(seed = 1): Promise<string> {
  const dir = freshDir();
  await saveModelDir(dir, options(seed));
  return dir;
}

/** Loads `dir`, expecting a ModelDirError about `file`, and returns its message after the path. */
async function loadFailure(dir: string, file: string): Promise<string> {
  const error: unknown = await loadModelDir(dir, parseTiny).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelDirError);
  const { message } = error as ModelDirError;
  expect((error as ModelDirError).file).toBe(file);
  expect(message.startsWith(`${file}: `), message).toBe(true);
  return message.slice(file.length + 2);
}

/** Rewrites config.json with `changes` ("a.b" paths; undefined deletes). */
function editConfig(dir: string, changes: Record<string, unknown>): void {
  const path = join(dir, CONFIG_FILE);
  const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  for (const [key, value] of Object.entries(changes)) {
    const parts = key.split('.');
    const last = parts.pop()!;
    const parent = parts.reduce((o, p) => o[p] as Record<string, unknown>, config);
    if (value === undefined) delete parent[last];
    else parent[last] = value;
  }
  writeFileSync(path, JSON.stringify(config));
}

function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(path, bytes);
}

describe('saveModelDir / loadModelDir', () => {
  it('round-trips tensors, configs and the tokenizer', async () => {
    const dir = join(freshDir(), 'nested', 'run'); // missing directories are created
    const before = Date.now();
    await saveModelDir(dir, options());
    expect(readdirSync(dir).sort()).toEqual([CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE].sort());
    expect(await isModelDir(dir)).toBe(true);

    const loaded = await loadModelDir(dir, parseTiny);
    const { tensors, layout, training, tokenizer } = options();
    expect(loaded.dir).toBe(dir);
    expect(loaded.modelConfig).toEqual({ dModel: 4, layers: 2 });
    expect(loaded.tensors).toEqual(tensors);
    expect(loaded.tokenizerPath).toBe(join(dir, TOKENIZER_FILE));
    expect(loaded.tokenizerBytes).toEqual(TOKENIZER_BYTES);
    expect(readFileSync(loaded.tokenizerPath)).toEqual(Buffer.from(TOKENIZER_BYTES));

    const weights = readFileSync(join(dir, WEIGHTS_FILE));
    expect(loaded.config).toEqual({
      formatVersion: MODEL_FORMAT_VERSION,
      model: { dModel: 4, layers: 2 },
      tokenizer: { file: TOKENIZER_FILE, sha256: sha256(TOKENIZER_BYTES), ...tokenizer },
      weights: { file: WEIGHTS_FILE, format: 'safetensors', sha256: sha256(weights), bytes: weights.length, layout },
      training,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/u) as unknown,
    });
    expect(Date.parse(loaded.config.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    // Byte for byte what encodeSafetensors gives, metadata included.
    expect(new Uint8Array(weights)).toEqual(encodeSafetensors(tensors, { format: 'hanmadi' }));
    // Readable by people: indented JSON with a trailing newline.
    expect(readFileSync(join(dir, CONFIG_FILE), 'utf8')).toMatch(/^\{\n {2}"formatVersion": 1,\n[\s\S]*\}\n$/u);
  });

  it('writes null when there is no training record', async () => {
    const dir = freshDir();
    await saveModelDir(dir, { ...options(), training: undefined });
    expect((await loadModelDir(dir, parseTiny)).config.training).toBeNull();
  });

  it('writes the weights and tokenizer first, config.json last, syncing the directory after the renames', async () => {
    const dir = await saved();
    fsProbe.events = [];
    await saveModelDir(dir, options(2));
    const name = basename(dir);
    expect(fsProbe.events).toEqual([
      `open-dir ${name}`, // after removing the old config.json
      `rename ${WEIGHTS_FILE}`,
      `rename ${TOKENIZER_FILE}`,
      `open-dir ${name}`,
      `rename ${CONFIG_FILE}`,
      `open-dir ${name}`,
    ]);
  });

  it('saves over an existing model directory', async () => {
    const dir = await saved(1);
    await saveModelDir(dir, options(2));
    await saveModelDir(dir, options(3));
    const loaded = await loadModelDir(dir, parseTiny);
    expect(loaded.tensors).toEqual(options(3).tensors);
    expect(loaded.config.training).toEqual({ epochs: 3, loss: 1.25 });
    expect(readdirSync(dir).sort()).toEqual([CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE].sort());
  });

  it('refuses to write a config it could not read back, before touching the disk', async () => {
    const dir = freshDir();
    const bad: [Partial<SaveModelDirOptions>, RegExp][] = [
      [{ tokenizer: { vocabSize: 3, specialIds: { pad: 0, unk: 1, bos: 2, eos: 3 } } }, /tokenizer\.specialIds\.eos: 3 is outside the vocabulary of 3/u],
      [{ layout: '' }, /weights\.layout: must describe the tensor layout/u],
      [{ modelConfig: undefined }, /model: is missing/u],
      [{ training: [1, 2] }, /training: must be an object or null/u],
    ];
    for (const [change, reason] of bad) {
      const error = await saveModelDir(dir, { ...options(), ...change }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelDirError);
      expect((error as Error).message.startsWith(`${join(dir, CONFIG_FILE)}: refusing to write an invalid config: `)).toBe(true);
      expect((error as Error).message).toMatch(reason);
    }
    const tensors = new Map<string, NamedTensor>([['w', { dtype: 'F32', shape: [2], data: Float32Array.of(1) }]]);
    await expect(saveModelDir(dir, { ...options(), tensors })).rejects.toThrow(
      `${join(dir, WEIGHTS_FILE)}: cannot write: tensor "w": shape [2] has 2 elements`,
    );
    expect(existsSync(dir)).toBe(false);
  });
});

describe('float16 weights, extra files', () => {
  it('stores floats as F16 when asked, and loads them back as F32, rounded to the nearest half', async () => {
    const dir = freshDir();
    await saveModelDir(dir, { ...options(), floats: 'F16' });
    const loaded = await loadModelDir(dir, parseTiny);
    for (const [name, tensor] of options().tensors) {
      const back = loaded.tensors.get(name)!;
      expect(back.dtype, name).toBe(tensor.dtype);
      expect(back.data.constructor, name).toBe(tensor.data.constructor);
      // sin values lie in [-1, 1]: a half there is within 2^-12 of the float; the I32 step is untouched.
      tensor.data.forEach((x, i) => expect(Math.abs(back.data[i]! - x), `${name}[${i}]`).toBeLessThanOrEqual(2 ** -12));
    }
    expect(loaded.tensors.get('step')!.data).toEqual(Int32Array.of(1));
    const weights = new Uint8Array(readFileSync(join(dir, WEIGHTS_FILE)));
    expect(weights).toEqual(encodeSafetensors(options().tensors, { format: 'hanmadi' }, { floats: 'F16' }));
    expect(weights.length).toBeLessThan(encodeSafetensors(options().tensors, { format: 'hanmadi' }).length);
  });

  it('writes extra files durably before config.json, and removes their stale temporaries', async () => {
    const dir = await saved();
    const stray = join(dir, `train.json.tmp-99999-deadbeef`);
    writeFileSync(stray, '{');
    fsProbe.events = [];
    const extraFiles = new Map([
      ['train.json', new TextEncoder().encode('{"preset":"tiny"}\n')],
      ['curves.svg', new TextEncoder().encode('<svg/>')],
    ]);
    await saveModelDir(dir, { ...options(2), extraFiles });
    expect(readFileSync(join(dir, 'train.json'), 'utf8')).toBe('{"preset":"tiny"}\n');
    expect(readFileSync(join(dir, 'curves.svg'), 'utf8')).toBe('<svg/>');
    expect(existsSync(stray)).toBe(false);
    expect(fsProbe.events.filter((e) => e.startsWith('rename'))).toEqual([
      `rename ${WEIGHTS_FILE}`,
      `rename ${TOKENIZER_FILE}`,
      'rename train.json',
      'rename curves.svg',
      `rename ${CONFIG_FILE}`,
    ]);
    for (const name of [CONFIG_FILE, '../x', '']) {
      await expect(saveModelDir(dir, { ...options(), extraFiles: new Map([[name, new Uint8Array()]]) })).rejects.toThrow(
        /cannot write: an extra file must be a file name/u,
      );
    }
  });
});

describe('non-finite weights', () => {
  /** `options()` with one value of encoder.embedding replaced. */
  function withValue(at: number, value: number, at2?: number): SaveModelDirOptions {
    const base = options();
    const data = Float32Array.from(base.tensors.get('encoder.embedding')!.data);
    data[at] = value;
    if (at2 !== undefined) data[at2] = value;
    return { ...base, tensors: new Map([...base.tensors, ['encoder.embedding', { dtype: 'F32', shape: [6, 4], data }]]) };
  }

  it('refuses to save NaN or ±Inf, naming the tensor, before touching the disk', async () => {
    const dir = freshDir();
    const weights = join(dir, WEIGHTS_FILE);
    await expect(saveModelDir(dir, withValue(12, Number.NaN))).rejects.toThrow(
      `${weights}: refusing to write non-finite weights: tensor encoder.embedding holds non-finite values (NaN at index 12)`,
    );
    await expect(saveModelDir(dir, withValue(3, Number.NEGATIVE_INFINITY, 7))).rejects.toThrow(
      'tensor encoder.embedding holds non-finite values (-Infinity at index 3; 2 in all)',
    );
    await expect(saveModelDir(dir, { ...withValue(0, Number.POSITIVE_INFINITY), floats: 'F16' })).rejects.toThrow('(Infinity at index 0)');
    expect(existsSync(dir)).toBe(false);
  });

  it.each([
    ['NaN', Number.NaN, 'F32'],
    ['Infinity', Number.POSITIVE_INFINITY, 'F16'],
  ] as const)('refuses to load %s in weights whose checksums hold, naming the file and the tensor (%s file)', async (text, value, floats) => {
    const dir = await saved();
    const weights = join(dir, WEIGHTS_FILE);
    // Written past saveModelDir's own check, with config.json made to vouch for it: only the finiteness check is left to catch it.
    const bytes = encodeSafetensors(withValue(12, value).tensors, undefined, { floats });
    writeFileSync(weights, bytes);
    editConfig(dir, { 'weights.sha256': sha256(bytes), 'weights.bytes': bytes.length });
    expect(await loadFailure(dir, weights)).toBe(`tensor encoder.embedding holds non-finite values (${text} at index 12)`);
  });
});

describe('isModelDir', () => {
  it('is true only where config.json exists', async () => {
    const dir = freshDir();
    expect(await isModelDir(dir)).toBe(false);
    mkdirSync(dir);
    expect(await isModelDir(dir)).toBe(false);
    writeFileSync(join(dir, 'file'), '');
    expect(await isModelDir(join(dir, 'file'))).toBe(false);
    expect(await isModelDir(await saved())).toBe(true);
  });
});

describe('loadModelDir on damaged directories', () => {
  it('a missing directory, or a file where the directory should be', async () => {
    const dir = freshDir();
    expect(await loadFailure(dir, dir)).toBe('no such model directory');
    writeFileSync(dir, 'not a directory');
    expect(await loadFailure(dir, dir)).toMatch(/^not a directory/u);
  });

  it('config.json missing, not JSON, or not an object', async () => {
    const dir = await saved();
    const config = join(dir, CONFIG_FILE);
    writeFileSync(config, '{"formatVersion": 1,');
    expect(await loadFailure(dir, config)).toMatch(/^not valid JSON \(/u);
    writeFileSync(config, Buffer.from([0x7b, 0xff, 0x7d]));
    expect(await loadFailure(dir, config)).toMatch(/^not valid JSON/u);
    writeFileSync(config, '[1]');
    expect(await loadFailure(dir, config)).toBe('not a JSON object');
    unlinkSync(config);
    expect(await loadFailure(dir, config)).toMatch(/^no such file: not a model directory, or its save did not finish/u);
  });

  it('a formatVersion this build does not read', async () => {
    const dir = await saved();
    editConfig(dir, { formatVersion: 2 });
    expect(await loadFailure(dir, join(dir, CONFIG_FILE))).toBe('formatVersion 2 is not supported (this version of hanmadi reads 1)');
    editConfig(dir, { formatVersion: undefined });
    expect(await loadFailure(dir, join(dir, CONFIG_FILE))).toBe('no formatVersion: not a hanmadi model directory?');
  });

  it.each([
    [{ 'tokenizer.sha256': undefined }, 'invalid config: tokenizer.sha256: is missing'],
    [{ 'tokenizer.sha256': 'ABC' }, 'invalid config: tokenizer.sha256: must be a sha256: 64 lowercase hex digits'],
    [{ 'tokenizer.specialIds.bos': -1 }, 'invalid config: tokenizer.specialIds.bos: '],
    [{ 'tokenizer.vocabSize': 2 }, 'invalid config: tokenizer.specialIds.bos: 2 is outside the vocabulary of 2; tokenizer.specialIds.eos: 3 is outside'],
    [{ 'weights.format': 'pickle' }, 'invalid config: weights.format: '],
    [{ 'weights.file': '../model.safetensors' }, 'invalid config: weights.file: must be a file name in the model directory'],
    [{ 'weights.bytes': '100' }, 'invalid config: weights.bytes: '],
    [{ weights: undefined }, 'invalid config: weights: is missing'],
    [{ model: undefined }, 'invalid config: model: is missing'],
    [{ training: undefined }, 'invalid config: training: must be an object or null'],
    [{ createdAt: 'yesterday' }, 'invalid config: createdAt: must be an ISO 8601 date-time'],
  ])('config.json with %o', async (changes, reason) => {
    const dir = await saved();
    editConfig(dir, changes);
    expect(await loadFailure(dir, join(dir, CONFIG_FILE))).toContain(reason);
  });

  it('a model config the model code rejects', async () => {
    const dir = await saved();
    editConfig(dir, { 'model.dModel': 0 });
    expect(await loadFailure(dir, join(dir, CONFIG_FILE))).toBe('invalid model config: dModel must be a positive number, got 0');
  });

  it('tokenizer.model missing, truncated or replaced', async () => {
    const dir = await saved();
    const tokenizer = join(dir, TOKENIZER_FILE);
    flipByte(tokenizer, 3);
    expect(await loadFailure(dir, tokenizer)).toBe('does not match the checksum in config.json: truncated or replaced?');
    truncateSync(tokenizer, 5);
    expect(await loadFailure(dir, tokenizer)).toBe('does not match the checksum in config.json: truncated or replaced?');
    unlinkSync(tokenizer);
    expect(await loadFailure(dir, tokenizer)).toBe('no such file (config.json lists it as the tokenizer)');
  });

  it('model.safetensors missing, truncated or with a changed byte', async () => {
    const dir = await saved();
    const weights = join(dir, WEIGHTS_FILE);
    const size = readFileSync(weights).length;
    flipByte(weights, size - 1);
    expect(await loadFailure(dir, weights)).toBe('does not match the checksum in config.json: truncated or replaced?');
    truncateSync(weights, 100);
    expect(await loadFailure(dir, weights)).toBe(`is 100 bytes, but config.json says ${size}: truncated or replaced?`);
    unlinkSync(weights);
    expect(await loadFailure(dir, weights)).toBe('no such file (config.json lists it as the weights)');
  });

  it('model.safetensors that matches its checksum but is not safetensors', async () => {
    const dir = await saved();
    const weights = join(dir, WEIGHTS_FILE);
    const garbage = new TextEncoder().encode('weights? no, a CSV file\n');
    writeFileSync(weights, garbage);
    editConfig(dir, { 'weights.sha256': sha256(garbage), 'weights.bytes': garbage.length });
    expect(await loadFailure(dir, weights)).toMatch(/^header length \d+ reaches past the end of the file \(24 bytes\)/u);
  });
});

describe('crashes', () => {
  it('ignores a temporary file a crashed save left behind, and the next save removes it', async () => {
    const dir = await saved(1);
    const stray = join(dir, `${WEIGHTS_FILE}.tmp-99999-deadbeef`);
    writeFileSync(stray, 'half of some other weights');
    expect((await loadModelDir(dir, parseTiny)).tensors).toEqual(options(1).tensors);
    await saveModelDir(dir, options(2));
    expect(existsSync(stray)).toBe(false);
  });

  it('detects a half-written weights file beside an intact config.json', async () => {
    const dir = await saved();
    const weights = join(dir, WEIGHTS_FILE);
    const bytes = readFileSync(weights);
    writeFileSync(weights, bytes.subarray(0, bytes.length >> 1));
    expect(await loadFailure(dir, weights)).toMatch(/truncated or replaced\?$/u);
  });

  it("detects another save's weights (same size) beside an old config.json", async () => {
    const older = await saved(1);
    const newer = await saved(2);
    writeFileSync(join(older, WEIGHTS_FILE), readFileSync(join(newer, WEIGHTS_FILE)));
    expect(await loadFailure(older, join(older, WEIGHTS_FILE))).toBe('does not match the checksum in config.json: truncated or replaced?');
  });

  it.each([0, 1, 2])('a save over a model that dies after %i of its 3 renames leaves no config.json, so nothing half-saved loads', async (renames) => {
    const dir = await saved(1);
    fsProbe.renamesBeforeCrash = renames;
    await expect(saveModelDir(dir, options(2))).rejects.toThrow(/cannot write: simulated crash/u);
    fsProbe.renamesBeforeCrash = Number.POSITIVE_INFINITY;
    expect(await isModelDir(dir)).toBe(false);
    expect(await loadFailure(dir, join(dir, CONFIG_FILE))).toMatch(/^no such file/u);
    // No temporaries are left to pile up, and saving again recovers.
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    await saveModelDir(dir, options(2));
    expect((await loadModelDir(dir, parseTiny)).tensors).toEqual(options(2).tensors);
  });
});
