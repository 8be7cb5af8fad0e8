import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, loadModel, presetConfig, saveModel, Transformer, WEIGHTS_FILE } from '@hanmadi/model';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runExportCli } from './export-command.js';

/** A run directory without the run: a saved untrained tiny model, its train.json and metrics.jsonl. */
async function tinyRunDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-export-cli-'));
  const model = new Transformer(presetConfig('tiny', { vocabSize: 60 }), 3);
  await saveModel(dir, model, { tokenizerBytes: new Uint8Array([1, 2, 3]), specialIds: { pad: 0, unk: 1, bos: 2, eos: 3 }, training: { steps: 0 } });
  model.dispose();
  writeFileSync(join(dir, 'train.json'), '{"preset":"tiny"}\n');
  writeFileSync(join(dir, 'metrics.jsonl'), '');
  return dir;
}

/** Runs the CLI, returning its exit code, stdout lines and stderr text. */
async function run(argv: string[]): Promise<{ code: number; lines: string[]; stderr: string }> {
  const lines: string[] = [];
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await runExportCli(argv, (l) => lines.push(l)), lines, stderr };
  } finally {
    spy.mockRestore();
  }
}

describe('pnpm export', () => {
  beforeAll(async () => {
    await initBackend('cpu', () => {});
  });
  afterEach(() => vi.restoreAllMocks());

  it('writes a float16 model directory that loads, printing the sizes and the largest weight difference', async () => {
    const src = await tinyRunDir();
    const out = join(mkdtempSync(join(tmpdir(), 'hanmadi-export-cli-out-')), 'f16');
    const { code, lines, stderr } = await run(['--model', src, '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines[0]).toMatch(new RegExp(`^wrote ${out}: \\d+ tensors, [\\d,]+ weights as float16$`, 'u'));
    const [, before, after] = /^model\.safetensors: .*\(([\d,]+) bytes\) → .*\(([\d,]+) bytes\)$/u.exec(lines[1]!)!.map((s) => Number(s.replaceAll(',', '')));
    expect(before).toBe(readFileSync(join(src, WEIGHTS_FILE)).length);
    expect(after).toBe(readFileSync(join(out, WEIGHTS_FILE)).length);
    expect(after! / before!).toBeLessThan(0.55);
    const maxDiff = Number(/^max \|Δ\| weight: (\S+) \(float16 export vs source\)$/u.exec(lines[2]!)![1]);
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(1e-3);
    expect(lines[3]).toBe('copied: train.json, metrics.jsonl');
    const { model, dir } = await loadModel(out);
    expect(dir.config.weights.layout).toMatch(/^float16 /u);
    model.dispose();
  });

  it('refuses a non-empty --out unless --force, and writes float32 when asked', async () => {
    const src = await tinyRunDir();
    const out = mkdtempSync(join(tmpdir(), 'hanmadi-export-cli-out-'));
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const refused = await run(['--model', src, '--out', out, '--dtype', 'float32']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`error: --out: ${out} is not empty (--force writes over it)\n`);
    const forced = await run(['--model', src, '--out', out, '--dtype', 'float32', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.lines[2]).toBe('max |Δ| weight: 0.000e+0 (float32 export vs source)');
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
    // An empty directory is not refused.
    const empty = join(out, 'empty');
    mkdirSync(empty);
    expect((await run(['--model', src, '--out', empty])).code).toBe(0);
  });

  it('names the fault: a directory that is not a model, or an unknown --dtype', async () => {
    const notModel = mkdtempSync(join(tmpdir(), 'hanmadi-export-cli-'));
    const out = join(notModel, 'out');
    const missing = await run(['--model', notModel, '--out', out]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: .*config\.json: no such file: not a model directory/u);
    const badDtype = await run(['--model', notModel, '--out', out, '--dtype', 'bf16']);
    expect(badDtype.code).not.toBe(0);
    expect(badDtype.stderr).toMatch(/argument 'bf16' is invalid\. Allowed choices are float16, float32/u);
  });
});
