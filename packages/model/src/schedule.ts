/**
 * The learning-rate schedule of §5.3 ("Noam"): linear warm-up for `warmup`
 * steps, then decay with the inverse square root of the step number,
 * lrate = d_model^−0.5 · min(step^−0.5, step · warmup^−1.5). Steps count from 1.
 */
export function noamSchedule(step: number, dModel: number, warmup: number, factor = 1): number {
  if (!(step >= 1)) throw new RangeError(`step counts from 1, got ${step}`);
  return factor * dModel ** -0.5 * Math.min(step ** -0.5, step * warmup ** -1.5);
}
