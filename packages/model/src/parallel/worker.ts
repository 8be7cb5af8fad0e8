/**
 * A data-parallel training worker: a model replica on its own thread with its
 * own backend instance. Per step it reads the shared parameters (when they
 * changed) and writes the gradient of its share of the batch, weighted by its
 * share of the target tokens, into its gradient buffer; then it sums its slice
 * of every worker's gradient and, once the main thread knows the global norm,
 * applies Adam to that slice of the shared parameters.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend.js';
import { disposeBatch, makeBatch } from '../batch.js';
import { Transformer } from '../transformer.js';
import { adamUpdate } from './flat-adam.js';
import { writeParams } from './flat.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

/**
 * Sums the workers' gradients over [from, to) into the first buffer and
 * returns the sum of squares of the result. Two workers, the usual case, get
 * a loop of their own: two arrays indexed directly run about twice as fast as
 * the general loop over a list of them.
 */
function reduceSlice(grads: Float32Array[], { from, to }: { from: number; to: number }): number {
  const sum = grads[0]!;
  let sumSquares = 0;
  if (grads.length === 2) {
    const other = grads[1]!;
    for (let i = from; i < to; i++) {
      const g = sum[i]! + other[i]!;
      sum[i] = g;
      sumSquares += g * g;
    }
    return sumSquares;
  }
  for (let i = from; i < to; i++) {
    let g = sum[i]!;
    for (let w = 1; w < grads.length; w++) g += grads[w]![i]!;
    sum[i] = g;
    sumSquares += g * g;
  }
  return sumSquares;
}

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (message: FromWorker): void => port.postMessage(message);

try {
  // One thread each: the workers themselves are what spreads training over the cores.
  const info = await initBackend(init.backend, () => {}, { wasmThreads: 1 });
  const model = new Transformer(init.config);
  const params = new Float32Array(init.params);
  const grads = init.grads.map((b) => new Float32Array(b));
  const mine = grads[init.index]!;
  const adam = { m: new Float32Array(init.adamM), v: new Float32Array(init.adamV) };
  const offsets = new Map(init.layout.entries.map((e) => [e.name, e.offset]));
  let loadedVersion = -1;

  const handle = (message: ToWorker): FromWorker | undefined => {
    switch (message.type) {
      case 'step': {
        if (message.paramsVersion !== loadedVersion) {
          writeParams(model, init.layout, params);
          loadedVersion = message.paramsVersion;
        }
        const batch = makeBatch(message.examples, init.config);
        const share = batch.targetTokens / message.totalTokens;
        const { value, grads: byVariable } = tf.variableGrads(
          () => tf.mul(model.loss(batch, message.labelSmoothing, { dropoutSeed: message.dropoutSeed }), share),
          [...model.params.variables.values()],
        );
        for (const [name, g] of Object.entries(byVariable)) mine.set(g.dataSync() as Float32Array, offsets.get(model.params.nameOf(name))!);
        const weightedLoss = value.dataSync()[0]!;
        tf.dispose([value, ...Object.values(byVariable)]);
        disposeBatch(batch);
        return { type: 'stepped', lossSum: (weightedLoss / share) * batch.targetTokens, tokens: batch.targetTokens };
      }
      case 'reduce': {
        return { type: 'reduced', sumSquares: reduceSlice(grads.slice(0, message.workers), init.range) };
      }
      case 'update':
        adamUpdate(params, grads[0]!, adam, init.range, message.step, message.learningRate, message.gradScale);
        return { type: 'updated' };
      case 'stop':
        model.dispose();
        port.close();
        return undefined;
    }
  };

  port.on('message', (message: ToWorker) => {
    try {
      const reply = handle(message);
      if (reply) send(reply);
    } catch (error) {
      send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    }
  });
  send({ type: 'ready', backend: info.detail });
} catch (error) {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
}
