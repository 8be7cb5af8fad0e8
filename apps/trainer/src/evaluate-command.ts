import { join } from 'node:path';
import { CorpusError, dedupePairs, readPairs, splitPairs, type QaPair } from '@hanmadi/corpus';
import {
  BackendUnavailableError,
  initBackend,
  loadModel,
  ModelDirError,
  parseBackendChoice,
  readGenerationConfig,
  SafetensorsError,
  TOKENIZER_FILE,
  type GenerationConfig,
  type SearchStrategy,
  type Transformer,
} from '@hanmadi/model';
import { ModelFileError, Tokenizer } from '@hanmadi/tokenizer';
import { EXIT_FAILURE, exitCodeFor, integer } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError } from 'commander';
import { writeFileDurably } from '@hanmadi/files';
import { formatReplyMeasures, replyMeasures, type ReplyMeasures } from './metrics/replies.js';
import { probeReplies, readProbePrompts, PROBE_MAX_NEW_TOKENS, type ProbeDecoding, type ProbeReply } from './probe.js';
import { validate, validationHalves, type ValidationResult } from './validation.js';

const SPLITS = ['all', 'valid', 'selection', 'report'] as const;
type Split = (typeof SPLITS)[number];

interface EvaluateOptions {
  model: string;
  data?: string;
  split: string;
  seed?: number;
  samples?: string;
  prompts?: string;
  promptLines?: string;
  output?: string;
  show: number;
  strategies: string;
  decoding: string;
  backend?: string;
  json: boolean;
}

/** `--data`'s figures: validation's (a figure of no decoded pair is NaN, null in JSON) and which pairs they are of. */
export interface PairsReport extends Omit<ValidationResult, 'replies'> {
  file: string;
  split: Split;
  /** The seed of the trainer's split; used only when `split` is not 'all'. */
  seed: number;
  pairs: number;
}

/** One strategy and decoding over every prompt: the reply measures and the first --show replies. */
export interface ProbeRun extends ReplyMeasures {
  strategy: SearchStrategy;
  decoding: ProbeDecoding;
  shown: ProbeReply[];
}

/** `--prompts`'s figures, one run per decoding and strategy, in the order they were decoded. */
export interface PromptsReport {
  file: string;
  promptLines: string | null;
  /** Prompts read (each run's `count` is its replies, one a prompt). */
  count: number;
  maxNewTokens: number;
  generationConfig: GenerationConfig;
  runs: ProbeRun[];
  output: string | null;
}

/** What `--json` prints: the sections of the flags given, absent otherwise. */
export interface EvaluateReport {
  model: string;
  data?: PairsReport;
  prompts?: PromptsReport;
}

/**
 * `pnpm evaluate --model <dir> (--data <file> | --prompts <file>)`: with
 * --data, loss, perplexity, BLEU and chrF on a corpus (or one side of the
 * training split); with --prompts, the replies to a prompt file, measured
 * for what makes a chatbot dull or broken (repeats, runs to the limit,
 * one reply for everything, copies of the prompt). With --json, the same
 * figures as one JSON object (EvaluateReport) and nothing else on stdout.
 */
