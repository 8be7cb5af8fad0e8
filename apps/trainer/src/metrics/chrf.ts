/**
 * Corpus chrF (Popović, 2015) computed the way sacreBLEU 2.x does with its
 * defaults — signature `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no` — the
 * character n-gram F-score that suits Korean better than BLEU, since it gives
 * partial credit inside an eojeol (`학생입니다` against `대학생입니다`).
 *
 * As in sacreBLEU: whitespace is removed before counting, n-gram counts are
 * summed over the whole corpus before any division, and precision and recall
 * are each averaged over the orders that both sides actually have (sacreBLEU's
 * "effective order"; its optional chrF++.py-style epsilon smoothing is off by
 * default and so is not used here). The F-score with beta = 2 is taken once,
 * from those two averages.
 *
 * Characters are Unicode code points, as in Python: a Hangul syllable or an
 * emoji is one character, never two UTF-16 units. Text is not normalised.
 */

import { splitPythonWhitespace } from './bleu.js';

/** Character n-gram orders 1..6 (sacreBLEU's `CHAR_ORDER`). */
const CHAR_ORDER = 6;
/** Recall weighs beta² = 4 times as much as precision (sacreBLEU's `BETA`). */
const BETA = 2;

export interface ChrfResult {
  /** chrF on sacreBLEU's scale, 0–100. */
  score: number;
}

/** Per order: hypothesis n-grams, reference n-grams, matched n-grams. */
type OrderStats = [hyp: number, ref: number, match: number];

/**
 * Corpus chrF with exactly one reference per hypothesis (`references[i]` is the
 * reference for `hypotheses[i]`), with sacreBLEU's default settings.
 *
 * An empty hypothesis contributes no n-grams. An empty reference is refused, as
 * sacreBLEU refuses it.
 *
 * @throws RangeError when the lists differ in length or a reference is empty.
 */
export function corpusChrf(hypotheses: readonly string[], references: readonly string[]): ChrfResult {
  checkLengths('corpusChrf', hypotheses.length, references.length);
  return chrfOfSets(
    'corpusChrf',
    hypotheses,
    references.map((reference) => [reference]),
  );
}

/**
 * Corpus chrF against several references per hypothesis: `referenceSets[i]`
 * holds every acceptable answer for `hypotheses[i]` (the transpose of
 * sacreBLEU's reference streams; `''` entries are dropped as sacreBLEU drops
 * them). Each hypothesis takes the statistics of the reference it scores best
 * against on its own, the first one on a tie.
 *
 * @throws RangeError when the lists differ in length or a set has no non-empty reference.
 */
export function corpusChrfMultiRef(hypotheses: readonly string[], referenceSets: readonly (readonly string[])[]): ChrfResult {
  checkLengths('corpusChrfMultiRef', hypotheses.length, referenceSets.length);
  return chrfOfSets('corpusChrfMultiRef', hypotheses, referenceSets);
}

function chrfOfSets(caller: string, hypotheses: readonly string[], referenceSets: readonly (readonly string[])[]): ChrfResult {
  const corpus: OrderStats[] = Array.from({ length: CHAR_ORDER }, (): OrderStats => [0, 0, 0]);
  hypotheses.forEach((hypothesis, index) => {
    const references = (referenceSets[index] ?? []).filter((reference) => reference !== '');
    if (references.length === 0) throw new RangeError(`${caller}: hypothesis ${index} has no non-empty reference`);

    const hypNgrams = charNgrams(hypothesis);
    let best: OrderStats[] = [];
    let bestScore = -1;
    for (const reference of references) {
      const stats = matchStatistics(hypNgrams, charNgrams(reference));
      const score = fScore(stats);
      if (score > bestScore) {
        bestScore = score;
        best = stats;
      }
    }
    best.forEach((order, n) => {
      const sum = corpus[n]!;
      sum[0] += order[0];
      sum[1] += order[1];
      sum[2] += order[2];
    });
  });
  return { score: fScore(corpus) };
}

/** Counts of character n-grams of orders 1..6, whitespace removed, over code points. */
function charNgrams(text: string): Map<string, number>[] {
  const chars = Array.from(splitPythonWhitespace(text).join(''));
  return Array.from({ length: CHAR_ORDER }, (_, i) => {
    const order = i + 1;
    const counts = new Map<string, number>();
    for (let start = 0; start + order <= chars.length; start++) {
      const key = chars.slice(start, start + order).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  });
}

function matchStatistics(hyp: readonly Map<string, number>[], ref: readonly Map<string, number>[]): OrderStats[] {
  return hyp.map((hypCounts, n): OrderStats => {
    const refCounts = ref[n]!;
    let hypTotal = 0;
    let match = 0;
    for (const [ngram, count] of hypCounts) {
      hypTotal += count;
      match += Math.min(count, refCounts.get(ngram) ?? 0);
    }
    let refTotal = 0;
    for (const count of refCounts.values()) refTotal += count;
    // sacreBLEU does not count hypothesis n-grams of an order the reference is
    // too short to have: a long answer to a two-syllable reference is not
    // charged for its 3- to 6-grams in the corpus precision.
    return [refCounts.size > 0 ? hypTotal : 0, refTotal, match];
  });
}

/** chrF from summed statistics, with sacreBLEU's effective-order averaging; 0–100. */
function fScore(stats: readonly OrderStats[]): number {
  let precision = 0;
  let recall = 0;
  let effectiveOrder = 0;
  for (const [hyp, ref, match] of stats) {
    // An order missing on either side says nothing about quality, so it is
    // left out of the averages rather than counted as a zero.
    if (hyp > 0 && ref > 0) {
      precision += match / hyp;
      recall += match / ref;
      effectiveOrder += 1;
    }
  }
  if (effectiveOrder > 0) {
    precision /= effectiveOrder;
    recall /= effectiveOrder;
  }
  if (precision + recall === 0) return 0;
  const factor = BETA ** 2;
  // Same operation order as sacreBLEU, so the last digits agree too.
  const f = ((1 + factor) * precision * recall) / (factor * precision + recall);
  return 100 * f;
}

function checkLengths(caller: string, hypotheses: number, references: number): void {
  if (hypotheses !== references) {
    throw new RangeError(`${caller}: ${hypotheses} hypotheses but ${references} references; they must pair up one to one`);
  }
}
