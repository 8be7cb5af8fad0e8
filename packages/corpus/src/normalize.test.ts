import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeText } from './normalize.js';

describe('normalizeText', () => {
  it('composes decomposed jamo into syllables (NFD → NFC)', () => {
    const decomposed = '\u1112\u1161\u11ab\u1100\u1173\u11af'; // ᄒ ᅡ ᆫ ᄀ ᅳ ᆯ
    expect(decomposed).not.toBe('한글');
    expect(normalizeText(decomposed)).toBe('한글');
    expect(normalizeText('한글'.normalize('NFD'))).toBe('한글');
  });

  it('trims and collapses inner whitespace of every kind', () => {
    expect(normalizeText('  안녕   하세요\t\n반가워요\u3000 ')).toBe('안녕 하세요 반가워요');
  });

  it('keeps emoji, Latin text and punctuation', () => {
    expect(normalizeText('OK 좋아요 😀👍🏽 KTX 3시?!')).toBe('OK 좋아요 😀👍🏽 KTX 3시?!');
  });

  it("reads SentencePiece's whitespace marker ▁ as a space", () => {
    expect(normalizeText('▁안녕▁▁하세요▁')).toBe('안녕 하세요');
  });

  it('drops control characters but keeps line breaks as word breaks', () => {
    expect(normalizeText('a\u0000b\u001bc\r\nd\u200be')).toBe('abc de');
  });

  it('is idempotent and leaves no leading, trailing or double spaces', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const once = normalizeText(s);
        expect(normalizeText(once)).toBe(once);
        expect(once).not.toMatch(/^\s|\s$|\s\s/u);
        expect(once.normalize('NFC')).toBe(once);
      }),
    );
  });
});
