/**
 * Exports a model directory with its weights stored as float16 or float32.
 * The shipped model is float16: half the download, and it loads as float32,
 * so only the weights' last bits change (about 1e-3 relative).
 */
import { readFile, realpath, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { GENERATION_CONFIG_FILE } from './generation/generation-config.js';
import { loadModelDir, ModelDirError, saveModelDir, type LoadedModelDir } from './model-dir.js';
import { parseModelConfig, weightsLayout } from './persist.js';
import type { ModelConfig } from './config.js';

export type WeightsDtype = 'float16' | 'float32';

/** Files a run directory may hold beside the model, copied with it when present (the trainer's record, named as in its run-dir.ts). */
export const COMPANION_FILES = [GENERATION_CONFIG_FILE, 'train.json', 'metrics.jsonl', 'curves.svg'] as const;

export interface ExportReport {
  dtype: WeightsDtype;
  tensors: number;
  parameters: number;
  /** The largest |exported − source| over all weights, as the exported directory loads. */
  maxAbsDiff: number;
  /** Sizes of model.safetensors in the source and in the export. */
  sourceWeightsBytes: number;
  weightsBytes: number;
  /** The companion files copied, in COMPANION_FILES order. */
  copied: string[];
}

/**
 * Loads `srcDir` (verifying it), writes `outDir` as a model directory whose
 * weights are stored as `dtype`, with the same tokenizer, model config and
 * training record and the companion files the source has (one the source
 * lacks is removed from `outDir`), then loads `outDir` back to measure the
 * difference. Writes over what `outDir` holds; refuses `outDir` = `srcDir`.
 */
export async function exportModelDir(srcDir: string, outDir: string, options: { dtype: WeightsDtype }): Promise<ExportReport> {
  if ((await realpathOrSelf(srcDir)) === (await realpathOrSelf(outDir))) {
    throw new ModelDirError(outDir, 'is the source model directory itself: export into another directory');
  }
  const source = await loadModelDir(srcDir, parseModelConfig);
  const floats = options.dtype === 'float16' ? 'F16' : 'F32';
  const extraFiles = new Map<string, Uint8Array>();
  for (const name of COMPANION_FILES) {
    const bytes = await readOptional(join(srcDir, name));
    if (bytes !== undefined) extraFiles.set(name, bytes);
  }
  await saveModelDir(outDir, {
    modelConfig: source.config.model,
    tokenizerBytes: source.tokenizerBytes,
    tokenizer: { vocabSize: source.config.tokenizer.vocabSize, specialIds: source.config.tokenizer.specialIds },
    tensors: source.tensors,
    layout: weightsLayout(floats),
    training: source.config.training,
    floats,
    extraFiles,
  });
  // A companion left from an earlier export of another model would pass for this one's.
  for (const name of COMPANION_FILES.filter((n) => !extraFiles.has(n))) await unlink(join(outDir, name)).catch(ignoreMissing(join(outDir, name)));
  const exported = await loadModelDir(outDir, parseModelConfig);
  return {
    dtype: options.dtype,
    tensors: source.tensors.size,
    parameters: [...source.tensors.values()].reduce((n, t) => n + t.data.length, 0),
    maxAbsDiff: maxAbsDiff(source, exported),
    sourceWeightsBytes: source.config.weights.bytes,
    weightsBytes: exported.config.weights.bytes,
    copied: [...extraFiles.keys()],
  };
}

function maxAbsDiff(a: LoadedModelDir<ModelConfig>, b: LoadedModelDir<ModelConfig>): number {
  let max = 0;
  for (const [name, t] of a.tensors) {
    const other = b.tensors.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) max = Math.max(max, Math.abs(t.data[i]! - other[i]!));
  }
  return max;
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelDirError(path, `cannot read: ${(error as Error).message}`, { cause: error });
  }
}

function ignoreMissing(path: string): (error: unknown) => void {
  return (error) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new ModelDirError(path, `cannot remove: ${(error as Error).message}`, { cause: error });
  };
}

/** The canonical path, or the resolved one for a path that does not exist yet. */
async function realpathOrSelf(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}
