import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorpusError } from './errors.js';
import { firstInvalidUtf8, parsePairs, readPairs, readSentences } from './reader.js';
import { BUNDLED_CORPUS, referenceCorpusAvailable, referenceCorpusPath } from './reference.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function errorOf(fn: () => unknown): CorpusError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CorpusError) return error;
    throw error;
  }
  throw new Error('expected a CorpusError');
}

describe('CSV', () => {
  it('reads ChatbotData-style rows, trimming the label', () => {
    const { pairs } = parsePairs('Q,A,label\n12시 땡!,하루가 또 가네요.,0\n사랑해,저도요,"2   "\n', 'x.csv');
    expect(pairs).toEqual([
      { question: '12시 땡!', answer: '하루가 또 가네요.', label: 0, line: 2 },
      { question: '사랑해', answer: '저도요', label: 2, line: 3 },
    ]);
  });

  it('handles quoted fields with commas, quotes and newlines, and reports start lines', () => {
    const csv = 'Q,A\n"밥 먹었어, 너는?","응, ""맛있게"" 먹었어요\n고마워요"\n\n다음,줄\n';
    const { pairs } = parsePairs(csv, 'x.csv');
    expect(pairs[0]).toEqual({ question: '밥 먹었어, 너는?', answer: '응, "맛있게" 먹었어요 고마워요', line: 2 });
    expect(pairs[1]).toMatchObject({ question: '다음', answer: '줄', line: 5 });
  });

  it('accepts any column order and long header names, with a BOM and CRLF', () => {
    const { pairs } = parsePairs('\uFEFFanswer,Question\r\n네 좋아요,괜찮아?\r\n', 'x.csv');
    expect(pairs).toEqual([{ question: '괜찮아?', answer: '네 좋아요', line: 2 }]);
  });

  it('normalises NFD text to NFC', () => {
    const { pairs } = parsePairs(`Q,A\n${'한글'.normalize('NFD')},${'좋아'.normalize('NFD')}\n`, 'x.csv');
    expect(pairs[0]!.question).toBe('한글');
    expect(pairs[0]!.answer).toBe('좋아');
  });

  it('names a missing column', () => {
    const error = errorOf(() => parsePairs('Q,B\n가,나\n', 'data.csv'));
    expect(error.message).toMatch(/^data\.csv:1: header is missing column "A"/u);
  });

  it('names the line of an empty field, a missing field and a bad label', () => {
    expect(errorOf(() => parsePairs('Q,A\n가,나\n다,  \n', 'd.csv')).message).toBe('d.csv:3: empty field "A"');
    expect(errorOf(() => parsePairs('Q,A\n가,나\n다\n', 'd.csv')).message).toBe('d.csv:3: missing field "A"');
    expect(errorOf(() => parsePairs('Q,A,label\n가,나,x\n', 'd.csv')).message).toBe('d.csv:2: label "x" is not an integer');
  });

  it('names the line of an unclosed quote: where it opened, not where the file ends', () => {
    const error = errorOf(() => parsePairs('Q,A\n가,나\n"다,라\n마,바\n', 'd.csv'));
    expect(error.file).toBe('d.csv');
    expect(error.message).toBe('d.csv:3: quoted field is never closed (missing ")');
    // Closed quotes (with "" and newlines inside) before it do not move the blame.
    const earlier = 'Q,A\n"가, ""나""\n다",라\n마,"바\n사,아\n자,차\n';
    expect(errorOf(() => parsePairs(earlier, 'e.csv')).message).toBe('e.csv:4: quoted field is never closed (missing ")');
    const { skipped } = parsePairs('Q,A\n가,나\n"다,라\n마,바\n', 'd.csv', { skipInvalid: true });
    expect(skipped.map((s) => s.line)).toEqual([3]);
  });

  it('rejects a record over the configured length, naming its line', () => {
    const csv = `Q,A\n가,나\n${'다'.repeat(50)},라\n`;
    expect(errorOf(() => parsePairs(csv, 'd.csv', { maxRecordLength: 40 })).message).toBe('d.csv:3: record is 52 characters, over the limit of 40');
  });

  it('skips invalid records with counted warnings when asked', () => {
    const csv = `Q,A\n가,나\n다,\n${'x'.repeat(50)},y\n라,마\n`;
    const { pairs, skipped } = parsePairs(csv, 'd.csv', { skipInvalid: true, maxRecordLength: 40 });
    expect(pairs.map((p) => p.question)).toEqual(['가', '라']);
    expect(skipped.map((s) => s.line)).toEqual([3, 4]);
  });

  it('fails on a file with no pairs', () => {
    expect(errorOf(() => parsePairs('Q,A\n', 'd.csv')).message).toBe('d.csv: no question/answer pairs found');
  });
});

