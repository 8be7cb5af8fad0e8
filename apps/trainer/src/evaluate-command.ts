import { join } from 'node:path';
import { CorpusError, readPairs } from '@hanmadi/corpus';
import { BackendUnavailableError, initBackend, loadModel, ModelDirError, parseBackendChoice, SafetensorsError, TOKENIZER_FILE } from '@hanmadi/model';
import { ModelFileError, Tokenizer } from '@hanmadi/tokenizer';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { validate } from './validation.js';

/**
 * `pnpm evaluate --model <run-dir> --data <file>`: loss, perplexity, BLEU and
 * chrF of a model directory on a corpus, printed one per line.
 */
export async function runEvaluateCli(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const program = new Command('pnpm evaluate')
    .description('Evaluate a model directory on question/answer pairs')
    .exitOverride()
    .configureOutput({ writeOut: (t) => process.stderr.write(t), writeErr: (t) => process.stderr.write(t) })
    .requiredOption('--model <dir>', 'a model directory (a run directory of pnpm train)')
    .requiredOption('--data <file>', 'question/answer pairs (.csv, .tsv, .jsonl)')
    .option('--samples <n>', 'pairs decoded for BLEU and chrF (default: all)')
    .option('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu');
  try {
    program.parse(argv, { from: 'user' });
    const o = program.opts<{ model: string; data: string; samples?: string; backend?: string }>();
    const samples = o.samples === undefined ? Infinity : Number(o.samples);
    if (!(samples >= 0)) throw new InvalidArgumentError(`--samples: "${o.samples}" is not a number of pairs`);
    await initBackend(o.backend ? parseBackendChoice(o.backend, '--backend') : undefined, () => {});
    const { model, dir } = await loadModel(o.model);
    try {
      const tokenizer = await Tokenizer.load(join(dir.dir, TOKENIZER_FILE));
      const { pairs } = await readPairs(o.data);
      const examples = pairs.map((p) => ({ source: tokenizer.encode(p.question), target: tokenizer.encode(p.answer) }));
      const r = validate(model, tokenizer, examples, pairs, { samples, batchTokens: 1024, prompts: [] });
      out(`pairs:      ${pairs.length}`);
      out(`loss:       ${r.loss.toFixed(4)} (cross-entropy per target token, nats)`);
      out(`perplexity: ${r.perplexity.toFixed(2)}`);
      out(`BLEU:       ${r.bleu.toFixed(2)} (sacreBLEU 13a, greedy replies to ${r.decoded} pairs)`);
      out(`chrF:       ${r.chrf.toFixed(2)}`);
      return 0;
    } finally {
      model.dispose();
    }
  } catch (error) {
    if (error instanceof CommanderError && !(error instanceof InvalidArgumentError)) return error.exitCode;
    const known = [CorpusError, ModelDirError, ModelFileError, SafetensorsError, BackendUnavailableError, InvalidArgumentError];
    if (known.some((k) => error instanceof k)) {
      process.stderr.write(`error: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}
