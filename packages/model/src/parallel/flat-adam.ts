import { PAPER_ADAM, type AdamOptions } from '../optimizer.js';

/** Adam's state over a flat parameter vector; m and v may live in shared memory. */
export interface FlatAdamState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export function createFlatAdamState(size: number, shared: boolean): FlatAdamState {
  const array = (): Float32Array => (shared ? new Float32Array(new SharedArrayBuffer(size * 4)) : new Float32Array(size));
  return { step: 0, m: array(), v: array() };
}

/**
 * The same Adam as `Adam` (PyTorch's arithmetic, §5.3 constants) over the
 * slice [from, to) of flat float32 arrays, for the update with step number
 * `step` (counted from 1). On the CPU backends one fused JavaScript loop beats
 * a dozen tensor kernels per parameter, and workers can each take a slice.
 */
export function adamUpdate(
  params: Float32Array,
  grads: Float32Array,
  state: Pick<FlatAdamState, 'm' | 'v'>,
  range: { from: number; to: number },
  step: number,
  lr: number,
  gradScale = 1,
  options: AdamOptions = PAPER_ADAM,
): void {
  const { beta1, beta2, epsilon } = options;
  const stepSize = lr / (1 - beta1 ** step);
  const correction2Sqrt = Math.sqrt(1 - beta2 ** step);
  const { m, v } = state;
  const b1 = 1 - beta1;
  const b2 = 1 - beta2;
  for (let i = range.from; i < range.to; i++) {
    const g = grads[i]! * gradScale;
    const mi = (m[i] = beta1 * m[i]! + b1 * g);
    const vi = (v[i] = beta2 * v[i]! + b2 * g * g);
    params[i] = params[i]! - (stepSize * mi) / (Math.sqrt(vi) / correction2Sqrt + epsilon);
  }
}
