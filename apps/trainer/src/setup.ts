/**
 * Setting a run up: the run directory (new, resumed or replaced), the data and
 * tokenizer, the model (fresh or the base of a fine-tuning run), the engine
 * that steps it, and the decoding defaults written beside the served model.
 */
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dedupePairs, readPairs, splitPairs, type QaPair } from '@hanmadi/corpus';
import { CONFIG_FILE, GENERATION_CONFIG_FILE, importWeights, presetConfig, Transformer, type BackendInfo, type Example } from '@hanmadi/model';
import { Tokenizer, trainBpe, writeModelFile } from '@hanmadi/tokenizer';
import { InProcessEngine, ParallelEngine, type Engine } from './engine.js';
import type { BaseModel } from './init-from.js';
import type { Reporter } from './report.js';
import { CURVES_FILE, METRICS_FILE, RunDirError, TOKENIZER_FILE, TRAIN_FILE } from './run-dir.js';
import { checkAverageWithinKeep, RUN_SHAPING, TrainSettingsSchema, type TrainRequest, type TrainSettings } from './settings.js';
import { validationHalves } from './validation.js';

/** The fewest pairs worth training on: below this the validation split is empty or meaningless. */
export const MIN_PAIRS = 20;

/** The corpus of a run, split, tokenized and encoded. */
export interface Prepared {
  tokenizer: Tokenizer;
  tokenizerBytes: Uint8Array;
  train: Example[];
  valid: Example[];
  validPairs: QaPair[];
  /** The validation pairs the served model is chosen on, and those it is reported on. */
  selectionPairs: QaPair[];
  reportPairs: QaPair[];
  pairs: number;
  duplicates: number;
}

/** Checks --out: a run directory holding a model is only reused with --resume or replaced with --force. */
export async function prepareRunDir(request: TrainRequest, report: Reporter): Promise<TrainSettings> {
  const { settings } = request;
  const out = settings.out;
  const trainFile = join(out, TRAIN_FILE);
  const hasRun = await stat(trainFile).then(
    () => true,
    () => false,
  );
  const hasModel = await stat(join(out, CONFIG_FILE)).then(
    () => true,
    () => false,
  );
  if (request.resume) {
    if (!hasRun) throw new RunDirError(`${out}: nothing to resume (no ${TRAIN_FILE}); start a run there without --resume`);
    const saved = TrainSettingsSchema.parse(JSON.parse(await readFile(trainFile, 'utf8')));
    const conflicts = RUN_SHAPING.filter((k) => request.given.has(k) && JSON.stringify(saved[k]) !== JSON.stringify(settings[k]));
    if (conflicts.length > 0) {
      throw new RunDirError(
        `${out}: --resume continues the run as it was started; these options differ from ${TRAIN_FILE}: ${conflicts.map((k) => `${k} (${JSON.stringify(saved[k])})`).join(', ')}`,
      );
    }
    // Scheduling and hardware may change between sessions; the recipe may not.
    const merged: TrainSettings = { ...saved };
    for (const k of [
      'epochs',
      'maxSteps',
      'backend',
      'workers',
      'validEvery',
      'checkpointEvery',
      'keep',
      'average',
      'validSamples',
      'logEvery',
      'select',
    ] as const) {
      if (request.given.has(k)) (merged as Record<string, unknown>)[k] = settings[k];
    }
    checkAverageWithinKeep(merged);
    report.info(`resuming the run in ${out}`);
    return merged;
  }
  checkAverageWithinKeep(settings);
  if ((hasRun || hasModel) && !request.force) {
    throw new RunDirError(`${out} already holds a ${hasRun ? 'training run' : 'model'}; pass --resume to continue it or --force to replace it`);
  }
  if (request.force && (hasRun || hasModel)) {
    for (const name of [TRAIN_FILE, METRICS_FILE, CURVES_FILE, 'checkpoints', CONFIG_FILE, 'model.safetensors', TOKENIZER_FILE, GENERATION_CONFIG_FILE]) {
      await rm(join(out, name), { recursive: true, force: true });
    }
  }
  await mkdir(out, { recursive: true });
  return settings;
}

