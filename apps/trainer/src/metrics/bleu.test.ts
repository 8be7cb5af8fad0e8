import { describe, expect, it } from 'vitest';
import { corpusBleu, corpusBleuMultiRef, tokenize13a } from './bleu.js';

// Expected values marked "published" are copied from sacreBLEU's own tests and
// README (github.com/mjpost/sacrebleu, 2.x); each cites file and test. The rest
// are derived by hand from the definition, with the arithmetic in the comment.

/** sacreBLEU takes one stream per reference; these functions take one set per hypothesis. */
function transpose(streams: readonly (readonly string[])[]): string[][] {
  return streams[0]!.map((_, i) => streams.map((stream) => stream[i]!));
}

// README.md, "Using SacreBLEU from Python", also test/test_bleu.py `_hyps`/`_refs`.
const README_HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const README_REFS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];

describe('tokenize13a', () => {
  // No published token lists exist in sacreBLEU's tests; these follow the four
  // mteval-v13a rules in sacrebleu/tokenizers/tokenizer_re.py by hand.
  it('splits punctuation but keeps apostrophes, decimals, thousands and inner hyphens', () => {
    expect(tokenize13a('Hello, world!')).toBe('Hello , world !');
    expect(tokenize13a("It wasn't 3.14 or 1,000 (1990-2000) e-mail.")).toBe("It wasn't 3.14 or 1,000 ( 1990 - 2000 ) e-mail .");
  });

  it('leaves Hangul words whole and splits the punctuation after them', () => {
    expect(tokenize13a('안녕하세요? 반가워요!!')).toBe('안녕하세요 ? 반가워요 ! !');
    expect(tokenize13a('3.5점이에요.')).toBe('3.5점이에요 .');
    expect(tokenize13a('ㅋㅋ...')).toBe('ㅋㅋ . . .');
    expect(tokenize13a('~50%? 10시~11시')).toBe('~ 50 % ? 10시 ~ 11시');
  });

  it('keeps emoji, including ZWJ sequences and skin tones, whole', () => {
    expect(tokenize13a('좋아요😀!')).toBe('좋아요😀 !');
    expect(tokenize13a('😀.')).toBe('😀 .');
    expect(tokenize13a('👨\u200d👩\u200d👧 가족 👍🏽')).toBe('👨\u200d👩\u200d👧 가족 👍🏽');
  });

  it("applies mteval's preprocessing: <skipped>, hyphenated line breaks, entities", () => {
    expect(tokenize13a('<skipped>안녕-\n하세요\n반가워요')).toBe('안녕하세요 반가워요');
    expect(tokenize13a('a &quot;b&quot; &lt;c&gt;')).toBe('a " b " < c >');
    // &amp; is unescaped before &lt;, so this is unescaped twice.
    expect(tokenize13a('&amp;lt;')).toBe('<');
  });

  it("splits on Python's whitespace, not JavaScript's", () => {
    // U+001C is whitespace to Python's str.split(), the BOM is not.
    expect(tokenize13a('가\u001c나\u3000다')).toBe('가 나 다');
    expect(tokenize13a('가\ufeff나')).toBe('가\ufeff나');
    expect(tokenize13a('  \t ')).toBe('');
  });
});

