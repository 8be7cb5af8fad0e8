import * as tf from '@tensorflow/tfjs-core';

/**
 * Primitive ops with hand-written gradients. On the wasm backend only rank-2,
 * non-transposed matmuls reach XNNPACK; batched or transposed ones fall to a
 * scalar loop, and autograd's matmul gradient uses transposed products.
 * Materialising the transposes keeps every product of training on the fast
 * path. Gather's gradient needs UnsortedSegmentSum, which wasm lacks and cpu
 * runs far too slowly over a vocabulary; a scatter does the same.
 */

type GradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** tf.customGrad with typed inputs: `forward` returns the value and its gradient function. */
export function customOp<T extends tf.Tensor>(
  inputs: tf.Tensor[],
  forward: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: GradFunc },
): T {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return forward(args as tf.Tensor[], save);
  });
  return f(...inputs) as T;
}

/** tf.tidy for a function returning any structure of tensors; those returned are kept. */
export function tidy<T>(fn: () => T): T {
  return tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as T;
}

/**
 * Affine map `x·W + b` (optionally ReLU), x [N, in], W [in, out], b [out].
 * Weights are stored [in, out] so that the forward product needs no transpose.
 * `w` must outlive the backward pass (a variable): only x, and y for ReLU,
 * are saved, because saving clones and wasm clones by copying.
 */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D, activation?: 'relu'): tf.Tensor2D {
  return customOp<tf.Tensor2D>(b === undefined ? [x, w] : [x, w, b], ([xi, , bi], save) => {
    const y = tf.fused.matMul({ a: xi as tf.Tensor2D, b: w, ...(bi ? { bias: bi } : {}), activation: activation ?? 'linear' }); // [N, out]
    save(activation === 'relu' ? [xi!, y] : [xi!]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, ys] = saved as [tf.Tensor2D, tf.Tensor2D | undefined];
        const g = (ys === undefined ? dy : tf.mul(dy, tf.step(ys))) as tf.Tensor2D; // ReLU' = [y > 0]
        const dx = tf.fused.matMul({ a: g, b: tf.transpose(w) }); // [N, in]
        const dw = tf.fused.matMul({ a: tf.transpose(xs), b: g }); // [in, out]
        return bi === undefined ? [dx, dw] : [dx, dw, tf.sum(g, 0)]; // db [out]
      },
    };
  });
}

/**
 * Projection onto a table stored [M, d] (the tied embedding): h [N, d] → h·Eᵀ [N, M].
 * The forward product is taken as (E·hᵀ)ᵀ: XNNPACK repacks its right operand
 * on every call, and hᵀ [d, N] is the smaller one to pack when M ≫ N. Every
 * product stays on the fast path; `table` must be a variable.
 */
export function projectOnto(h: tf.Tensor2D, table: tf.Tensor2D): tf.Tensor2D {
  return customOp<tf.Tensor2D>([h, table], ([hi], save) => {
    save([hi!]);
    return {
      value: tf.transpose(tf.fused.matMul({ a: table, b: tf.transpose(hi as tf.Tensor2D) })), // [N, M]
      gradFunc: (dy, [hs]) => [
        tf.fused.matMul({ a: dy as tf.Tensor2D, b: table }), // [N, d]
        tf.transpose(tf.fused.matMul({ a: tf.transpose(hs as tf.Tensor2D), b: dy as tf.Tensor2D })), // [M, d]
      ],
    };
  });
}

/**
 * Rows `table[indices[i]]`, table [M, d], indices int32 [N] → [N, d]; the
 * gradient scatters back, summing repeated rows. GatherNd, not GatherV2: on
 * wasm the latter is far slower for row lookups.
 */
export function gatherRows(table: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  const shape = table.shape;
  return customOp<tf.Tensor2D>([table], ([t], save) => {
    const index = tf.expandDims(indices, 1); // [N, 1]
    // Saved tensors outlive the forward pass; the index built inside it would not.
    save([index]);
    return {
      value: tf.gatherND(t!, index), // [N, d]
      gradFunc: (dy, [saved]) => tf.scatterND(saved!, dy, shape), // [M, d]
    };
  });
}

/**
 * a·b, either operand transposed as asked, as one BatchMatMul kernel of any
 * rank ≥ 2. tf.matMul reshapes both operands to rank 3 and the product back,
 * three kernels more; every backend's BatchMatMul does this itself without
 * launching any. Differentiable through the kernel's registered gradient.
 */
export function batchMatMul<T extends tf.Tensor>(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): T {
  return tf.engine().runKernel('BatchMatMul', { a, b }, { transposeA, transposeB }) as T; // [..., M, N]
}
