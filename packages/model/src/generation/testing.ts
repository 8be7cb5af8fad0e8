/** Fixtures shared by the generation tests (not part of the package's API). */
import { initBackend } from '../backend.js';
import { disposeBatch, makeBatch, type Example } from '../batch.js';
import { presetConfig } from '../config.js';
import { Adam } from '../optimizer.js';
import { Rng } from '../random.js';
import { trainStep } from '../train-step.js';
import { Transformer } from '../transformer.js';

export const TEST_VOCAB = 60;

/** Random pairs of 2–6 ordinary tokens (ids past the four special ones). */
export function randomPairs(count: number, seed: number): Example[] {
  const rng = new Rng(seed);
  const seq = (min: number, max: number) =>
    Array.from({ length: min + Math.floor(rng.next() * (max - min + 1)) }, () => 4 + Math.floor(rng.next() * (TEST_VOCAB - 4)));
  return Array.from({ length: count }, () => ({ source: seq(2, 6), target: seq(2, 6) }));
}

/**
 * A `tiny` model on the wasm backend trained until it has memorised `pairs`
 * (loss below 0.02, or 400 steps): seen sources decode to their targets,
 * unseen ones to less peaked replies on which strategies differ.
 */
export async function overfitTinyModel(pairs: readonly Example[], seed: number): Promise<Transformer> {
  await initBackend('wasm', () => {});
  const config = presetConfig('tiny', { vocabSize: TEST_VOCAB }, { dropout: 0 });
  const model = new Transformer(config, seed);
  const optimizer = new Adam(model.params.variables);
  const batch = makeBatch(pairs, config);
  let loss = Infinity;
  for (let step = 1; step <= 400 && loss > 0.02; step++) {
    loss = trainStep(model, optimizer, batch, { learningRate: 3e-3, labelSmoothing: 0, clipNorm: 5, dropoutSeed: step }).loss;
  }
  disposeBatch(batch);
  optimizer.dispose();
  return model;
}
