/**
 * The learning-rate schedule of §5.3 ("Noam"): linear warm-up for `warmup`
 * steps, then decay with the inverse square root of the step number,
 * lrate = d_model^−0.5 · min(step^−0.5, step · warmup^−1.5). Steps count from 1.
 */
export function noamSchedule(step: number, dModel: number, warmup: number, factor = 1): number {
  if (!(step >= 1)) throw new RangeError(`step counts from 1, got ${step}`);
  return factor * dModel ** -0.5 * Math.min(step ** -0.5, step * warmup ** -1.5);
}

/**
 * Fine-tuning's schedule (not in the paper): linear warm-up to `peak` over
 * `warmup` steps, then linear decay to zero just after step `total`, as BERT is
 * fine-tuned (Devlin et al. 2019, §A.3). A restarted Noam warm-up would peak
 * at d_model^−0.5 · warmup^−0.5 and overwrite what the base model learned.
 */
export function fineTuneSchedule(step: number, peak: number, warmup: number, total: number): number {
  if (!(step >= 1)) throw new RangeError(`step counts from 1, got ${step}`);
  if (step <= warmup) return (peak * step) / warmup;
  return (peak * Math.max(0, total + 1 - step)) / Math.max(1, total + 1 - warmup);
}
