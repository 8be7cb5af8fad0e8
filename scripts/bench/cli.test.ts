import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { benchProgram, EXIT_USAGE, runBench } from './cli.js';

/** Every bench and the flags it took before commander parsed them: none may go missing from its help. */
const FLAGS: Record<string, string[]> = {
  tokenizer: [],
  kernels: ['--repeat <n>', '--wasm-threads <n>'],
  model: ['--steps <n>', '--backends <list>', '--no-reference'],
  train: ['--steps <n>', '--workers <n>', '--no-reference'],
  serve: [
    '--model <run-dir>',
    '--backend <name>',
    '--wasm-threads <n>',
    '--duration <s>',
    '--warmup <s>',
    '--requests <n>',
    '--clients <list>',
    '--rounds <n>',
    '--max-batch <n>',
    '--max-wait-ms <ms>',
    '--only <part>',
    '--no-reference',
    '--recorded-reference',
  ],
  quality: ['--metrics <file>', '--perplexity <list>'],
};

/** `pnpm bench` on `argv` with every bench's measurement replaced by a note of what it was asked. */
async function bench(...argv: string[]): Promise<{ code: number; out: string; err: string; started: { name: string; options: Record<string, unknown> }[] }> {
  let out = '';
  let err = '';
  const started: { name: string; options: Record<string, unknown> }[] = [];
  const program = benchProgram({ out: (t) => (out += t), err: (t) => (err += t) });
  for (const command of program.commands) command.action((_, c: Command) => void started.push({ name: c.name(), options: c.opts() }));
  const code = await runBench(argv, program);
  return { code, out, err, started };
}

describe('pnpm bench', () => {
  it('has the benches this test knows the flags of', () => {
    expect(benchProgram().commands.map((c) => c.name())).toEqual(Object.keys(FLAGS));
  });

  it('prints the list of benches for --help, on stdout, and exits 0', async () => {
    const { code, out, err, started } = await bench('--help');
    expect(code).toBe(0);
    expect(out).toMatch(/^Usage: pnpm bench <name> \[flags\]/u);
    for (const name of Object.keys(FLAGS)) expect(out).toMatch(new RegExp(`^ {2}${name}\\b`, 'mu'));
    expect(err).toBe('');
    expect(started).toEqual([]);
  });

  for (const [name, flags] of Object.entries(FLAGS)) {
    it(`prints every flag of ${name} for ${name} --help, on stdout, exits 0 and measures nothing`, async () => {
      const { code, out, err, started } = await bench(name, '--help');
      expect(code).toBe(0);
      expect(out).toMatch(new RegExp(`^Usage: pnpm bench ${name} `, 'u'));
      for (const flag of flags) expect(out).toContain(`  ${flag} `);
      expect(err).toBe('');
      expect(started).toEqual([]);
    });

    it(`hands every flag of ${name} to the bench`, async () => {
      const command = benchProgram().commands.find((c) => c.name() === name)!;
      // A value for each flag that takes one: its first choice, else a number.
      const argv = command.options.flatMap((o) => (o.required ? [o.long!, o.argChoices?.[0] ?? '3'] : [o.long!]));
      const { code, started, err } = await bench(name, ...argv);
      expect(err).toBe('');
      expect(code).toBe(0);
      expect(started).toHaveLength(1);
      expect(Object.keys(started[0]!.options).sort()).toEqual(command.options.map((o) => o.attributeName()).sort());
    });
  }

  it('prints the usage on stderr and exits 2 for an unknown bench, a bad flag or none at all', async () => {
    const cases: [string[], RegExp][] = [
      [['nope'], /^error: unknown command 'nope'\n[^]*Usage: pnpm bench <name> \[flags\]/u],
      [['train', '--bogus'], /^error: unknown option '--bogus'\n[^]*Usage: pnpm bench train \[options\][^]*--steps <n>/u],
      [['serve', '--only', 'all'], /argument 'all' is invalid\. Allowed choices are latency, throughput, model\.[^]*Usage: pnpm bench serve/u],
      [['model', '--steps', 'abc'], /option '--steps <n>' argument 'abc' is invalid\. expected an integer ≥ 1, got "abc"/u],
      [['serve', '--clients', '1,0'], /option '--clients <list>' argument '1,0' is invalid\. expected an integer ≥ 1, got "0"/u],
      [['quality'], /required option '--metrics <file>' not specified[^]*Usage: pnpm bench quality/u],
      [[], /^Usage: pnpm bench <name> \[flags\]/u],
    ];
    for (const [argv, message] of cases) {
      const { code, out, err, started } = await bench(...argv);
      expect(code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(err, argv.join(' ')).toMatch(message);
      expect(out).toBe('');
      expect(started).toEqual([]);
    }
  });

  it('runs as pnpm runs it: help on stdout with exit 0, a wrong name on stderr with exit 2', async () => {
    const run = (...argv: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/bench/index.ts', ...argv], { cwd: join(import.meta.dirname, '../..') }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    // Measuring would print figures or, without spm_train, fail: only the help may come out.
    const help = await run('tokenizer', '--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: pnpm bench tokenizer /u);
    const wrong = await run('nope');
    expect(wrong).toMatchObject({ code: EXIT_USAGE, stdout: '' });
    expect(wrong.stderr).toMatch(/unknown command 'nope'/u);
  });
});
