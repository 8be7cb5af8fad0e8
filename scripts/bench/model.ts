/**
 * `pnpm bench model`: training steps/s and target tokens/s of the `tutorial`
 * preset on ChatbotData batches of 64 pairs (length-bucketed, padded to each
 * batch's longest), on each available backend, and greedy decoding latency at
 * batch 1 with and without the cache — each printed beside the PyTorch
 * reference measured right before it, with the ratio.
 */
import * as tf from '@tensorflow/tfjs-core';
import { integer } from '@hanmadi/cli-kit';
import { Command } from 'commander';
import {
  Adam,
  DataParallelTrainer,
  DecoderCache,
  disposeBatch,
  initBackend,
  makeBatch,
  noamSchedule,
  presetConfig,
  sourceTensor,
  Transformer,
  trainStep,
  type BackendName,
  type Example,
} from '@hanmadi/model';
import { lengthBucketedBatches, prepareChatbotData } from './chatbot-data.js';
import { median, printTable } from './table.js';
import { referenceAvailable, runReferenceDecoding, runReferenceTraining, type ReferenceDecoding, type ReferenceTraining } from './reference.js';

const WARMUP = 3;

interface TrainingRow {
  label: string;
  msPerStep: number;
  tokensPerSecond: number;
  tokensPerStep: number;
  steps: number;
}

type Stepper = (batch: Example[], step: number) => Promise<number>;

async function measure(label: string, batches: Example[][], steps: number, stepper: Stepper): Promise<TrainingRow> {
  const times: number[] = [];
  const rates: number[] = [];
  let tokens = 0;
  for (let i = 0; i < WARMUP + steps; i++) {
    const started = performance.now();
    const n = await stepper(batches[i % batches.length]!, i + 1);
    const seconds = (performance.now() - started) / 1000;
    if (i < WARMUP) continue;
    times.push(seconds * 1000);
    rates.push(n / seconds);
    tokens += n;
  }
  return { label, msPerStep: median(times), tokensPerSecond: median(rates), tokensPerStep: tokens / steps, steps };
}

const options = { learningRate: 0, labelSmoothing: 0.1, clipNorm: 1, dropoutSeed: 0 };

async function trainInProcess(backend: BackendName, batches: Example[][], steps: number, vocabSize: number): Promise<TrainingRow> {
  await initBackend(backend, () => {});
  const config = presetConfig('tutorial', { vocabSize });
  const model = new Transformer(config, 1);
  const optimizer = new Adam(model.params.variables);
  const row = await measure(`${backend}, 1 thread`, batches, steps, async (examples, step) => {
    const batch = makeBatch(examples, config);
    const r = trainStep(model, optimizer, batch, { ...options, learningRate: noamSchedule(step, config.dModel, 400), dropoutSeed: step });
    disposeBatch(batch);
    return r.targetTokens;
  });
  optimizer.dispose();
  model.dispose();
  return row;
}

async function trainParallel(backend: BackendName, workers: number, batches: Example[][], steps: number, vocabSize: number): Promise<TrainingRow> {
  await initBackend(backend, () => {});
  const config = presetConfig('tutorial', { vocabSize });
  const model = new Transformer(config, 1);
  const trainer = await DataParallelTrainer.start(model, { workers, backend });
  try {
    return await measure(`${backend}, ${workers} workers`, batches, steps, async (examples, step) => {
      const r = await trainer.step(examples, { ...options, learningRate: noamSchedule(step, config.dModel, 400), dropoutSeed: step });
      return r.targetTokens;
    });
  } finally {
    await trainer.close();
    model.dispose();
  }
}

/** Median milliseconds of a 20-token greedy reply (EOS ignored), batch 1. */
function greedyLatency(model: Transformer, source: number[], cached: boolean): number {
  const { bosId, vocabSize } = model.config;
  const run = (): void => {
    const src = sourceTensor([source], model.config);
    const out = [bosId];
    if (cached) {
      const cache = DecoderCache.start(model, src);
      for (let t = 0; t < 20; t++) out.push(tf.tidy(() => tf.argMax(cache.step(tf.tensor1d([out[t]!], 'int32')), 1).dataSync()[0]!));
      cache.dispose();
    } else {
      for (let t = 0; t < 20; t++) {
        out.push(
          tf.tidy(() => {
            const logits = model.logitsUncached(src, tf.tensor2d(out, [1, out.length], 'int32')); // [1, t+1, V]
            return tf.argMax(tf.reshape(tf.slice(logits, [0, t, 0], [1, 1, vocabSize]), [vocabSize])).dataSync()[0]!;
          }),
        );
      }
    }
    src.dispose();
  };
  for (let i = 0; i < 5; i++) run();
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    run();
    times.push(performance.now() - started);
  }
  return median(times);
}

function ratio(ours: number, theirs: number | undefined): string {
  return theirs === undefined ? '–' : `${(ours / theirs).toFixed(2)}×`;
}

interface ModelOptions {
  steps: number;
  backends: string;
  reference: boolean;
}

