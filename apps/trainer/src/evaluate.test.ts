import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_CORPUS } from '@hanmadi/corpus';
import { describe, expect, it } from 'vitest';
import { runEvaluateCli } from './evaluate-command.js';
import { parseTrainArgs } from './settings.js';
import { train } from './train.js';

const quiet = { start: () => {}, step: () => {}, info: () => {}, warn: () => {}, stop: () => {} };

describe('pnpm evaluate', () => {
  it('prints loss, perplexity, BLEU and chrF of a run directory on a corpus', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'hanmadi-eval-')), 'run');
    await train(parseTrainArgs(['--data', BUNDLED_CORPUS, '--out', out, '--max-steps', '20', '--workers', '1', '--valid-samples', '2'], () => {}), quiet, { requested: false });
    const lines: string[] = [];
    expect(await runEvaluateCli(['--model', out, '--data', BUNDLED_CORPUS, '--samples', '30'], (l) => lines.push(l))).toBe(0);
    expect(lines[0]).toMatch(/^pairs: +431$/u);
    const value = (label: string) => Number(lines.find((l) => l.startsWith(label))!.split(/\s+/u)[1]);
    expect(value('loss:')).toBeGreaterThan(0);
    expect(value('perplexity:')).toBeCloseTo(Math.exp(value('loss:')), 1);
    expect(value('BLEU:')).toBeGreaterThanOrEqual(0);
    expect(value('chrF:')).toBeGreaterThanOrEqual(0);
    expect(lines.find((l) => l.startsWith('BLEU:'))).toMatch(/greedy replies to 30 pairs/u);
  });

  it('names a directory that is not a model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-eval-'));
    expect(await runEvaluateCli(['--model', dir, '--data', BUNDLED_CORPUS], () => {})).toBe(1);
  });
});
