/**
 * Unicode script classes for SentencePiece's `split_by_unicode_script` rule: a
 * piece never mixes scripts, so `12시` stays `12` + `시` and `안녕?` keeps its
 * `?` apart. Hiragana and Katakana count as Han, as in SentencePiece; Inherited
 * marks take the script of the character before them.
 */
const SCRIPTS = [
  'Hangul',
  'Latin',
  'Han',
  'Hiragana',
  'Katakana',
  'Greek',
  'Cyrillic',
  'Arabic',
  'Hebrew',
  'Thai',
  'Devanagari',
  'Bengali',
  'Tamil',
  'Armenian',
  'Georgian',
  'Ethiopic',
  'Khmer',
  'Lao',
  'Myanmar',
  'Tibetan',
  'Mongolian',
  'Bopomofo',
  'Yi',
  'Common',
  'Inherited',
] as const;

const PATTERNS = SCRIPTS.map((name) => new RegExp(`^\\p{Script=${name}}$`, 'u'));
const HAN = SCRIPTS.indexOf('Han');
const HIRAGANA = SCRIPTS.indexOf('Hiragana');
const KATAKANA = SCRIPTS.indexOf('Katakana');
export const INHERITED = SCRIPTS.indexOf('Inherited');
/** Scripts not in the list above share one class: rare enough not to matter for merges. */
const OTHER = SCRIPTS.length;

const cache = new Map<string, number>();

/** Script class of one code point (as a string of one code point). */
export function scriptOf(char: string): number {
  let s = cache.get(char);
  if (s === undefined) {
    s = PATTERNS.findIndex((p) => p.test(char));
    if (s < 0) s = OTHER;
    if (s === HIRAGANA || s === KATAKANA || char === '\u30fc') s = HAN;
    cache.set(char, s);
  }
  return s;
}
