/**
 * Corpus BLEU (Papineni et al., 2002) computed the way sacreBLEU 2.x does with
 * its defaults — signature `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp` — so
 * that a validation score printed by the trainer can be compared with numbers
 * reported elsewhere.
 *
 * Every detail that moves the number follows sacreBLEU rather than the paper:
 * trailing whitespace is stripped before the mteval-v13a tokenizer runs, n-gram
 * statistics are summed over the whole corpus and the score is computed once,
 * a zero match count is smoothed by halving (NIST 'exp' smoothing), and an
 * order with no n-grams at all (every sentence shorter than that order) makes
 * the score 0 instead of being skipped.
 *
 * Text is handled as Unicode code points, as Python strings are: Hangul
 * syllables and emoji are ordinary characters and never split. Nothing is
 * normalised here (neither is it in sacreBLEU); pass NFC text, which is what
 * `@hanmadi/corpus` produces, so that a decomposed `한` never meets a composed one.
 */

/** Highest n-gram order, sacreBLEU's `MAX_NGRAM_ORDER`. */
const MAX_ORDER = 4;

/**
 * sacreBLEU stands in for log(0) with this value (`utils.my_log`), so a zero
 * precision drives the geometric mean to exactly 0 rather than to NaN.
 */
const LOG_ZERO = -9999999999;

export interface BleuResult {
  /** BLEU on sacreBLEU's scale, 0–100. */
  score: number;
  /**
   * Modified n-gram precisions for n = 1..4 in percent, as sacreBLEU reports them
   * (after 'exp' smoothing; all 0 when nothing matched at all).
   */
  precisions: [number, number, number, number];
  brevityPenalty: number;
  /** Tokens in all hypotheses after 13a tokenization. */
  hypLength: number;
  /** Tokens in the reference chosen for each hypothesis, summed. */
  refLength: number;
}

/**
 * Corpus BLEU with exactly one reference per hypothesis (`references[i]` is the
 * reference for `hypotheses[i]`), with sacreBLEU's default settings.
 *
 * An empty hypothesis scores as zero tokens. An empty reference is refused, as
 * sacreBLEU refuses it, because it has no score there to reproduce.
 *
 * @throws RangeError when the lists differ in length or a reference is empty.
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly string[]): BleuResult {
  checkLengths('corpusBleu', hypotheses.length, references.length);
  return bleuOfSets(
    'corpusBleu',
    hypotheses,
    references.map((reference) => [reference]),
  );
}

/**
 * Corpus BLEU against several references per hypothesis: `referenceSets[i]`
 * holds every acceptable answer for `hypotheses[i]`, and sets may differ in
 * size. (sacreBLEU takes the transpose, one stream per reference; its `''`
 * placeholders for a missing reference are dropped here too.) Matches are
 * clipped by the largest count of an n-gram in any one reference, and each
 * hypothesis is measured against the reference closest to it in length.
 *
 * @throws RangeError when the lists differ in length or a set has no non-empty reference.
 */
export function corpusBleuMultiRef(hypotheses: readonly string[], referenceSets: readonly (readonly string[])[]): BleuResult {
  checkLengths('corpusBleuMultiRef', hypotheses.length, referenceSets.length);
  return bleuOfSets('corpusBleuMultiRef', hypotheses, referenceSets);
}

// mteval-v13a's punctuation: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /.
// Apostrophe, comma, hyphen and period are left out on purpose: the rules below
// decide them by their neighbours. Written with \x escapes because the `u` flag
// (needed so that [^0-9] takes a whole emoji) forbids escaping `~`, `&` or `@`.
const PUNCTUATION = /([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])/gu;
// Periods and commas split off unless they sit inside a number ("3.14", "1,000").
const PERIOD_COMMA_AFTER_NON_DIGIT = /([^0-9])([.,])/gu;
const PERIOD_COMMA_BEFORE_NON_DIGIT = /([.,])([^0-9])/gu;
// A hyphen after a digit is a range or minus ("1990-2000"), split off; "e-mail" stays whole.
const DASH_AFTER_DIGIT = /([0-9])(-)/gu;

