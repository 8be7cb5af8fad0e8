import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BUNDLED_CORPUS, dedupePairs, readPairs, splitPairs } from '@hanmadi/corpus';
import { beforeAll, describe, expect, it } from 'vitest';
import { runEvaluateCli, type EvaluateReport } from './evaluate-command.js';
import { parseTrainArgs } from './settings.js';
import { train } from './train.js';
import { validationHalves } from './validation.js';

const quiet = { start: () => {}, step: () => {}, info: () => {}, warn: () => {}, stop: () => {} };
const root = mkdtempSync(join(tmpdir(), 'hanmadi-eval-'));
const out = join(root, 'run');

async function evaluate(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runEvaluateCli(argv, (l) => lines.push(l));
  return { code, lines };
}

describe('pnpm evaluate', () => {
  beforeAll(async () => {
    await train(
      parseTrainArgs(['--data', BUNDLED_CORPUS, '--out', out, '--max-steps', '20', '--workers', '1', '--valid-samples', '2'], () => {}),
      quiet,
      { requested: false },
    );
  }, 60_000);

  it('prints loss, perplexity, BLEU and chrF of a run directory on a corpus', async () => {
    const { code, lines } = await evaluate(['--model', out, '--data', BUNDLED_CORPUS, '--samples', '30']);
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^pairs: +431$/u);
    const value = (label: string) => Number(lines.find((l) => l.startsWith(label))!.split(/\s+/u)[1]);
    expect(value('loss:')).toBeGreaterThan(0);
    expect(value('perplexity:')).toBeCloseTo(Math.exp(value('loss:')), 1);
    expect(value('BLEU:')).toBeGreaterThanOrEqual(0);
    expect(value('chrF:')).toBeGreaterThanOrEqual(0);
    expect(lines.find((l) => l.startsWith('BLEU:'))).toMatch(/greedy replies to 30 pairs/u);
    expect(lines.find((l) => l.startsWith('chrF:'))).toMatch(/replies [\d.]+× the references' length in characters/u);
  });

  it("evaluates one side of the trainer's split: the validation split and its two halves", async () => {
    const { valid } = splitPairs(dedupePairs((await readPairs(BUNDLED_CORPUS)).pairs).pairs, { seed: 1 });
    const halves = validationHalves(valid, 1);
    expect(halves.selection.length + halves.report.length).toBe(valid.length);
    for (const [split, count] of [
      ['valid', valid.length],
      ['selection', halves.selection.length],
      ['report', halves.report.length],
    ] as const) {
      const { code, lines } = await evaluate(['--model', out, '--data', BUNDLED_CORPUS, '--split', split, '--samples', '0']);
      expect(code).toBe(0);
      expect(lines[0]).toMatch(new RegExp(`^pairs: +${count} \\(the ${split} .*seed 1\\)$`, 'u'));
    }
  });

  it('measures replies to a prompt file with each strategy, with and without the generation config, and writes them', async () => {
    const prompts = join(root, 'prompts.txt');
    writeFileSync(prompts, '안녕\n\n배고파\n오늘 뭐 해?\n심심해\n');
    const output = join(root, 'replies.jsonl');
    const { code, lines } = await evaluate(['--model', out, '--prompts', prompts, '--prompt-lines', '1-4', '--output', output, '--show', '1']);
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^3 prompts from .*prompts\.txt \(lines 1-4\), at most 32 new tokens; defaults: \{/u);
    for (const heading of [
      'greedy, no logits processors:',
      'beam, no logits processors:',
      'greedy, generation_config.json defaults:',
      'beam, generation_config.json defaults:',
    ]) {
      expect(lines).toContain(heading);
    }
    expect(lines.filter((l) => /^ {2}distinct replies: +[\d.]+%$/u.test(l))).toHaveLength(4);
    expect(lines.filter((l) => l.startsWith('  안녕 → '))).toHaveLength(4);
    const rows = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toHaveLength(12);
    expect(rows.map((r) => r['line'])).toEqual([1, 3, 4, 1, 3, 4, 1, 3, 4, 1, 3, 4]);
    expect(rows[0]).toMatchObject({ prompt: '안녕', strategy: 'greedy', decoding: 'none' });
    expect(rows[11]).toMatchObject({ prompt: '오늘 뭐 해?', strategy: 'beam', decoding: 'defaults' });
    for (const r of rows) expect(r['tokens']).toBeLessThanOrEqual(32);
  });

  it('--json prints one JSON object, alone on stdout, with every figure of the text report', async () => {
    const prompts = join(root, 'json-prompts.txt');
    writeFileSync(prompts, '안녕\n배고파\n오늘 뭐 해?\n심심해\n');
    const output = join(root, 'json-replies.jsonl');
    const argv = [
      '--model',
      out,
      '--data',
      BUNDLED_CORPUS,
      '--split',
      'valid',
      '--samples',
      '10',
      '--prompts',
      prompts,
      '--strategies',
      'greedy,sample',
      '--show',
      '1',
    ];
    const text = await evaluate(argv);
    expect(text.code).toBe(0);
    // A process of its own, so that anything else written to stdout would break the parse.
    const script =
      "const { runEvaluateCli } = await import('./apps/trainer/src/evaluate-command.ts'); process.exitCode = await runEvaluateCli(JSON.parse(process.env.EVALUATE_ARGV));";
    const env = { ...process.env, EVALUATE_ARGV: JSON.stringify([...argv, '--output', output, '--json']) };
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: join(import.meta.dirname, '../../..'),
      env,
    });
    const report = JSON.parse(stdout) as EvaluateReport;

    const d = report.data!;
    expect(d).toMatchObject({ file: BUNDLED_CORPUS, split: 'valid', seed: 1, decoded: 10 });
    const value = (label: string) => text.lines.find((l) => l.startsWith(label))!.split(/\s+/u)[1];
    expect(text.lines[0]).toBe(`pairs:      ${d.pairs} (the valid split, seed 1)`);
    expect(value('loss:')).toBe(d.loss.toFixed(4));
    expect(value('perplexity:')).toBe(d.perplexity.toFixed(2));
    expect(value('BLEU:')).toBe(d.bleu.toFixed(2));
    expect(value('chrF:')).toBe(d.chrf.toFixed(2));
    expect(text.lines).toContain(`chrF:       ${d.chrf.toFixed(2)} (replies ${d.lengthRatio.toFixed(2)}× the references' length in characters)`);

    const p = report.prompts!;
    expect(p).toMatchObject({ file: prompts, promptLines: null, count: 4, maxNewTokens: 32, output });
    expect(text.lines).toContain(`4 prompts from ${prompts}, at most 32 new tokens; defaults: ${JSON.stringify(p.generationConfig)}`);
    expect(p.runs.map((r) => `${r.strategy}/${r.decoding}`)).toEqual(['greedy/none', 'sample/none', 'greedy/defaults', 'sample/defaults']);
    const percent = (x: number) => `${(x * 100).toFixed(1)}%`;
    for (const r of p.runs) {
      const at = text.lines.indexOf(`${r.strategy}, ${r.decoding === 'none' ? 'no logits processors' : 'generation_config.json defaults'}:`);
      const printed = Object.fromEntries(text.lines.slice(at + 1, at + 11).map((l) => /^ {2}([^:]+): +(.*)$/u.exec(l)!.slice(1, 3)));
      expect(printed).toEqual({
        replies: String(r.count),
        'distinct replies': percent(r.distinctRatio),
        'ended by EOS': percent(r.eosShare),
        'hit length limit': percent(r.lengthLimitShare),
        'word repeated 3x': percent(r.repeatShare),
        degenerate: percent(r.degenerateShare),
        'mean length': `${r.meanLength.toFixed(1)} tokens, ${r.meanCharacters.toFixed(1)} characters`,
        'copies prompt': percent(r.copyShare),
        'top reply': `${percent(r.topReplyShare)} ${JSON.stringify(r.topReply)}`,
        'distinct-2': percent(r.distinct2),
      });
      expect(r.shown).toHaveLength(1);
      expect(text.lines[at + 11]).toBe(`  안녕 → ${r.shown[0]!.reply}${r.shown[0]!.finishReason === 'length' ? ' …' : ''}`);
    }
    expect(readFileSync(output, 'utf8').trim().split('\n')).toHaveLength(16);
  }, 60_000);

  it('names what is wrong with its arguments or the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-eval-'));
    // Exit 1 for a model or file at fault, 2 for a flag.
    const cases: [string[], RegExp, number][] = [
      [['--model', dir, '--data', BUNDLED_CORPUS], /config\.json/u, 1],
      [['--model', out], /give --data <file>, --prompts <file>, or both/u, 2],
      [['--model', out, '--data', BUNDLED_CORPUS, '--split', 'test'], /--split: "test" is not one of all, valid, selection, report/u, 2],
      [['--model', out, '--prompts', BUNDLED_CORPUS, '--prompt-lines', '5-2'], /--prompt-lines: "5-2" is not a line range/u, 2],
      [['--model', out, '--prompts', join(dir, 'none.txt')], /none\.txt/u, 1],
      [['--model', out, '--prompts', BUNDLED_CORPUS, '--strategies', 'greedy,top'], /--strategies: "top" is not one of greedy, beam, sample/u, 2],
    ];
    const stderr = process.stderr.write.bind(process.stderr);
    for (const [argv, message, expected] of cases) {
      let written = '';
      process.stderr.write = ((chunk: string) => ((written += chunk), true)) as typeof process.stderr.write;
      try {
        expect((await evaluate(argv)).code, argv.join(' ')).toBe(expected);
      } finally {
        process.stderr.write = stderr;
      }
      expect(written, argv.join(' ')).toMatch(message);
    }
  });
});
