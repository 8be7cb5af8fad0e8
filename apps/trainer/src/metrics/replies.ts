/**
 * Measures of a set of generated replies, one per probe prompt, for
 * `pnpm evaluate --prompts`: they need no reference answers, and show what
 * BLEU and chrF against references do not — a model that says the same thing
 * to everyone, loops on a word, runs to the length limit or parrots the user.
 *
 * Definitions (every "share" is a fraction of all replies, 0–1):
 *
 * - A reply's text is compared after NFC and trimming ("its text" below).
 * - Words are its text split on whitespace. When words are compared for a
 *   repeat, punctuation at either end is ignored (`좋아요 좋아요 좋아요.` is a
 *   repeat); a word of punctuation alone is compared as it is.
 * - distinctRatio: distinct texts / replies (an empty reply is one text, "").
 * - eosShare / lengthLimitShare: replies whose finish reason is 'eos' / 'length'.
 * - repeatShare: replies with one word three times in a row (`사이 사이 사이`).
 *   Only whitespace-separated words count: a run glued without spaces
 *   (`좋아좋아좋아`, `ㅋㅋㅋㅋ`) is not caught: such runs are ordinary Korean
 *   laughter as often as a loop, and a loop that never stops still shows up in
 *   degenerateShare through the length limit.
 * - degenerateShare: replies that repeat a word 3× in a row OR end at the length limit.
 * - meanLength: mean reply length in model tokens, as reported by the generator;
 *   meanCharacters: mean length of the texts in Unicode code points.
 * - copyShare: replies that copy their prompt. Both are squeezed — NFC,
 *   lower-cased, whitespace and punctuation (Unicode P) removed — and the
 *   reply copies the prompt when its squeezed text contains the squeezed prompt
 *   (equal included). Prompts that squeeze to fewer than 2 code points are
 *   never copied (`ㅠ` would match any reply containing ㅠ).
 * - topReplyShare / topReply: the most common text and its share; a tie goes
 *   to the text that appears first.
 * - distinct2: Li et al. (2016)'s distinct-2 — distinct word bigrams / word
 *   bigrams, bigrams taken within each reply (never across two replies), over
 *   raw whitespace words, pooled over all replies; 0 when there are no bigrams.
 *   (The paper scales by generated tokens; this is the common n-gram form.)
 */

export type FinishReason = 'eos' | 'length';

/** One prompt and what the model replied to it. */
export interface ReplyRow {
  prompt: string;
  reply: string;
  /** Tokens the model generated for the reply, as the generator counts them. */
  tokens: number;
  /** 'eos' when the model ended the reply itself, 'length' when it hit the token limit. */
  finishReason: FinishReason;
}

export interface ReplyMeasures {
  count: number;
  distinctRatio: number;
  eosShare: number;
  lengthLimitShare: number;
  repeatShare: number;
  degenerateShare: number;
  meanLength: number;
  meanCharacters: number;
  copyShare: number;
  topReplyShare: number;
  topReply: string;
  distinct2: number;
}

/** Shortest squeezed prompt that a reply can be said to copy. */
const MIN_COPY_LENGTH = 2;

/** NFC then trimmed: the form in which replies are told apart. */
function text(reply: string): string {
  return reply.normalize('NFC').trim();
}

/** Whitespace-separated words of an NFC-trimmed text; none for an empty text. */
function words(normal: string): string[] {
  return normal === '' ? [] : normal.split(/\s+/u);
}

/** A word without punctuation at its ends, or the word itself when that leaves nothing. */
function core(word: string): string {
  return word.replace(/^\p{P}+|\p{P}+$/gu, '') || word;
}

/** True when some word comes three times in a row. */
export function repeatsWord(reply: string): boolean {
  const cores = words(text(reply)).map(core);
  for (let i = 2; i < cores.length; i++) {
    if (cores[i] === cores[i - 1] && cores[i] === cores[i - 2]) return true;
  }
  return false;
}

/** NFC, lower case, whitespace and punctuation removed. */
function squeeze(value: string): string {
  return value
    .normalize('NFC')
    .toLowerCase()
    .replace(/[\s\p{P}]/gu, '');
}

/** True when the reply contains the whole prompt, spacing, punctuation and case aside. */
export function copiesPrompt(prompt: string, reply: string): boolean {
  const p = squeeze(prompt);
  return [...p].length >= MIN_COPY_LENGTH && squeeze(reply).includes(p);
}

/**
 * All reply measures over `rows` (see the module comment for each definition).
 *
 * @throws RangeError when there are no rows or a token count is not a non-negative integer.
 */
export function replyMeasures(rows: readonly ReplyRow[]): ReplyMeasures {
  if (rows.length === 0) throw new RangeError('replyMeasures: no replies to measure');
  const count = rows.length;
  const share = (predicate: (row: ReplyRow) => boolean): number => rows.filter(predicate).length / count;

  const texts = rows.map((row) => text(row.reply));
  const frequency = new Map<string, number>();
  for (const t of texts) frequency.set(t, (frequency.get(t) ?? 0) + 1);
  // Map keeps insertion order and `>` keeps the earlier text on a tie.
  let topReply = texts[0]!;
  for (const [t, n] of frequency) if (n > frequency.get(topReply)!) topReply = t;

  let tokens = 0;
  for (const row of rows) {
    if (!Number.isInteger(row.tokens) || row.tokens < 0) {
      throw new RangeError(`replyMeasures: token count must be a non-negative integer, got ${row.tokens}`);
    }
    tokens += row.tokens;
  }

  let bigrams = 0;
  const distinctBigrams = new Set<string>();
  for (const t of texts) {
    const w = words(t);
    for (let i = 1; i < w.length; i++) {
      bigrams++;
      // NUL cannot occur inside a whitespace-free word, so the pair's key is unambiguous.
      distinctBigrams.add(`${w[i - 1]}\u0000${w[i]}`);
    }
  }

  return {
    count,
    distinctRatio: frequency.size / count,
    eosShare: share((row) => row.finishReason === 'eos'),
    lengthLimitShare: share((row) => row.finishReason === 'length'),
    repeatShare: share((row) => repeatsWord(row.reply)),
    degenerateShare: share((row) => row.finishReason === 'length' || repeatsWord(row.reply)),
    meanLength: tokens / count,
    meanCharacters: texts.reduce((sum, t) => sum + [...t].length, 0) / count,
    copyShare: share((row) => copiesPrompt(row.prompt, row.reply)),
    topReplyShare: frequency.get(topReply)! / count,
    topReply,
    distinct2: bigrams === 0 ? 0 : distinctBigrams.size / bigrams,
  };
}

/** A share as a percentage with one decimal: 0.125 → "12.5%". */
function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/** Printable "label: value" lines with the values aligned in one column. */
export function formatReplyMeasures(m: ReplyMeasures): string[] {
  const rows: [string, string][] = [
    ['replies', String(m.count)],
    ['distinct replies', percent(m.distinctRatio)],
    ['ended by EOS', percent(m.eosShare)],
    ['hit length limit', percent(m.lengthLimitShare)],
    ['word repeated 3x', percent(m.repeatShare)],
    ['degenerate', percent(m.degenerateShare)],
    ['mean length', `${m.meanLength.toFixed(1)} tokens, ${m.meanCharacters.toFixed(1)} characters`],
    ['copies prompt', percent(m.copyShare)],
    // JSON quoting shows an empty or space-only reply for what it is.
    ['top reply', `${percent(m.topReplyShare)} ${JSON.stringify(m.topReply)}`],
    ['distinct-2', percent(m.distinct2)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`);
}
