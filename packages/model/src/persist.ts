import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ModelConfigSchema, type ModelConfig } from './config.js';
import { loadModelDir, ModelDirError, saveModelDir, WEIGHTS_FILE, type LoadedModelDir } from './model-dir.js';
import type { FloatStorage, NamedTensor } from './safetensors.js';
import { Transformer } from './transformer.js';

/** Recorded in config.json so that the weights file can be read without this code; `floats` is how model.safetensors stores them. */
export function weightsLayout(floats: FloatStorage): string {
  const stored = floats === 'F16' ? 'float16 (IEEE half; read as float32)' : 'float32';
  return `${stored}, little-endian. ${LAYOUT}`;
}

const LAYOUT =
  'Linear weights are [in, out] (y = x·W + b). embedding.weight [vocab, d_model] is shared by the encoder and ' +
  'decoder inputs (scaled by √d_model) and the output projection (logits = h·embeddingᵀ). Names: encoder.layers.{i}.{self_attn.{q,k,v,out},' +
  'ffn.{w1,w2},norm1,norm2}.{weight,bias}; decoder.layers.{i}.{self_attn,cross_attn}.{q,k,v,out}, ffn, norm1..3; pre-LN models add ' +
  'encoder.norm and decoder.norm.';

/** The layout of float32 weights, as saveModel writes them. */
export const WEIGHTS_LAYOUT = weightsLayout('F32');

/** Copies every parameter out of the backend, by name. */
export function exportWeights(model: Transformer): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const [name, v] of model.params.variables) out.set(name, { dtype: 'F32', shape: [...v.shape], data: v.dataSync() as Float32Array });
  return out;
}

/** Assigns weights by name; any missing, extra or mis-shaped tensor is an error naming `file`. */
export function importWeights(model: Transformer, tensors: ReadonlyMap<string, NamedTensor>, file: string): void {
  const problems: string[] = [];
  for (const [name, v] of model.params.variables) {
    const t = tensors.get(name);
    if (t === undefined) problems.push(`missing tensor ${name}`);
    else if (t.dtype !== 'F32' || t.shape.join(',') !== v.shape.join(',')) {
      problems.push(`tensor ${name} is ${t.dtype} [${t.shape.join(', ')}], the model needs F32 [${v.shape.join(', ')}]`);
    }
  }
  for (const name of tensors.keys()) if (!model.params.variables.has(name)) problems.push(`unexpected tensor ${name}`);
  if (problems.length > 0) {
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    throw new ModelDirError(file, `does not fit config.json's model: ${problems.slice(0, 3).join('; ')}${more}`);
  }
  tf.tidy(() => {
    for (const [name, v] of model.params.variables) v.assign(tf.tensor(tensors.get(name)!.data, v.shape, 'float32'));
  });
  model.markWeightsChanged();
}

export interface SaveModelOptions {
  /** Bytes of the SentencePiece model the weights were trained with. */
  tokenizerBytes: Uint8Array;
  specialIds: { pad: number; unk: number; bos: number; eos: number };
  /** What training wants remembered (steps, losses, corpus); shown to users of the directory. */
  training?: unknown;
}

/** Writes a model directory (config.json, tokenizer.model, model.safetensors) atomically; a NaN or ±Inf weight is a ModelDirError naming its tensor. */
export async function saveModel(dir: string, model: Transformer, options: SaveModelOptions): Promise<void> {
  await saveModelDir(dir, {
    modelConfig: model.config,
    tokenizerBytes: options.tokenizerBytes,
    tokenizer: { vocabSize: model.config.vocabSize, specialIds: options.specialIds },
    tensors: exportWeights(model),
    layout: WEIGHTS_LAYOUT,
    training: options.training ?? null,
  });
}

export interface LoadedModel {
  model: Transformer;
  dir: LoadedModelDir<ModelConfig>;
}

/** config.json's `model`, checked against the schema; the error names the first field that is wrong. */
export function parseModelConfig(raw: unknown): ModelConfig {
  const parsed = ModelConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`model.${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** Loads a model directory, verifying every file (float16 weights load as float32); errors name the file at fault. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const loaded = await loadModelDir(dir, parseModelConfig);
  if (loaded.config.tokenizer.vocabSize !== loaded.modelConfig.vocabSize) {
    throw new ModelDirError(
      join(dir, 'config.json'),
      `tokenizer vocabulary ${loaded.config.tokenizer.vocabSize} differs from the model's ${loaded.modelConfig.vocabSize}`,
    );
  }
  const model = new Transformer(loaded.modelConfig);
  try {
    importWeights(model, loaded.tensors, join(dir, WEIGHTS_FILE));
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, dir: loaded };
}