describe('corpusBleu, published sacreBLEU values', () => {
  it('README example: 48.53 with a brevity penalty below 1', () => {
    // Published: test/test_bleu.py test_corpus_bleu, `(_hyps, _refs, {}, 48.530827)`
    // (and the tokenize '13a' and smooth 'none' rows, same value). README.md,
    // "Using SacreBLEU from Python": BLEU = 48.53 82.4/50.0/45.5/37.5
    // (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18).
    const result = corpusBleuMultiRef(README_HYPS, transpose(README_REFS));
    expect(result.score).toBeCloseTo(48.530827, 7);
    expect(result.precisions.map((p) => p.toFixed(1))).toEqual(['82.4', '50.0', '45.5', '37.5']);
    expect(result.brevityPenalty.toFixed(3)).toBe('0.943');
    expect(result.hypLength).toBe(17);
    expect(result.refLength).toBe(18);
  });

  it('README example with a missing reference: 29.44', () => {
    // Published: README.md, "Variable Number of References": with the first
    // reference of the first stream replaced by '', BLEU = 29.44
    // 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19).
    const refs = [['', ...README_REFS[0]!.slice(1)], README_REFS[1]!];
    const result = corpusBleuMultiRef(README_HYPS, transpose(refs));
    expect(result.score.toFixed(2)).toBe('29.44');
    expect(result.precisions.map((p) => p.toFixed(1))).toEqual(['82.4', '42.9', '27.3', '12.5']);
    expect(result.brevityPenalty.toFixed(3)).toBe('0.889');
    expect([result.hypLength, result.refLength]).toEqual([17, 19]);
  });

  it("'exp' smoothing of zero 3- and 4-gram counts: 8.493", () => {
    // Published: test/test_sentence_bleu.py test_api_sentence_bleu, row
    // ('exp', None, False, '13a', 8.493), tolerance 1e-3. That test sets
    // effective_order=True, which only matters when some order has no n-grams;
    // here all four orders do (14 hypothesis tokens), so the corpus default agrees.
    // Statistics: 5/14, 2/13, then 0/12 → 1/(2·12) and 0/11 → 1/(4·11); BP = 1 (14 ≥ 10).
    // The cedilla ţ (U+0163) and comma-below ț (U+021B) are different code points: no match.
    const result = corpusBleu(
      ['Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;'],
      ['producţia de zahăr brut se exprimă în zahăr alb;'],
    );
    expect(Math.abs(result.score - 8.493)).toBeLessThan(1e-3);
    expect(result.precisions[0]).toBeCloseTo((100 * 5) / 14, 12);
    expect(result.precisions[1]).toBeCloseTo((100 * 2) / 13, 12);
    expect(result.precisions[2]).toBeCloseTo(100 / (2 * 12), 12);
    expect(result.precisions[3]).toBeCloseTo(100 / (4 * 11), 12);
    expect(result.brevityPenalty).toBe(1);
    expect([result.hypLength, result.refLength]).toEqual([14, 10]);
  });

  it('published n-gram statistics with a brevity penalty and a smoothed zero 4-gram count', () => {
    // Published: test/test_bleu.py test_statistics, counts [4, 2, 1, 0] and
    // totals [6, 5, 4, 3] for this pair (tokenize 'none' there; 13a yields the
    // same tokens, as there is no punctuation). test_offset's 0.1555722182 (floor
    // smoothing) confirms hyp_len 6 and ref_len 8, i.e. BP = exp(1 − 8/6).
    // The 'exp' score itself is not published; derived from those statistics:
    // 100 · exp(−1/3) · (4/6 · 2/5 · 1/4 · 1/(2·3))^(1/4) = 23.26347269766...
    const result = corpusBleu(['am I am a character sequence'], ['I am a symbol string sequence a a']);
    expect(result.precisions[0]).toBeCloseTo((100 * 4) / 6, 12);
    expect(result.precisions[1]).toBeCloseTo((100 * 2) / 5, 12);
    expect(result.precisions[2]).toBeCloseTo((100 * 1) / 4, 12);
    expect(result.precisions[3]).toBeCloseTo(100 / (2 * 3), 12);
    expect([result.hypLength, result.refLength]).toEqual([6, 8]);
    expect(result.brevityPenalty).toBeCloseTo(Math.exp(1 - 8 / 6), 14);
    expect(result.score).toBeCloseTo(100 * Math.exp(-1 / 3) * ((4 / 6) * (2 / 5) * (1 / 4) * (1 / 6)) ** 0.25, 10);
  });

  it('scores 0 when nothing matches, whatever the smoothing', () => {
    // Published: test/test_sentence_bleu.py test_api_sentence_bleu_zero, row ('exp', None, False, '13a', 0.0).
    expect(corpusBleu(['this is a cat'], ['okay thanks']).score).toBe(0);
    // Published: test/test_bleu.py test_raw_bleu_cases, first row (0.0; sacreBLEU issue #141).
    expect(corpusBleu(['this is a test', 'another test'], ['ref1', 'ref2']).score).toBe(0);
  });

  it('scores 100 for an exact match', () => {
    // Published: test/test_bleu.py test_raw_bleu_cases, second row (1.0 on a 0–1 scale);
    // an exact match is 100 under any tokenizer or smoothing.
    // The geometric mean goes through exp(log 100), which is 100.00000000000004
    // in Python as in JavaScript, hence toBeCloseTo.
    const result = corpusBleu(['this is a test'], ['this is a test']);
    expect(result.score).toBeCloseTo(100, 12);
    expect(result.precisions).toEqual([100, 100, 100, 100]);
    expect(result.brevityPenalty).toBe(1);
  });

  it('keeps empty hypotheses in the corpus', () => {
    // Published: test/test_bleu.py test_corpus_bleu, row (('', '', ''), _refs, {}, 0.0),
    // "ensure that empty hypotheses are not removed".
    const result = corpusBleuMultiRef(['', '', ''], transpose(README_REFS));
    expect(result.score).toBe(0);
    expect(result.hypLength).toBe(0);
    // Closest reference to length 0 is the shorter one: 6 + 5 + 6.
    expect(result.refLength).toBe(17);
    expect(result.brevityPenalty).toBe(0);
  });
});

