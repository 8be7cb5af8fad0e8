import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_CORPUS, normalizeText, readSentences } from '@hanmadi/corpus';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelFileError, writeModelFile } from './model-file.js';
import { decodeModelProto, PieceType } from './proto.js';
import { scriptOf } from './scripts.js';
import { Tokenizer } from './tokenizer.js';
import { SPECIAL_IDS, trainBpe, VocabSizeError, WHITESPACE_MARK } from './trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'hanmadi-tok-'));

describe('trainBpe', () => {
  const corpus = ['low low low low low', 'lower lower', 'newest newest newest', 'widest widest'];

  it('merges the most frequent pair first and scores pieces in merge order', () => {
    const model = trainBpe(corpus, { vocabSize: 30 });
    expect(model.pieces.slice(0, 4).map((p) => p.piece)).toEqual(['<pad>', '<unk>', '<s>', '</s>']);
    expect(model.pieces[SPECIAL_IDS.unk]!.type).toBe(PieceType.UNKNOWN);
    const normal = model.pieces.filter((p) => p.type === PieceType.NORMAL);
    // "▁l"+"o" style pairs: ▁low occurs 5 times, lo 7 times (low, lower), ow 7 times.
    // Ties at 7 go to the shorter, then lexically smaller piece: "lo" < "ow".
    expect(normal[0]!.piece).toBe('lo');
    expect(normal.map((p) => p.score)).toEqual(normal.map((_, i) => -i));
    expect(model.pieces).toHaveLength(30);
  });

  it('keeps every character of the corpus (coverage 1.0) at the end of the vocabulary', () => {
    const model = trainBpe(corpus, { vocabSize: 30 });
    const chars = new Set([...corpus.join('').replace(/ /gu, '')]);
    chars.add(WHITESPACE_MARK);
    const tail = model.pieces.slice(-chars.size).map((p) => p.piece);
    expect(new Set(tail)).toEqual(chars);
  });

  it('never mixes scripts in a piece, never puts ▁ inside one, and respects the length limit', () => {
    const sentences = Array.from({ length: 50 }, (_, i) => `12시 KTX타고 ${i % 7}번 출구?! 안녕하세요~ 😀😀 가나다라마바사아자차카타파하`);
    const model = trainBpe(sentences, { vocabSize: 70, maxPieceLength: 4 });
    for (const { piece, type } of model.pieces) {
      if (type !== PieceType.NORMAL) continue;
      const chars = [...piece];
      expect(chars.length).toBeLessThanOrEqual(4);
      expect(chars.slice(1)).not.toContain(WHITESPACE_MARK);
      const scripts = new Set(chars.filter((c) => c !== WHITESPACE_MARK).map(scriptOf));
      expect(scripts.size, piece).toBeLessThanOrEqual(1);
    }
  });

  it('is deterministic', () => {
    expect(trainBpe(corpus, { vocabSize: 30 })).toEqual(trainBpe(corpus, { vocabSize: 30 }));
  });

  it('says how large the vocabulary must be, and how large it can be', () => {
    expect(() => trainBpe(corpus, { vocabSize: 5 })).toThrow(VocabSizeError);
    expect(() => trainBpe(corpus, { vocabSize: 5 })).toThrow(/at least 15 \(4 special, 0 user-defined, 0 byte and 11 character pieces\)/u);
    expect(() => trainBpe(corpus, { vocabSize: 500 })).toThrow(/too large for this corpus: it supports at most/u);
  });

  it('stops at the largest vocabulary a small corpus supports when the limit is soft', () => {
    const model = trainBpe(corpus, { vocabSize: 500, hardVocabLimit: false });
    expect(model.pieces.length).toBeLessThan(500);
    expect(model.trainerSpec.vocabSize).toBe(model.pieces.length);
  });

  it('drops the rarest characters below the coverage', () => {
    const model = trainBpe(['aaaa aaaa aaaa aaaa aaaa aaaa b'], { vocabSize: 6, characterCoverage: 0.9 });
    expect(model.pieces.map((p) => p.piece)).not.toContain('b');
  });
});

