import { describe, expect, it } from 'vitest';
import { copiesPrompt, formatReplyMeasures, replyMeasures, repeatsWord, type ReplyRow } from './replies.js';

// Every expected value is worked out by hand in the comment beside it.

/** A row with the fields a test does not care about filled in. */
function row(reply: string, more: Partial<ReplyRow> = {}): ReplyRow {
  return { prompt: '안녕', reply, tokens: 1, finishReason: 'eos', ...more };
}

describe('repeatsWord', () => {
  it.each([
    ['사이 사이 사이', true],
    ['좋아요 좋아요 좋아요.', true], // punctuation at the end is ignored
    ['네 네 네요', false],
    ['사이 사이', false], // twice is not enough
    ['사이 좋게 사이 사이', false], // not three in a row
    ['아 아 아 아', true],
    ['좋아좋아좋아', false], // no spaces: not counted, by definition
    ['... ... ...', true], // punctuation-only words compared as they are
    ['', false],
  ])('%j → %s', (reply, expected) => {
    expect(repeatsWord(reply)).toBe(expected);
  });
});

describe('copiesPrompt', () => {
  it.each([
    ['배고파', '배고파', true], // equal
    ['배고파', '배 고파!', true], // spacing and punctuation aside
    ['배고파', '저도 배고파요', true], // contained
    ['배고파', '밥 드세요', false],
    ['ㅠ', 'ㅠㅠ 힘내요', false], // prompt squeezes to one code point: never copied
    ['OK thanks', 'ok, thanks!', true], // case aside
    ['?!', '?!', false], // prompt squeezes to nothing
    ['배고파', '', false], // empty reply
  ])('%j / %j → %s', (prompt, reply, expected) => {
    expect(copiesPrompt(prompt, reply)).toBe(expected);
  });
});

