import { execFileSync } from 'node:child_process';

/**
 * Helpers for tests and benchmarks that compare against the real SentencePiece
 * command-line tools (Debian package `sentencepiece`).
 */
export function spmAvailable(): boolean {
  try {
    execFileSync('spm_encode', ['--help'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // spm_encode --help exits non-zero on some builds but still exists.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Runs `spm_encode --output_format=id` over a file of lines; one id array per line. */
export function spmEncodeIds(model: string, inputFile: string): number[][] {
  const out = execFileSync('spm_encode', [`--model=${model}`, '--output_format=id', `--input=${inputFile}`], {
    maxBuffer: 1 << 28,
    encoding: 'utf8',
  });
  return out
    .replace(/\n$/u, '')
    .split('\n')
    .map((line) => (line === '' ? [] : line.split(' ').map(Number)));
}

/** Runs `spm_train` with the given flags (without leading dashes' values quoted). */
export function spmTrain(flags: Record<string, string | number | boolean>): void {
  const args = Object.entries(flags).map(([k, v]) => `--${k}=${String(v)}`);
  execFileSync('spm_train', [...args, '--minloglevel=2'], { stdio: ['ignore', 'ignore', 'pipe'] });
}
