import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory, writeFileDurably } from '@hanmadi/files';
import {
  CONFIG_FILE,
  decodeSafetensors,
  encodeSafetensors,
  loadModelDir,
  ModelConfigSchema,
  saveModel,
  type FlatLayout,
  type NamedTensor,
  type Transformer,
} from '@hanmadi/model';
import { z } from 'zod';
import type { EngineState } from './engine.js';

export const TRAIN_FILE = 'train.json';
export const CHECKPOINTS_DIR = 'checkpoints';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'state.json';
export const METRICS_FILE = 'metrics.jsonl';
export const CURVES_FILE = 'curves.svg';
export const TOKENIZER_FILE = 'tokenizer.model';

/** Where training stands: with the optimiser state, everything an exact resume needs. */
export const TrainerStateSchema = z.object({
  /** Optimisation steps taken. */
  step: z.number().int().min(0),
  /** The epoch in progress and the next batch of it. */
  epoch: z.number().int().min(0),
  nextBatch: z.number().int().min(0),
  bestValidLoss: z.number().nullable(),
  bestStep: z.number().int().nullable(),
  /** The served model's chrF on the selection half, when chosen by chrF (--select chrf). */
  bestChrf: z.number().nullable().default(null),
  trainSeconds: z.number().min(0),
  targetTokens: z.number().min(0),
});
export type TrainerState = z.infer<typeof TrainerStateSchema>;