describe('replyMeasures', () => {
  it('refuses an empty set and a bad token count', () => {
    expect(() => replyMeasures([])).toThrow(RangeError);
    expect(() => replyMeasures([row('네', { tokens: -1 })])).toThrow(RangeError);
    expect(() => replyMeasures([row('네', { tokens: 1.5 })])).toThrow(RangeError);
  });

  it('distinctRatio compares NFC-trimmed texts', () => {
    // '한국' in NFD and ' 한국 ' are both '한국': texts {한국, 네} → 2 / 3.
    const m = replyMeasures([row('한국'), row(' 한국 '.normalize('NFD')), row('네')]);
    expect(m.distinctRatio).toBeCloseTo(2 / 3);
  });

  it('eosShare, lengthLimitShare and degenerateShare', () => {
    const m = replyMeasures([
      row('네 알겠어요', { finishReason: 'eos' }),
      row('사이 사이 사이', { finishReason: 'eos' }), // repeat only
      row('그래서 그래서 그래서', { finishReason: 'length' }), // repeat and length: counted once
      row('길고 긴 대답', { finishReason: 'length' }), // length only
    ]);
    expect(m.eosShare).toBe(0.5); // 2 / 4
    expect(m.lengthLimitShare).toBe(0.5); // 2 / 4
    expect(m.repeatShare).toBe(0.5); // rows 2 and 3
    expect(m.degenerateShare).toBe(0.75); // rows 2, 3, 4
  });

  it('meanLength in tokens and meanCharacters in code points', () => {
    // Tokens (3 + 0 + 6) / 3 = 3. Characters: '좋아요 😊' is 5 code points (the
    // emoji one, though two UTF-16 units), '' is 0, ' 네 ' trims to 1 → 6 / 3 = 2.
    const m = replyMeasures([row('좋아요 😊', { tokens: 3 }), row('', { tokens: 0 }), row(' 네 ', { tokens: 6 })]);
    expect(m.meanLength).toBe(3);
    expect(m.meanCharacters).toBe(2);
  });

  it('copyShare over all replies, short prompts never counting', () => {
    const m = replyMeasures([
      row('시험 망했어?', { prompt: '시험 망했어' }), // copy
      row('다음엔 잘 볼 거예요.', { prompt: '시험 망했어' }),
      row('ㅠ', { prompt: 'ㅠ' }), // one code point: not a copy
      row('나 배고파 배고파', { prompt: '배고파' }), // copy
    ]);
    expect(m.copyShare).toBe(0.5); // 2 / 4
  });

  it('topReplyShare and topReply, ties going to the first text', () => {
    const m = replyMeasures([row('네'), row('좋아요'), row('좋아요 '), row('네'), row('글쎄요')]);
    // '네' 2 and '좋아요' 2 tie; '네' appears first → 2 / 5.
    expect(m.topReply).toBe('네');
    expect(m.topReplyShare).toBe(0.4);
    const single = replyMeasures([row('a'), row('b'), row('b')]);
    expect(single.topReply).toBe('b');
    expect(single.topReplyShare).toBeCloseTo(2 / 3);
  });

  it('distinct2 pools word bigrams within each reply', () => {
    // 'a b c' → (a,b) (b,c); 'a b' → (a,b); 'c a' → (c,a). Not (c,a) across the
    // first two replies. 4 bigrams, 3 distinct → 0.75.
    const m = replyMeasures([row('a b c'), row('a b'), row('c a')]);
    expect(m.distinct2).toBe(0.75);
    // Punctuation is part of a word here: (좋아요, 좋아요) and (좋아요, 좋아요.) differ → 2 / 2.
    expect(replyMeasures([row('좋아요 좋아요 좋아요.')]).distinct2).toBe(1);
  });

  it('distinct2 is 0 when no reply has two words, an empty reply included', () => {
    const m = replyMeasures([row(''), row('네'), row('   ')]);
    expect(m.distinct2).toBe(0);
    // '' and '   ' trim to the same empty text: texts {'', 네} → 2 / 3.
    expect(m.distinctRatio).toBeCloseTo(2 / 3);
    expect(m.topReply).toBe('');
    expect(m.repeatShare).toBe(0);
    expect(m.copyShare).toBe(0);
  });

  it('returns count and every measure on a mixed set', () => {
    const rows: ReplyRow[] = [
      { prompt: '배고파', reply: '저도 배고파요', tokens: 4, finishReason: 'eos' },
      { prompt: '심심해', reply: '저도 배고파요', tokens: 4, finishReason: 'eos' },
      { prompt: '헐', reply: '왜 왜 왜 왜', tokens: 10, finishReason: 'length' },
      { prompt: '잘 자', reply: '잘 자요', tokens: 2, finishReason: 'eos' },
    ];
    expect(replyMeasures(rows)).toEqual({
      count: 4,
      distinctRatio: 0.75, // 3 texts / 4
      eosShare: 0.75,
      lengthLimitShare: 0.25,
      repeatShare: 0.25,
      degenerateShare: 0.25, // the same row repeats and hits the limit
      meanLength: 5, // (4 + 4 + 10 + 2) / 4
      meanCharacters: 6.25, // (7 + 7 + 7 + 4) / 4
      copyShare: 0.5, // 배고파 in its reply; 잘자 in 잘자요
      topReplyShare: 0.5,
      topReply: '저도 배고파요',
      // Bigrams: (저도,배고파요) ×2, (왜,왜) ×3, (잘,자요) → 6, distinct 3.
      distinct2: 0.5,
    });
  });
});

describe('formatReplyMeasures', () => {
  it('prints aligned label: value lines with shares as percentages', () => {
    const lines = formatReplyMeasures({
      count: 100,
      distinctRatio: 0.87,
      eosShare: 0.95,
      lengthLimitShare: 0.05,
      repeatShare: 0.02,
      degenerateShare: 0.0625,
      meanLength: 7.25,
      meanCharacters: 15.2,
      copyShare: 0.01,
      topReplyShare: 0.04,
      topReply: '네, 맞아요.',
      distinct2: 2 / 3,
    });
    expect(lines).toEqual([
      'replies:          100',
      'distinct replies: 87.0%',
      'ended by EOS:     95.0%',
      'hit length limit: 5.0%',
      'word repeated 3x: 2.0%',
      'degenerate:       6.3%',
      'mean length:      7.3 tokens, 15.2 characters',
      'copies prompt:    1.0%',
      'top reply:        4.0% "네, 맞아요."',
      'distinct-2:       66.7%',
    ]);
  });

  it('quotes an empty top reply so that it can be seen', () => {
    const lines = formatReplyMeasures(replyMeasures([row('')]));
    expect(lines).toContain('top reply:        100.0% ""');
  });
});