/** Written once the data and tokenizer are ready, so a start that fails leaves no run behind. */
export async function recordRun(settings: TrainSettings): Promise<void> {
  await writeFile(join(settings.out, TRAIN_FILE), `${JSON.stringify(settings, null, 2)}\n`);
}

export async function prepareData(settings: TrainSettings, resuming: boolean, report: Reporter): Promise<Prepared> {
  const { pairs: raw, skipped } = await readPairs(settings.data, { skipInvalid: settings.skipInvalid });
  for (const issue of skipped.slice(0, 5)) report.warn(`skipped ${issue.file}:${issue.line}: ${issue.message}`);
  if (skipped.length > 0) report.warn(`skipped ${skipped.length} invalid record(s) in ${settings.data}`);
  const { pairs, removed } = dedupePairs(raw);
  if (pairs.length < MIN_PAIRS) {
    throw new RunDirError(`${settings.data}: too few pairs to train on: ${pairs.length} distinct pair(s), at least ${MIN_PAIRS} are needed`);
  }
  const { train, valid } = splitPairs(pairs, { seed: settings.seed });
  // A tiny corpus can hash every pair to one side; keep both sides non-empty.
  if (valid.length === 0) valid.push(train.pop()!);
  const runTokenizer = join(settings.out, TOKENIZER_FILE);
  if (resuming) {
    // The run's own tokenizer, whatever --tokenizer says now.
  } else if (settings.initFrom !== null) {
    await copyFile(join(settings.initFrom, TOKENIZER_FILE), runTokenizer);
  } else if (settings.tokenizer) {
    await copyFile(settings.tokenizer, runTokenizer).catch((error: NodeJS.ErrnoException) => {
      throw new RunDirError(`${settings.tokenizer}: cannot read the tokenizer: ${error.code ?? error.message}`);
    });
  } else {
    const model = trainBpe(
      train.flatMap((p) => [p.question, p.answer]),
      { vocabSize: settings.vocabSize, hardVocabLimit: settings.vocabSizeExplicit, input: [settings.data] },
    );
    await writeModelFile(runTokenizer, model);
    report.info(`trained a ${model.pieces.length}-piece BPE tokenizer on the training split`, { file: runTokenizer });
  }
  const tokenizer = await Tokenizer.load(runTokenizer);
  if (!tokenizer.hasProjectSpecialIds) {
    const ids = tokenizer.specialIds;
    throw new RunDirError(
      `${settings.tokenizer ?? runTokenizer}: special ids are pad ${ids.pad}, unk ${ids.unk}, bos ${ids.bos}, eos ${ids.eos}; hanmadi needs pad 0, unk 1, bos 2, eos 3 (spm_train --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3)`,
    );
  }
  const encode = (p: QaPair): Example => ({ source: tokenizer.encode(p.question), target: tokenizer.encode(p.answer) });
  const halves = validationHalves(valid, settings.seed);
  return {
    tokenizer,
    tokenizerBytes: await readFile(runTokenizer),
    train: train.map(encode),
    valid: valid.map(encode),
    validPairs: valid,
    selectionPairs: halves.selection,
    reportPairs: halves.report,
    pairs: pairs.length,
    duplicates: removed,
  };
}

export async function startEngine(model: Transformer, settings: TrainSettings, backend: BackendInfo, report: Reporter): Promise<Engine> {
  const cpuBound = backend.name === 'wasm' || backend.name === 'cpu';
  if (cpuBound && settings.workers > 1) {
    const engine = await ParallelEngine.start(model, settings.workers, backend.name);
    report.info(`training on ${engine.description}`);
    return engine;
  }
  return new InProcessEngine(model, backend.detail);
}

/** A fresh model of the preset, or the base model's architecture and weights (dropout as asked). */
export function createModel(settings: TrainSettings, tokenizer: Tokenizer, base: BaseModel | undefined): Transformer {
  const { specialIds } = tokenizer;
  if (base === undefined) {
    const config = presetConfig(
      settings.preset,
      { vocabSize: tokenizer.vocabSize, padId: specialIds.pad, bosId: specialIds.bos, eosId: specialIds.eos },
      { dropout: settings.dropout },
    );
    return new Transformer(config, settings.seed);
  }
  const model = new Transformer({ ...base.config, dropout: settings.dropout }, settings.seed);
  try {
    importWeights(model, base.tensors, base.weightsFile);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}