/** A problem with a run directory that the user must resolve; the message says how. */
export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(7, '0')}`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Whether the run in `runDir` did all the training it was started for: its
 * newest checkpoint is past the last epoch (or --max-steps). A run stopped
 * by a signal is not, and continues with --resume.
 */
export async function trainingFinished(runDir: string): Promise<boolean> {
  const names = await listCheckpoints(runDir);
  if (names.length === 0) return false;
  const run = JSON.parse(await readFile(join(runDir, TRAIN_FILE), 'utf8')) as { epochs: number; maxSteps: number | null };
  const state = TrainerStateSchema.parse(JSON.parse(await readFile(join(runDir, CHECKPOINTS_DIR, names.at(-1)!, STATE_FILE), 'utf8')));
  return state.epoch >= run.epochs || (run.maxSteps !== null && state.step >= run.maxSteps);
}

export interface CheckpointContent {
  model: Transformer;
  tokenizerBytes: Uint8Array;
  specialIds: { pad: number; unk: number; bos: number; eos: number };
  training: unknown;
  layout: FlatLayout;
  engine: EngineState;
  trainer: TrainerState;
}

/**
 * Writes checkpoints/step-NNNNNNN: a complete model directory (servable as is)
 * plus optimizer.safetensors (Adam's m and v over the flat parameter layout)
 * and state.json. Everything is written into a temporary directory first,
 * fsynced, and renamed into place, so a crash (even kill -9) at any moment
 * leaves either the whole checkpoint or none of it.
 */
export async function saveCheckpoint(runDir: string, content: CheckpointContent): Promise<string> {
  const root = join(runDir, CHECKPOINTS_DIR);
  await mkdir(root, { recursive: true });
  const name = checkpointName(content.trainer.step);
  const tmp = join(root, `.${name}.tmp-${randomBytes(4).toString('hex')}`);
  await saveModel(tmp, content.model, { tokenizerBytes: content.tokenizerBytes, specialIds: content.specialIds, training: content.training });
  const size = content.layout.size;
  const optimizer = new Map<string, NamedTensor>([
    ['adam.m', { dtype: 'F32', shape: [size], data: content.engine.m }],
    ['adam.v', { dtype: 'F32', shape: [size], data: content.engine.v }],
  ]);
  await writeFileDurably(
    join(tmp, OPTIMIZER_FILE),
    encodeSafetensors(optimizer, { adamStep: String(content.engine.step), layout: JSON.stringify(content.layout.entries.map((e) => [e.name, e.size])) }),
  );
  await writeFileDurably(join(tmp, STATE_FILE), `${JSON.stringify(content.trainer, null, 2)}\n`);
  await syncDirectory(tmp);
  const final = join(root, name);
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  await syncDirectory(root);
  return final;
}

export interface LoadedCheckpoint {
  dir: string;
  trainer: TrainerState;
  engine: EngineState;
}

/**
 * The newest complete checkpoint, or undefined when there is none. Temporary
 * directories left by a crash are ignored; a checkpoint that fails to load is
 * reported rather than silently skipped.
 */
export async function loadLatestCheckpoint(runDir: string, layout: FlatLayout): Promise<LoadedCheckpoint | undefined> {
  const names = await listCheckpoints(runDir);
  const latest = names.at(-1);
  if (latest === undefined) return undefined;
  const dir = join(runDir, CHECKPOINTS_DIR, latest);
  const loaded = await loadModelDir(dir, (raw) => ModelConfigSchema.parse(raw));
  const trainer = TrainerStateSchema.parse(JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')));
  const { tensors, metadata } = decodeSafetensors(await readFile(join(dir, OPTIMIZER_FILE)), join(dir, OPTIMIZER_FILE));
  const m = tensors.get('adam.m')?.data;
  const v = tensors.get('adam.v')?.data;
  if (!(m instanceof Float32Array) || !(v instanceof Float32Array) || m.length !== layout.size || v.length !== layout.size) {
    throw new RunDirError(`${join(dir, OPTIMIZER_FILE)}: optimizer state does not fit this model (${layout.size} parameters)`);
  }
  const params = new Float32Array(layout.size);
  for (const e of layout.entries) {
    const t = loaded.tensors.get(e.name);
    if (t === undefined || t.data.length !== e.size) throw new RunDirError(`${join(dir, 'model.safetensors')}: parameter ${e.name} is missing or mis-shaped`);
    params.set(t.data as Float32Array, e.offset);
  }
  return { dir, trainer, engine: { step: Number(metadata['adamStep'] ?? trainer.step), params, m, v } };
}

/** Complete checkpoints, oldest first. */
export async function listCheckpoints(runDir: string): Promise<string[]> {
  const root = join(runDir, CHECKPOINTS_DIR);
  const entries = await readdir(root).catch(() => [] as string[]);
  const complete: string[] = [];
  for (const name of entries.filter((n) => /^step-\d{7}$/u.test(n)).sort()) {
    if ((await exists(join(root, name, STATE_FILE))) && (await exists(join(root, name, CONFIG_FILE)))) complete.push(name);
  }
  return complete;
}

/** Deletes all but the newest `keep` checkpoints, never the best one, and crash leftovers. */
export async function pruneCheckpoints(runDir: string, keep: number, protect: string | undefined): Promise<void> {
  const root = join(runDir, CHECKPOINTS_DIR);
  const names = await listCheckpoints(runDir);
  const doomed = names.slice(0, Math.max(0, names.length - keep)).filter((n) => n !== protect);
  const leftovers = (await readdir(root).catch(() => [] as string[])).filter((n) => n.startsWith('.') && n.includes('.tmp-'));
  for (const name of [...doomed, ...leftovers]) await rm(join(root, name), { recursive: true, force: true });
}

/** The parameters of the newest `count` checkpoints, averaged (§6.1: "averaging the last 5 checkpoints"). */
export async function averageCheckpoints(runDir: string, count: number, layout: FlatLayout): Promise<{ params: Float32Array; names: string[] }> {
  const names = (await listCheckpoints(runDir)).slice(-count);
  const sum = new Float64Array(layout.size);
  for (const name of names) {
    const loaded = await loadModelDir(join(runDir, CHECKPOINTS_DIR, name), (raw) => raw);
    for (const e of layout.entries) {
      const data = loaded.tensors.get(e.name)!.data;
      for (let i = 0; i < e.size; i++) sum[e.offset + i]! += data[i]!;
    }
  }
  return { params: Float32Array.from(sum, (x) => x / names.length), names };
}
