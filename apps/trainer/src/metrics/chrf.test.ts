import { describe, expect, it } from 'vitest';
import { corpusChrf, corpusChrfMultiRef } from './chrf.js';

// Expected values marked "published" come from sacreBLEU's own tests and README
// (github.com/mjpost/sacrebleu, 2.x) or from output of sacreBLEU's CHRF printed
// in Hugging Face's metric card; each cites its source. The rest are derived by
// hand, with the arithmetic in the comment.

describe('corpusChrf, published sacreBLEU values', () => {
  it('README example: chrF2 = 59.73 (two references per sentence)', () => {
    // Published: README.md, "Using SacreBLEU from Python": `chrf.corpus_score(sys, refs)` → chrF2 = 59.73.
    const hyps = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
    const refSets = [
      ['The dog bit the man.', 'The dog had bit the man.'],
      ['It was not unexpected.', 'No one was surprised.'],
      ['The man bit him first.', 'The man had bitten the dog.'],
    ];
    expect(corpusChrfMultiRef(hyps, refSets).score.toFixed(2)).toBe('59.73');
  });

  it.each([
    // Published: test/test_chrf.py test_chrf_eff_order (`test_cases_effective_order`,
    // sacreBLEU's default effective-order mode). That test passes beta=3, but in
    // every case precision equals recall at each counted order, and
    // F_beta(p, p) = p for any beta, so the default beta = 2 gives the same score.
    { hyps: ['a'], refs: ['a'], score: 100 },
    { hyps: [''], refs: ['reference'], score: 0 },
    { hyps: ['a b c'], refs: ['a b c'], score: 100 },
    // Whitespace is removed before counting.
    { hyps: ['a b c'], refs: ['abc'], score: 100 },
    { hyps: [''], refs: ['c'], score: 0 },
    // Corpus sums: 1-grams 1 match of 2 on each side → 50.
    { hyps: ['a', 'b'], refs: ['a', 'c'], score: 50 },
    // 1-grams p = r = 1/2, 2-grams p = r = 0 → averages 1/4 → 25.
    { hyps: ['aa'], refs: ['ab'], score: 25 },
  ])('test_chrf.py effective-order case $hyps / $refs → $score', ({ hyps, refs, score }) => {
    expect(Math.abs(corpusChrf(hyps, refs).score - score)).toBeLessThan(1e-4);
  });

  it('Hugging Face metric-card examples computed by sacreBLEU CHRF with default settings', () => {
    // Published: huggingface/datasets metrics/chrf/chrf.py docstring (CHRF(6, 0, 2, False, False, False)):
    // {'score': 61.576379378113785, 'char_order': 6, 'word_order': 0, 'beta': 2}.
    expect(
      corpusChrf(
        ['The relationship between Obama and Netanyahu is not exactly friendly.'],
        ['The ties between Obama and Netanyahu are not particularly friendly.'],
      ).score,
    ).toBeCloseTo(61.576379378113785, 10);
    // Published: huggingface/datasets metrics/chrf/README.md, "How to Use":
    // {'score': 84.64214891738334, ...}; case-sensitive ("black hole" vs "Black Hole").
    expect(
      corpusChrf(
        ['The relationship between cats and dogs is not exactly friendly.', 'a good bookshop is just a genteel black hole that knows how to read.'],
        ['The relationship between dogs and cats is not exactly friendly.', 'A good bookshop is just a genteel Black Hole that knows how to read.'],
      ).score,
    ).toBeCloseTo(84.64214891738334, 10);
  });
});