export async function runEvaluateCli(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const program = new Command('pnpm evaluate')
    .description('Evaluate a model directory on question/answer pairs and/or a prompt file')
    .exitOverride()
    .configureOutput({ writeOut: (t) => out(t.trimEnd()), writeErr: (t) => process.stderr.write(t) })
    .requiredOption('--model <dir>', 'a model directory (a run directory of pnpm train)')
    .option('--data <file>', 'question/answer pairs (.csv, .tsv, .jsonl): loss, perplexity, BLEU, chrF')
    .option('--split <side>', "which pairs of --data: all, valid (the trainer's 5% validation split), selection or report (its halves)", 'all')
    .option('--seed <n>', "the split's seed (default: the model's training seed, else 1)", integer(0))
    .option('--samples <n>', 'pairs decoded for BLEU and chrF (default: all)')
    .option('--prompts <file>', 'one prompt a line: replies measured for variety and degeneration')
    .option('--prompt-lines <from-to>', 'only these lines of --prompts, e.g. 51-100')
    .option('--output <file.jsonl>', 'write every reply to --prompts here, one JSON object a line')
    .option('--show <n>', 'print the replies to the first n prompts (with --json: each run\'s "shown")', integer(0), 0)
    .option('--strategies <list>', 'search strategies for --prompts: greedy, beam, sample', 'greedy,beam')
    .option('--decoding <list>', "none (the search alone), defaults (with the model's generation_config.json)", 'none,defaults')
    .option('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu')
    .option('--json', 'print every figure as one JSON object on stdout instead of the text report', false);
  try {
    program.parse(argv, { from: 'user' });
    const o = program.opts<EvaluateOptions>();
    if (o.data === undefined && o.prompts === undefined) throw new InvalidArgumentError('give --data <file>, --prompts <file>, or both');
    const samples = o.samples === undefined ? Infinity : Number(o.samples);
    if (!(samples >= 0)) throw new InvalidArgumentError(`--samples: "${o.samples}" is not a number of pairs`);
    if (!(SPLITS as readonly string[]).includes(o.split)) throw new InvalidArgumentError(`--split: "${o.split}" is not one of ${SPLITS.join(', ')}`);
    const strategies = listOf(o.strategies, '--strategies', ['greedy', 'beam', 'sample'] as const);
    const decodings = listOf(o.decoding, '--decoding', ['none', 'defaults'] as const);
    await initBackend(o.backend ? parseBackendChoice(o.backend, '--backend') : undefined, () => {});
    const { model, dir } = await loadModel(o.model);
    try {
      const tokenizer = await Tokenizer.load(join(dir.dir, TOKENIZER_FILE));
      // In --json mode nothing is printed until the one object at the end.
      const text = o.json ? () => {} : out;
      const report: EvaluateReport = { model: dir.dir };
      if (o.data !== undefined) {
        report.data = await evaluatePairs(model, tokenizer, o.data, o.split as Split, o.seed ?? trainingSeed(dir.config.training), samples);
        for (const line of formatPairsReport(report.data)) text(line);
      }
      if (o.prompts !== undefined) {
        const prompts = await readProbePrompts(o.prompts, o.promptLines);
        const config = await readGenerationConfig(dir.dir);
        const section: PromptsReport = {
          file: o.prompts,
          promptLines: o.promptLines ?? null,
          count: prompts.length,
          maxNewTokens: PROBE_MAX_NEW_TOKENS,
          generationConfig: config,
          runs: [],
          output: o.output ?? null,
        };
        const all: ProbeReply[] = [];
        text(
          `${prompts.length} prompts from ${o.prompts}${o.promptLines ? ` (lines ${o.promptLines})` : ''}, at most ${PROBE_MAX_NEW_TOKENS} new tokens; defaults: ${JSON.stringify(config)}`,
        );
        for (const decoding of decodings) {
          for (const strategy of strategies) {
            const replies = probeReplies(model, tokenizer, prompts, strategy, decoding, config);
            all.push(...replies);
            const run: ProbeRun = { strategy, decoding, ...replyMeasures(replies), shown: replies.slice(0, o.show) };
            section.runs.push(run);
            text('');
            for (const line of formatProbeRun(run)) text(line);
          }
        }
        if (o.output !== undefined) {
          await writeFileDurably(o.output, all.map((r) => `${JSON.stringify(r)}\n`).join(''));
          text(`\nreplies written to ${o.output}`);
        }
        report.prompts = section;
      }
      if (o.json) out(JSON.stringify(report, null, 2));
      return 0;
    } finally {
      model.dispose();
    }
  } catch (error) {
    if (isFileError(error)) {
      process.stderr.write(`error: ${(error as Error).message}\n`);
      return EXIT_FAILURE;
    }
    return exitCodeFor(error, [CorpusError, ModelDirError, ModelFileError, SafetensorsError, BackendUnavailableError]);
  }
}

/** Loss, perplexity, BLEU and chrF on the pairs of `file` (one side of the trainer's split unless `split` is 'all'). */
async function evaluatePairs(model: Transformer, tokenizer: Tokenizer, file: string, split: Split, seed: number, samples: number): Promise<PairsReport> {
  const pairs = pick((await readPairs(file)).pairs, split, seed);
  const examples = pairs.map((p) => ({ source: tokenizer.encode(p.question), target: tokenizer.encode(p.answer) }));
  const { replies: _replies, ...figures } = validate(model, tokenizer, examples, pairs, { samples, batchTokens: 1024, prompts: [] });
  return { file, split, seed, pairs: pairs.length, ...figures };
}

/** The text report of --data. */
function formatPairsReport(r: PairsReport): string[] {
  return [
    `pairs:      ${r.pairs}${r.split === 'all' ? '' : ` (the ${r.split} ${r.split === 'valid' ? 'split' : 'half of the validation split'}, seed ${r.seed})`}`,
    `loss:       ${r.loss.toFixed(4)} (cross-entropy per target token, nats)`,
    `perplexity: ${r.perplexity.toFixed(2)}`,
    `BLEU:       ${r.bleu.toFixed(2)} (sacreBLEU 13a, greedy replies to ${r.decoded} pairs)`,
    `chrF:       ${r.chrf.toFixed(2)} (replies ${r.lengthRatio.toFixed(2)}× the references' length in characters)`,
  ];
}

/** The text report of one probe run: a heading, its measures, the replies shown. */
function formatProbeRun(run: ProbeRun): string[] {
  return [
    `${run.strategy}, ${run.decoding === 'none' ? 'no logits processors' : 'generation_config.json defaults'}:`,
    ...formatReplyMeasures(run).map((line) => `  ${line}`),
    ...run.shown.map((r) => `  ${r.prompt} → ${r.reply}${r.finishReason === 'length' ? ' …' : ''}`),
  ];
}

/** The pairs of one side of the trainer's split: the same de-duplication, hash and seed as `pnpm train`. */
function pick(pairs: QaPair[], split: Split, seed: number): QaPair[] {
  if (split === 'all') return pairs;
  const { valid } = splitPairs(dedupePairs(pairs).pairs, { seed });
  if (split === 'valid') return valid;
  const halves = validationHalves(valid, seed);
  return split === 'selection' ? halves.selection : halves.report;
}

function trainingSeed(training: unknown): number {
  const seed = (training as { settings?: { seed?: unknown } } | null)?.settings?.seed;
  return typeof seed === 'number' ? seed : 1;
}

function listOf<T extends string>(value: string, flag: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim());
  for (const item of items)
    if (!(allowed as readonly string[]).includes(item)) throw new InvalidArgumentError(`${flag}: "${item}" is not one of ${allowed.join(', ')}`);
  return items as T[];
}

function isFileError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && typeof (error as NodeJS.ErrnoException).path === 'string';
}
