import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_CORPUS } from '@hanmadi/corpus';
import { describe, expect, it } from 'vitest';
import { runTokenizerCli } from './commands.js';

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runTokenizerCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

describe('pnpm tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-cli-'));
  const model = join(dir, 'tok.model');

  it('trains, then encodes and decodes', async () => {
    const trained = await run('train', '--input', BUNDLED_CORPUS, '--vocab-size', '1000', '--out', model);
    expect(trained.code).toBe(0);
    expect(trained.out[0]).toMatch(/^trained 1000 pieces on \d+ sentences in [\d.]+ s$/u);
    expect(trained.out[1]).toBe(`wrote ${model} and ${join(dir, 'tok.vocab')}`);

    const encoded = await run('encode', '--model', model, '오늘', '날씨', '좋네요');
    expect(encoded.code).toBe(0);
    expect(encoded.out[0]).toMatch(/^pieces: ▁오늘 /u);
    const ids = encoded.out[1]!.replace(/^ids:\s+/u, '').split(' ');
    expect(ids.every((id) => /^\d+$/u.test(id))).toBe(true);

    const decoded = await run('decode', '--model', model, ...ids);
    expect(decoded.out).toEqual(['오늘 날씨 좋네요']);
  });

  it('reads a .txt file of sentences', async () => {
    const txt = join(dir, 'sentences.txt');
    writeFileSync(txt, '가나다 라마\n가나 다라마\n');
    const { code } = await run('train', '--input', txt, '--vocab-size', '12', '--out', join(dir, 'txt.model'));
    expect(code).toBe(0);
  });

  it('prints one clear line for each bad input: exit 1 for bad data, 2 for a bad flag', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'Q,A\n안녕,\n');
    const cases: [string[], RegExp, number][] = [
      [['train', '--input', join(dir, 'missing.csv'), '--out', model], /missing\.csv: cannot read file: no such file/u, 1],
      [['train', '--input', bad, '--out', model], /bad\.csv:2: empty field "A"/u, 1],
      [['train', '--input', BUNDLED_CORPUS, '--vocab-size', '50', '--out', model], /vocabSize 50 is too small/u, 1],
      [['train', '--input', BUNDLED_CORPUS, '--vocab-size', 'many', '--out', model], /expected an integer ≥ 1, got "many"/u, 2],
      [['encode', '--model', BUNDLED_CORPUS, '안녕'], /hanmadi-qa\.csv: not a SentencePiece model/u, 1],
      [['decode', '--model', model, '999999'], /token id 999999 is outside the vocabulary/u, 1],
      [['decode', '--model', model, '-3'], /expected an integer ≥ 0, got "-3"/u, 2],
    ];
    for (const [argv, message, expected] of cases) {
      const { code, err } = await run(...argv);
      expect(code, argv.join(' ')).toBe(expected);
      expect(err.join('\n'), argv.join(' ')).toMatch(message);
      expect(err.join('\n')).not.toMatch(/\n\s+at /u);
    }
  });
});

describe('pnpm tokenizer train --format', () => {
  it('reads the file as the format given, whatever its extension', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-cli-format-'));
    const lines = join(dir, 'sentences.data');
    writeFileSync(lines, '가나다 라마\n가나 다라마\n');
    expect((await run('train', '--input', lines, '--format', 'txt', '--vocab-size', '12', '--out', join(dir, 'tok.model'))).code).toBe(0);
  });

  it('refuses a format it cannot read, listing the ones it can', async () => {
    const { code, err } = await run('train', '--input', BUNDLED_CORPUS, '--format', 'xml', '--out', join(tmpdir(), 'never.model'));
    expect(code).toBe(2);
    expect(err.join('\n')).toMatch(/option '--format <format>' argument 'xml' is invalid\. Allowed choices are csv, tsv, jsonl, txt\./u);
  });

  it('lists the choices in its help', async () => {
    const { code, out } = await run('train', '--help');
    expect(code).toBe(0);
    // Commander wraps help to the terminal's width.
    expect(out.join('\n').replace(/\s+/gu, ' ')).toMatch(
      /--format <format> override the format taken from the extension \(choices: "csv", "tsv", "jsonl", "txt"\)/u,
    );
  });
});

describe('pnpm tokenizer train --out', () => {
  it('creates missing folders, and names an unwritable target', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-cli-out-'));
    const nested = join(dir, 'a', 'b', 'tok.model');
    expect((await run('train', '--input', BUNDLED_CORPUS, '--vocab-size', '800', '--out', nested)).code).toBe(0);
    const blocker = join(dir, 'file');
    writeFileSync(blocker, 'x');
    const { code, err } = await run('train', '--input', BUNDLED_CORPUS, '--vocab-size', '800', '--out', join(blocker, 'tok.model'));
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/file\/tok\.model: cannot write: E(NOTDIR|EXIST)/u);
  });
});
