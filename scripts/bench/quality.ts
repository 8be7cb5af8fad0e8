/**
 * `pnpm bench quality --metrics <run>/metrics.jsonl`: time to quality — the
 * training time (step time, validation excluded) a run took to first reach
 * each validation perplexity, beside the PyTorch reference's recorded
 * 8-minute run (`raw_train_w400_1372steps.json`: the same model and recipe,
 * its own random split and SentencePiece tokenizer, so close but not strictly
 * comparable). Recorded, not re-run: an 8-minute training beside ours would
 * need the machine to itself for both.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ANCHOR_DIR } from './reference.js';
import { printTable } from './table.js';

interface Point {
  step: number;
  trainSeconds: number;
  perplexity: number;
}

/** Validation points of a hanmadi run, each with the training seconds at its step (interpolated between logged steps). */
export function runCurve(metricsText: string): Point[] {
  const rows = metricsText
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, number>);
  const logged = rows.filter((r) => typeof r['elapsedSeconds'] === 'number').map((r) => [r['step']!, r['elapsedSeconds']!] as const);
  const secondsAt = (step: number): number => {
    const after = logged.findIndex(([s]) => s >= step);
    if (after === 0) return (logged[0]![1] * step) / logged[0]![0];
    if (after < 0) return logged.at(-1)![1];
    const [s0, t0] = logged[after - 1]!;
    const [s1, t1] = logged[after]!;
    return t0 + ((t1 - t0) * (step - s0)) / (s1 - s0);
  };
  return rows
    .filter((r) => typeof r['validPerplexity'] === 'number' && r['step']! > 0)
    .map((r) => ({ step: r['step']!, trainSeconds: secondsAt(r['step']!), perplexity: r['validPerplexity']! }));
}

function referenceCurve(): Point[] {
  const raw = JSON.parse(readFileSync(join(ANCHOR_DIR, 'raw_train_w400_1372steps.json'), 'utf8')) as {
    curve: { step: number; train_s: number; val_ppl: number }[];
  };
  return raw.curve.filter((c) => c.step > 0).map((c) => ({ step: c.step, trainSeconds: c.train_s, perplexity: c.val_ppl }));
}

function firstBelow(curve: readonly Point[], perplexity: number): Point | undefined {
  return curve.find((p) => p.perplexity <= perplexity);
}

interface QualityOptions {
  metrics: string;
  perplexity: string;
}

export function qualityCommand(): Command {
  return new Command('quality')
    .description("training time to each validation perplexity of a run, beside the PyTorch reference's recorded 8-minute run")
    .requiredOption('--metrics <file>', "a run's metrics.jsonl (<run-dir>/metrics.jsonl)")
    .option('--perplexity <list>', 'comma-separated validation perplexities to time', '100,60,45,40')
    .action((_, command: Command) => benchQuality(command.opts<QualityOptions>()));
}

export async function benchQuality(options: QualityOptions): Promise<void> {
  const file = options.metrics;
  const thresholds = options.perplexity.split(',').map(Number);
  const ours = runCurve(readFileSync(file, 'utf8'));
  const theirs = referenceCurve();
  const cell = (point: Point | undefined) =>
    point ? `${(point.trainSeconds / 60).toFixed(1)} min (step ${point.step}, ${point.perplexity.toFixed(1)})` : 'not reached';
  console.log(`training time to a validation perplexity, ${file} beside PyTorch 1.13 (recorded 8-minute run, warm-up 400)`);
  printTable([['perplexity ≤', 'hanmadi', 'PyTorch reference'], ...thresholds.map((t) => [String(t), cell(firstBelow(ours, t)), cell(firstBelow(theirs, t))])]);
  const best = ours.reduce((b, q) => (q.perplexity < b.perplexity ? q : b));
  console.log(
    `hanmadi's lowest: perplexity ${best.perplexity.toFixed(2)} at step ${best.step} (${(best.trainSeconds / 60).toFixed(1)} min); its last: ${ours.at(-1)!.perplexity.toFixed(2)} at step ${ours.at(-1)!.step}`,
  );
}