describe('corpusBleu, Korean and emoji', () => {
  it('scores identical Korean answers 100 and disjoint ones 0', () => {
    const answers = ['오늘은 날씨가 정말 좋네요.', '배고프면 맛있는 거 먹으러 가요! 😋'];
    expect(corpusBleu(answers, answers).score).toBeCloseTo(100, 12);
    expect(corpusBleu(['그건 잘 모르겠어요 정말로'], ['오늘은 날씨가 맑아요 😀']).score).toBe(0);
  });

  it('smooths and penalises a short Korean answer (derived by hand)', () => {
    // 13a: hyp "오늘 날씨가 좋네요 ." (4 tokens), ref "오늘 날씨가 정말 좋네요 ." (5 tokens).
    //   1-grams 4/4;  2-grams "오늘 날씨가", "좋네요 ." match of 3 → 2/3;
    //   3-grams 0/2 → 'exp' gives 1/(2·2) = 1/4;  4-grams 0/1 → 1/(4·1) = 1/4.
    //   BP = exp(1 − 5/4) = exp(−1/4).
    //   BLEU = 100 · exp(−1/4) · (1 · 2/3 · 1/4 · 1/4)^(1/4) = 100 · exp(−1/4) · 24^(−1/4) = 35.18629739981...
    const result = corpusBleu(['오늘 날씨가 좋네요.'], ['오늘 날씨가 정말 좋네요.']);
    expect(result.precisions[0]).toBe(100);
    expect(result.precisions[1]).toBeCloseTo(200 / 3, 12);
    expect(result.precisions[2]).toBe(25);
    expect(result.precisions[3]).toBe(25);
    expect(result.brevityPenalty).toBeCloseTo(Math.exp(-0.25), 15);
    expect(result.score).toBeCloseTo(100 * Math.exp(-0.25) * 24 ** -0.25, 10);
    expect(result.score).toBeCloseTo(35.186297, 5);
  });

  it('gives 0 when every sentence is shorter than four tokens (derived by hand)', () => {
    // hyp "저는 학생입니다 ." vs ref "저는 대학생입니다 .": 1-grams 2/3, 2-grams 0/2 → 1/4,
    // 3-grams 0/1 → 1/4, and no 4-grams at all: sacreBLEU keeps that precision at 0
    // (log 0 floored to −9999999999), so corpus BLEU is 0 although words match.
    // Short chatbot replies need chrF, or a corpus with longer sentences in it.
    const result = corpusBleu(['저는 학생입니다.'], ['저는 대학생입니다.']);
    expect(result.precisions[0]).toBeCloseTo(200 / 3, 12);
    expect(result.precisions.slice(1)).toEqual([25, 25, 0]);
    expect(result.score).toBe(0);
  });

  it('compares emoji tokens as whole code points', () => {
    // 13a leaves emoji inside tokens; "좋아요😀" ≠ "좋아요😁" as tokens, so only "최고예요 !" pairs match.
    // hyp tokens: 정말 좋아요😀 최고예요 ! (4) vs ref 정말 좋아요😁 최고예요 ! (4):
    //   1-grams 3/4, 2-grams 1/3, 3-grams 0/2 → 1/4, 4-grams 0/1 → 1/4; BP 1.
    //   BLEU = 100 · (3/4 · 1/3 · 1/4 · 1/4)^(1/4) = 100 · 64^(−1/4) = 35.35533905932...
    const result = corpusBleu(['정말 좋아요😀 최고예요!'], ['정말 좋아요😁 최고예요!']);
    expect(result.score).toBeCloseTo(100 * 64 ** -0.25, 10);
  });

  it('sums statistics over the corpus instead of averaging sentence scores (derived by hand)', () => {
    // Sentence 1 matches exactly (5 tokens each); sentence 2's hypothesis is empty
    // and its reference "네 ." has 2 tokens. Precisions stay 100 (5/5, 4/4, 3/3, 2/2);
    // BP = exp(1 − 7/5) = exp(−0.4), so BLEU = 100 · exp(−0.4) = 67.0320046...
    const result = corpusBleu(['오늘 날씨가 정말 좋네요.', ''], ['오늘 날씨가 정말 좋네요.', '네.']);
    expect(result.precisions).toEqual([100, 100, 100, 100]);
    expect([result.hypLength, result.refLength]).toEqual([5, 7]);
    expect(result.score).toBeCloseTo(100 * Math.exp(-0.4), 10);
  });
});

