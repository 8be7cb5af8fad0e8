import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, sep } from 'node:path';
import { withoutEmscriptenHandlers } from '@hanmadi/tokenizer';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as Dawn from 'webgpu';
import { registerWasmKernels } from './wasm-kernels.js';
import { MAX_WASM_THREADS, registerThreadedWasm } from './wasm-threads.js';

/**
 * Chooses and starts the TensorFlow.js backend the model runs on.
 *
 * - `tensorflow`: libtensorflow through `@tensorflow/tfjs-node-gpu` (CUDA) or
 *   `@tensorflow/tfjs-node`. Neither is a dependency: their install script
 *   downloads libtensorflow, so they are installed by hand on the machines
 *   that want them, and imported here only if present.
 * - `wasm`: XNNPACK compiled to WebAssembly, SIMD; one thread, or a pool of
 *   worker threads with {@link BackendOptions.wasmThreads}. The fastest
 *   choice without libtensorflow.
 * - `cpu`: plain JavaScript. Always works, slowest.
 * - `webgpu`: Dawn (npm package `webgpu`) under tfjs-backend-webgpu. Only when
 *   asked for; on a machine without a GPU it runs on Mesa's llvmpipe through
 *   OpenGL ES, exact but slow.
 */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';

/** A backend, or `auto`: tensorflow if installed, else wasm, else cpu. */
export type BackendChoice = BackendName | 'auto';

/** Environment variable read when no choice is passed to {@link initBackend}. */
export const BACKEND_ENV = 'HANMADI_BACKEND';

/** Environment variable read when {@link BackendOptions.wasmThreads} is not passed. */
export const WASM_THREADS_ENV = 'HANMADI_WASM_THREADS';

/** How a backend is started, beyond which one. */
export interface BackendOptions {
  /**
   * Threads that run the wasm backend's kernels, the calling thread included:
   * 1 is tfjs's single-threaded build; more loads its multi-threaded build
   * (see wasm-threads.ts). Fixed once wasm has started in a process. Default:
   * `HANMADI_WASM_THREADS`, else 1. Other backends ignore it.
   */
  wasmThreads?: number;
}

/**
 * Reads a wasm thread count from a flag or the environment: an integer from 1
 * to 8, or `auto` for this machine's cores (at most 8).
 */
export function parseWasmThreads(value: string, source: string): number {
  const text = value.trim().toLowerCase();
  if (text === 'auto') return Math.min(os.availableParallelism(), MAX_WASM_THREADS);
  const n = Number(text);
  if (!/^\d+$/u.test(text) || n < 1 || n > MAX_WASM_THREADS) {
    throw new BackendUnavailableError(`${source}: expected a whole number of threads from 1 to ${MAX_WASM_THREADS}, or auto; got "${value}"`);
  }
  return n;
}

/** The backend that was started, and a human-readable description of it. */
export interface BackendInfo {
  name: BackendName;
  /** e.g. `@tensorflow/tfjs-node-gpu (GPU device: yes)`, `wasm (SIMD, 1 thread)`, `webgpu (adapter: llvmpipe …)`. */
  detail: string;
}

/** A backend that was asked for (or spelled) cannot be used; the message says why and what to do. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

const CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'];
const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
/** Comma-separated flags for Dawn's `create()`, e.g. `backend=vulkan` or `backend=opengles`. */
const WEBGPU_FLAGS_ENV = 'HANMADI_WEBGPU_FLAGS';
/** `1`: request a compatibility-level adapter (needed for Dawn's OpenGL ES backend). */
const WEBGPU_COMPAT_ENV = 'HANMADI_WEBGPU_COMPAT';

/**
 * Reads a backend choice from a flag or the environment. `source` names where
 * it came from (`--backend`, `HANMADI_BACKEND`) so a typo can be traced.
 */
