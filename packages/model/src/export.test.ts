import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { presetConfig } from './config.js';
import { exportModelDir } from './export.js';
import { CONFIG_FILE, loadModelDir, ModelDirError, TOKENIZER_FILE, WEIGHTS_FILE } from './model-dir.js';
import { loadModel, parseModelConfig, saveModel } from './persist.js';
import { Transformer } from './transformer.js';

const SPECIAL_IDS = { pad: 0, unk: 1, bos: 2, eos: 3 };
const TOKENIZER = new Uint8Array([9, 8, 7]);

/** A saved tiny model with a train.json, metrics.jsonl and curves.svg beside it, as a run directory has. */
async function runDir(model = new Transformer(presetConfig('tiny', { vocabSize: 60 }), 4)): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-export-src-'));
  await saveModel(dir, model, { tokenizerBytes: TOKENIZER, specialIds: SPECIAL_IDS, training: { steps: 7 } });
  writeFileSync(join(dir, 'train.json'), '{"preset":"tiny"}\n');
  writeFileSync(join(dir, 'metrics.jsonl'), '{"step":1,"loss":4.1}\n');
  writeFileSync(join(dir, 'curves.svg'), '<svg/>\n');
  model.dispose();
  return dir;
}

const outDir = (): string => join(mkdtempSync(join(tmpdir(), 'hanmadi-export-out-')), 'model');

describe('exportModelDir', () => {
  beforeAll(async () => {
    await initBackend('cpu', () => {});
  });

  it('writes float16 weights, the same config, tokenizer and companions; the export decodes as the source does within tolerance', async () => {
    const src = await runDir();
    const out = outDir();
    const report = await exportModelDir(src, out, { dtype: 'float16' });
    expect(report.copied).toEqual(['train.json', 'metrics.jsonl', 'curves.svg']);
    expect(report.maxAbsDiff).toBeGreaterThan(0);
    expect(report.maxAbsDiff).toBeLessThan(1e-3);
    expect(report.weightsBytes).toBe(statSync(join(out, WEIGHTS_FILE)).size);
    expect(report.sourceWeightsBytes).toBe(statSync(join(src, WEIGHTS_FILE)).size);
    // Half the data; the header (names and offsets) is a few per cent of a tiny model's file.
    expect(report.weightsBytes / report.sourceWeightsBytes).toBeCloseTo(0.5, 1);
    for (const name of ['train.json', 'metrics.jsonl', 'curves.svg', TOKENIZER_FILE])
      expect(readFileSync(join(out, name)), name).toEqual(readFileSync(join(src, name)));
    expect(existsSync(join(out, 'generation_config.json'))).toBe(false);

    const [a, b] = [await loadModelDir(src, parseModelConfig), await loadModelDir(out, parseModelConfig)];
    expect(b.config.model).toEqual(a.config.model);
    expect(b.config.training).toEqual({ steps: 7 });
    expect(b.config.weights.layout).toMatch(/^float16 /u);
    expect(readFileSync(join(out, WEIGHTS_FILE)).toString('latin1')).toContain('"dtype":"F16"');

    const [source, exported] = [(await loadModel(src)).model, (await loadModel(out)).model];
    const logits = (m: Transformer) =>
      tf.tidy(() => m.logitsUncached(tf.tensor2d([[5, 6, 7, 3]], [1, 4], 'int32'), tf.tensor2d([[2, 12, 13]], [1, 3], 'int32')).dataSync() as Float32Array);
    const [x, y] = [logits(source), logits(exported)];
    expect(x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0)).toBeLessThan(1e-2);
    source.dispose();
    exported.dispose();
  });

  it('exports float16 back to float32 exactly, and drops a companion the source lacks', async () => {
    const src = await runDir();
    const half = outDir();
    await exportModelDir(src, half, { dtype: 'float16' });
    const full = outDir();
    await exportModelDir(src, full, { dtype: 'float16' }); // leaves train.json there, which the next source lacks
    const report = await exportModelDir(half, full, { dtype: 'float32' });
    expect(report.maxAbsDiff).toBe(0);
    expect(report.weightsBytes / report.sourceWeightsBytes).toBeCloseTo(2, 0);
    expect((await loadModelDir(full, parseModelConfig)).tensors).toEqual((await loadModelDir(half, parseModelConfig)).tensors);
    expect((await loadModelDir(full, parseModelConfig)).config.weights.layout).toMatch(/^float32, /u);
    writeFileSync(join(half, 'generation_config.json'), '{"numBeams":4}\n');
    rmSync(join(half, 'train.json'));
    expect((await exportModelDir(half, full, { dtype: 'float16' })).copied).toEqual(['generation_config.json', 'metrics.jsonl', 'curves.svg']);
    expect(existsSync(join(full, 'train.json'))).toBe(false);
    expect(readFileSync(join(full, 'generation_config.json'), 'utf8')).toBe('{"numBeams":4}\n');
  });

  it('refuses a weight beyond the float16 range, naming the tensor, and exporting a directory onto itself', async () => {
    const model = new Transformer(presetConfig('tiny', { vocabSize: 60 }), 4);
    const v = model.params.variables.get('decoder.layers.0.ffn.w2.bias')!;
    v.assign(tf.fill(v.shape, 70000));
    const src = await runDir(model);
    const out = outDir();
    await expect(exportModelDir(src, out, { dtype: 'float16' })).rejects.toThrow(
      `${join(out, WEIGHTS_FILE)}: cannot write: tensor "decoder.layers.0.ffn.w2.bias": 70000 at index 0 is beyond the range of F16 (±65504)`,
    );
    expect(existsSync(join(out, CONFIG_FILE))).toBe(false);
    const error = await exportModelDir(src, `${src}/.`, { dtype: 'float32' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelDirError);
    expect((error as Error).message).toMatch(/is the source model directory itself/u);
  });
});
