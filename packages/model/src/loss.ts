import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './ops.js';

/**
 * Label-smoothed cross-entropy (§5.4, ε_ls = 0.1; Szegedy et al. 2016): the
 * target distribution q puts 1 − ε on the reference token, 0 on padding, and
 * spreads ε over the other V − 2 tokens; the loss is −Σ q·log p, averaged over
 * the N target tokens given. Padding positions are never passed in: the model
 * gathers only real target positions before projecting to the vocabulary.
 *
 * The gradient with respect to the logits is written out, (p − q)/N, instead
 * of being derived through log-softmax: on wasm the exp and log kernels over
 * [N, V] cost more than the fused softmax, and the one-hot q would have to
 * be materialised. log p is obtained from the softmax itself, without a second
 * pass: lse = max(z) − log(max(p)), and max(p) ≥ 1/V never underflows.
 *
 * logits [N, V] float32, targets int32 [N] → scalar.
 */
export class LabelSmoothing {
  constructor(
    readonly epsilon: number,
    readonly padId: number,
  ) {
    if (!(epsilon >= 0 && epsilon < 1)) throw new RangeError(`label smoothing must be in [0, 1), got ${epsilon}`);
  }

  loss(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
    const [n, vocab] = logits.shape;
    const eps = this.epsilon;
    const base = eps / (vocab - 2); // q of every token but the reference and padding
    return customOp<tf.Scalar>([logits], ([z], save) => {
      const rowStart = tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(vocab, 'int32')); // [N]
      const targetIndex = tf.add(rowStart, targets); // [N] flat index of each reference token
      const padIndex = tf.add(rowStart, tf.scalar(this.padId, 'int32')); // [N]
      const p = tf.softmax(z!); // [N, V]
      // Saved tensors outlive the forward pass, which runs inside a tidy.
      save([p, targetIndex, padIndex]);
      const flat = tf.reshape(z!, [-1]); // [N·V]
      const lse = tf.sub(tf.max(z!, 1), tf.log(tf.max(p, 1))); // [N] log Σ exp z
      const logpTarget = tf.sub(tf.gather(flat, targetIndex), lse); // [N]
      const logpPad = tf.sub(tf.gather(flat, padIndex), lse); // [N]
      const logpAll = tf.sub(tf.sum(z!, 1), tf.mul(lse, vocab)); // [N] Σ_j log p_j
      const others = tf.sub(tf.sub(logpAll, logpTarget), logpPad); // [N]
      const perToken = tf.neg(tf.add(tf.mul(logpTarget, 1 - eps), tf.mul(others, base))); // [N]
      return {
        value: tf.mean(perToken),
        gradFunc: (dy, saved) => {
          const [probs, targetIndex, padIndex] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
          // q − base is sparse: 1 − ε − base at the reference, −base at padding.
          const indices = tf.expandDims(tf.concat([targetIndex, padIndex]), 1); // [2N, 1]
          const values = tf.concat([tf.fill([n], 1 - eps - base), tf.fill([n], -base)]); // [2N]
          const qMinusBase = tf.reshape(tf.scatterND(indices, values, [n * vocab]), [n, vocab]); // [N, V]
          const grad = tf.sub(tf.sub(probs, base), qMinusBase); // [N, V] p − q
          return tf.mul(grad, tf.div(dy, n));
        },
      };
    });
  }
}

/**
 * Plain token-level cross-entropy −log p(reference), summed (no smoothing):
 * the validation measure whose exponential is perplexity. logits [N, V], targets [N] → scalar sum.
 */
export function crossEntropySum(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const [n, vocab] = logits.shape;
    const p = tf.softmax(logits); // [N, V]
    const lse = tf.sub(tf.max(logits, 1), tf.log(tf.max(p, 1))); // [N]
    const index = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(vocab, 'int32')), targets); // [N]
    const logpTarget = tf.sub(tf.gather(tf.reshape(logits, [-1]), index), lse); // [N]
    return tf.neg(tf.sum(logpTarget)) as tf.Scalar;
  });
}
