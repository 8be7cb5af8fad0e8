import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CONFIG_FILE, isPresetName, parseBackendChoice, type BackendChoice, type PresetName } from '@hanmadi/model';
import { integer, number, positive } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError } from 'commander';
import { z } from 'zod';

/**
 * Training recipe per preset: the paper's (§5) at each size. The paper's 25,000
 * tokens per batch and 4,000 warm-up steps fit WMT's 4.5 M sentence pairs; on
 * ChatbotData's 11,823 pairs they would leave three steps per epoch and end
 * training still warming up (the PyTorch reference reached perplexity 112.8
 * after 1,372 steps with warm-up 4,000, and 36.5 with 400). The small presets
 * therefore use batches of about 64 pairs and warm-up 400.
 */
export const RECIPES: Record<PresetName, { batchTokens: number; warmup: number; epochs: number; vocabSize: number; bucketWindow: number }> = {
  tiny: { batchTokens: 256, warmup: 400, epochs: 40, vocabSize: 1000, bucketWindow: 0 },
  tutorial: { batchTokens: 512, warmup: 400, epochs: 20, vocabSize: 8000, bucketWindow: 0 },
  base: { batchTokens: 25000, warmup: 4000, epochs: 20, vocabSize: 8000, bucketWindow: 64 },
};

/** Everything a run is trained with; stored in the run directory's train.json. */
export const TrainSettingsSchema = z.object({
  data: z.string(),
  out: z.string(),
  preset: z.enum(['tiny', 'tutorial', 'base']),
  epochs: z.number().int().positive(),
  maxSteps: z.number().int().positive().nullable(),
  batchTokens: z.number().int().positive(),
  /** Batches' worth of pairs sorted by length together (§5.1); 0 batches at random. */
  bucketWindow: z.number().int().min(0),
  warmup: z.number().int().positive(),
  labelSmoothing: z.number().min(0).max(0.99),
  dropout: z.number().min(0).max(0.9),
  /** Global-norm gradient clipping; null keeps the paper's unclipped updates. */
  clipNorm: z.number().positive().nullable(),
  seed: z.number().int().min(0),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu']),
  /** Worker threads for data-parallel steps on the CPU backends; 1 steps in-process. */
  workers: z.number().int().positive(),
  tokenizer: z.string().nullable(),
  vocabSize: z.number().int().positive(),
  /** Whether --vocab-size was given: otherwise a small corpus may get a smaller vocabulary. */
  vocabSizeExplicit: z.boolean(),
  validEvery: z.number().int().positive().nullable(),
  checkpointEvery: z.number().int().positive(),
  keep: z.number().int().positive(),
  average: z.number().int().min(0),
  validSamples: z.number().int().min(0),
  logEvery: z.number().int().positive(),
  skipInvalid: z.boolean(),
  /** A model directory whose weights, config and tokenizer the run starts from (fine-tuning); null trains from scratch. */
  initFrom: z.string().nullable().default(null),
  /** Fine-tuning's peak learning rate (linear warm-up, then linear decay to zero); null for training from scratch (Noam). */
  peakLr: z.number().positive().nullable().default(null),
  /** How the served model is chosen: lowest validation loss, highest chrF on the selection half, or the --average of the last N. */
  select: z.enum(['loss', 'chrf', 'average']).default('loss'),
});
export type TrainSettings = z.infer<typeof TrainSettingsSchema>;

export interface TrainRequest {
  settings: TrainSettings;
  resume: boolean;
  force: boolean;
  /** Options the user typed, so that --resume can refuse to change what shapes the run. */
  given: Set<string>;
}

/** [0, 1): a probability that must leave something (dropout, label smoothing). */
const fraction = number({ min: 0, max: 1, maxExclusive: true });

/**
 * Fine-tuning's recipe (--init-from): linear warm-up to a peak far below a
 * fresh Noam warm-up's (d^-0.5 · warmup^-0.5 = 3.1e-3 for the tutorial preset),
 * then linear decay to zero, so the base's knowledge is adjusted, not overwritten.
 * The peak was chosen by measurement (docs/chatbot-quality.md).
 */
export const FINE_TUNE = { peakLr: 1e-4, warmupFraction: 0.1, epochs: 10 };

/** The default --workers: one per core, but never more than this many. */
export const MAX_DEFAULT_WORKERS = 4;

/** Options whose change would make a resumed run a different run. */
export const RUN_SHAPING = [
  'data',
  'preset',
  'batchTokens',
  'bucketWindow',
  'warmup',
  'labelSmoothing',
  'dropout',
  'clipNorm',
  'seed',
  'tokenizer',
  'vocabSize',
  'initFrom',
  'peakLr',
] as const;

/** What --init-from takes from the base model; giving them too would contradict it. */
const FROM_BASE = ['preset', 'tokenizer', 'vocabSize'] as const;

