import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Starts tfjs-backend-wasm's multi-threaded build (XNNPACK over a pthread
 * pool of Node worker threads) in place of the single-threaded one.
 *
 * tfjs-backend-wasm ships the threaded build but never loads it in Node
 * (tensorflow/tfjs#3830): its loader hands Emscripten the worker script as a
 * browser Blob. This loader calls the same Emscripten factory with what Node
 * needs: the worker script as a file, the main script by path. And the C side
 * sizes its pool as min(asked, logical cores / 2), halving for hyper-threads;
 * on a 2-core machine that is one thread whatever is asked. The core count it
 * reads comes from the Emscripten import `emscripten_num_logical_cores`, which
 * this loader answers with twice the threads asked for, so the pool has
 * exactly that many (the caller's thread included). Every path and name here
 * belongs to tfjs-backend-wasm 4.22.0, the version the workspace pins.
 */
export async function registerThreadedWasm(threads: number): Promise<void> {
  const require = createRequire(import.meta.url);
  const wasm = require('@tensorflow/tfjs-backend-wasm') as WasmPackage;
  // dist/index.js → the package folder; the package has no exports map, so its files resolve directly.
  const root = dirname(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')));
  const factory = require(join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js')) as EmscriptenFactory;
  const { wasmWorkerContents } = require(join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const binary = readFileSync(join(root, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm'));
  const workerFile = writeWorkerScript(wasmWorkerContents);

  tf.removeBackend('wasm');
  const registered = tf.registerBackend(
    'wasm',
    async () => {
      const module = await factory({
        locateFile: (path: string) => (path.endsWith('.worker.js') ? workerFile : path),
        mainScriptUrlOrBlob: join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js'),
        instantiateWasm(imports: { env: Record<string, unknown> }, receive: (instance: unknown, module: unknown) => void) {
          imports.env['emscripten_num_logical_cores'] = () => 2 * threads;
          void webAssembly.instantiate(binary, imports).then((result) => receive(result.instance, result.module));
          return {};
        },
      });
      // The same bridge tfjs-backend-wasm's own loader attaches.
      module.tfjs = {
        init: module.cwrap('init', null, []),
        initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
        getThreadsCount: module.cwrap('get_threads_count', 'number', []),
        registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
        disposeData: module.cwrap('dispose_data', null, ['number']),
        dispose: module.cwrap('dispose', null, []),
      };
      wasm.setThreadsCount(threads);
      const backend = new wasm.BackendWasm(module);
      // The pool's workers would otherwise keep Node's event loop alive after
      // everything else is done: a CLI command would never exit. The caller's
      // thread only waits for them inside a kernel, synchronously.
      for (const worker of [...module.PThread.unusedWorkers, ...module.PThread.runningWorkers]) worker.unref();
      return backend;
    },
    2,
  );
  if (!registered) throw new Error('could not register the threaded wasm backend');
}

/** tfjs-backend-wasm pre-creates 8 pool workers and caps its pool there. */
export const MAX_WASM_THREADS = 8;

/**
 * The worker script is a string inside the package (for the browser's Blob);
 * Node's Worker wants a file. One file per content, shared by processes,
 * written under a temporary name, synced and renamed, so that no process
 * ever runs half of one.
 */
function writeWorkerScript(contents: string): string {
  // tfjs escapes newlines the same way before making its Blob: the string
  // holds code whose string literals contain "\n" escapes.
  const script = contents.replace(/\n/gu, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const file = join(tmpdir(), `hanmadi-tfjs-wasm-worker-${hash}.cjs`);
  if (!existsSync(file)) {
    // Unique per thread too: two servers of one process may start at once.
    const partial = `${file}.${process.pid}.${threadId}.${randomBytes(4).toString('hex')}.partial`;
    const fd = openSync(partial, 'w');
    try {
      writeSync(fd, script);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(partial, file);
  }
  return file;
}

/** The one WebAssembly call used here; the workspace's TypeScript libs do not declare WebAssembly. */
const webAssembly = (
  globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: unknown; module: unknown }> } }
).WebAssembly;

interface EmscriptenModule {
  cwrap(name: string, returns: string | null, args: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
  PThread: { unusedWorkers: { unref(): void }[]; runningWorkers: { unref(): void }[] };
}
type EmscriptenFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;
interface WasmPackage {
  setThreadsCount(threads: number): void;
  BackendWasm: new (module: EmscriptenModule) => tf.KernelBackend;
}
