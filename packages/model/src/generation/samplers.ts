import { Rng } from '../random.js';
import { samplingWarpers, type LogitsProcessorList } from './logits-processors.js';
import { argMax, logProbability, logSumExp, sampleIndex } from './math.js';
import type { ResolvedGenerateOptions } from './options.js';

/** A next token and the log-probability its source's score counts. */
export interface Choice {
  id: number;
  logProb: number;
}

/**
 * Chooses each next token of one-hypothesis decoding from a row of
 * processed scores, after transformers.js's `generation/logits_sampler`.
 */
export interface TokenSampler {
  /** Registers source b, with its sampling seed. */
  addSource(b: number, seed: number): void;
  forget(b: number): void;
  choose(b: number, row: Float32Array): Choice;
}

/** Greedy decoding: the most probable token. */
export class GreedySampler implements TokenSampler {
  addSource(): void {}

  forget(): void {}

  choose(_b: number, row: Float32Array): Choice {
    const id = argMax(row);
    // The maximum is row[id]: logSumExp need not look for it again.
    return { id, logProb: logProbability(row, id, logSumExp(row, row[id])) };
  }
}

/** Sampling: a token drawn from the warped distribution with the source's own seeded generator. */
export class MultinomialSampler implements TokenSampler {
  private readonly warpers: LogitsProcessorList;
  private readonly rngs = new Map<number, Rng>();

  constructor(o: ResolvedGenerateOptions) {
    this.warpers = samplingWarpers(o);
  }

  addSource(b: number, seed: number): void {
    this.rngs.set(b, new Rng(seed));
  }

  forget(b: number): void {
    this.rngs.delete(b);
  }

  choose(b: number, row: Float32Array): Choice {
    // Warpers shape the sampling distribution only; the score stays on `row`.
    const warped = row.slice();
    this.warpers.process([[]], [warped]);
    const id = sampleIndex(warped, this.rngs.get(b)!.next());
    return { id, logProb: logProbability(row, id) };
  }
}

/** The sampler of a greedy or sampling strategy. */
export function tokenSampler(o: ResolvedGenerateOptions): TokenSampler {
  return o.strategy === 'sample' ? new MultinomialSampler(o) : new GreedySampler();
}