describe('corpusBleu, edge cases', () => {
  it('scores an empty corpus 0 (sacreBLEU itself rejects one)', () => {
    expect(corpusBleu([], [])).toEqual({
      score: 0,
      precisions: [0, 0, 0, 0],
      brevityPenalty: 1,
      hypLength: 0,
      refLength: 0,
    });
  });

  it('treats an empty or blank hypothesis as zero tokens', () => {
    for (const hypothesis of ['', '   ', '\n']) {
      const result = corpusBleu([hypothesis], ['안녕하세요']);
      expect(result).toMatchObject({ score: 0, hypLength: 0, refLength: 1, brevityPenalty: 0 });
    }
  });

  it('strips trailing whitespace before tokenizing, as sacreBLEU does', () => {
    // rstrip runs first, so the hyphen before a final newline is not a line-break hyphen.
    expect(tokenize13a('좋아-\n')).toBe('좋아');
    expect(corpusBleu(['좋아- 좋아 좋아 좋아-\n'], ['좋아- 좋아 좋아 좋아-']).score).toBeCloseTo(100, 12);
  });

  it('refuses lists of different lengths, naming both', () => {
    expect(() => corpusBleu(['가', '나'], ['가'])).toThrow(RangeError);
    expect(() => corpusBleu(['가', '나'], ['가'])).toThrow(/2 hypotheses but 1 references/u);
    expect(() => corpusBleuMultiRef(['가'], [])).toThrow(/1 hypotheses but 0 references/u);
  });

  it('refuses an empty reference, as sacreBLEU does', () => {
    expect(() => corpusBleu(['가', '나'], ['가', ''])).toThrow(/hypothesis 1 has no non-empty reference/u);
    expect(() => corpusBleuMultiRef(['가'], [['', '']])).toThrow(RangeError);
  });
});
