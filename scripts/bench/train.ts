/**
 * `pnpm bench train`: the trainer's own step (token-budget batches, Adam with
 * the Noam schedule, label smoothing, dropout; data-parallel workers on wasm)
 * on the `tutorial` preset and ChatbotData: target tokens per second and the
 * share of this machine's fp32 matmul peak (202 GFLOP/s on 2 cores, measured
 * by the reference's matmul_peak.py), beside the PyTorch reference run right
 * before it.
 */
import { availableParallelism } from 'node:os';
import { integer } from '@hanmadi/cli-kit';
import { Command } from 'commander';
import { initBackend, noamSchedule, presetConfig, Transformer, type Example, type ModelConfig } from '@hanmadi/model';
import { epochBatches, InProcessEngine, ParallelEngine, type Engine } from '@hanmadi/trainer';
import { prepareChatbotData } from './chatbot-data.js';
import { referenceAvailable, runReferenceTraining, type ReferenceTraining } from './reference.js';
import { printTable } from './table.js';

/** fp32 matmul peak of this machine kind (2048² products, 2 threads; ../shared/anchors/torch-cpu/results.md). */
const PEAK_GFLOPS = 202;
/** Matmul FLOPs of one training step per target token without any padding, for the tutorial model (results.md). */
const USEFUL_FLOPS_PER_TOKEN = 27.7e6;

/**
 * Matmul FLOPs of one training step as hanmadi computes it (forward × 3):
 * position-wise products over the padded [B·S] and [B·T] rows, attention over
 * S² / T² / T·S, and the vocabulary projection over real target tokens only.
 */
export function stepFlops(batch: readonly Example[], config: ModelConfig): number {
  const b = batch.length;
  const s = Math.max(...batch.map((e) => e.source.length + 1));
  const t = Math.max(...batch.map((e) => e.target.length + 1));
  const tokens = batch.reduce((n, e) => n + e.target.length + 1, 0);
  const { dModel: d, dFF: f, vocabSize: v } = config;
  const encoder = b * s * (4 * d * d + 2 * d * f) + 2 * b * s * s * d;
  const decoder = b * t * 4 * d * d + 2 * b * t * t * d + b * t * 2 * d * d + b * s * 2 * d * d + 2 * b * t * s * d + b * t * 2 * d * f;
  const macs = config.encoderLayers * encoder + config.decoderLayers * decoder + tokens * d * v;
  return 3 * 2 * macs;
}

interface TrainOptions {
  steps: number;
  workers?: number;
  reference: boolean;
}

export function trainCommand(): Command {
  return new Command('train')
    .description("the trainer's own step on the tutorial preset and ChatbotData: target tokens/s and share of the machine's fp32 matmul peak, beside PyTorch")
    .option('--steps <n>', 'timed steps after 3 warm-up steps', integer(1), 40)
    .option('--workers <n>', 'data-parallel worker threads on wasm; 1 steps in-process (default: one per core, at most 4)', integer(1))
    .option('--no-reference', 'skip the PyTorch reference (../shared/anchors/torch-cpu)')
    .action((_, command: Command) => benchTrain(command.opts<TrainOptions>()));
}

export async function benchTrain(options: TrainOptions): Promise<void> {
  const steps = options.steps;
  const workers = options.workers ?? Math.min(availableParallelism(), 4);
  let reference: ReferenceTraining | undefined;
  if (options.reference && referenceAvailable()) {
    console.log('PyTorch reference (../shared/anchors/torch-cpu): training benchmark, 2 threads, 50 steps …');
    reference = runReferenceTraining().result;
  }
  const backend = await initBackend('wasm', () => {});
  const data = await prepareChatbotData();
  const config = presetConfig('tutorial', { vocabSize: data.tokenizer.vocabSize });
  const model = new Transformer(config, 1);
  const engine: Engine = workers > 1 ? await ParallelEngine.start(model, workers, 'wasm') : new InProcessEngine(model, backend.detail);
  const batches = epochBatches(data.train, 512, 1, 0);
  const warmup = 3;
  let seconds = 0;
  let tokens = 0;
  let flops = 0;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const batch = batches[i % batches.length]!;
      const started = performance.now();
      const r = await engine.step(batch, { learningRate: noamSchedule(i + 1, config.dModel, 400), labelSmoothing: 0.1, clipNorm: Infinity, dropoutSeed: i });
      if (i < warmup) continue;
      seconds += (performance.now() - started) / 1000;
      tokens += r.targetTokens;
      flops += stepFlops(batch, config);
    }
  } finally {
    await engine.close();
    model.dispose();
  }
  const tps = tokens / seconds;
  const rows: string[][] = [['', 'target tok/s', 'matmul GFLOP/s', '% of peak', 'useful GFLOP/s', 'useful % of peak', 'vs PyTorch tok/s']];
  if (reference) {
    const useful = (reference.tgt_tok_per_s_median * USEFUL_FLOPS_PER_TOKEN) / 1e9;
    rows.push([
      'PyTorch 1.13 CPU, 2 threads',
      reference.tgt_tok_per_s_median.toFixed(0),
      reference.achieved_gflops.toFixed(1),
      pct(reference.achieved_gflops),
      useful.toFixed(1),
      pct(useful),
      '1.00×',
    ]);
  }
  const achieved = flops / seconds / 1e9;
  const useful = (tps * USEFUL_FLOPS_PER_TOKEN) / 1e9;
  rows.push([
    `hanmadi ${engine.description}`,
    tps.toFixed(0),
    achieved.toFixed(1),
    pct(achieved),
    useful.toFixed(1),
    pct(useful),
    reference ? `${(tps / reference.tgt_tok_per_s_median).toFixed(2)}×` : '–',
  ]);
  console.log(
    `\ntutorial preset on ChatbotData, the tutorial recipe's batches (≤ 512 real tokens a side, random order), ${steps} steps after ${warmup} warm-up; peak ${PEAK_GFLOPS} GFLOP/s`,
  );
  printTable(rows);
  console.log("(useful = 27.7 MFLOP per target token: the model's matmuls without any padding; PyTorch computes its padding too)");
}

function pct(gflops: number): string {
  return `${((100 * gflops) / PEAK_GFLOPS).toFixed(1)}%`;
}
