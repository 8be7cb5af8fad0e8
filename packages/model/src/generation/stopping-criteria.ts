/** Why a hypothesis ended: it produced EOS, or it reached the length limit. */
export type FinishReason = 'eos' | 'length';

/**
 * Decides whether a hypothesis is finished after its latest token.
 * `generated` holds every token produced so far, the latest one included, without BOS.
 */
export interface StoppingCriterion {
  check(generated: readonly number[]): FinishReason | undefined;
}

/** Finished when the latest token is EOS. */
export class EosCriterion implements StoppingCriterion {
  constructor(readonly eosId: number) {}

  check(generated: readonly number[]): FinishReason | undefined {
    return generated.length > 0 && generated[generated.length - 1] === this.eosId ? 'eos' : undefined;
  }
}

/** Finished once `maxNewTokens` tokens have been produced. */
export class MaxLengthCriterion implements StoppingCriterion {
  constructor(readonly maxNewTokens: number) {
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  }

  check(generated: readonly number[]): FinishReason | undefined {
    return generated.length >= this.maxNewTokens ? 'length' : undefined;
  }
}

/** The first criterion that fires decides the reason, so list EOS before the length limit. */
export class StoppingCriteriaList implements StoppingCriterion {
  constructor(readonly criteria: readonly StoppingCriterion[]) {}

  check(generated: readonly number[]): FinishReason | undefined {
    for (const c of this.criteria) {
      const reason = c.check(generated);
      if (reason) return reason;
    }
    return undefined;
  }
}
