import * as tf from '@tensorflow/tfjs-core';

/**
 * Replacements for wasm kernels that cost more than they need to at this
 * model's sizes. Each keeps the kernel's contract (inputs, attributes,
 * output) and is registered once, when the wasm backend starts.
 */

/** The part of tfjs-backend-wasm's backend these kernels use. */
interface WasmBackend {
  incRef(dataId: tf.DataId): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * A kernel of this project's own: layer normalisation of x [N, d] over its
 * last axis, then ·γ + β (inputs x, gamma, beta; attribute epsilon). Only
 * wasm registers it; LayerNorm asks for it where it is registered and runs
 * the composite of standard kernels elsewhere.
 */
export const LAYER_NORM_KERNEL = 'HanmadiLayerNorm';

let registered = false;

export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  shareIdentity();
  registerLayerNorm();
}

/**
 * Identity shares the input's buffer and counts a reference, as Reshape
 * already does on wasm and Identity does on cpu, instead of copying it.
 * Autodiff keeps every tensor a gradient needs through Identity (a training
 * step clones hundreds of activations), and tensors are immutable, so the
 * copies bought nothing.
 */
function shareIdentity(): void {
  const copying = tf.getKernel('Identity', 'wasm');
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs['x'] as tf.TensorInfo;
      // Strings live outside the heap; wasm's own kernel handles them.
      if (x.dtype === 'string') return copying.kernelFunc(args);
      (args.backend as unknown as WasmBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

/**
 * LayerNorm as one pass over the heap: the composite's eight kernels
 * (centring and variance products, square, add, rsqrt, and the three
 * broadcasts) cost far more to launch than the 4·d numbers of arithmetic a
 * row. Sums run in float64, so rows come out at least as exact as the composite's.
 */
function registerLayerNorm(): void {
  tf.registerKernel({
    kernelName: LAYER_NORM_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const epsilon = (attrs as { epsilon: number }).epsilon;
      const wasm = backend as unknown as WasmBackend;
      const d = x.shape[x.shape.length - 1]!;
      if (x.dtype !== 'float32' || gamma.shape.length !== 1 || gamma.shape[0] !== d || beta.shape.length !== 1 || beta.shape[0] !== d) {
        throw new Error(
          `${LAYER_NORM_KERNEL}: expected float32 x [..., ${d}] with gamma and beta [${d}], got x ${x.dtype} [${x.shape.join(', ')}], gamma [${gamma.shape.join(', ')}], beta [${beta.shape.join(', ')}]`,
        );
      }
      const out = wasm.makeOutput([...x.shape], 'float32');
      // Views are taken after makeOutput: an allocation may grow the heap and detach earlier ones.
      const xs = wasm.typedArrayFromHeap(x) as Float32Array;
      const g = wasm.typedArrayFromHeap(gamma) as Float32Array;
      const b = wasm.typedArrayFromHeap(beta) as Float32Array;
      const ys = wasm.typedArrayFromHeap(out) as Float32Array;
      for (let start = 0; start < xs.length; start += d) {
        const end = start + d;
        let sum = 0;
        for (let i = start; i < end; i++) sum += xs[i]!;
        const mean = sum / d;
        let squares = 0;
        for (let i = start; i < end; i++) {
          const c = xs[i]! - mean;
          squares += c * c;
        }
        const rstd = 1 / Math.sqrt(squares / d + epsilon);
        for (let i = start, j = 0; i < end; i++, j++) ys[i] = (xs[i]! - mean) * rstd * g[j]! + b[j]!;
      }
      return out;
    },
  });
}
