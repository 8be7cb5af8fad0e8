import { readdir } from 'node:fs/promises';
import { exportModelDir, ModelDirError, SafetensorsError, type WeightsDtype } from '@hanmadi/model';
import { exitCodeFor } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError, Option } from 'commander';

/**
 * `pnpm export --model <dir> --out <dir> [--dtype float16|float32] [--force]`:
 * a copy of a model directory with its weights stored as float16 (the shipped
 * form: half the size, loaded as float32) or float32, with the run's
 * train.json, metrics.jsonl, curves.svg and generation_config.json beside it.
 */
export async function runExportCli(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const program = new Command('pnpm export')
    .description('Write a model directory with its weights stored as float16 (or float32)')
    .exitOverride()
    .configureOutput({ writeOut: (t) => out(t.trimEnd()), writeErr: (t) => process.stderr.write(t) })
    .requiredOption('--model <dir>', 'the model directory to export (a run directory of pnpm train)')
    .requiredOption('--out <dir>', 'the model directory to write; refused if it is not empty, unless --force')
    .addOption(new Option('--dtype <dtype>', 'how the weights are stored').choices(['float16', 'float32']).default('float16'))
    .option('--force', 'write over a non-empty --out');
  try {
    program.parse(argv, { from: 'user' });
    const o = program.opts<{ model: string; out: string; dtype: WeightsDtype; force?: boolean }>();
    if (!o.force && (await holdsFiles(o.out))) throw new InvalidArgumentError(`--out: ${o.out} is not empty (--force writes over it)`);
    const r = await exportModelDir(o.model, o.out, { dtype: o.dtype });
    out(`wrote ${o.out}: ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} weights as ${r.dtype}`);
    out(`model.safetensors: ${megabytes(r.sourceWeightsBytes)} → ${megabytes(r.weightsBytes)}`);
    out(`max |Δ| weight: ${r.maxAbsDiff.toExponential(3)} (${r.dtype} export vs source)`);
    out(`copied: ${r.copied.length > 0 ? r.copied.join(', ') : 'no companion files'}`);
    return 0;
  } catch (error) {
    return exitCodeFor(error, [ModelDirError, SafetensorsError]);
  }
}

/** Whether `dir` exists with anything in it; a file there counts, so exportModelDir reports it. */
async function holdsFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB (${bytes.toLocaleString('en-US')} bytes)`;
}
