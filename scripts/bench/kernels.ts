/**
 * `pnpm bench kernels`: kernels launched per training step (one worker's
 * share: 32 pairs) and per cached decoding step of the `tutorial` preset on
 * wasm, by kernel name, with their summed times (KERNEL_DETAIL=1: the
 * costliest non-product kernels by shape; =all: products too). A decoding
 * step is mostly per-kernel overhead, so its count is what to cut; a training
 * step is mostly matrix products, which the times show. Last, per row, the
 * encoder and a decoding step with 1, 8 and 32 rows together and their
 * products' share: the most batching can gain on this backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { integer } from '@hanmadi/cli-kit';
import { Command } from 'commander';
import { DecoderCache, disposeBatch, initBackend, makeBatch, parseWasmThreads, presetConfig, Transformer, sourceTensor, type Example } from '@hanmadi/model';
import { lengthBucketedBatches, prepareChatbotData } from './chatbot-data.js';
import { median, printTable } from './table.js';

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

interface KernelsOptions {
  repeat: number;
  wasmThreads: string;
}

export function kernelsCommand(): Command {
  return new Command('kernels')
    .description(
      'kernels launched per training step and per cached decoding step of the tutorial preset on wasm, with their times; then per-row costs of batched decoding',
    )
    .option('--repeat <n>', 'timed repetitions of each measurement (decoding replies: twice as many)', integer(1), 20)
    .option('--wasm-threads <n>', 'threads of the wasm backend', '1')
    .addHelpText('after', '\nKERNEL_DETAIL=1 also lists the costliest non-product kernels of a training step by shape; KERNEL_DETAIL=all lists products too.')
    .action((_, command: Command) => benchKernels(command.opts<KernelsOptions>()));
}

export async function benchKernels(options: KernelsOptions): Promise<void> {
  const repeat = options.repeat;
  let backendLine = '';
  await initBackend('wasm', (line) => (backendLine = line), { wasmThreads: parseWasmThreads(options.wasmThreads, '--wasm-threads') });
  console.log(backendLine);
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
  console.log(
    `training forward+backward, 32 pairs (${examples.reduce((n, e) => n + e.target.length + 1, 0)} target tokens): ${trainKernels.length} kernels, median ${median(trainTimes).toFixed(1)} ms`,
  );
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
    const cache = DecoderCache.start(model, src);
    const out = [config.bosId];
    for (let t = 0; t < 20; t++) out.push(tf.tidy(() => tf.argMax(cache.step(tf.tensor1d([out[t]!], 'int32')), 1).dataSync()[0]!));
    cache.dispose();
    return out;
  };
  decodeReply();
  const cache = DecoderCache.start(model, src);
  const first = tf.tidy(() => cache.step(tf.tensor1d([config.bosId], 'int32')));
  first.dispose();
  const stepKernels = await kernelsOf(() => tf.tidy(() => cache.step(tf.tensor1d([5], 'int32')).dataSync()));
  cache.dispose();
  const startKernels = await kernelsOf(() => DecoderCache.start(model, src).dispose());
  const before = tf.memory().numTensors;
  const times: number[] = [];
  for (let i = 0; i < repeat * 2; i++) {
    const t = performance.now();
    decodeReply();
    times.push(performance.now() - t);
  }
  console.log(
    `decoding: startDecoding ${startKernels.length} kernels, step ${stepKernels.length} kernels; 20-token reply median ${median(times).toFixed(2)} ms (${(median(times) / 20).toFixed(3)} ms/token); tensors leaked ${tf.memory().numTensors - before}`,
  );
  console.log(`  ${histogram(stepKernels)}`);
  src.dispose();
  await productsByRows(model, repeat);
  model.dispose();
}

/**
 * Wraps the wasm backend's matrix-product kernels so that they add their own
 * wall time to `ms` (wasm kernels run synchronously, so this is their whole
 * cost). tf.profile's timings were not usable here: it reads and checks every
 * kernel's output, and a batched encoder's products then took longer than
 * the whole encoder did unprofiled.
 */
