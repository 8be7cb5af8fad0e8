import { Rng, type Example } from '@hanmadi/model';

/** Padded size of a batch: examples × the longer of its source (+EOS) and target (+BOS/EOS) lengths. */
export function paddedTokens(batch: readonly Example[]): number {
  let source = 0;
  let target = 0;
  for (const e of batch) {
    source = Math.max(source, e.source.length + 1);
    target = Math.max(target, e.target.length + 1);
  }
  return batch.length * Math.max(source, target);
}

/**
 * One epoch's batches under a token budget (§5.1: "sentence pairs were batched
 * together by approximate sequence length. Each training batch contained a set
 * of sentence pairs containing approximately 25000 source tokens and 25000
 * target tokens"). Pairs are shuffled, sorted by target then source length,
 * cut greedily so that a batch padded to its longest sequence stays within
 * `batchTokens`, and the batches shuffled: little padding, random order. The
 * order depends only on the seed and the epoch, so a resumed run sees the same
 * batches.
 */
export function epochBatches(examples: readonly Example[], batchTokens: number, seed: number, epoch: number): Example[][] {
  const rng = new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
  const sorted = rng.shuffle([...examples]).sort((a, b) => a.target.length - b.target.length || a.source.length - b.source.length);
  const batches: Example[][] = [];
  let current: Example[] = [];
  for (const e of sorted) {
    if (current.length > 0 && paddedTokens([...current, e]) > batchTokens) {
      batches.push(current);
      current = [];
    }
    current.push(e);
  }
  if (current.length > 0) batches.push(current);
  return rng.shuffle(batches);
}
