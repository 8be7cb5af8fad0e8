/**
 * A model directory of the `tiny` preset trained for a few epochs on the
 * bundled corpus: a real model for the service and CLI tests, in seconds.
 * Built from the packages alone (corpus → tokenizer → model), so the apps'
 * tests share it without importing one another. Its replies are poor; the
 * tests check the service, not the chatbot.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_CORPUS, readPairs } from '@hanmadi/corpus';
import {
  Adam,
  DEFAULT_GENERATION_CONFIG,
  disposeBatch,
  makeBatch,
  noamSchedule,
  presetConfig,
  Rng,
  saveModel,
  Transformer,
  trainStep,
  writeGenerationConfig,
  type Example,
} from '@hanmadi/model';
import { Tokenizer, trainBpe, writeModelFile } from '@hanmadi/tokenizer';

/** A vocabulary the bundled corpus fills, small enough to train in seconds. */
const VOCAB_SIZE = 800;
const PAIRS_PER_BATCH = 16;
const SEED = 1;

export interface TinyModelDir {
  dir: string;
  remove: () => Promise<void>;
}

/** Trains the fixture (greedy-decodable, with the trainer's default generation_config.json) into a temporary directory. */
export async function trainTinyModelDir(epochs = 4): Promise<TinyModelDir> {
  const root = await mkdtemp(join(tmpdir(), 'hanmadi-fixture-'));
  const dir = join(root, 'tiny');
  const { pairs } = await readPairs(BUNDLED_CORPUS);
  const tokenizerFile = join(root, 'tokenizer.model');
  await writeModelFile(
    tokenizerFile,
    trainBpe(
      pairs.flatMap((p) => [p.question, p.answer]),
      { vocabSize: VOCAB_SIZE },
    ),
  );
  const tokenizer = await Tokenizer.load(tokenizerFile);
  const { pad, bos, eos } = tokenizer.specialIds;
  const config = presetConfig('tiny', { vocabSize: tokenizer.vocabSize, padId: pad, bosId: bos, eosId: eos });
  const model = new Transformer(config, SEED);
  const optimizer = new Adam(model.params.variables);
  const examples: Example[] = pairs.map((p) => ({ source: tokenizer.encode(p.question), target: tokenizer.encode(p.answer) }));
  const rng = new Rng(SEED);
  let step = 0;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = rng.shuffle(examples.map((_, i) => i));
      for (let i = 0; i < order.length; i += PAIRS_PER_BATCH) {
        step++;
        const batch = makeBatch(
          order.slice(i, i + PAIRS_PER_BATCH).map((j) => examples[j]!),
          config,
        );
        // The tiny preset's recipe: Noam's schedule (§5.3) with a short warm-up, label smoothing 0.1 (§5.4).
        trainStep(model, optimizer, batch, {
          learningRate: noamSchedule(step, config.dModel, 100),
          labelSmoothing: 0.1,
          clipNorm: Infinity,
          dropoutSeed: step,
        });
        disposeBatch(batch);
      }
    }
    await saveModel(dir, model, {
      tokenizerBytes: await readFile(tokenizerFile),
      specialIds: tokenizer.specialIds,
      training: { fixture: 'tiny', epochs, steps: step },
    });
    await writeGenerationConfig(dir, { ...DEFAULT_GENERATION_CONFIG });
  } finally {
    optimizer.dispose();
    model.dispose();
  }
  return { dir, remove: () => rm(root, { recursive: true, force: true }) };
}