// Python's str.split() and str.rstrip() whitespace (str.isspace), which is not
// JavaScript's \s: it includes the separators U+001C–U+001F and NEL, and not the BOM.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1C-\\x1F \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'u');
const PY_TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`, 'u');

/** Python's `str.split()` with no argument: runs of whitespace separate, no empty fields. */
export function splitPythonWhitespace(text: string): string[] {
  return text.split(PY_SPACE_RUN).filter((part) => part !== '');
}

/**
 * sacreBLEU's '13a' tokenizer (mteval-v13a.pl): returns the tokens joined by
 * single spaces, with no leading or trailing space. `corpusBleu` strips trailing
 * whitespace before calling it, as sacreBLEU's BLEU does, which only matters
 * for a final "-\n" (kept as "-" there, removed here).
 */
export function tokenize13a(text: string): string {
  let line = text.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  // In this order, as mteval does, so "&amp;lt;" is unescaped twice and ends as "<".
  line = line.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  line = ` ${line} `
    .replace(PUNCTUATION, ' $1 ')
    .replace(PERIOD_COMMA_AFTER_NON_DIGIT, '$1 $2 ')
    .replace(PERIOD_COMMA_BEFORE_NON_DIGIT, ' $1 $2')
    .replace(DASH_AFTER_DIGIT, '$1 $2 ');
  return splitPythonWhitespace(line).join(' ');
}

/** What sacreBLEU does to every segment before counting: strip the end, then tokenize. */
function bleuTokens(text: string): string[] {
  return splitPythonWhitespace(tokenize13a(text.replace(PY_TRAILING_SPACE, '')));
}

/** Counts of the n-grams of one order; tokens hold no spaces, so joining them is a safe key. */
function ngramCounts(tokens: readonly string[], order: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + order <= tokens.length; i++) {
    const key = tokens.slice(i, i + order).join(' ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/**
 * The reference length BLEU compares a hypothesis with: the closest one, and
 * of two equally close the shorter (sacreBLEU's `_get_closest_ref_len`).
 */
function closestRefLength(hypLength: number, refLengths: readonly number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const length of refLengths) {
    const diff = Math.abs(hypLength - length);
    if (bestDiff === -1 || diff < bestDiff) {
      bestDiff = diff;
      best = length;
    } else if (diff === bestDiff && length < best) {
      best = length;
    }
  }
  return best;
}

function bleuOfSets(caller: string, hypotheses: readonly string[], referenceSets: readonly (readonly string[])[]): BleuResult {
  const matches = new Array<number>(MAX_ORDER).fill(0);
  const totals = new Array<number>(MAX_ORDER).fill(0);
  let hypLength = 0;
  let refLength = 0;

  hypotheses.forEach((hypothesis, index) => {
    const references = usableReferences(caller, referenceSets[index] ?? [], index);
    // Reference n-grams clip hypothesis counts; with several references the
    // most generous reference decides each n-gram separately.
    const refCounts = Array.from({ length: MAX_ORDER }, () => new Map<string, number>());
    const refLengths: number[] = [];
    for (const reference of references) {
      const tokens = bleuTokens(reference);
      refLengths.push(tokens.length);
      for (let n = 1; n <= MAX_ORDER; n++) {
        const merged = refCounts[n - 1]!;
        for (const [ngram, count] of ngramCounts(tokens, n)) merged.set(ngram, Math.max(merged.get(ngram) ?? 0, count));
      }
    }

    const tokens = bleuTokens(hypothesis);
    hypLength += tokens.length;
    refLength += closestRefLength(tokens.length, refLengths);
    for (let n = 1; n <= MAX_ORDER; n++) {
      const reference = refCounts[n - 1]!;
      for (const [ngram, count] of ngramCounts(tokens, n)) {
        totals[n - 1]! += count;
        matches[n - 1]! += Math.min(count, reference.get(ngram) ?? 0);
      }
    }
  });

  return scoreFromStatistics(matches, totals, hypLength, refLength);
}

/** BLEU from corpus-wide sufficient statistics (sacreBLEU's `compute_bleu`, smooth 'exp'). */
function scoreFromStatistics(matches: readonly number[], totals: readonly number[], hypLength: number, refLength: number): BleuResult {
  const brevityPenalty = hypLength < refLength ? (hypLength > 0 ? Math.exp(1 - refLength / hypLength) : 0) : 1;
  const precisions: [number, number, number, number] = [0, 0, 0, 0];
  const result = { precisions, brevityPenalty, hypLength, refLength };
  if (matches.every((count) => count === 0)) return { score: 0, ...result };

  // Each order with no match gets 1 / (2^k · total) for the k-th such order, so
  // one unlucky 4-gram count lowers the score instead of zeroing it. An order
  // with no n-grams at all stops the loop and keeps precision 0, i.e. score 0.
  let smoothing = 1;
  for (let n = 0; n < MAX_ORDER; n++) {
    const total = totals[n]!;
    if (total === 0) break;
    const matched = matches[n]!;
    if (matched === 0) {
      smoothing *= 2;
      precisions[n] = 100 / (smoothing * total);
    } else {
      precisions[n] = (100 * matched) / total;
    }
  }

  let logSum = 0;
  for (const precision of precisions) logSum += precision === 0 ? LOG_ZERO : Math.log(precision);
  return { score: brevityPenalty * Math.exp(logSum / MAX_ORDER), ...result };
}

/**
 * The references that count for one hypothesis. sacreBLEU drops `''` (its
 * marker for "no reference here") and stops when nothing is left; a reference
 * of only spaces is kept and simply has no tokens.
 */
function usableReferences(caller: string, references: readonly string[], index: number): string[] {
  const usable = references.filter((reference) => reference !== '');
  if (usable.length === 0) throw new RangeError(`${caller}: hypothesis ${index} has no non-empty reference`);
  return usable;
}

function checkLengths(caller: string, hypotheses: number, references: number): void {
  if (hypotheses !== references) {
    throw new RangeError(`${caller}: ${hypotheses} hypotheses but ${references} references; they must pair up one to one`);
  }
}
