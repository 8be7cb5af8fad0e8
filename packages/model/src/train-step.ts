import * as tf from '@tensorflow/tfjs-core';
import type { TensorBatch } from './batch.js';
import { clipByGlobalNorm, type Adam } from './optimizer.js';
import type { Transformer } from './transformer.js';

export interface TrainStepOptions {
  learningRate: number;
  labelSmoothing: number;
  /** Global-norm gradient clipping threshold; Infinity turns clipping off. */
  clipNorm: number;
  /** Seed of this step's dropout masks (derive it from the run seed and the step for exact resumes). */
  dropoutSeed: number;
}

export interface TrainStepResult {
  loss: number;
  gradNorm: number;
  clipped: boolean;
  targetTokens: number;
}

/**
 * One optimisation step: forward, backward through every parameter, optional
 * global-norm clipping, and an Adam update. Every tensor it creates is
 * released before it returns.
 */
export function trainStep(model: Transformer, optimizer: Adam, batch: TensorBatch, options: TrainStepOptions): TrainStepResult {
  const variables = [...model.params.variables.values()];
  const { value, grads: byVariable } = tf.variableGrads(() => model.loss(batch, options.labelSmoothing, { dropoutSeed: options.dropoutSeed }), variables);
  const grads = new Map(Object.entries(byVariable).map(([name, g]) => [model.params.nameOf(name), g]));
  const clip = clipByGlobalNorm(grads, options.clipNorm);
  optimizer.apply(clip.grads, options.learningRate);
  model.markWeightsChanged();
  const loss = value.dataSync()[0]!;
  value.dispose();
  tf.dispose([...grads.values()]);
  if (clip.clipped) tf.dispose([...clip.grads.values()]);
  return { loss, gradNorm: clip.norm, clipped: clip.clipped, targetTokens: batch.targetTokens };
}
