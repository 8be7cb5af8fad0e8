import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { BUNDLED_CORPUS, REPO_ROOT } from '@hanmadi/corpus';
import { flatLayout, loadModel, ModelConfigSchema, Transformer, type FlatLayout } from '@hanmadi/model';
import { describe, expect, it } from 'vitest';
import type { Reporter, StepInfo } from './report.js';
import { CHECKPOINTS_DIR, CURVES_FILE, listCheckpoints, loadLatestCheckpoint, METRICS_FILE } from './run-dir.js';
import { parseTrainArgs } from './settings.js';
import { runTrainCli } from './train-command.js';
import { train, type StopSignal } from './train.js';

const quiet = (onStep?: (info: StepInfo) => void): Reporter => ({
  start: () => {},
  step: (info) => onStep?.(info),
  info: () => {},
  warn: () => {},
  stop: () => {},
});

function runDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'hanmadi-train-')), 'run');
}

function metricRows(dir: string): Record<string, number>[] {
  return readFileSync(join(dir, METRICS_FILE), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/** The flat parameter layout of the model a run trains, from its config. */
async function flatLayoutFor(dir: string): Promise<FlatLayout> {
  const names = await listCheckpoints(dir);
  const config = JSON.parse(readFileSync(join(dir, CHECKPOINTS_DIR, names.at(-1)!, 'config.json'), 'utf8')) as { model: unknown };
  const model = new Transformer(ModelConfigSchema.parse(config.model));
  const layout = flatLayout(model);
  model.dispose();
  return layout;
}

const losses = (dir: string): [number, number][] =>
  metricRows(dir)
    .filter((r) => r['loss'] !== undefined)
    .map((r) => [r['step']!, r['loss']!]);

async function cli(argv: string[]): Promise<{ code: number; err: string[]; out: string }> {
  const err: string[] = [];
  let out = '';
  const stdout = new Writable({
    write(chunk, _encoding, done) {
      out += String(chunk);
      done();
    },
  });
  const code = await runTrainCli(argv, { interactive: false, stdout, err: (l) => err.push(l) });
  return { code, err, out };
}

describe('pnpm train', () => {
  it('trains the tiny preset on the bundled corpus: validation loss falls and the run directory serves', async () => {
    const out = runDir();
    const request = parseTrainArgs(
      [
        '--data',
        BUNDLED_CORPUS,
        '--out',
        out,
        '--preset',
        'tiny',
        '--max-steps',
        '300',
        '--backend',
        'wasm',
        '--workers',
        '1',
        '--valid-samples',
        '20',
        '--select',
        'loss',
      ],
      () => {},
    );
    const summary = await train(request, quiet(), { requested: false });
    expect(summary.steps).toBe(300);
    const validation = metricRows(out).filter((r) => r['validLoss'] !== undefined);
    expect(validation.length).toBeGreaterThan(3);
    const first = validation[0]!['validLoss']!;
    const best = Math.min(...validation.map((r) => r['validLoss']!));
    expect(best).toBeLessThan(first - 0.5);
    expect(Number.isFinite(validation.at(-1)!['bleu'])).toBe(true);
    // The run directory is a model directory, ready to serve: the step with the lowest validation
    // loss, which the summary names with that step's own validation, sample replies included.
    const bestRow = validation.find((r) => r['validLoss'] === best)!;
    expect(summary.served?.step).toBe(bestRow['step']);
    expect(summary.served?.averaged).toBeUndefined();
    expect(summary.served?.validation?.loss).toBe(best);
    // Its report-half figures are its own, not the last step's (the loss is over the whole split).
    expect(summary.served?.report?.loss).toBeCloseTo(best, 6);
    expect(summary.served?.validation?.replies.length).toBeGreaterThan(0);
    const { model, dir } = await loadModel(out);
    expect(model.config.dModel).toBe(64);
    expect((dir.config.training as { step: number }).step).toBe(bestRow['step']);
    model.dispose();
    expect(readFileSync(join(out, CURVES_FILE), 'utf8')).toMatch(/<svg[^>]*>[\s\S]*validation[\s\S]*<\/svg>\s*$/u);
    expect(readdirSync(join(out, CHECKPOINTS_DIR)).length).toBeGreaterThan(0);
  });

  it('resumes an interrupted run exactly: the same losses, step for step, on cpu', async () => {
    const args = (out: string) => [
      '--data',
      BUNDLED_CORPUS,
      '--out',
      out,
      '--preset',
      'tiny',
      '--max-steps',
      '24',
      '--backend',
      'cpu',
      '--workers',
      '1',
      '--log-every',
      '1',
      '--checkpoint-every',
      '8',
      '--valid-samples',
      '4',
      '--seed',
      '7',
    ];
    const whole = runDir();
    await train(
      parseTrainArgs(args(whole), () => {}),
      quiet(),
      { requested: false },
    );

    const interrupted = runDir();
    const stop: StopSignal = { requested: false };
    await train(
      parseTrainArgs(args(interrupted), () => {}),
      quiet((info) => {
        if (info.step === 11) stop.requested = true;
      }),
      stop,
    );
    expect(losses(interrupted).at(-1)![0]).toBe(11);
    const resumed = await train(
      parseTrainArgs([...args(interrupted), '--resume'], () => {}),
      quiet(),
      { requested: false },
    );
    expect(resumed.steps).toBe(24);
    expect(losses(interrupted)).toEqual(losses(whole));
  });

  it('survives kill -9: the previous checkpoint stays loadable and --resume continues', async () => {
    const out = runDir();
    const common = [
      '--data',
      BUNDLED_CORPUS,
      '--out',
      out,
      '--preset',
      'tiny',
      '--backend',
      'wasm',
      '--workers',
      '1',
      '--checkpoint-every',
      '3',
      '--valid-samples',
      '2',
    ];
    const argv = [...common, '--max-steps', '400'];
    // The built `hanmadi` (vitest's global setup builds it), run by node itself as users run it.
    const child = spawn(process.execPath, [join(REPO_ROOT, 'apps/cli/dist/hanmadi.mjs'), 'train', ...argv], { stdio: 'ignore', cwd: REPO_ROOT });
    // Kill it hard once a few checkpoints exist, most likely in the middle of writing another.
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (existsSync(join(out, CHECKPOINTS_DIR)) && readdirSync(join(out, CHECKPOINTS_DIR)).length >= 3) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(poll);
        resolve();
      });
      child.on('error', reject);
    });
    // A crash mid-write leaves at most a temporary directory, which is ignored.
    mkdirSync(join(out, CHECKPOINTS_DIR, '.step-9999999.tmp-dead'), { recursive: true });
    writeFileSync(join(out, CHECKPOINTS_DIR, '.step-9999999.tmp-dead', 'model.safetensors'), 'half');
    const names = await listCheckpoints(out);
    expect(names.length).toBeGreaterThan(0);
    const layout = await flatLayoutFor(out);
    const latest = await loadLatestCheckpoint(out, layout);
    expect(latest?.dir).toBe(join(out, CHECKPOINTS_DIR, names.at(-1)!));
    const resumed = await cli([...common, '--max-steps', String(latest!.trainer.step + 3), '--resume']);
    expect(resumed.err).toEqual([]);
    expect(resumed.code).toBe(0);
    expect((await listCheckpoints(out)).at(-1)).toBe(`step-${String(latest!.trainer.step + 3).padStart(7, '0')}`);
  });

  it('gives a clear one-line error for each bad input: exit 2 for a bad flag, 1 for bad data or state', async () => {
    const out = runDir();
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-bad-'));
    const few = join(dir, 'few.csv');
    writeFileSync(few, 'Q,A\n안녕,반가워\n뭐해,쉬어\n');
    const cases: [string[], RegExp, number][] = [
      [['--data', join(dir, 'nope.csv'), '--out', out], /nope\.csv: cannot read file: no such file/u, 1],
      [['--data', few, '--out', out], /few\.csv: too few pairs to train on: 2 distinct pair\(s\), at least 20 are needed/u, 1],
      [['--data', BUNDLED_CORPUS, '--out', out, '--vocab-size', '100'], /vocabSize 100 is too small: this corpus needs at least/u, 1],
      [['--data', BUNDLED_CORPUS, '--out', out, '--backend', 'tensorflow'], /backend "tensorflow" is unavailable/u, 1],
      [['--data', BUNDLED_CORPUS, '--out', out, '--backend', 'gpu'], /--backend: unknown backend "gpu"/u, 1],
      [['--data', BUNDLED_CORPUS, '--out', out, '--preset', 'huge'], /--preset: unknown preset "huge"/u, 2],
      [['--data', BUNDLED_CORPUS, '--out', out, '--epochs', '0'], /--epochs <n>' argument '0' is invalid\. expected an integer ≥ 1, got "0"/u, 2],
      [['--data', BUNDLED_CORPUS, '--out', out, '--resume'], /nothing to resume/u, 1],
      [['--data', BUNDLED_CORPUS, '--out', out, '--average', '6'], /--average 6 needs --keep 6 or more: only the newest 5 checkpoints are kept/u, 2],
    ];
    for (const [argv, message, expected] of cases) {
      const { code, err } = await cli([...argv, '--workers', '1', '--max-steps', '1']);
      expect(code, argv.join(' ')).toBe(expected);
      expect(err.join('\n'), argv.join(' ')).toMatch(message);
    }
    // A run directory that holds a model is refused without --resume or --force.
    const model = runDir();
    expect((await cli(['--data', BUNDLED_CORPUS, '--out', model, '--max-steps', '2', '--workers', '1', '--valid-samples', '1'])).code).toBe(0);
    const again = await cli(['--data', BUNDLED_CORPUS, '--out', model, '--max-steps', '2', '--workers', '1']);
    expect(again.code).toBe(1);
    expect(again.err.join('\n')).toMatch(/already holds a training run; pass --resume to continue it or --force to replace it/u);
    const changed = await cli(['--data', BUNDLED_CORPUS, '--out', model, '--max-steps', '4', '--workers', '1', '--seed', '9', '--resume']);
    expect(changed.err.join('\n')).toMatch(/these options differ from train\.json: seed \(1\)/u);
    expect((await cli(['--data', BUNDLED_CORPUS, '--out', model, '--max-steps', '2', '--workers', '1', '--valid-samples', '1', '--force'])).code).toBe(0);
    // On --resume the check applies to train.json's --keep merged with the options given.
    const kept = runDir();
    expect((await cli(['--data', BUNDLED_CORPUS, '--out', kept, '--max-steps', '2', '--workers', '1', '--valid-samples', '1', '--keep', '2'])).code).toBe(0);
    const averaged = await cli(['--data', BUNDLED_CORPUS, '--out', kept, '--max-steps', '4', '--workers', '1', '--average', '3', '--resume']);
    expect(averaged.code).toBe(2);
    expect(averaged.err.join('\n')).toMatch(/--average 3 needs --keep 3 or more: only the newest 2 checkpoints are kept/u);
  });

  it('trains with two data-parallel workers, logs structured lines off a terminal, and serves an average of checkpoints', async () => {
    const out = runDir();
    const argv = [
      '--data',
      BUNDLED_CORPUS,
      '--out',
      out,
      '--max-steps',
      '12',
      '--workers',
      '2',
      '--backend',
      'wasm',
      '--log-every',
      '4',
      '--valid-samples',
      '4',
    ];
    const { code, out: log } = await cli([...argv, '--checkpoint-every', '4', '--average', '2']);
    expect(code).toBe(0);
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(lines.some((l) => l.msg.includes('2 workers'))).toBe(true);
    expect(lines.filter((l) => l.msg === 'step')).toHaveLength(3);
    expect(losses(out).map(([step]) => step)).toEqual([4, 8, 12]);
    // §6.1: the served model is the mean of the last two checkpoints' weights.
    const served = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { training: { averaged: string[] } };
    expect(served.training.averaged).toEqual(['step-0000008', 'step-0000012']);
    const done = lines.findIndex((l) => l.msg.startsWith(`${out} serves the average of step-0000008, step-0000012 (validation perplexity `));
    expect(done).toBeGreaterThan(0);
    expect(lines[done + 1]!.msg).toMatch(/^ {2}on the report half of validation \(not used to choose\): perplexity /u);
    expect(lines[done + 2]!.msg).toMatch(/^ {2}안녕하세요 → /u);
    const [a, b, mean] = await Promise.all([
      loadModel(join(out, CHECKPOINTS_DIR, 'step-0000008')),
      loadModel(join(out, CHECKPOINTS_DIR, 'step-0000012')),
      loadModel(out),
    ]);
    const w = (m: typeof a) => m.model.params.get('decoder.layers.0.ffn.w1.weight').dataSync();
    const [wa, wb, wm] = [w(a), w(b), w(mean)];
    for (let i = 0; i < 50; i++) expect(wm[i]).toBeCloseTo((wa[i]! + wb[i]!) / 2, 6);
    for (const m of [a, b, mean]) m.model.dispose();
  });
});