export function modelCommand(): Command {
  return new Command('model')
    .description(
      'training steps/s and target tokens/s of the tutorial preset on ChatbotData on each backend, and greedy decoding latency with and without the cache, beside PyTorch',
    )
    .option('--steps <n>', 'timed training steps after 3 warm-up steps (the cpu backend runs at most 2, webgpu at most 3)', integer(1), 30)
    .option('--backends <list>', 'comma-separated backends to train on: wasm, cpu, webgpu', 'wasm,cpu')
    .option('--no-reference', 'skip the PyTorch reference (../shared/anchors/torch-cpu)')
    .action((_, command: Command) => benchModel(command.opts<ModelOptions>()));
}

export async function benchModel(options: ModelOptions): Promise<void> {
  const steps = options.steps;
  const backends = options.backends.split(',').map((b) => b.trim()) as BackendName[];
  const withReference = options.reference && referenceAvailable();

  let refTraining: ReferenceTraining | undefined;
  let refDecoding: ReferenceDecoding | undefined;
  let work: string | undefined;
  if (withReference) {
    console.log('PyTorch reference (../shared/anchors/torch-cpu): training benchmark, 2 threads, 50 steps …');
    ({ work, result: refTraining } = runReferenceTraining());
  }

  const data = await prepareChatbotData();
  const batches = lengthBucketedBatches(data.train, 64, 1);
  const vocabSize = data.tokenizer.vocabSize;
  console.log(
    `ChatbotData: ${data.train.length} training pairs, ${batches.length} batches of 64 (length-bucketed), vocab ${vocabSize}; ${steps} timed steps after ${WARMUP} warm-up`,
  );

  const rows: TrainingRow[] = [];
  for (const backend of backends) {
    if (backend === 'wasm') {
      rows.push(await trainParallel('wasm', 2, batches, steps, vocabSize));
      rows.push(await trainInProcess('wasm', batches, steps, vocabSize));
    } else if (backend === 'cpu') {
      // tfjs's cpu backend runs matmuls in plain JavaScript: a few steps tell its speed.
      rows.push(await trainInProcess('cpu', batches, Math.min(steps, 2), vocabSize));
    } else {
      rows.push(await trainInProcess(backend, batches, Math.min(steps, 3), vocabSize));
    }
  }

  console.log('\ntraining, tutorial preset (d 256, 2+2 layers, 8 heads, dff 512), batches of 64 pairs');
  const table: string[][] = [['backend', 'ms/step', 'steps/s', 'target tok/s', 'tok/step', 'vs PyTorch tok/s']];
  if (refTraining) {
    const r = refTraining;
    table.push([
      'PyTorch 1.13 CPU, 2 threads',
      r.ms_per_step_median.toFixed(0),
      (1000 / r.ms_per_step_median).toFixed(2),
      r.tgt_tok_per_s_median.toFixed(0),
      r.tgt_tokens_per_step_mean.toFixed(0),
      '1.00×',
    ]);
  }
  for (const row of rows) {
    table.push([
      `hanmadi ${row.label}`,
      row.msPerStep.toFixed(0),
      (1000 / row.msPerStep).toFixed(2),
      row.tokensPerSecond.toFixed(0),
      row.tokensPerStep.toFixed(0),
      ratio(row.tokensPerSecond, refTraining?.tgt_tok_per_s_median),
    ]);
  }
  printTable(table);

  if (withReference && work) {
    console.log('\nPyTorch reference: decoding benchmark …');
    refDecoding = runReferenceDecoding(work);
  }
  await initBackend('wasm', () => {});
  const model = new Transformer(presetConfig('tutorial', { vocabSize }), 1);
  const prompt = data.tokenizer.encode('오늘 너무 힘들어');
  const cached = greedyLatency(model, prompt, true);
  const uncached = greedyLatency(model, prompt, false);
  model.dispose();
  console.log(`\ngreedy reply of 20 tokens (EOS ignored), batch 1, prompt "오늘 너무 힘들어" (${prompt.length} tokens), median of 30`);
  const decode: string[][] = [['', 'ms/reply', 'ms/token', 'vs PyTorch']];
  if (refDecoding) {
    decode.push(['PyTorch, K/V cache', refDecoding.greedy_cache_20.median_ms.toFixed(1), refDecoding.greedy_cache_20.ms_per_token.toFixed(2), '1.00×']);
    decode.push(['PyTorch, no cache', refDecoding.greedy_nocache_20.median_ms.toFixed(1), refDecoding.greedy_nocache_20.ms_per_token.toFixed(2), '1.00×']);
  }
  decode.push(['hanmadi wasm, K/V cache', cached.toFixed(1), (cached / 20).toFixed(2), ratio(cached, refDecoding?.greedy_cache_20.median_ms)]);
  decode.push(['hanmadi wasm, no cache', uncached.toFixed(1), (uncached / 20).toFixed(2), ratio(uncached, refDecoding?.greedy_nocache_20.median_ms)]);
  printTable(decode);
  console.log('(ratios of times: below 1× is faster than PyTorch)');
}
