/**
 * A model directory: what the trainer writes and the API serves.
 *
 *     config.json          format version, model config, checksums of the two files below
 *     tokenizer.model      the SentencePiece model the weights were trained with
 *     model.safetensors    the weights, float32 or float16 (read as float32)
 *
 * config.json is written last and records the size and sha256 of the other
 * two, so a directory that has one is complete, and a file damaged or
 * replaced afterwards is caught when the directory is loaded. Every float
 * weight is finite: saving and loading both refuse NaN and ±Inf.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { isTemporaryOf, syncDirectory as syncDurably, writeFileDurably as writeDurably } from '@hanmadi/files';
import { z } from 'zod';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type FloatStorage, type NamedTensor } from './safetensors.js';

export const MODEL_FORMAT_VERSION = 1;
export const CONFIG_FILE = 'config.json';
export const TOKENIZER_FILE = 'tokenizer.model';
export const WEIGHTS_FILE = 'model.safetensors';

/** A model directory, or one of its files, that is missing, damaged or cannot be written; `file` is the full path of the culprit. */
export class ModelDirError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}`, options);
    this.name = 'ModelDirError';
  }
}

/** The contents of config.json. */
export interface ModelDirConfig {
  formatVersion: typeof MODEL_FORMAT_VERSION;
  /** The model's hyperparameters; their shape is the model code's business (see `parseModelConfig`). */
  model: unknown;
  tokenizer: {
    file: string;
    sha256: string;
    vocabSize: number;
    specialIds: { pad: number; unk: number; bos: number; eos: number };
  };
  weights: {
    file: string;
    format: 'safetensors';
    sha256: string;
    bytes: number;
    /** How tensor names map onto the model, in a sentence, for someone reading the file without the code. */
    layout: string;
  };
  /** What the trainer wants to remember (epochs, losses, corpus); null when it has nothing. */
  training: unknown;
  createdAt: string;
}

export interface SaveModelDirOptions {
  /** Must survive JSON.stringify: it is written into config.json as it is. */
  modelConfig: unknown;
  tokenizerBytes: Uint8Array;
  tokenizer: { vocabSize: number; specialIds: { pad: number; unk: number; bos: number; eos: number } };
  tensors: ReadonlyMap<string, NamedTensor>;
  layout: string;
  /** An object (or null); written to config.json as it is. */
  training?: unknown;
  /** Stored in the safetensors header's `__metadata__`. */
  metadata?: Record<string, string>;
  /** How float tensors are stored (default F32); F16 halves the file and is read back as F32. */
  floats?: FloatStorage;
  /** Other files to write beside the model (by file name), durably and before config.json; config.json does not vouch for them. */
  extraFiles?: ReadonlyMap<string, Uint8Array>;
}

export interface LoadedModelDir<T> {
  dir: string;
  config: ModelDirConfig;
  modelConfig: T;
  tensors: Map<string, NamedTensor>;
  tokenizerPath: string;
  tokenizerBytes: Uint8Array;
}

/**
 * Writes a model directory, creating it if needed. Each file goes to a
 * temporary name beside its target, is fsynced and renamed over it; the
 * directory is fsynced so the renames themselves survive a power cut.
 *
 * The order makes a crash at any point harmless: an existing config.json is
 * removed first, then the weights, tokenizer and extra files are replaced, then the new
 * config.json — the only file that vouches for the others — appears. So a
 * directory that has a config.json always has the files it describes; after
 * a crash it has none and is not a model directory until saved again.
 * One writer at a time: temporary files left by an earlier crashed save are
 * deleted.
 */
export async function saveModelDir(dir: string, options: SaveModelDirOptions): Promise<void> {
  const configPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  const tokenizerPath = join(dir, TOKENIZER_FILE);

  const extraFiles = options.extraFiles ?? new Map<string, Uint8Array>();
  for (const name of extraFiles.keys()) {
    if (!fileName.safeParse(name).success || [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE].includes(name)) {
      throw new ModelDirError(join(dir, name), 'cannot write: an extra file must be a file name other than the three a model directory holds');
    }
  }
  const nonFinite = findNonFinite(options.tensors);
  if (nonFinite !== undefined) throw new ModelDirError(weightsPath, `refusing to write non-finite weights: ${nonFinite}`);
  let weights: Uint8Array;
  try {
    weights = encodeSafetensors(options.tensors, options.metadata, { floats: options.floats ?? 'F32' });
  } catch (error) {
    throw new ModelDirError(weightsPath, `cannot write: ${errorText(error)}`, { cause: error });
  }
  const config: ModelDirConfig = {
    formatVersion: MODEL_FORMAT_VERSION,
    model: options.modelConfig,
    tokenizer: {
      file: TOKENIZER_FILE,
      sha256: sha256(options.tokenizerBytes),
      vocabSize: options.tokenizer.vocabSize,
      specialIds: { ...options.tokenizer.specialIds },
    },
    weights: { file: WEIGHTS_FILE, format: 'safetensors', sha256: sha256(weights), bytes: weights.length, layout: options.layout },
    training: options.training ?? null,
    createdAt: new Date().toISOString(),
  };
  // The config goes through the reader's own checks before anything on disk
  // is touched, so a save never writes a directory that cannot be loaded.
  let configText: string;
  try {
    configText = `${JSON.stringify(config, null, 2)}\n`;
    checkConfig(JSON.parse(configText), configPath);
  } catch (error) {
    const reason = error instanceof ModelDirError ? error.reason : errorText(error);
    throw new ModelDirError(configPath, `refusing to write an invalid config: ${reason}`, { cause: error });
  }

  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new ModelDirError(dir, `cannot create the model directory: ${errorText(error)}`, { cause: error });
  }
  await removeStaleTemporaries(dir, [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, ...extraFiles.keys()]);
  try {
    await unlink(configPath);
    await syncDirectory(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ModelDirError(configPath, `cannot remove the old config: ${errorText(error)}`, { cause: error });
    }
  }
  await writeFileDurably(weightsPath, weights);
  await writeFileDurably(tokenizerPath, options.tokenizerBytes);
  for (const [name, bytes] of extraFiles) await writeFileDurably(join(dir, name), bytes);
  // The data files' renames must be on disk before the config that vouches for them.
  await syncDirectory(dir);
  await writeFileDurably(configPath, configText);
  await syncDirectory(dir);
}

/**
 * Reads and verifies a model directory: config.json against its schema, the
 * tokenizer and weights against the sizes and checksums it records, the
 * weights as safetensors (F16 widened to F32) holding only finite floats, and
 * `config.model` with `parseModelConfig` (which throws to reject it). Any
 * fault throws a ModelDirError naming the file.
 */
export async function loadModelDir<T>(dir: string, parseModelConfig: (raw: unknown) => T): Promise<LoadedModelDir<T>> {
  let info: Stats;
  try {
    info = await stat(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelDirError(dir, code === 'ENOENT' ? 'no such model directory' : `cannot read: ${errorText(error)}`, { cause: error });
  }
  if (!info.isDirectory()) throw new ModelDirError(dir, 'not a directory (a model is a directory holding config.json, tokenizer.model and model.safetensors)');

  const configPath = join(dir, CONFIG_FILE);
  const configBytes = await readFileIn(configPath, 'no such file: not a model directory, or its save did not finish (config.json is written last)');
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(configBytes));
  } catch (error) {
    throw new ModelDirError(configPath, `not valid JSON (${errorText(error)})`, { cause: error });
  }
  const config = checkConfig(raw, configPath);
  let modelConfig: T;
  try {
    modelConfig = parseModelConfig(config.model);
  } catch (error) {
    throw new ModelDirError(configPath, `invalid model config: ${errorText(error)}`, { cause: error });
  }

  const tokenizerPath = join(dir, config.tokenizer.file);
  const tokenizerBytes = await readFileIn(tokenizerPath, `no such file (${CONFIG_FILE} lists it as the tokenizer)`);
  if (sha256(tokenizerBytes) !== config.tokenizer.sha256) {
    throw new ModelDirError(tokenizerPath, `does not match the checksum in ${CONFIG_FILE}: truncated or replaced?`);
  }

  const weightsPath = join(dir, config.weights.file);
  const weights = await readFileIn(weightsPath, `no such file (${CONFIG_FILE} lists it as the weights)`);
  if (weights.length !== config.weights.bytes) {
    throw new ModelDirError(weightsPath, `is ${weights.length} bytes, but ${CONFIG_FILE} says ${config.weights.bytes}: truncated or replaced?`);
  }
  if (sha256(weights) !== config.weights.sha256) {
    throw new ModelDirError(weightsPath, `does not match the checksum in ${CONFIG_FILE}: truncated or replaced?`);
  }
  let tensors: Map<string, NamedTensor>;
  try {
    tensors = decodeSafetensors(weights, weightsPath).tensors;
  } catch (error) {
    if (error instanceof SafetensorsError) throw new ModelDirError(weightsPath, error.reason, { cause: error });
    throw error;
  }
  // A diverged run's NaNs would otherwise load quietly and only show as empty replies.
  const nonFinite = findNonFinite(tensors);
  if (nonFinite !== undefined) throw new ModelDirError(weightsPath, nonFinite);
  return { dir, config, modelConfig, tensors, tokenizerPath, tokenizerBytes };
}

/** Whether `dir` holds a config.json, that is, whether a save into it finished. */
export async function isModelDir(dir: string): Promise<boolean> {
  const configPath = join(dir, CONFIG_FILE);
  try {
    return (await stat(configPath)).isFile();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new ModelDirError(configPath, `cannot read: ${errorText(error)}`, { cause: error });
  }
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/u, 'must be a sha256: 64 lowercase hex digits');
// A file name, never a path: config.json must not point outside its directory.
const fileName = z
  .string()
  .refine((name) => name !== '' && name !== '.' && name !== '..' && !/[/\\\0]/u.test(name), 'must be a file name in the model directory');
const tokenId = z.number().int().min(0);

const configSchema = z
  .object({
    formatVersion: z.literal(MODEL_FORMAT_VERSION),
    model: z.unknown(),
    tokenizer: z.object({
      file: fileName,
      sha256: sha256Hex,
      vocabSize: z.number().int().positive(),
      specialIds: z.object({ pad: tokenId, unk: tokenId, bos: tokenId, eos: tokenId }),
    }),
    weights: z.object({
      file: fileName,
      format: z.literal('safetensors'),
      sha256: sha256Hex,
      bytes: z.number().int().min(0),
      layout: z.string().min(1, 'must describe the tensor layout'),
    }),
    training: z.unknown().refine((v) => v === null || (typeof v === 'object' && !Array.isArray(v)), 'must be an object or null'),
    createdAt: z.iso.datetime({ error: 'must be an ISO 8601 date-time' }),
  })
  .superRefine((config, ctx) => {
    const { vocabSize, specialIds } = config.tokenizer;
    for (const [name, id] of Object.entries(specialIds)) {
      if (id >= vocabSize)
        ctx.addIssue({ code: 'custom', path: ['tokenizer', 'specialIds', name], message: `${id} is outside the vocabulary of ${vocabSize}` });
    }
  });

/** Validates parsed config.json; the error names the first fields that are wrong. */
function checkConfig(raw: unknown, configPath: string): ModelDirConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelDirError(configPath, 'not a JSON object');
  // Checked on its own first: a newer format may differ everywhere, and that is the one thing worth saying.
  const version = (raw as Record<string, unknown>)['formatVersion'];
  if (version !== MODEL_FORMAT_VERSION) {
    throw new ModelDirError(
      configPath,
      version === undefined
        ? `no formatVersion: not a hanmadi model directory?`
        : `formatVersion ${JSON.stringify(version)} is not supported (this version of hanmadi reads ${MODEL_FORMAT_VERSION})`,
    );
  }
  const result = configSchema.safeParse(raw, { error: (issue) => (issue.input === undefined ? 'is missing' : undefined) });
  if (!result.success) {
    const problems = result.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    const more = result.error.issues.length - problems.length;
    throw new ModelDirError(configPath, `invalid config: ${problems.join('; ')}${more > 0 ? `; and ${more} more` : ''}`);
  }
  return result.data as ModelDirConfig;
}

/** Describes the first float tensor holding NaN or ±Inf, e.g. "tensor w holds non-finite values (NaN at index 12)"; undefined when all are finite. */
function findNonFinite(tensors: ReadonlyMap<string, NamedTensor>): string | undefined {
  for (const [name, { dtype, data }] of tensors) {
    if (dtype !== 'F32') continue;
    let first = -1;
    let count = 0;
    for (let i = 0; i < data.length; i++) {
      if (Number.isFinite(data[i]!)) continue;
      if (first < 0) first = i;
      count += 1;
    }
    if (count > 0) {
      const more = count > 1 ? `; ${count} in all` : '';
      return `tensor ${name} holds non-finite values (${data[first]} at index ${first}${more})`;
    }
  }
  return undefined;
}

async function readFileIn(path: string, missing: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelDirError(path, code === 'ENOENT' ? missing : code === 'EISDIR' ? 'is a directory' : `cannot read: ${errorText(error)}`, { cause: error });
  }
}

/** Writes one file of a model directory durably (@hanmadi/files); errors name the file. */
async function writeFileDurably(path: string, data: Uint8Array | string): Promise<void> {
  try {
    await writeDurably(path, data);
  } catch (error) {
    throw new ModelDirError(path, `cannot write: ${errorText(error)}`, { cause: error });
  }
}

/** Deletes temporary files a crashed save left behind; weights can be large, and checkpoints are saved often. */
async function removeStaleTemporaries(dir: string, files: readonly string[]): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new ModelDirError(dir, `cannot read the model directory: ${errorText(error)}`, { cause: error });
  }
  const stale = (name: string): boolean => files.some((file) => isTemporaryOf(name, file));
  for (const name of names.filter(stale)) {
    await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** fsyncs the model directory so that its renames are durable; errors name it. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    await syncDurably(dir);
  } catch (error) {
    throw new ModelDirError(dir, `cannot sync the model directory: ${errorText(error)}`, { cause: error });
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