describe('TSV and JSONL', () => {
  it('reads TSV with a header, treating quotes as text', () => {
    const { pairs } = parsePairs('question\tanswer\n"안녕\t반가워 "친구"\n', 'x.tsv');
    expect(pairs).toEqual([{ question: '"안녕', answer: '반가워 "친구"', line: 2 }]);
  });

  it('reads JSONL with short or long keys and names bad lines', () => {
    const { pairs } = parsePairs('{"q":"안녕","a":"반가워"}\n\n{"question":"뭐해?","answer":"쉬어요","label":0}\n', 'x.jsonl');
    expect(pairs).toEqual([
      { question: '안녕', answer: '반가워', line: 1 },
      { question: '뭐해?', answer: '쉬어요', label: 0, line: 3 },
    ]);
    expect(errorOf(() => parsePairs('{"q":"a","a":"b"}\n{"q":"a"', 'x.jsonl')).message).toMatch(/^x\.jsonl:2: invalid JSON/u);
    expect(errorOf(() => parsePairs('{"q":1,"a":"b"}\n', 'x.jsonl')).message).toBe('x.jsonl:1: field "q" must be a string');
    expect(errorOf(() => parsePairs('[1]\n', 'x.jsonl')).message).toMatch(/^x\.jsonl:1: expected a JSON object/u);
  });
});

describe('encodings and arbitrary bytes', () => {
  it('rejects CP949 bytes with the line and a conversion hint', () => {
    // "안녕" in CP949 is B0 A1 B3 E7 .. here on line 3.
    const bytes = new Uint8Array([...enc('Q,A\n가,나\n'), 0xbe, 0xc8, 0xb3, 0xe7, 0x2c, 0x61, 0x0a]);
    const error = errorOf(() => parsePairs(bytes, 'old.csv'));
    expect(error.line).toBe(3);
    expect(error.message).toMatch(/not valid UTF-8.*iconv -f cp949/u);
  });

  it('rejects UTF-16', () => {
    expect(errorOf(() => parsePairs(new Uint8Array([0xff, 0xfe, 0x51, 0]), 'w.csv')).message).toMatch(/UTF-16/u);
  });

  it('finds the first invalid UTF-8 byte exactly', () => {
    expect(firstInvalidUtf8(enc('가나다'))).toBe(-1);
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xed, 0xa0, 0x80]))).toBe(1); // surrogate
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xc0, 0x80]))).toBe(1); // overlong
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xea, 0xb0]))).toBe(1); // truncated
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(firstInvalidUtf8(enc(s))).toBe(-1);
      }),
    );
  });

  it('never throws anything but a CorpusError, in every format and mode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('a.csv', 'a.tsv', 'a.jsonl'), fc.boolean(), (bytes, file, skipInvalid) => {
        try {
          const { pairs } = parsePairs(bytes, file, { skipInvalid, maxRecordLength: 100 });
          for (const p of pairs) expect(p.question.length).toBeGreaterThan(0);
        } catch (error) {
          expect(error).toBeInstanceOf(CorpusError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('files', () => {
  it('names a missing file and an unknown extension', async () => {
    await expect(readPairs('/nonexistent/q.csv')).rejects.toThrow('/nonexistent/q.csv: cannot read file: no such file');
    await expect(readPairs('/tmp/q.xlsx')).rejects.toThrow(/unknown file type "\.xlsx"/u);
  });

  it('reads sentences from a .txt file, one per non-empty line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hanmadi-corpus-'));
    const file = join(dir, 's.txt');
    writeFileSync(file, '첫 문장\n\n  둘째   문장 \n');
    expect(await readSentences(file)).toEqual(['첫 문장', '둘째 문장']);
  });

  it('reads the bundled corpus without a single invalid record', async () => {
    const { pairs, skipped } = await readPairs(BUNDLED_CORPUS);
    expect(skipped).toEqual([]);
    expect(pairs.length).toBeGreaterThanOrEqual(300);
    for (const p of pairs) expect([0, 1, 2]).toContain(p.label);
  });

  it.runIf(referenceCorpusAvailable())('reads all 11,823 ChatbotData pairs', async () => {
    const { pairs } = await readPairs(referenceCorpusPath());
    expect(pairs).toHaveLength(11823);
    expect(pairs[0]).toEqual({ question: '12시 땡!', answer: '하루가 또 가네요.', label: 0, line: 2 });
    expect(new Set(pairs.map((p) => p.question)).size).toBe(11662);
  });
});
