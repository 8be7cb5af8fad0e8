import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../backend.js';
import { sourceTensor } from '../batch.js';
import { presetConfig } from '../config.js';
import { ForwardPass } from '../params.js';
import { Transformer } from '../transformer.js';

// The inference form derives its weights from the paper modules' parameters: both must compute the same model.
describe.each(['cpu', 'wasm'] as const)('the inference form on %s', (backend) => {
  it.each(['post', 'pre'] as const)('gives the logits of the paper modules without dropout (%s-LN, padded batch, max |Δ| ≤ 1e-4)', async (norm) => {
    await initBackend(backend, () => {});
    const config = presetConfig('tiny', { vocabSize: 50 }, { norm, encoderLayers: 2, decoderLayers: 2 });
    const model = new Transformer(config, 7);
    const source = sourceTensor([[5, 6, 7, 8, 9], [10], [11, 12, 13]], config); // [3, 6] with padding
    const targetIn = tf.tensor2d(
      [
        [2, 14, 15, 16],
        [2, 17, 0, 0],
        [2, 18, 19, 0],
      ],
      [3, 4],
      'int32',
    );
    const worst = tf.tidy(() => {
      const pass = ForwardPass.inference;
      const { memory, shape, sourceMask } = model.encode(source, pass);
      const paper = tf.reshape(model.project(model.decode(targetIn, memory, shape, sourceMask, pass)), [3, 4, config.vocabSize]); // [B, T, V]
      return tf.max(tf.abs(tf.sub(paper, model.inference.forward(source, targetIn)))).dataSync()[0]!;
    });
    expect(worst).toBeLessThanOrEqual(1e-4);
    tf.dispose([source, targetIn]);
    model.dispose();
  });
});
