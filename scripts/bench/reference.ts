/**
 * The PyTorch CPU reference (../shared/anchors/torch-cpu), run right before our
 * own measurement so that the ratio holds while the machine drifts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '@hanmadi/corpus';

export const ANCHOR_DIR = join(REPO_ROOT, '..', 'shared', 'anchors', 'torch-cpu');

export interface ReferenceTraining {
  ms_per_step_median: number;
  tgt_tok_per_s_median: number;
  tgt_tokens_per_step_mean: number;
  achieved_gflops: number;
}

export interface ReferenceDecoding {
  greedy_cache_20: { median_ms: number; ms_per_token: number };
  greedy_nocache_20: { median_ms: number; ms_per_token: number };
  beam4_cache_20: { median_ms: number };
  greedy_cache_natural: { median_ms: number; tokens: number };
}

export function referenceAvailable(): boolean {
  return existsSync(join(ANCHOR_DIR, 'run-reference.sh'));
}

function lastJson<T>(output: string): T {
  const start = output.lastIndexOf('\n{');
  return JSON.parse(output.slice(start >= 0 ? start + 1 : output.indexOf('{'))) as T;
}

/** Prepares the reference's data and runs its training benchmark (2 threads, 50 steps). */
export function runReferenceTraining(): { work: string; result: ReferenceTraining } {
  const work = mkdtempSync(join(tmpdir(), 'hanmadi-torch-'));
  const out = execFileSync('bash', [join(ANCHOR_DIR, 'run-reference.sh'), work], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return { work, result: lastJson<ReferenceTraining>(out) };
}

/** Trains the reference a few steps (the weights do not matter for latency) and runs its decoding benchmark. */
export function runReferenceDecoding(work: string): ReferenceDecoding {
  const env = { ...process.env, OMP_WAIT_POLICY: 'passive' };
  execFileSync('/usr/bin/python3', ['train.py', '20', '400', 'bench', '5'], { cwd: work, env, stdio: 'ignore' });
  const out = execFileSync('/usr/bin/python3', ['bench_decode.py', join(work, 'model_bench.pt'), '2'], { cwd: work, env, encoding: 'utf8' });
  return lastJson<ReferenceDecoding>(out);
}

/**
 * After runReferenceDecoding, in the same working directory: the reference's
 * greedy reply forced to each number of decoder steps (2 threads) → median ms
 * by step count. Its 20-step weights never emit EOS, so this stands in for a
 * natural reply of that many steps.
 */
export function runReferenceGreedySteps(work: string, counts: readonly number[]): Record<number, number> {
  const env = { ...process.env, OMP_WAIT_POLICY: 'passive' };
  const script = join(REPO_ROOT, 'scripts', 'bench', 'torch_greedy_steps.py');
  const out = execFileSync('/usr/bin/python3', [script, join(work, 'model_bench.pt'), '2', ...counts.map(String)], { cwd: work, env, encoding: 'utf8' });
  return lastJson<Record<number, number>>(out);
}