export function parseBackendChoice(value: string, source: string): BackendChoice {
  const choice = value.trim().toLowerCase();
  if ((CHOICES as readonly string[]).includes(choice)) return choice as BackendChoice;
  const hint = ['gpu', 'cuda', 'tfjs-node', 'tfjs-node-gpu', 'node'].includes(choice)
    ? ' (a GPU through CUDA is "tensorflow" with @tensorflow/tfjs-node-gpu installed; "webgpu" uses Vulkan or OpenGL ES)'
    : '';
  throw new BackendUnavailableError(`${source}: unknown backend "${value}"; expected one of ${CHOICES.join(', ')}${hint}`);
}

interface Started {
  info: BackendInfo;
  /** Why `auto` passed over the faster backends, for the log line. */
  autoReason?: string;
}

const started = new Map<BackendChoice, Started>();
let pending: Promise<unknown> = Promise.resolve();

/**
 * Starts a backend and makes it the current one, after registering the
 * gradient functions training needs. The choice is `choice` if given, else
 * `HANMADI_BACKEND`, else `auto`. Logs exactly one line saying which backend
 * runs and why (default: to stderr). A backend asked for by name that cannot
 * start throws {@link BackendUnavailableError}; `auto` falls back instead.
 * Calling it again with the same choice only switches back to that backend.
 */
export async function initBackend(choice?: BackendChoice, log: (message: string) => void = logToStderr, options: BackendOptions = {}): Promise<BackendInfo> {
  // Serialised: two overlapping calls would otherwise race on tf.setBackend.
  const run = pending.then(() => start(choice, log, options));
  pending = run.catch(() => undefined);
  return run;
}

async function start(choice: BackendChoice | undefined, log: (message: string) => void, options: BackendOptions): Promise<BackendInfo> {
  const fromEnv = process.env[BACKEND_ENV]?.trim();
  const resolved = choice ?? (fromEnv ? parseBackendChoice(fromEnv, BACKEND_ENV) : 'auto');
  const source = choice !== undefined ? 'requested' : fromEnv ? `${BACKEND_ENV}=${resolved}` : 'auto';
  const threadsEnv = process.env[WASM_THREADS_ENV]?.trim();
  const wasmThreads = options.wasmThreads ?? (threadsEnv ? parseWasmThreads(threadsEnv, WASM_THREADS_ENV) : 1);
  if (!Number.isInteger(wasmThreads) || wasmThreads < 1 || wasmThreads > MAX_WASM_THREADS) {
    throw new BackendUnavailableError(`wasmThreads: expected a whole number from 1 to ${MAX_WASM_THREADS}, got ${wasmThreads}`);
  }
  await registerGradients();

  let entry = started.get(resolved);
  if (entry) {
    if (entry.info.name === 'wasm') refuseOtherWasmThreads(wasmThreads);
    if (tf.getBackend() !== entry.info.name) await activate(entry.info.name);
  } else {
    entry = await withoutEmscriptenHandlers(async () => (resolved === 'auto' ? startAuto(wasmThreads) : { info: await startNamed(resolved, wasmThreads) }));
    started.set(resolved, entry);
  }
  await tf.ready();
  const why = resolved === 'auto' ? (entry.autoReason ? `auto: ${entry.autoReason}` : 'auto') : source;
  log(`backend: ${entry.info.detail} — ${why}`);
  return entry.info;
}

async function startAuto(wasmThreads: number): Promise<Started> {
  const tensorflow = await startTensorflow();
  if ('info' in tensorflow) return { info: tensorflow.info };
  const skipped = [tensorflow.reason];
  try {
    return { info: await startWasm(wasmThreads), autoReason: skipped.join('; ') };
  } catch (error) {
    skipped.push(`wasm failed: ${messageOf(error)}`);
  }
  return { info: await startCpu(), autoReason: skipped.join('; ') };
}