function timeProducts(): { ms: number; restore: () => void } {
  const clock = { ms: 0, restore: () => {} };
  const originals = ['BatchMatMul', '_FusedMatMul'].map((name) => tf.getKernel(name, 'wasm'));
  for (const k of originals) {
    tf.unregisterKernel(k.kernelName, k.backendName);
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        const t = performance.now();
        try {
          return k.kernelFunc(args);
        } finally {
          clock.ms += performance.now() - t;
        }
      },
    });
  }
  clock.restore = () => {
    for (const k of originals) {
      tf.unregisterKernel(k.kernelName, k.backendName);
      tf.registerKernel(k);
    }
  };
  return clock;
}

/**
 * What batching can buy on this backend: the encoder (a 7-token source) and
 * the sixth decoding step of R rows decoded together, per row, wall time and
 * the products' share of it. A row's products get cheaper with more rows only
 * as far as the matmul library runs faster at R rows than at one; the last
 * line bounds the request-rate ratio of batching on over off by supposing
 * everything but the products free when batched. The row counts take turns,
 * one sample each a round, since this machine's speed drifts within a minute.
 */
async function productsByRows(model: Transformer, repeat: number): Promise<void> {
  const { config } = model;
  const STEPS = 6;
  const rowsList = [1, 8, 32];
  interface Sample {
    encoder: number;
    encoderProducts: number;
    step: number;
    stepProducts: number;
  }
  const inputs = rowsList.map((rows) => ({
    rows,
    src: sourceTensor(
      Array.from({ length: rows }, (_, r) => [10 + r, 20, 30, 40 + r, 50, 60]),
      config,
    ), // [R, 7]
    tokens: tf.tensor1d(
      Array.from({ length: rows }, (_, r) => 5 + r),
      'int32',
    ), // [R]
    samples: [] as Sample[],
  }));
  const step = (cache: DecoderCache, tokens: tf.Tensor1D): void => {
    // Read outside tf.tidy: tidy would walk a returned array's 8,000·R entries looking for tensors.
    const logits = cache.step(tokens); // [R, V]
    logits.dataSync();
    logits.dispose();
  };
  const clock = timeProducts();
  try {
    for (let round = 0; round < repeat + 1; round++) {
      for (const { rows, src, tokens, samples } of inputs) {
        clock.ms = 0;
        let t = performance.now();
        const cache = DecoderCache.start(model, src);
        const encoder = performance.now() - t;
        const encoderProducts = clock.ms;
        for (let s = 1; s < STEPS; s++) step(cache, tokens);
        clock.ms = 0;
        t = performance.now();
        step(cache, tokens);
        const last = performance.now() - t;
        const lastProducts = clock.ms;
        cache.dispose();
        // The first round creates XNNPACK's operators for each shape.
        if (round > 0) samples.push({ encoder: encoder / rows, encoderProducts: encoderProducts / rows, step: last / rows, stepProducts: lastProducts / rows });
      }
    }
  } finally {
    clock.restore();
    for (const { src, tokens } of inputs) tf.dispose([src, tokens]);
  }
  const medians = inputs.map(({ samples }): Sample => ({
    encoder: median(samples.map((x) => x.encoder)),
    encoderProducts: median(samples.map((x) => x.encoderProducts)),
    step: median(samples.map((x) => x.step)),
    stepProducts: median(samples.map((x) => x.stepProducts)),
  }));
  const table: string[][] = [['rows', 'encoder ms/source', 'its products', 'step ms/row', 'its products', 'products share of step']];
  medians.forEach((m, i) =>
    table.push([
      String(rowsList[i]),
      m.encoder.toFixed(3),
      m.encoderProducts.toFixed(3),
      m.step.toFixed(3),
      m.stepProducts.toFixed(3),
      `${((100 * m.stepProducts) / m.step).toFixed(0)}%`,
    ]),
  );
  console.log(
    `\nbatched decoding, per row (ms; products: the BatchMatMul and _FusedMatMul kernels' time; step ${STEPS} of a 7-token source, median of ${repeat}):`,
  );
  printTable(table);
  const one = medians[0]!;
  const many = medians[medians.length - 1]!;
  const alone = one.encoder + STEPS * one.step;
  const floor = many.encoderProducts + STEPS * many.stepProducts;
  console.log(
    `a reply of ${STEPS} steps to a 7-token source: ${alone.toFixed(2)} ms alone; ${rowsList[rowsList.length - 1]} together, its products take ${floor.toFixed(2)} ms a row, ` +
      `so batching can make it at most ${(alone / floor).toFixed(2)}× cheaper (if nothing but the products cost anything when batched)`,
  );
}
