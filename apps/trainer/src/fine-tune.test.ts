import { copyFileSync, cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { BUNDLED_CORPUS } from '@hanmadi/corpus';
import { GENERATION_CONFIG_FILE } from '@hanmadi/model';
import { beforeAll, describe, expect, it } from 'vitest';
import { runEvaluateCli } from './evaluate-command.js';
import { METRICS_FILE, TRAIN_FILE } from './run-dir.js';
import { runTrainCli } from './train-command.js';

async function cli(argv: string[]): Promise<{ code: number; err: string; log: string }> {
  let log = '';
  const err: string[] = [];
  const stdout = new Writable({
    write(chunk, _encoding, done) {
      log += String(chunk);
      done();
    },
  });
  const code = await runTrainCli([...argv, '--workers', '1', '--backend', 'wasm'], { interactive: false, stdout, err: (l) => err.push(l) });
  return { code, err: err.join('\n'), log };
}

const validationRows = (dir: string) =>
  readFileSync(join(dir, METRICS_FILE), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((r) => r['validLoss'] !== undefined);

const root = mkdtempSync(join(tmpdir(), 'hanmadi-finetune-'));
const base = join(root, 'base');

describe('pnpm train --init-from (fine-tuning)', () => {
  beforeAll(async () => {
    // A base that has learnt a little: fine-tuning must start from it, not from scratch.
    const { code, err } = await cli(['--data', BUNDLED_CORPUS, '--out', base, '--preset', 'tiny', '--epochs', '4', '--valid-samples', '4', '--seed', '3']);
    expect(err).toBe('');
    expect(code).toBe(0);
    writeFileSync(join(base, GENERATION_CONFIG_FILE), '{ "noRepeatNgramSize": 2 }\n');
  }, 120_000);

  it("starts at the base's own validation loss, then lowers it, with the base's tokenizer and generation config", async () => {
    const out = join(root, 'tuned');
    const { code, log } = await cli(['--data', BUNDLED_CORPUS, '--out', out, '--init-from', base, '--epochs', '4', '--valid-samples', '4']);
    expect(code).toBe(0);
    expect(log).toMatch(/fine-tuning .*base: peak learning rate 0\.0001 after \d+ warm-up steps, linear decay to 0 at step \d+/u);
    const rows = validationRows(out);
    expect(rows[0]!['step']).toBe(0);
    // Step 0 is the base model itself: pnpm evaluate on the same validation split gives the same loss.
    const lines: string[] = [];
    expect(await runEvaluateCli(['--model', base, '--data', BUNDLED_CORPUS, '--split', 'valid', '--seed', '1', '--samples', '0'], (l) => lines.push(l))).toBe(
      0,
    );
    const baseLoss = Number(lines.find((l) => l.startsWith('loss:'))!.split(/\s+/u)[1]);
    expect(rows[0]!['validLoss']).toBeCloseTo(baseLoss, 4);
    expect(Math.min(...rows.slice(1).map((r) => r['validLoss']!))).toBeLessThan(rows[0]!['validLoss']!);
    expect(readFileSync(join(out, 'tokenizer.model'))).toEqual(readFileSync(join(base, 'tokenizer.model')));
    expect(JSON.parse(readFileSync(join(out, GENERATION_CONFIG_FILE), 'utf8'))).toEqual({ noRepeatNgramSize: 2 });
    const settings = JSON.parse(readFileSync(join(out, TRAIN_FILE), 'utf8')) as { initFrom: string; peakLr: number };
    expect(settings.initFrom).toBe(base);
    expect(settings.peakLr).toBe(1e-4);
  }, 120_000);

  it('refuses options that would change the architecture or tokenizer, and a base that does not hold together', async () => {
    const out = join(root, 'refused');
    for (const [flags, message] of [
      [['--preset', 'tutorial'], /--preset: --init-from .* takes the architecture and tokenizer from that model; drop --preset/u],
      [['--vocab-size', '500'], /--vocab-size: --init-from/u],
      [['--tokenizer', join(base, 'tokenizer.model')], /--tokenizer: --init-from/u],
    ] as const) {
      const { code, err } = await cli(['--data', BUNDLED_CORPUS, '--out', out, '--init-from', base, ...flags]);
      expect(code).toBe(2);
      expect(err).toMatch(message);
    }
    expect((await cli(['--data', BUNDLED_CORPUS, '--out', out, '--peak-lr', '0.001'])).err).toMatch(/--peak-lr: only used with --init-from/u);
    expect((await cli(['--data', BUNDLED_CORPUS, '--out', out, '--init-from', join(root, 'nowhere')])).err).toMatch(
      /--init-from: .*nowhere.*config\.json: not a readable model directory/u,
    );

    // A tokenizer of another vocabulary, its checksum updated so that only the vocabulary check can catch it.
    const other = join(root, 'other-vocab');
    expect(
      (await cli(['--data', BUNDLED_CORPUS, '--out', other, '--preset', 'tiny', '--vocab-size', '800', '--max-steps', '1', '--valid-samples', '0'])).code,
    ).toBe(0);
    const mismatched = join(root, 'mismatched-tokenizer');
    cpSync(base, mismatched, { recursive: true });
    copyFileSync(join(other, 'tokenizer.model'), join(mismatched, 'tokenizer.model'));
    rewriteConfig(mismatched, (c) => {
      c.tokenizer.sha256 = sha256(join(mismatched, 'tokenizer.model'));
    });
    const tokenizer = await cli(['--data', BUNDLED_CORPUS, '--out', out, '--init-from', mismatched]);
    expect(tokenizer.code).toBe(1);
    expect(tokenizer.err).toMatch(/mismatched-tokenizer\/tokenizer\.model: --init-from: the tokenizer has 800 pieces, the model's embedding \d+ rows/u);

    // Weights of another shape than config.json's model.
    const reshaped = join(root, 'mismatched-shape');
    cpSync(base, reshaped, { recursive: true });
    rewriteConfig(reshaped, (c) => {
      c.model.dFF = 96;
    });
    const shape = await cli(['--data', BUNDLED_CORPUS, '--out', out, '--init-from', reshaped]);
    expect(shape.code).toBe(1);
    expect(shape.err).toMatch(
      /mismatched-shape\/model\.safetensors: does not fit config\.json's model: .*ffn\.w1\.weight is F32 \[64, 128\], the model needs F32 \[64, 96\]/u,
    );
  }, 120_000);
});

describe('pnpm train --select', () => {
  it('serves the checkpoint with the highest chrF on the selection half and reports the other half', async () => {
    const out = join(root, 'select-chrf');
    const { code, log } = await cli([
      '--data',
      BUNDLED_CORPUS,
      '--out',
      out,
      '--preset',
      'tiny',
      '--epochs',
      '6',
      '--keep',
      '10',
      '--valid-samples',
      '8',
      '--select',
      'chrf',
      '--seed',
      '5',
    ]);
    expect(code).toBe(0);
    const rows = validationRows(out).filter((r) => r['step']! > 0);
    const best = rows.reduce((b, r) => (r['chrf']! > b['chrf']! || (r['chrf'] === b['chrf'] && r['validLoss']! < b['validLoss']!) ? r : b));
    const served = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { training: { step: number } };
    expect(served.training.step).toBe(best['step']);
    expect(log).toContain(`serves step ${best['step']} (validation perplexity`);
    expect(log).toMatch(/the highest chrF on the selection half of validation \([\d.]+\) among \d+ validated checkpoint\(s\)/u);
    expect(log).toMatch(/on the report half of validation \(not used to choose\): perplexity [\d.]+, BLEU [\d.]+, chrF [\d.]+ \(\d+ replies/u);
  }, 120_000);
});

describe('pnpm train --resume --select', () => {
  it('chooses again on a finished run, measuring checkpoints whose rows predate the selection half', async () => {
    const out = join(root, 'reselect');
    const args = ['--data', BUNDLED_CORPUS, '--out', out, '--preset', 'tiny', '--epochs', '5', '--keep', '10', '--valid-samples', '8', '--seed', '6'];
    expect((await cli([...args, '--select', 'loss'])).code).toBe(0);
    const chrfs = new Map(validationRows(out).map((r) => [r['step']!, r['chrf']!]));
    // As an older run wrote them: chrF of other pairs, no `halves` mark.
    const metrics = join(out, METRICS_FILE);
    writeFileSync(
      metrics,
      readFileSync(metrics, 'utf8')
        .replaceAll(',"halves":true', '')
        .replaceAll(/"chrf":[\d.]+/gu, '"chrf":0'),
    );
    const { code, log } = await cli([...args, '--resume', '--select', 'chrf']);
    expect(code).toBe(0);
    // Five checkpoints; the last step is validated anew when the run ends, the other four measured.
    expect(log.match(/measured step-\d{7} on the selection half: chrF/gu)).toHaveLength(4);
    const best = [...chrfs].reduce((b, c) => (c[1] > b[1] ? c : b));
    const served = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { training: { step: number } };
    expect(chrfs.get(served.training.step)).toBe(best[1]);
    expect(log).toMatch(/serves step \d+ \(validation perplexity [\d.]+, BLEU [\d.]+, chrF [\d.]+\): the highest chrF on the selection half/u);
  }, 120_000);
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

interface EditableConfig {
  tokenizer: { sha256: string };
  model: { dFF: number };
}

function rewriteConfig(dir: string, edit: (c: EditableConfig) => void): void {
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as EditableConfig;
  edit(config);
  writeFileSync(file, JSON.stringify(config));
}