describe('Tokenizer on a model trained here', () => {
  let sentences: string[];
  let tokenizer: Tokenizer;
  let withBytes: Tokenizer;
  const file = join(dir, 'bundled.model');

  beforeAll(async () => {
    sentences = await readSentences(BUNDLED_CORPUS);
    await writeModelFile(file, trainBpe(sentences, { vocabSize: 1200, userDefinedSymbols: ['<sep>'] }));
    tokenizer = await Tokenizer.load(file);
    const bytesFile = join(dir, 'bytes.model');
    await writeModelFile(bytesFile, trainBpe(sentences, { vocabSize: 1500, byteFallback: true }));
    withBytes = await Tokenizer.load(bytesFile);
  });

  it('writes a .vocab with one "piece<TAB>score" line per id', () => {
    const vocab = readFileSync(join(dir, 'bundled.vocab'), 'utf8').trimEnd().split('\n');
    expect(vocab).toHaveLength(tokenizer.vocabSize);
    expect(vocab[0]).toBe('<pad>\t0');
    expect(vocab[4]).toBe('<sep>\t0');
    expect(vocab[5]).toMatch(/^\S+\t-?0$/u);
  });

  it('stores the trainer spec and an identity normaliser', () => {
    const model = decodeModelProto(readFileSync(file));
    expect(model.trainerSpec).toMatchObject({ modelType: 2, vocabSize: 1200, padId: 0, unkId: 1, bosId: 2, eosId: 3, byteFallback: false });
    expect(model.normalizerSpec).toMatchObject({ name: 'identity', addDummyPrefix: true, escapeWhitespaces: true });
    expect(model.normalizerSpec.precompiledCharsmap).toHaveLength(0);
  });

  it('has the project special ids and decodes control pieces to nothing', () => {
    expect(tokenizer.hasProjectSpecialIds).toBe(true);
    const ids = tokenizer.encode('안녕하세요');
    expect(tokenizer.decode([SPECIAL_IDS.bos, ...ids, SPECIAL_IDS.eos, SPECIAL_IDS.pad])).toBe('안녕하세요');
  });

  it('normalises before encoding (NFD and extra spaces)', () => {
    expect(tokenizer.encode('  오늘   날씨 '.normalize('NFD'))).toEqual(tokenizer.encode('오늘 날씨'));
    expect(tokenizer.encode('   ')).toEqual([]);
  });

  it('keeps user-defined symbols whole', () => {
    const ids = tokenizer.encode('안녕<sep>반가워');
    expect(ids).toContain(tokenizer.pieceToId('<sep>'));
  });

  it('maps unknown characters to <unk> without throwing, or to bytes with byte fallback', () => {
    const ids = tokenizer.encode('훑 𝄞');
    expect(ids).toContain(SPECIAL_IDS.unk);
    const bytes = withBytes.encodePieces('𝄞');
    expect(bytes).toEqual(['▁', '<0xF0>', '<0x9D>', '<0x84>', '<0x9E>']);
    expect(withBytes.decode(withBytes.encode('𝄞 훑'))).toBe('𝄞 훑');
  });

  it('round-trips random Korean, Latin, digit and emoji strings with byte fallback', () => {
    const pieces = fc.oneof(
      fc.integer({ min: 0xac00, max: 0xd7a3 }).map((c) => String.fromCodePoint(c)),
      fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 ?!.,~'),
      fc.constantFrom('😀', '👍🏽', '🇰🇷', '❤️', '👨‍👩‍👧', 'ㅋ', 'ㅠ'),
      fc.integer({ min: 0x20, max: 0x2fff }).map((c) => String.fromCodePoint(c)),
    );
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 30 }), (parts) => {
        const text = parts.join('');
        expect(withBytes.decode(withBytes.encode(text))).toBe(normalizeText(text));
        expect(() => tokenizer.encode(text)).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tokenizer.decode([tokenizer.vocabSize])).toThrow(RangeError);
    expect(() => tokenizer.idToPiece(-1)).toThrow(RangeError);
  });
});

describe('loading a bad model file', () => {
  const load = (path: string) => Tokenizer.load(path);

  it('names a missing file', async () => {
    await expect(load(join(dir, 'nope.model'))).rejects.toThrow(new ModelFileError(join(dir, 'nope.model'), 'no such file'));
  });

  it('names an empty, truncated or foreign file', async () => {
    const good = join(dir, 'good.model');
    await writeModelFile(good, trainBpe(['가나다 가나 나다'], { vocabSize: 12 }));
    const bytes = readFileSync(good);
    const cases: Record<string, Uint8Array> = {
      'empty.model': new Uint8Array(0),
      'truncated.model': bytes.subarray(0, Math.floor(bytes.length / 2)),
      'csv.model': new TextEncoder().encode('Q,A,label\n안녕,반가워,0\n'),
      'png.model': new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
    };
    for (const [name, content] of Object.entries(cases)) {
      const path = join(dir, name);
      writeFileSync(path, content);
      const error = await load(path).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(ModelFileError);
      expect((error as Error).message.startsWith(`${path}: `), name).toBe(true);
    }
    expect((await load(good)).encode('가나다')).not.toEqual([]);
  });
});
