import * as tf from '@tensorflow/tfjs-core';

/**
 * Replacements for wasm kernels that cost more than they need to at this
 * model's sizes. Each keeps the kernel's contract (inputs, attributes,
 * output) and is registered once, when the wasm backend starts. (A batched
 * product in JavaScript over the heap was tried for attention's BatchMatMul:
 * wasm's scalar loop is faster still.)
 */

/** The part of tfjs-backend-wasm's backend these kernels use. */
interface WasmBackend {
  incRef(dataId: tf.DataId): void;
}

let registered = false;

export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  shareIdentity();
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
