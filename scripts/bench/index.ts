/**
 * `pnpm bench <name>`: benchmarks that print figures beside a reference
 * measured in the same run. They are never run as tests.
 */
import { benchKernels } from './kernels.js';
import { benchModel } from './model.js';
import { benchQuality } from './quality.js';
import { benchServe } from './serve.js';
import { benchTokenizer } from './tokenizer.js';
import { benchTrain } from './train.js';

const BENCHES: Record<string, (argv: string[]) => Promise<void>> = {
  tokenizer: benchTokenizer,
  kernels: benchKernels,
  model: benchModel,
  train: benchTrain,
  serve: benchServe,
  quality: benchQuality,
};

const name = process.argv[2];
const bench = name === undefined ? undefined : BENCHES[name];
if (bench === undefined) {
  console.error(`usage: pnpm bench <${Object.keys(BENCHES).join('|')}> [flags]`);
  console.error('  serve: [--model <run-dir>] [--backend wasm] [--duration 12] [--warmup 2] [--requests 50] [--clients 1,8,32]');
  console.error('         [--rounds 6] [--max-batch 32] [--max-wait-ms 0] [--only latency|throughput|model] [--no-reference] [--recorded-reference]');
  console.error('  quality: --metrics <run-dir>/metrics.jsonl [--perplexity 100,60,45,40]');
  process.exitCode = 2;
} else {
  try {
    await bench(process.argv.slice(3));
  } catch (error) {
    console.error(`bench ${name} failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
