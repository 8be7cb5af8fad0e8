import * as tf from '@tensorflow/tfjs-core';

export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** §5.3: β1 = 0.9, β2 = 0.98, ε = 10⁻⁹. */
export const PAPER_ADAM: AdamOptions = { beta1: 0.9, beta2: 0.98, epsilon: 1e-9 };

/**
 * Adam (Kingma & Ba 2015) with bias correction, in PyTorch's arithmetic:
 * m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε).
 * The learning rate is given per step, so any schedule can drive it. Moments
 * live beside the parameters on the backend and can be saved and restored
 * for an exact resume.
 */
export class Adam {
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    readonly options: AdamOptions = PAPER_ADAM,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with learning rate `lr`; `grads` holds a gradient per parameter name. */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    this.step++;
    const { beta1, beta2, epsilon } = this.options;
    const correction1 = 1 - beta1 ** this.step;
    const correction2Sqrt = Math.sqrt(1 - beta2 ** this.step);
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (g === undefined) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const denom = tf.add(tf.div(tf.sqrt(v), correction2Sqrt), epsilon);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), lr / correction1)));
      }
    });
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/**
 * Scales gradients so that their global L2 norm is at most `maxNorm` (Pascanu
 * et al. 2013). Returns the norm before clipping and the gradients to use,
 * which are new tensors the caller disposes when the norm was too large.
 */
export function clipByGlobalNorm(grads: ReadonlyMap<string, tf.Tensor>, maxNorm: number): { norm: number; grads: Map<string, tf.Tensor>; clipped: boolean } {
  const norm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
  if (!(norm > maxNorm) || !Number.isFinite(norm)) return { norm, grads: new Map(grads), clipped: false };
  const scale = maxNorm / norm;
  const scaled = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) scaled.set(name, tf.mul(g, scale));
  return { norm, grads: scaled, clipped: true };
}
