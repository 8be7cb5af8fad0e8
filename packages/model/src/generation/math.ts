/**
 * The numbers of decoding over one row of scores, in plain JavaScript: a row
 * is read from the model once per step, and processors, samplers and beam
 * search work on it in place.
 */

/** Indices of the row sorted by score, highest first, ties by lower index. */
export function sortedIndices(row: Float32Array): number[] {
  return Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
}

/**
 * The k highest-scoring indices, highest first, ties by lower index. A
 * bounded insertion list: k is small next to the vocabulary, so this beats a
 * full sort of V indices.
 */
export function topIndices(row: Float32Array, k: number): number[] {
  if (k >= row.length / 8) return sortedIndices(row).slice(0, k);
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (best.length === k && !(v > row[best[k - 1]!]!)) continue;
    let at = best.length;
    // Strictly greater only: an equal later index stays behind the earlier one.
    while (at > 0 && v > row[best[at - 1]!]!) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

/** exp(−k/EXP_STEPS) for k = 0 … EXP_RANGE·EXP_STEPS: the table behind logSumExp's exponentials. */
const EXP_STEPS = 64;
const EXP_RANGE = 40;
const EXP_TABLE = Float64Array.from({ length: EXP_RANGE * EXP_STEPS + 1 }, (_, k) => Math.exp(-k / EXP_STEPS));

/**
 * log Σ exp(row), stably, in float64 (`knownMax`: the row's maximum, if known): the log-probability of token i is
 * row[i] − logSumExp(row). Decoding needs it for one or a few tokens per row,
 * so it pays to skip the whole log-softmax row (8,000 entries a step).
 *
 * Each exp(row[i] − max) is a table entry exp(−k/64) times a fourth-order
 * Taylor polynomial for the remaining fraction of 1/64 (relative error below
 * 1e-11), cheaper than Math.exp, which this loop calls for every token of
 * every row. Terms below e^−40 of the largest are left out: 8,000 of them
 * would move the sum by less than 1e-13.
 */
export function logSumExp(row: Float32Array, knownMax?: number): number {
  const n = row.length;
  let max = knownMax ?? -Infinity;
  // Greedy decoding has just found the maximum: one pass fewer over the row.
  if (knownMax === undefined) for (let i = 0; i < n; i++) if (row[i]! > max) max = row[i]!;
  if (max === -Infinity) return -Infinity;
  const limit = EXP_RANGE * EXP_STEPS;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    // z ≥ 0 counts steps of 1/64 below the maximum; −∞ scores fall out with the small ones.
    const z = (max - row[i]!) * EXP_STEPS;
    if (!(z < limit)) {
      if (Number.isNaN(z)) return NaN;
      continue;
    }
    const k = z | 0;
    const r = (k - z) / EXP_STEPS; // (−1/64, 0]
    sum += EXP_TABLE[k]! * (1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24)))));
  }
  return max + Math.log(sum);
}

/** The log-probability of `id` under softmax(row); −∞ for a forbidden token. */
export function logProbability(row: Float32Array, id: number, logZ = logSumExp(row)): number {
  return logZ === -Infinity ? -Infinity : row[id]! - logZ;
}

/** Numerically stable log-softmax of one row, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  const logZ = logSumExp(row);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = logProbability(row, i, logZ);
  return out;
}

/** Softmax of one row, in float64. */
export function softmax(row: Float32Array): Float64Array {
  return logSoftmax(row).map(Math.exp);
}

/** Index of the highest score, the lowest such index on ties (as tf.argMax). */
export function argMax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Index drawn from softmax(row) with the uniform number u ∈ [0, 1). */
export function sampleIndex(row: Float32Array, u: number): number {
  const probs = softmax(row);
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! === 0) continue;
    cumulative += probs[i]!;
    last = i;
    if (u < cumulative) return i;
  }
  // Rounding can leave the total just under u: take the last possible token.
  return last;
}