async function startNamed(name: BackendName, wasmThreads: number): Promise<BackendInfo> {
  switch (name) {
    case 'tensorflow': {
      const result = await startTensorflow();
      if ('info' in result) return result.info;
      throw new BackendUnavailableError(
        `backend "tensorflow" is unavailable: ${result.noneInstalled ? `neither ${TFJS_NODE_PACKAGES.join(' nor ')} is installed` : result.reason}. On a machine with an NVIDIA GPU (CUDA 11.2, cuDNN 8.1) ` +
          'install @tensorflow/tfjs-node-gpu@4.22.0 at the workspace root (pnpm add -w @tensorflow/tfjs-node-gpu@4.22.0), ' +
          'elsewhere @tensorflow/tfjs-node@4.22.0, and set its allowBuilds entry in pnpm-workspace.yaml to true so its install ' +
          'script can download libtensorflow; or choose the wasm backend.',
      );
    }
    case 'wasm':
      try {
        return await startWasm(wasmThreads);
      } catch (error) {
        throw new BackendUnavailableError(`backend "wasm" is unavailable: ${messageOf(error)}`);
      }
    case 'cpu':
      return startCpu();
    case 'webgpu':
      return startWebgpu();
  }
}

async function activate(name: BackendName): Promise<void> {
  // setBackend reports a failed initialisation by returning false (after a
  // console warning), not by throwing.
  if (!(await tf.setBackend(name))) throw new BackendUnavailableError(`backend "${name}" failed to initialise (see the warning above)`);
}

// --- tensorflow -------------------------------------------------------------

type Attempt = { info: BackendInfo } | { reason: string; noneInstalled: boolean };

async function startTensorflow(): Promise<Attempt> {
  const missing: string[] = [];
  const failed: string[] = [];
  for (const pkg of TFJS_NODE_PACKAGES) {
    try {
      // A variable specifier: these packages are optional, so neither tsc nor
      // vite may insist on resolving them.
      await import(/* @vite-ignore */ pkg);
    } catch (error) {
      if (isNotInstalled(error, pkg)) missing.push(pkg);
      else failed.push(`${pkg} failed to load: ${messageOf(error)}`);
      continue;
    }
    if (!(await tf.setBackend('tensorflow'))) {
      failed.push(`${pkg} failed to initialise`);
      continue;
    }
    const usingGpu = (tf.backend() as { isUsingGpuDevice?: unknown }).isUsingGpuDevice;
    const gpu = pkg.endsWith('-gpu')
      ? usingGpu === true
        ? ' (GPU device: yes)'
        : ' (no GPU device seen: running on the CPU; check CUDA 11.2 and cuDNN 8.1)'
      : '';
    return { info: { name: 'tensorflow', detail: `${pkg}${gpu}` } };
  }
  const all = missing.length === TFJS_NODE_PACKAGES.length;
  const notInstalled = missing.length === 0 ? [] : all ? [`${missing.join(' and ')} not installed`] : missing.map((p) => `${p} not installed`);
  return { reason: [...failed, ...notInstalled].join('; '), noneInstalled: all };
}

function isNotInstalled(error: unknown, pkg: string): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // A missing package of its own (tfjs-node without @tensorflow/tfjs) is a
  // broken install, not an absent one: only this package's name counts.
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /cannot find (module|package)/iu.test(messageOf(error))) &&
    messageOf(error).includes(`'${pkg}'`)
  );
}

// --- wasm -------------------------------------------------------------------

/** What wasm was started with in this process, once it was. */
let wasmThreadsStarted: number | undefined;

/**
 * Emscripten's module cannot be unloaded (a second one would keep the
 * first's heap and pool alive beside it), so wasm keeps its first count.
 */
function refuseOtherWasmThreads(threads: number): void {
  if (wasmThreadsStarted !== undefined && wasmThreadsStarted !== threads) {
    throw new BackendUnavailableError(`wasm already runs with ${wasmThreadsStarted} thread(s) in this process; it cannot restart with ${threads}`);
  }
}

