import type { QaPair } from './reader.js';

export interface DedupeResult {
  pairs: QaPair[];
  /** How many exact (question, answer) repeats were dropped; the first occurrence is kept. */
  removed: number;
}

/** Drops exact repeats of a (question, answer) pair, keeping the first and the file order. */
export function dedupePairs(pairs: readonly QaPair[]): DedupeResult {
  const seen = new Set<string>();
  const kept: QaPair[] = [];
  for (const pair of pairs) {
    const key = `${pair.question}\u0000${pair.answer}`;
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(pair);
  }
  return { pairs: kept, removed: pairs.length - kept.length };
}

export interface SplitOptions {
  /** Share of pairs held out for validation; default 0.05 (a 95/5 split). */
  validFraction?: number;
  seed?: number;
}

export interface Split {
  train: QaPair[];
  valid: QaPair[];
}

/**
 * Deterministic train/validation split. Each pair's side depends only on its
 * question and the seed, so appending rows never moves an existing pair, and
 * every answer to one question lands on the same side: a question seen in
 * training never inflates the validation score.
 */
export function splitPairs(pairs: readonly QaPair[], options: SplitOptions = {}): Split {
  const fraction = options.validFraction ?? 0.05;
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`validFraction must be in [0, 1), got ${fraction}`);
  const seed = options.seed ?? 0;
  const train: QaPair[] = [];
  const valid: QaPair[] = [];
  for (const pair of pairs) (unitHash(pair.question, seed) < fraction ? valid : train).push(pair);
  return { train, valid };
}

/**
 * FNV-1a over UTF-16 code units with a murmur3 finaliser, mapped to [0, 1).
 * Not cryptographic; it only has to spread similar strings evenly.
 */
export function unitHash(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
