import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BACKEND_ENV, BackendUnavailableError, initBackend, parseBackendChoice, type BackendName } from './backend.js';

const quiet = (): void => undefined;

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

// This machine has neither (their install downloads libtensorflow); a GPU box may.
const tfjsNodeInstalled = installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node');

// Started here, before any test, because describe.runIf needs the answer while
// tests are collected. CI always runs the webgpu tests: there a failure to
// start is a failure, not a skip.
const webgpuStarts = await initBackend('webgpu', quiet).then(
  () => true,
  () => false,
);

afterEach(() => {
  vi.unstubAllEnvs();
});

/** Deterministic values in (-1, 1), different for each seed. */
function values(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(1.7 * i + 0.9 * seed) * Math.cos(0.3 * i * seed));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b[i]!)), 0);
}

interface Results {
  product: Float32Array;
  probs: Float32Array;
  grad: Float32Array;
}

/**
 * x·W, softmax(x·W), and d/dW of sum(softmax(x·W) ⊙ t) on one backend, read
 * with await data() (webgpu on llvmpipe has no usable dataSync). The target t
 * matters: without it the gradient is zero, since each softmax row sums to 1.
 */
async function compute(backend: BackendName): Promise<Results> {
  await initBackend(backend, quiet);
  // Created after the switch: a tensor lives on the backend it was made on.
  const x = tf.tensor2d(values(4 * 6, 1), [4, 6]);
  const w = tf.tensor2d(values(6 * 5, 2), [6, 5]);
  const t = tf.tensor2d(values(4 * 5, 3), [4, 5]);
  const product = tf.matMul(x, w);
  const probs = tf.softmax(product);
  const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.softmax(tf.matMul(x, v)), t)))(w);
  const results = { product: await product.data<'float32'>(), probs: await probs.data<'float32'>(), grad: await grad.data<'float32'>() };
  tf.dispose([x, w, t, product, probs, grad]);
  return results;
}

function expectClose(actual: Results, expected: Results, tolerance: number): void {
  expect(maxAbsDiff(actual.product, expected.product)).toBeLessThan(tolerance);
  expect(maxAbsDiff(actual.probs, expected.probs)).toBeLessThan(tolerance);
  expect(maxAbsDiff(actual.grad, expected.grad)).toBeLessThan(tolerance);
  // A gradient of zeros would match anything.
  expect(Math.max(...expected.grad.map(Math.abs))).toBeGreaterThan(1e-3);
}

describe('initBackend', () => {
  it('picks tensorflow if installed, else wasm, and logs one line saying why', async () => {
    vi.stubEnv(BACKEND_ENV, undefined);
    const lines: string[] = [];
    const info = await initBackend(undefined, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    expect(tf.getBackend()).toBe(info.name);
    if (tfjsNodeInstalled) {
      expect(info.name).toBe('tensorflow');
    } else {
      expect(info).toEqual({ name: 'wasm', detail: 'wasm (SIMD, 1 thread)' });
      expect(lines[0]).toBe('backend: wasm (SIMD, 1 thread) — auto: @tensorflow/tfjs-node-gpu and @tensorflow/tfjs-node not installed');
    }
  });

  it('takes HANMADI_BACKEND when no choice is passed, and a passed choice over it', async () => {
    vi.stubEnv(BACKEND_ENV, 'cpu');
    const lines: string[] = [];
    expect(await initBackend(undefined, (line) => lines.push(line))).toEqual({ name: 'cpu', detail: 'cpu (JavaScript)' });
    expect(lines).toEqual(['backend: cpu (JavaScript) — HANMADI_BACKEND=cpu']);
    expect(tf.getBackend()).toBe('cpu');

    expect((await initBackend('wasm', quiet)).name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects a misspelt HANMADI_BACKEND', async () => {
    vi.stubEnv(BACKEND_ENV, 'gpu');
    await expect(initBackend(undefined, quiet)).rejects.toThrow(/^HANMADI_BACKEND: unknown backend "gpu"/u);
  });

  it('returns the same info when called again with the same choice', async () => {
    const first = await initBackend('cpu', quiet);
    await initBackend('wasm', quiet);
    const lines: string[] = [];
    expect(await initBackend('cpu', (line) => lines.push(line))).toBe(first);
    expect(tf.getBackend()).toBe('cpu');
    expect(lines).toEqual(['backend: cpu (JavaScript) — requested']);
  });

  it.runIf(!tfjsNodeInstalled)('names the packages to install when tensorflow is asked for but missing', async () => {
    await initBackend('cpu', quiet);
    const failure = initBackend('tensorflow', quiet);
    await expect(failure).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(failure).rejects.toThrow(
      /neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node is installed.*CUDA 11\.2.*@tensorflow\/tfjs-node-gpu@4\.22\.0/u,
    );
    expect(tf.getBackend()).toBe('cpu');
  });
});

describe('Identity on wasm', () => {
  it('shares the buffer: a clone outlives its source, and disposing both releases the memory', async () => {
    await initBackend('wasm', quiet);
    const before = tf.memory().numBytes;
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    x.dispose();
    expect(await y.data()).toEqual(new Float32Array([1, 2, 3]));
    y.dispose();
    expect(tf.memory().numBytes).toBe(before);
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const ids = backend.numDataIds();
    tf.dispose(tf.tidy(() => tf.clone(tf.tensor1d([4, 5]))));
    expect(backend.numDataIds()).toBe(ids);
  });
});

describe('parseBackendChoice', () => {
  it('accepts the backends and auto, in any case', () => {
    expect(parseBackendChoice('auto', '--backend')).toBe('auto');
    expect(parseBackendChoice(' WebGPU ', '--backend')).toBe('webgpu');
    expect(parseBackendChoice('tensorflow', BACKEND_ENV)).toBe('tensorflow');
  });

  it('rejects anything else, naming the source and the allowed values', () => {
    expect(() => parseBackendChoice('gpu', '--backend')).toThrow(BackendUnavailableError);
    expect(() => parseBackendChoice('gpu', '--backend')).toThrow(/^--backend: unknown backend "gpu"; expected one of auto, tensorflow, wasm, cpu, webgpu/u);
    expect(() => parseBackendChoice('', BACKEND_ENV)).toThrow(/^HANMADI_BACKEND: /u);
  });
});

describe('gradients', () => {
  it('are registered: d(x/y) on cpu', async () => {
    await initBackend('cpu', quiet);
    const x = tf.scalar(3);
    const y = tf.scalar(2);
    const [dx, dy] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.div(a, b))([x, y]);
    expect(await dx!.data()).toEqual(new Float32Array([0.5]));
    expect(await dy!.data()).toEqual(new Float32Array([-0.75]));
    tf.dispose([x, y, dx!, dy!]);
  });

  it('agree between wasm and cpu: matMul, softmax and its gradient', async () => {
    const cpu = await compute('cpu');
    const wasm = await compute('wasm');
    expectClose(wasm, cpu, 1e-5);
  });
});

describe.runIf(process.env['CI'] === 'true' || webgpuStarts)('webgpu (Dawn; OpenGL ES on llvmpipe without a GPU)', () => {
  it('agrees with cpu: matMul, softmax and its gradient', async () => {
    const cpu = await compute('cpu');
    const webgpu = await compute('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expectClose(webgpu, cpu, 1e-4);
  });
});