describe('corpusChrf, Korean and emoji', () => {
  it('scores identical Korean answers 100 and answers with no common syllable 0', () => {
    const answers = ['오늘은 날씨가 정말 좋네요.', '배고프면 맛있는 거 먹으러 가요! 😋'];
    expect(corpusChrf(answers, answers).score).toBe(100);
    expect(corpusChrf(['고마워'], ['안녕하세요']).score).toBe(0);
  });

  it('gives partial credit inside a Korean word (derived by hand)', () => {
    // hyp 고마워요 (4 syllables) vs ref 고마워 (3):
    //   1-grams: hyp 4, ref 3, match 3 → p 3/4, r 1
    //   2-grams: hyp 3, ref 2, match 2 → p 2/3, r 1
    //   3-grams: hyp 2, ref 1, match 1 → p 1/2, r 1
    //   4..6-grams: the reference has none, so the order is skipped.
    //   P = (3/4 + 2/3 + 1/2) / 3 = 23/36, R = 1
    //   F2 = 5PR / (4P + R) = (115/36) / (128/36) = 115/128 → 89.84375
    expect(corpusChrf(['고마워요'], ['고마워']).score).toBeCloseTo(89.84375, 10);
  });

  it('sums statistics over the corpus before scoring (derived by hand)', () => {
    // Add the exact pair 네/네 to the case above. Summed per order:
    //   1-grams: hyp 5, ref 4, match 4 → p 4/5, r 1
    //   2-grams: hyp 3, ref 2, match 2 → p 2/3, r 1;  3-grams: 2, 1, 1 → p 1/2, r 1
    //   4-grams: 고마워요's single 4-gram is not counted, as its reference has none.
    //   P = (4/5 + 2/3 + 1/2) / 3 = 59/90, F2 = 5P / (4P + 1) = 295/326 → 90.490797546...
    // (The mean of the two sentence scores would be 94.92.)
    expect(corpusChrf(['고마워요', '네'], ['고마워', '네']).score).toBeCloseTo((100 * 295) / 326, 10);
  });

  it('counts an emoji as one character, not two UTF-16 units (derived by hand)', () => {
    // 😀😁 vs 😀😂: 1-grams p = r = 1/2, 2-grams p = r = 0 → 25.
    // Over UTF-16 units the shared high surrogate would match too and give a higher score.
    expect(corpusChrf(['😀😁'], ['😀😂']).score).toBeCloseTo(25, 10);
  });

  it('counts code points, not graphemes, inside a ZWJ emoji, as sacreBLEU does (derived by hand)', () => {
    // 👨‍👩‍👧 vs 👨‍👩‍👦 are 5 code points each (man ZWJ woman ZWJ girl/boy):
    //   1-grams 4/5, 2-grams 3/4, 3-grams 2/3, 4-grams 1/2, 5-grams 0/1 (p = r throughout)
    //   P = R = (4/5 + 3/4 + 2/3 + 1/2 + 0) / 5 = 163/300 → 54.333...
    expect(corpusChrf(['👨\u200d👩\u200d👧'], ['👨\u200d👩\u200d👦']).score).toBeCloseTo((100 * 163) / 300, 10);
  });

  it('ignores every kind of whitespace, and normalises nothing else', () => {
    expect(corpusChrf(['오늘 날씨\u3000좋네요'], ['오늘날씨좋네요']).score).toBe(100);
    // A decomposed 한 (three jamo) shares no code point with the composed syllable.
    expect(corpusChrf(['한'], ['한'.normalize('NFD')]).score).toBe(0);
  });
});

describe('corpusChrf, edge cases', () => {
  it('scores an empty corpus 0 (sacreBLEU itself rejects one)', () => {
    expect(corpusChrf([], [])).toEqual({ score: 0 });
  });

  it('scores an empty or blank hypothesis 0', () => {
    for (const hypothesis of ['', '  ', '\n']) expect(corpusChrf([hypothesis], ['안녕하세요']).score).toBe(0);
  });

  it('lets an empty hypothesis lower the corpus recall (derived by hand)', () => {
    // 네/네 matches (1-gram 1/1); the empty hypothesis adds 3 reference 1-grams,
    // 2 bigrams, 1 trigram. Per order: 1-grams p 1, r 1/4; 2-grams and up have no
    // hypothesis n-grams and are skipped. F2 = 5 · 1/4 / (4 + 1/4) = 5/17 → 29.41...
    expect(corpusChrf(['네', ''], ['네', '고마워']).score).toBeCloseTo(500 / 17, 10);
  });

  it('refuses lists of different lengths, naming both', () => {
    expect(() => corpusChrf(['가'], ['가', '나'])).toThrow(RangeError);
    expect(() => corpusChrf(['가'], ['가', '나'])).toThrow(/1 hypotheses but 2 references/u);
    expect(() => corpusChrfMultiRef([], [['가']])).toThrow(/0 hypotheses but 1 references/u);
  });

  it('refuses an empty reference, as sacreBLEU does', () => {
    expect(() => corpusChrf(['가'], [''])).toThrow(/hypothesis 0 has no non-empty reference/u);
  });
});
