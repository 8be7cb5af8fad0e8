import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { presetConfig } from './config.js';
import { CONFIG_FILE, ModelDirError, saveModelDir, WEIGHTS_FILE } from './model-dir.js';
import { exportWeights, loadModel, saveModel, weightsLayout } from './persist.js';
import { encodeSafetensors } from './safetensors.js';
import { Transformer } from './transformer.js';

const SPECIAL_IDS = { pad: 0, unk: 1, bos: 2, eos: 3 };
const W1 = 'encoder.layers.0.ffn.w1.weight';

const freshDir = (): string => mkdtempSync(join(tmpdir(), 'hanmadi-persist-'));

/** A tiny model with one value of `name` set to `value`. */
function tinyWith(name: string, index: number, value: number): Transformer {
  const model = new Transformer(presetConfig('tiny', { vocabSize: 60 }), 4);
  const v = model.params.variables.get(name)!;
  const data = v.dataSync().slice() as Float32Array;
  data[index] = value;
  v.assign(tf.tensor(data, v.shape));
  return model;
}

describe('saveModel / loadModel: float16 weights, finiteness', () => {
  beforeAll(async () => {
    await initBackend('cpu', () => {});
  });

  it('loads float16 weights as a float32 model whose logits are within 1e-2 of the float32 one', async () => {
    const config = presetConfig('tiny', { vocabSize: 60 }, { norm: 'pre' });
    const model = new Transformer(config, 4);
    const dir = freshDir();
    await saveModelDir(dir, {
      modelConfig: config,
      tokenizerBytes: new Uint8Array([1, 2]),
      tokenizer: { vocabSize: 60, specialIds: SPECIAL_IDS },
      tensors: exportWeights(model),
      layout: weightsLayout('F16'),
      floats: 'F16',
    });
    const { model: loaded, dir: loadedDir } = await loadModel(dir);
    expect(loadedDir.config.weights.layout).toMatch(/^float16 \(IEEE half; read as float32\), little-endian\. Linear weights/u);
    const logits = (m: Transformer) =>
      tf.tidy(() => m.logitsUncached(tf.tensor2d([[5, 6, 7, 3]], [1, 4], 'int32'), tf.tensor2d([[2, 12, 13]], [1, 3], 'int32')).dataSync() as Float32Array);
    const [a, b] = [logits(model), logits(loaded)];
    const maxDiff = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(1e-2);
    for (const v of loaded.params.variables.values()) expect(v.dtype).toBe('float32');
    loaded.dispose();
    model.dispose();
  });

  it('refuses to save a NaN weight, naming the tensor', async () => {
    const model = tinyWith(W1, 12, Number.NaN);
    const dir = freshDir();
    const error = await saveModel(dir, model, { tokenizerBytes: new Uint8Array([1]), specialIds: SPECIAL_IDS }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelDirError);
    expect((error as Error).message).toBe(
      `${join(dir, WEIGHTS_FILE)}: refusing to write non-finite weights: tensor ${W1} holds non-finite values (NaN at index 12)`,
    );
    model.dispose();
  });

  it('refuses to load a NaN weight whose checksums hold, naming the file and the tensor', async () => {
    const model = new Transformer(presetConfig('tiny', { vocabSize: 60 }), 4);
    const dir = freshDir();
    await saveModel(dir, model, { tokenizerBytes: new Uint8Array([1]), specialIds: SPECIAL_IDS });
    const tensors = exportWeights(model);
    tensors.get(W1)!.data[12] = Number.NaN;
    model.dispose();
    const bytes = encodeSafetensors(tensors);
    writeFileSync(join(dir, WEIGHTS_FILE), bytes);
    const configPath = join(dir, CONFIG_FILE);
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { weights: { sha256: string; bytes: number } };
    config.weights = { ...config.weights, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
    writeFileSync(configPath, JSON.stringify(config));
    await expect(loadModel(dir)).rejects.toThrow(`${join(dir, WEIGHTS_FILE)}: tensor ${W1} holds non-finite values (NaN at index 12)`);
  });
});