/** `pnpm train` flags → settings, with the preset's recipe for what was not given. */
/** `onOutput` hears commander's errors; `--help` goes to `onHelp` (stdout). */
export function parseTrainArgs(
  argv: string[],
  onOutput: (text: string) => void,
  onHelp: (text: string) => void = (text) => process.stdout.write(text),
): TrainRequest {
  const program = new Command('pnpm train')
    .description('Train the Transformer on question/answer pairs; the run directory becomes a servable model directory')
    .exitOverride()
    .configureOutput({ writeOut: onHelp, writeErr: onOutput })
    .requiredOption('--data <file>', 'question/answer pairs: .csv/.tsv (header Q,A) or .jsonl ({"q","a"})')
    .requiredOption('--out <run-dir>', 'run directory (model, checkpoints, metrics, learning curves)')
    .option('--preset <name>', 'model size: tiny, tutorial or base', 'tiny')
    .option('--epochs <n>', `passes over the training split (default: per preset; ${FINE_TUNE.epochs} with --init-from)`, integer(1))
    .option('--max-steps <n>', 'stop after this many optimisation steps', integer(1))
    .option('--batch-tokens <n>', 'token budget of a batch: real source or target tokens (default: per preset)', integer(8))
    .option('--bucket-window <n>', 'sort pairs by length within windows of n batches (§5.1); 0 batches at random (default: per preset)', integer(0))
    .option(
      '--warmup <n>',
      `warm-up steps (default: Noam's ${RECIPES.tutorial.warmup} for tiny/tutorial, ${RECIPES.base.warmup} for base; with --init-from, ${FINE_TUNE.warmupFraction * 100}% of the steps)`,
      integer(1),
    )
    .option('--label-smoothing <x>', 'ε_ls of §5.4', fraction, 0.1)
    .option('--dropout <x>', 'P_drop of §5.4', fraction, 0.1)
    .option('--clip-norm <x>', 'clip gradients to this global L2 norm (default: no clipping, as in the paper)', positive)
    .option('--seed <n>', 'seed of initialisation, data order and dropout', integer(0), 1)
    .option('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu (default: $HANMADI_BACKEND, else auto)')
    .option(
      '--workers <n>',
      `data-parallel worker threads on the wasm/cpu backends; other backends train in-process (default: one per core, at most ${MAX_DEFAULT_WORKERS})`,
      integer(1),
    )
    .option('--tokenizer <file.model>', 'a SentencePiece model to use instead of training one on the training split')
    .option('--vocab-size <n>', 'vocabulary of the tokenizer trained here (default: per preset, or fewer pieces if the corpus supports no more)', integer(16))
    .option('--valid-every <n>', 'also validate every n steps (always after each epoch)', integer(1))
    .option('--checkpoint-every <n>', 'write a checkpoint every n steps (and after each epoch)', integer(1), 500)
    .option('--keep <n>', 'checkpoints to keep, besides the best', integer(1), 5)
    .option(
      '--average <n>',
      'average the last n checkpoints (§6.1; 1: the last one): served as it is, or with --select chrf|loss a candidate beside the checkpoints',
      integer(0),
      0,
    )
    .option('--valid-samples <n>', 'validation pairs (of the selection half) decoded for BLEU and chrF', integer(0), 200)
    .option(
      '--select <how>',
      'the model the run directory serves: chrf (highest chrF on the selection half of validation, among the kept checkpoints and the --average), loss (lowest validation loss) or average (the --average of the last N) (default: average with --average, else chrf, or loss without --valid-samples)',
    )
    .option('--init-from <model-dir>', "fine-tune: start from this model directory's weights, config and tokenizer, with a fresh optimiser")
    .option('--peak-lr <x>', `fine-tuning's peak learning rate, reached after --warmup steps and decayed linearly to 0 (default ${FINE_TUNE.peakLr})`, positive)
    .option('--log-every <n>', 'steps between metric rows and log lines', integer(1), 10)
    .option('--skip-invalid', 'skip invalid corpus records with a warning instead of stopping', false)
    .option('--resume', 'continue the run in --out exactly where its last checkpoint left it', false)
    .option('--force', 'replace whatever --out holds', false);
  program.parse(argv, { from: 'user' });
  const o = program.opts<Record<string, unknown>>();
  const given = new Set(Object.keys(o).filter((k) => program.getOptionValueSource(k) === 'cli'));
  const initFrom = (o['initFrom'] as string | undefined) ?? null;
  const contradicting = FROM_BASE.filter((k) => given.has(k));
  if (initFrom !== null && contradicting.length > 0) {
    const flags = contradicting.map((k) => `--${k.replace(/[A-Z]/gu, (c) => `-${c.toLowerCase()}`)}`).join(', ');
    throw new InvalidArgumentError(`${flags}: --init-from ${initFrom} takes the architecture and tokenizer from that model; drop ${flags}`);
  }
  const presetName = initFrom !== null ? basePreset(initFrom) : String(o['preset']);
  if (!isPresetName(presetName)) throw new InvalidArgumentError(`--preset: unknown preset "${presetName}"; expected tiny, tutorial or base`);
  const recipe = RECIPES[presetName];
  const validSamples = o['validSamples'] as number;
  const average = o['average'] as number;
  const select = parseSelect(o['select'] as string | undefined, average, validSamples);
  const backendFlag = o['backend'] as string | undefined;
  const fromEnv = process.env['HANMADI_BACKEND']?.trim();
  const backend: BackendChoice = backendFlag ? parseBackendChoice(backendFlag, '--backend') : fromEnv ? parseBackendChoice(fromEnv, 'HANMADI_BACKEND') : 'auto';
  const settings: TrainSettings = {
    data: String(o['data']),
    out: String(o['out']),
    preset: presetName,
    epochs: (o['epochs'] as number | undefined) ?? (initFrom !== null ? FINE_TUNE.epochs : recipe.epochs),
    maxSteps: (o['maxSteps'] as number | undefined) ?? null,
    batchTokens: (o['batchTokens'] as number | undefined) ?? recipe.batchTokens,
    bucketWindow: (o['bucketWindow'] as number | undefined) ?? recipe.bucketWindow,
    warmup: (o['warmup'] as number | undefined) ?? recipe.warmup,
    labelSmoothing: o['labelSmoothing'] as number,
    dropout: o['dropout'] as number,
    clipNorm: (o['clipNorm'] as number | undefined) ?? null,
    seed: o['seed'] as number,
    backend,
    workers: (o['workers'] as number | undefined) ?? Math.max(1, Math.min(availableParallelism(), MAX_DEFAULT_WORKERS)),
    tokenizer: (o['tokenizer'] as string | undefined) ?? null,
    vocabSize: (o['vocabSize'] as number | undefined) ?? recipe.vocabSize,
    vocabSizeExplicit: o['vocabSize'] !== undefined,
    validEvery: (o['validEvery'] as number | undefined) ?? null,
    checkpointEvery: o['checkpointEvery'] as number,
    keep: o['keep'] as number,
    average,
    validSamples,
    logEvery: o['logEvery'] as number,
    skipInvalid: o['skipInvalid'] as boolean,
    initFrom,
    peakLr: initFrom !== null ? ((o['peakLr'] as number | undefined) ?? FINE_TUNE.peakLr) : null,
    select,
  };
  if (initFrom === null && given.has('peakLr'))
    throw new InvalidArgumentError('--peak-lr: only used with --init-from (training from scratch follows the Noam schedule of §5.3)');
  return { settings, resume: o['resume'] as boolean, force: o['force'] as boolean, given };
}