async function startWasm(threads: number): Promise<BackendInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  refuseOtherWasmThreads(threads);
  if (threads > 1 && wasmThreadsStarted === undefined && tf.findBackend('wasm') === null) {
    await registerThreadedWasm(threads);
  } else if (!started.has('wasm') && tf.findBackend('wasm') === null) {
    // Emscripten would look for the .wasm files beside the running script,
    // which is wrong for a bundle; the package's own dist folder is right
    // from any working directory.
    const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(`${dirname(entry)}${sep}`);
  }
  await activate('wasm');
  wasmThreadsStarted = threads;
  registerWasmKernels();
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const pool = wasm.getThreadsCount();
  return { name: 'wasm', detail: `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${pool} thread${pool === 1 ? '' : 's'})` };
}

// --- cpu --------------------------------------------------------------------

async function startCpu(): Promise<BackendInfo> {
  await activate('cpu');
  // The cpu backend prints a multi-line "install tfjs-node" banner on first
  // use; the log line already says why this backend runs.
  const backend = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (backend?.firstUse) backend.firstUse = false;
  return { name: 'cpu', detail: 'cpu (JavaScript)' };
}

// --- webgpu -----------------------------------------------------------------

interface DawnAttempt {
  flags: string[];
  compat: boolean;
}

async function startWebgpu(): Promise<BackendInfo> {
  let dawn: typeof Dawn;
  try {
    dawn = await import('webgpu');
  } catch (error) {
    throw new BackendUnavailableError(`backend "webgpu" is unavailable: Dawn (npm package webgpu) failed to load: ${messageOf(error)}`);
  }
  // tfjs-backend-webgpu reads GPUBufferUsage and friends as globals.
  Object.assign(globalThis, dawn.globals);

  const tried: string[] = [];
  for (const attempt of dawnAttempts()) {
    // Mesa's EGL otherwise looks for an X11 or Wayland display; Node has none.
    if (attempt.flags.some((f) => /^backend=opengl(es)?$/u.test(f))) process.env['EGL_PLATFORM'] ??= 'surfaceless';
    const label = `${attempt.flags.length > 0 ? attempt.flags.join(' ') : 'Dawn defaults'}${attempt.compat ? ' + compatibility adapter' : ''}`;
    let gpu: GPU;
    let adapter: GPUAdapter | null;
    try {
      gpu = dawn.create(attempt.flags);
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', ...(attempt.compat ? { featureLevel: 'compatibility' } : {}) });
    } catch (error) {
      tried.push(`${label}: ${messageOf(error)}`);
      continue;
    }
    if (adapter === null) {
      tried.push(`${label}: no adapter`);
      continue;
    }
    await installWebgpuBackend(gpu, adapter, attempt.compat);
    const info = adapter.info;
    const name =
      [[info.vendor, info.architecture, info.device].filter((s) => s !== '').join(' '), info.description].filter((s) => s !== '').join(', ') || 'unnamed';
    const how = [attempt.compat ? 'compatibility' : '', attempt.flags.join(' ')].filter((s) => s !== '').join(', ');
    return { name: 'webgpu', detail: `webgpu (adapter: ${name}${how ? `; ${how}` : ''})` };
  }
  throw new BackendUnavailableError(
    `backend "webgpu" is unavailable: no WebGPU adapter found (tried ${tried.join('; ')}). ` +
      'With a GPU, install its Vulkan driver and loader (libvulkan1); without one, install Mesa EGL on llvmpipe ' +
      "(apt-get install libegl1 libegl-dev libegl-mesa0 libgl1-mesa-dri; Dawn loads the unversioned libEGL.so) for Dawn's OpenGL ES backend. " +
      `${WEBGPU_FLAGS_ENV} (comma-separated Dawn flags, e.g. backend=vulkan) and ${WEBGPU_COMPAT_ENV}=1 (needed by the OpenGL backends) choose the adapter by hand; ` +
      'or choose the wasm backend.',
  );
}

