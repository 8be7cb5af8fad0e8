import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseWasmThreads } from './backend.js';

const CHILD = fileURLToPath(new URL('./wasm-threads.child.ts', import.meta.url));

interface ChildResult {
  line: string;
  restart: string;
  replies: { tokens: number[]; score: number }[];
  product: number[];
}

/** Runs the child with `threads`; fails on a non-zero exit and on a process that does not end by itself. */
function runChild(threads: number): ChildResult {
  const result = spawnSync(process.execPath, ['--import', 'tsx', CHILD, String(threads)], { encoding: 'utf8', timeout: 90_000 });
  expect(result.error, 'the child must exit by itself (a live thread pool would keep it running)').toBeUndefined();
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as ChildResult;
}

describe('the wasm backend on a pool of threads', () => {
  it('starts with the threads asked for, decodes exactly as one thread does, and lets the process exit', () => {
    const one = runChild(1);
    const two = runChild(2);
    expect(one.line).toMatch(/wasm \(SIMD, 1 thread\)/u);
    expect(two.line).toMatch(/wasm \(SIMD, 2 threads\)/u);
    expect(two.replies.map((r) => r.tokens)).toEqual(one.replies.map((r) => r.tokens));
    two.replies.forEach((r, i) => expect(r.score).toBeCloseTo(one.replies[i]!.score, 4));
    expect(two.product).toHaveLength(48 * 700);
    const worst = Math.max(...two.product.map((v, i) => Math.abs(v - one.product[i]!)));
    expect(worst).toBeLessThan(1e-4);
    // A second start with another count is refused, not silently ignored.
    expect(one.restart).toMatch(/already runs with 1 thread\(s\).*cannot restart with 2/u);
    expect(two.restart).toMatch(/already runs with 2 thread\(s\).*cannot restart with 1/u);
  });
});

describe('parseWasmThreads', () => {
  it('takes 1 to 8 or auto, and names the flag in its error otherwise', () => {
    expect(parseWasmThreads('1', '--wasm-threads')).toBe(1);
    expect(parseWasmThreads(' 8 ', '--wasm-threads')).toBe(8);
    const auto = parseWasmThreads('auto', 'HANMADI_WASM_THREADS');
    expect(auto).toBeGreaterThanOrEqual(1);
    expect(auto).toBeLessThanOrEqual(8);
    for (const bad of ['0', '9', '2.5', 'two', ''])
      expect(() => parseWasmThreads(bad, '--wasm-threads')).toThrow(/^--wasm-threads: expected a whole number of threads from 1 to 8, or auto; got/u);
  });
});
