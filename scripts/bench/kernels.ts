/**
 * `pnpm bench kernels`: kernels launched per training step (one worker's
 * share: 32 pairs) and per cached decoding step of the `tutorial` preset on
 * wasm, by kernel name, with their summed times (KERNEL_DETAIL=1: the
 * costliest non-product kernels by shape; =all: products too). A decoding
 * step is mostly per-kernel overhead, so its count is what to cut; a training
 * step is mostly matrix products, which the times show.
 * Flags: --repeat N (default 20).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { disposeBatch, initBackend, makeBatch, presetConfig, Transformer, sourceTensor, type Example } from '@hanmadi/model';
import { lengthBucketedBatches, prepareChatbotData } from './chatbot-data.js';
import { median } from './table.js';

interface Launch {
  name: string;
  ms: number;
  shapes: string;
}

/** Launches by name, most frequent first, with their summed times (a wrapper's time includes its kernels'). */
function histogram(launches: Launch[]): string {
  const counts = new Map<string, { n: number; ms: number }>();
  for (const { name, ms } of launches) {
    const c = counts.get(name) ?? { n: 0, ms: 0 };
    counts.set(name, { n: c.n + 1, ms: c.ms + ms });
  }
  return [...counts.entries()]
    .sort((a, b) => b[1].n - a[1].n)
    .map(([n, c]) => `${n} ${c.n} (${c.ms.toFixed(1)} ms)`)
    .join(', ');
}

async function kernelsOf(f: () => void): Promise<Launch[]> {
  const info = await tf.profile(() => {
    f();
    return [];
  });
  return info.kernels.map((k) => ({ name: k.name, ms: typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0, shapes: JSON.stringify(k.inputShapes) }));
}

export async function benchKernels(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { repeat: { type: 'string', default: '20' } } });
  const repeat = Number(values.repeat);
  await initBackend('wasm', () => {});
  const config = presetConfig('tutorial', { vocabSize: 8000 });
  const model = new Transformer(config, 1);
  // A worker's share of a typical batch: 32 pairs of ChatbotData, length-bucketed as the model bench has them.
  const data = await prepareChatbotData();
  const examples: Example[] = lengthBucketedBatches(data.train, 64, 1)[0]!.slice(0, 32);
  const variables = [...model.params.variables.values()];
  const trainOnce = (): void => {
    const batch = makeBatch(examples, config);
    const { value, grads } = tf.variableGrads(() => model.loss(batch, 0.1, { dropoutSeed: 3 }), variables);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
    disposeBatch(batch);
  };
  trainOnce();
  const trainKernels = await kernelsOf(trainOnce);
  const trainTimes: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    trainOnce();
    trainTimes.push(performance.now() - t);
  }
  console.log(`training forward+backward, 32 pairs (${examples.reduce((n, e) => n + e.target.length + 1, 0)} target tokens): ${trainKernels.length} kernels, median ${median(trainTimes).toFixed(1)} ms`);
  console.log(`  ${histogram(trainKernels)}`);
  if (process.env['KERNEL_DETAIL']) {
    const byShape = new Map<string, { n: number; ms: number }>();
    for (const k of trainKernels) {
      const key = `${k.name} ${k.shapes}`;
      const c = byShape.get(key) ?? { n: 0, ms: 0 };
      byShape.set(key, { n: c.n + 1, ms: c.ms + k.ms });
    }
    // Products dominate and are known; KERNEL_DETAIL=all lists them too.
    const shown = [...byShape.entries()].filter(([key]) => process.env['KERNEL_DETAIL'] === 'all' || !/MatMul|^forward/u.test(key));
    for (const [key, c] of shown.sort((a, b) => b[1].ms - a[1].ms).slice(0, 40)) console.log(`    ${c.ms.toFixed(2)} ms ×${c.n} ${key}`);
  }

  const src = sourceTensor([[10, 20, 30, 40, 50, 60]], config);
  const decodeReply = (): number[] => {
    const state = model.startDecoding(src);
    const out = [config.bosId];
    for (let t = 0; t < 20; t++) out.push(tf.tidy(() => tf.argMax(model.step(state, tf.tensor1d([out[t]!], 'int32')), 1).dataSync()[0]!));
    model.disposeDecoding(state);
    return out;
  };
  decodeReply();
  const state = model.startDecoding(src);
  const first = tf.tidy(() => model.step(state, tf.tensor1d([config.bosId], 'int32')));
  first.dispose();
  const stepKernels = await kernelsOf(() => tf.tidy(() => model.step(state, tf.tensor1d([5], 'int32')).dataSync()));
  model.disposeDecoding(state);
  const startKernels = await kernelsOf(() => model.disposeDecoding(model.startDecoding(src)));
  const before = tf.memory().numTensors;
  const times: number[] = [];
  for (let i = 0; i < repeat * 2; i++) {
    const t = performance.now();
    decodeReply();
    times.push(performance.now() - t);
  }
  console.log(`decoding: startDecoding ${startKernels.length} kernels, step ${stepKernels.length} kernels; 20-token reply median ${median(times).toFixed(2)} ms (${(median(times) / 20).toFixed(3)} ms/token); tensors leaked ${tf.memory().numTensors - before}`);
  console.log(`  ${histogram(stepKernels)}`);
  src.dispose();
  model.dispose();
}