/**
 * The Dawn settings to try in order: the environment's if set, else Dawn's
 * defaults (Vulkan on Linux) and then OpenGL ES with a compatibility-level
 * adapter, which is what a machine without a GPU has (Mesa llvmpipe).
 */
function dawnAttempts(): DawnAttempt[] {
  const flagsEnv = process.env[WEBGPU_FLAGS_ENV]?.trim();
  const compatEnv = process.env[WEBGPU_COMPAT_ENV]?.trim();
  const compat = compatEnv === '1' || compatEnv === 'true';
  if (flagsEnv) return [{ flags: splitDawnFlags(flagsEnv), compat }];
  const attempts: DawnAttempt[] = [{ flags: [], compat }];
  if (compatEnv !== '0' && compatEnv !== 'false') attempts.push({ flags: ['backend=opengles'], compat: true });
  return attempts;
}

/**
 * Splits `a=1,b=x,y` into `a=1` and `b=x,y`: every Dawn flag is `key=value`,
 * and toggle lists (`enable-dawn-features=a,b`) hold commas themselves.
 */
function splitDawnFlags(value: string): string[] {
  const flags: string[] = [];
  for (const part of value.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    if (part.includes('=') || flags.length === 0) flags.push(part);
    else flags[flags.length - 1] += `,${part}`;
  }
  return flags;
}

/**
 * tfjs-backend-webgpu registers itself on import only if `navigator.gpu`
 * exists, and its factory requests the adapter itself with no way to pass
 * `featureLevel`. So navigator.gpu is set first, to a view of Dawn's GPU whose
 * requestAdapter hands over the adapter probed here (and asks for the same
 * feature level afterwards).
 */
async function installWebgpuBackend(gpu: GPU, adapter: GPUAdapter, compat: boolean): Promise<void> {
  let probed: GPUAdapter | null = adapter;
  const requestAdapter = async (options?: GPURequestAdapterOptions): Promise<GPUAdapter | null> => {
    if (probed !== null) {
      const first = probed;
      probed = null;
      return first;
    }
    return gpu.requestAdapter({ ...options, ...(compat ? { featureLevel: 'compatibility' } : {}) });
  };
  const view = new Proxy(gpu, {
    get(target, property) {
      if (property === 'requestAdapter') return requestAdapter;
      const value: unknown = Reflect.get(target, property, target);
      // Dawn's methods are native and check their receiver.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const holder = globalThis as { navigator?: object };
  // Node 20 has no navigator; Node 21+ has one without gpu.
  if (holder.navigator === undefined) holder.navigator = { gpu: view };
  else Object.defineProperty(holder.navigator, 'gpu', { value: view, configurable: true, writable: true });

  // A factory left by an earlier attempt in this process reads navigator.gpu
  // when called, so it picks up the view just installed.
  await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu') === null) {
    throw new BackendUnavailableError(
      'backend "webgpu" is unavailable: @tensorflow/tfjs-backend-webgpu was imported before navigator.gpu existed, so it never registered; import it only through initBackend',
    );
  }
  await activate('webgpu');
}

// --- gradients --------------------------------------------------------------

let gradients: Promise<void> | undefined;

/**
 * tfjs-core's Node bundle registers no gradient functions ("gradient function
 * not found for RealDiv"), and core's own register_all_gradients ships only as
 * ES modules with extension-less imports that Node cannot load. tfjs-layers'
 * Node bundle registers all of core's gradients, on the registry core keeps on
 * globalThis, when it is imported.
 */
async function registerGradients(): Promise<void> {
  gradients ??= import('@tensorflow/tfjs-layers').then(() => undefined);
  return gradients;
}

// --- helpers ----------------------------------------------------------------

function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.trim();
}

function logToStderr(message: string): void {
  process.stderr.write(`${message}\n`);
}