function parseSelect(flag: string | undefined, average: number, validSamples: number): TrainSettings['select'] {
  if (flag === undefined) return average > 0 ? 'average' : validSamples > 0 ? 'chrf' : 'loss';
  if (flag !== 'loss' && flag !== 'chrf' && flag !== 'average') throw new InvalidArgumentError(`--select: "${flag}" is not one of loss, chrf, average`);
  if (flag === 'chrf' && validSamples === 0) throw new InvalidArgumentError('--select chrf needs --valid-samples above 0: chrF is measured on decoded replies');
  if (flag === 'average' && average === 0) throw new InvalidArgumentError('--select average needs --average N');
  return flag;
}

/** The preset a model directory was trained with, read from its config.json, for fine-tuning's recipe. */
function basePreset(dir: string): string {
  const file = join(dir, CONFIG_FILE);
  let training: unknown;
  try {
    training = (JSON.parse(readFileSync(file, 'utf8')) as { training?: unknown }).training;
  } catch (error) {
    throw new InvalidArgumentError(
      `--init-from: ${file}: not a readable model directory config (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  const preset = typeof training === 'object' && training !== null ? (training as { preset?: unknown }).preset : undefined;
  // A model directory from elsewhere still fine-tunes; the tutorial recipe's batches suit the small models.
  return typeof preset === 'string' && isPresetName(preset) ? preset : 'tutorial';
}

/**
 * Refuses --average above --keep: older checkpoints are pruned as training
 * goes, so "the last N" would mix in the best one. Checked on the settings a
 * run will use, which on --resume merge train.json with the options given.
 */
export function checkAverageWithinKeep(settings: TrainSettings): void {
  if (settings.average > settings.keep)
    throw new InvalidArgumentError(
      `--average ${settings.average} needs --keep ${settings.average} or more: only the newest ${settings.keep} checkpoints are kept`,
    );
}
