import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { disposeBatch, makeBatch, sourceTensor, type Example } from './batch.js';
import { presetConfig } from './config.js';
import { greedyDecode } from './generation/greedy.js';
import { DecoderCache } from './generation/decoder-cache.js';
import { CONFIG_FILE, ModelDirError, WEIGHTS_FILE } from './model-dir.js';
import { Adam } from './optimizer.js';
import { ForwardPass } from './params.js';
import { loadModel, saveModel } from './persist.js';
import { Rng } from './random.js';
import { trainStep } from './train-step.js';
import { Transformer } from './transformer.js';

const VOCAB = 60;
const SPECIAL_IDS = { pad: 0, unk: 1, bos: 2, eos: 3 };

/** 32 random pairs over tokens 4..59: nothing to learn but the pairs themselves. */
function randomPairs(count: number, seed: number): Example[] {
  const rng = new Rng(seed);
  const seq = (min: number, max: number) =>
    Array.from({ length: min + Math.floor(rng.next() * (max - min + 1)) }, () => 4 + Math.floor(rng.next() * (VOCAB - 4)));
  return Array.from({ length: count }, () => ({ source: seq(2, 6), target: seq(2, 6) }));
}

describe('the tiny Transformer on wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm', () => {});
  });

  it('overfits 32 pairs to near-zero loss, then greedy decoding reproduces them', () => {
    const pairs = randomPairs(32, 7);
    const config = presetConfig('tiny', { vocabSize: VOCAB }, { dropout: 0 });
    const model = new Transformer(config, 1);
    const optimizer = new Adam(model.params.variables);
    const batch = makeBatch(pairs, config);
    let loss = Infinity;
    for (let step = 1; step <= 400 && loss > 0.01; step++) {
      loss = trainStep(model, optimizer, batch, { learningRate: 3e-3, labelSmoothing: 0, clipNorm: 5, dropoutSeed: step }).loss;
    }
    expect(loss).toBeLessThan(0.01);
    const replies = greedyDecode(
      model,
      pairs.map((p) => p.source),
      10,
    );
    replies.forEach((reply, i) => {
      expect(reply.tokens).toEqual(pairs[i]!.target);
      expect(reply.finishReason).toBe('eos');
    });
    disposeBatch(batch);
    optimizer.dispose();
    model.dispose();
  });

  it('gives the same logits with and without the cache for 30 steps (max |Δ| ≤ 1e-4)', () => {
    const config = presetConfig('tiny', { vocabSize: VOCAB }, { maxLength: 40 });
    const model = new Transformer(config, 5);
    const rng = new Rng(3);
    const sources = [
      [5, 6, 7, 8],
      [9, 10],
    ];
    const prefix = sources.map(() => [config.bosId]);
    const source = sourceTensor(sources, config);
    const cache = DecoderCache.start(model, source);
    let worst = 0;
    for (let t = 0; t < 30; t++) {
      const fed = prefix.map((p) => p[p.length - 1]!);
      const cached = tf.tidy(() => cache.step(tf.tensor1d(fed, 'int32')));
      const uncached = tf.tidy(() => {
        const all = model.logitsUncached(source, tf.tensor2d(prefix, [2, t + 1], 'int32')); // [B, t+1, V]
        return tf.reshape(tf.slice(all, [0, t, 0], [2, 1, VOCAB]), [2, VOCAB]);
      });
      worst = Math.max(
        worst,
        tf.tidy(() => tf.max(tf.abs(tf.sub(cached, uncached))).dataSync()[0]!),
      );
      tf.dispose([cached, uncached]);
      // Feed random continuations so that every step sees a different prefix.
      prefix.forEach((p) => p.push(4 + Math.floor(rng.next() * (VOCAB - 4))));
    }
    expect(worst).toBeLessThanOrEqual(1e-4);
    cache.dispose();
    source.dispose();
    model.dispose();
  });

  it('encodes a padded batch packed in inference, row for row as the unpacked encoder does (max |Δ| ≤ 1e-5)', () => {
    const config = presetConfig('tiny', { vocabSize: VOCAB });
    const model = new Transformer(config, 4);
    const source = sourceTensor([[5, 6, 7, 8, 9], [10], [11, 12, 13]], config); // [3, 6] with padding
    const lengths = [6, 2, 4]; // EOS included
    const { packed, full, packedRows } = tf.tidy(() => {
      const inference = model.inference.encode(source);
      const training = model.encode(source, ForwardPass.training(0, undefined));
      return { packed: inference.memory, full: training.memory, packedRows: inference.shape.packing?.pack.shape[0] };
    });
    expect(packedRows).toBe(12);
    expect(packed.shape).toEqual([12, config.dModel]);
    const width = source.shape[1];
    const realRows = lengths.flatMap((n, b) => Array.from({ length: n }, (_, i) => b * width + i));
    const worst = tf.tidy(() => tf.max(tf.abs(tf.sub(packed, tf.gather(full, realRows)))).dataSync()[0]!);
    expect(worst).toBeLessThanOrEqual(1e-5);
    tf.dispose([packed, full, source]);
    model.dispose();
  });

  it('decodes rows that join a running decode, and rows left after others leave, as each would alone (max |Δ| ≤ 1e-4)', () => {
    const tensorsBefore = tf.memory().numTensors;
    const config = presetConfig('tiny', { vocabSize: VOCAB }, { maxLength: 40 });
    const model = new Transformer(config, 6);
    const rng = new Rng(8);
    const randomToken = () => 4 + Math.floor(rng.next() * (VOCAB - 4));
    // Sources of different lengths, so that joining pads the memory too; [steps joined at, source].
    const plan: [number, number[]][] = [
      [0, [5, 6]],
      [3, [7, 8, 9, 10, 11, 12]],
      [3, [13]],
      [7, [14, 15, 16]],
    ];
    const alone = plan.map(([, src]) => {
      const source = sourceTensor([src], config);
      return { source, cache: DecoderCache.start(model, source) };
    });
    const first = sourceTensor([plan[0]![1]], config);
    const cache = DecoderCache.start(model, first);
    first.dispose();
    // rows[r]: which source cache row r holds.
    let rows = [0];
    const prefix = plan.map(() => [config.bosId]);
    let worst = 0;
    for (let t = 0; t < 14; t++) {
      const joining = plan.flatMap(([at], i) => (at === t && i > 0 ? [i] : []));
      if (joining.length > 0) {
        const source = sourceTensor(
          joining.map((i) => plan[i]![1]),
          config,
        );
        cache.join(source);
        source.dispose();
        rows = [...rows, ...joining];
      }
      // Source 0 leaves at step 10: the cache slots before the others joined are cut.
      if (t === 10) {
        cache.select(rows.flatMap((i, r) => (i === 0 ? [] : [r])));
        rows = rows.filter((i) => i !== 0);
        expect(cache.position).toBe(10 - 3);
      }
      const fed = rows.map((i) => prefix[i]![prefix[i]!.length - 1]!);
      const together = tf.tidy(() => cache.step(tf.tensor1d(fed, 'int32'))); // [B, V]
      rows.forEach((i, r) => {
        const own = tf.tidy(() => alone[i]!.cache.step(tf.tensor1d([fed[r]!], 'int32'))); // [1, V]
        worst = Math.max(
          worst,
          tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(together, [r, 0], [1, VOCAB]), own))).dataSync()[0]!),
        );
        own.dispose();
        prefix[i]!.push(randomToken());
      });
      together.dispose();
    }
    expect(rows).toEqual([1, 2, 3]);
    expect(worst).toBeLessThanOrEqual(1e-4);
    cache.dispose();
    for (const a of alone) {
      a.cache.dispose();
      a.source.dispose();
    }
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('holds the number of live tensors constant from step 10 to step 100 of training and of decoding', () => {
    const config = presetConfig('tiny', { vocabSize: VOCAB });
    const model = new Transformer(config, 2);
    const optimizer = new Adam(model.params.variables);
    const pairs = randomPairs(16, 9);
    let atStep10 = 0;
    for (let step = 1; step <= 100; step++) {
      const batch = makeBatch(pairs.slice(step % 8, (step % 8) + 8), config);
      trainStep(model, optimizer, batch, { learningRate: 1e-3, labelSmoothing: 0.1, clipNorm: 0.5, dropoutSeed: step });
      disposeBatch(batch);
      if (step === 10) atStep10 = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(atStep10);

    let decodingAt10 = 0;
    for (let request = 1; request <= 100; request++) {
      greedyDecode(model, [pairs[request % 16]!.source], 8);
      if (request === 10) decodingAt10 = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(decodingAt10);
    optimizer.dispose();
    model.dispose();
  });

  it('recomputes the weights it derives for decoding after markWeightsChanged, without growing the tensor count', () => {
    const config = presetConfig('tiny', { vocabSize: VOCAB });
    const model = new Transformer(config, 1);
    const other = new Transformer(config, 2);
    const source = sourceTensor([[5, 6, 7]], config);
    const firstLogits = (m: Transformer): Float32Array =>
      tf.tidy(() => {
        const cache = DecoderCache.start(m, source);
        const logits = cache.step(tf.tensor1d([config.bosId], 'int32')).dataSync() as Float32Array;
        cache.dispose();
        return logits;
      });
    const before = firstLogits(model);
    const expected = firstLogits(other);
    const live = tf.memory().numTensors;
    for (const [name, v] of model.params.variables) v.assign(other.params.get(name));
    model.markWeightsChanged();
    const after = firstLogits(model);
    expect(tf.memory().numTensors).toBe(live);
    expect(after).toEqual(expected);
    expect(after).not.toEqual(before);
    for (let i = 0; i < 5; i++) {
      model.markWeightsChanged();
      firstLogits(model);
    }
    expect(tf.memory().numTensors).toBe(live);
    tf.dispose(source);
    other.dispose();
    model.dispose();
  });

  it('releases every tensor it made when disposed, decoding constants included', () => {
    const before = tf.memory().numTensors;
    const model = new Transformer(presetConfig('tiny', { vocabSize: VOCAB }), 6);
    greedyDecode(model, [[5, 6, 7]], 4);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('saves and loads a model directory that gives identical outputs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-model-'));
    const config = presetConfig('tiny', { vocabSize: VOCAB }, { norm: 'pre' });
    const model = new Transformer(config, 4);
    const tokenizerBytes = new Uint8Array([1, 2, 3, 4]);
    await saveModel(dir, model, { tokenizerBytes, specialIds: SPECIAL_IDS, training: { steps: 0 } });
    const { model: loaded, dir: loadedDir } = await loadModel(dir);
    expect(loaded.config).toEqual(config);
    expect(loadedDir.config.training).toEqual({ steps: 0 });
    expect(Array.from(loadedDir.tokenizerBytes)).toEqual([1, 2, 3, 4]);
    const sources = [
      [5, 6, 7],
      [8, 9, 10, 11],
    ];
    const logits = (m: Transformer) =>
      tf.tidy(() =>
        Array.from(
          m
            .logitsUncached(
              sourceTensor(sources, config),
              tf.tensor2d(
                [
                  [2, 12, 13],
                  [2, 14, 15],
                ],
                [2, 3],
                'int32',
              ),
            )
            .dataSync(),
        ),
      );
    expect(logits(loaded)).toEqual(logits(model));
    expect(greedyDecode(loaded, sources, 6)).toEqual(greedyDecode(model, sources, 6));
    loaded.dispose();
    model.dispose();
  });

  it('names the file when a saved model does not fit its config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-model-'));
    const config = presetConfig('tiny', { vocabSize: VOCAB });
    const model = new Transformer(config, 4);
    await saveModel(dir, model, { tokenizerBytes: new Uint8Array([1]), specialIds: SPECIAL_IDS });
    model.dispose();
    // A config edited by hand to another width: every checksum still holds.
    const configPath = join(dir, CONFIG_FILE);
    const edited = JSON.parse(readFileSync(configPath, 'utf8')) as { model: { dFF: number; numHeads: number } };
    edited.model.dFF = 96;
    writeFileSync(configPath, JSON.stringify(edited));
    const error = await loadModel(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelDirError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^${join(dir, WEIGHTS_FILE).replace(/[.*+?^${}()|[\]\\]/gu, '\\$&')}: does not fit config.json's model: tensor encoder.layers.0.ffn.w1.weight is F32 \\[64, 128\\], the model needs F32 \\[64, 96\\]`,
        'u',
      ),
    );
    edited.model.numHeads = 5;
    writeFileSync(configPath, JSON.stringify(edited));
    await expect(loadModel(dir)).rejects.toThrow(/config\.json: .*numHeads: dModel must be divisible by numHeads/u);
  });

  it('rejects a sequence longer than maxLength with a clear error', () => {
    const config = presetConfig('tiny', { vocabSize: VOCAB }, { maxLength: 8 });
    const model = new Transformer(config, 4);
    expect(() => tf.tidy(() => model.logitsUncached(tf.zeros([1, 9], 'int32') as tf.Tensor2D, tf.zeros([1, 2], 'int32') as tf.Tensor2D))).toThrow(
      /longer than the model's maxLength 8/u,
    );
    model.dispose();
  });
});
