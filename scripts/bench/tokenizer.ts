/**
 * `pnpm bench tokenizer`: BPE training (vocab 8000) on every Q and A line of
 * ChatbotData and encoding of all those lines, each timed right after the
 * SentencePiece command-line tool doing the same, and printed as ratios.
 * Targets (tokenizer issue): training ≤ 2× spm_train's time; encoding ≥ 1 M
 * characters/s in-process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSentences, referenceCorpusPath, REPO_ROOT } from '@hanmadi/corpus';
import { spmAvailable, Tokenizer, trainBpe, writeModelFile } from '@hanmadi/tokenizer';
import { Command } from 'commander';
import { median, printTable } from './table.js';

const REPEATS = 3;

function timeProcess(cmd: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr.toString()}`);
  return (performance.now() - t) / 1000;
}

async function timeAsync(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export function tokenizerCommand(): Command {
  return new Command('tokenizer')
    .description(
      "BPE training (vocab 8000) and encoding of ChatbotData's lines, each timed beside the SentencePiece command-line tools (spm_train, spm_encode)",
    )
    .action(() => benchTokenizer());
}

export async function benchTokenizer(): Promise<void> {
  if (!spmAvailable()) throw new Error('spm_train/spm_encode not found: apt-get install sentencepiece');
  const corpus = referenceCorpusPath();
  const lines = await readSentences(corpus);
  const chars = lines.reduce((n, l) => n + l.length, 0);
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-bench-tok-'));
  const linesFile = join(dir, 'lines.txt');
  writeFileSync(linesFile, `${lines.join('\n')}\n`);
  const ours = join(dir, 'ours.model');
  // The command users run: the bundled `hanmadi tokenizer` (pnpm build).
  const cli = join(REPO_ROOT, 'apps/cli/dist/hanmadi.mjs');
  console.log(`corpus: ${corpus}: ${lines.length} lines, ${chars} characters; vocab 8000; median of ${REPEATS}`);

  const spmTrain: number[] = [];
  const oursTrain: number[] = [];
  const oursCli: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    spmTrain.push(
      timeProcess('spm_train', [`--input=${linesFile}`, `--model_prefix=${join(dir, 'spm')}`, '--vocab_size=8000', '--model_type=bpe', '--minloglevel=2']),
    );
    oursTrain.push(await timeAsync(async () => writeModelFile(ours, trainBpe(lines, { vocabSize: 8000 }))));
    oursCli.push(timeProcess(process.execPath, [cli, 'tokenizer', 'train', '--input', linesFile, '--vocab-size', '8000', '--out', join(dir, 'cli.model')]));
  }

  const tokenizer = await Tokenizer.load(ours);
  for (const line of lines) tokenizer.encode(line); // warm-up: wasm tiers up on first calls
  const spmEncode: number[] = [];
  const oursEncode: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    spmEncode.push(timeProcess('spm_encode', [`--model=${ours}`, '--output_format=id', `--input=${linesFile}`, `--output=${join(dir, 'ids.txt')}`]));
    oursEncode.push(
      await timeAsync(() => {
        for (const line of lines) tokenizer.encode(line);
      }),
    );
  }

  const st = median(spmTrain);
  const ot = median(oursTrain);
  const oc = median(oursCli);
  const se = median(spmEncode);
  const oe = median(oursEncode);
  const rows: [string, string, string, string][] = [
    ['train BPE 8000 (in-process)', `${ot.toFixed(2)} s`, `${st.toFixed(2)} s`, `${(ot / st).toFixed(2)}× spm_train's time (target ≤ 2×)`],
    ['train BPE 8000 (whole CLI process)', `${oc.toFixed(2)} s`, `${st.toFixed(2)} s`, `${(oc / st).toFixed(2)}× spm_train's time`],
    [
      'encode all lines (in-process)',
      `${oe.toFixed(3)} s = ${(chars / oe / 1e6).toFixed(2)} M chars/s`,
      `${se.toFixed(3)} s (whole process)`,
      `${(oe / se).toFixed(2)}× spm_encode's time (target ≥ 1 M chars/s)`,
    ],
  ];
  const header: [string, string, string, string] = ['measure', 'hanmadi', 'SentencePiece CLI', 'ratio'];
  printTable([header, ...rows], true);
  console.log(`spm version: ${execFileSync('dpkg-query', ['-W', '-f=${Version}', 'sentencepiece']).toString()}; node ${process.version}`);
}
