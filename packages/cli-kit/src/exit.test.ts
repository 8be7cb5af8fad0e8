import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeFor } from './exit.js';

class DataError extends Error {}

/** Runs a commander program the way the commands do, returning the exit code and what went to each stream. */
function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const program = new Command('tool')
    .exitOverride()
    .version('1.2.3')
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) })
    .option('--n <x>', 'a count', (v) => {
      if (v !== '1') throw new InvalidArgumentError('expected 1');
      return 1;
    });
  try {
    program.parse(argv, { from: 'user' });
    return { code: EXIT_OK, out, err };
  } catch (error) {
    return { code: exitCodeFor(error, [DataError], (line) => (err += `${line}\n`)), out, err };
  }
}

describe('exitCodeFor', () => {
  it('exits 0 for help and --version, which go to stdout', () => {
    for (const argv of [['--help'], ['--version']]) {
      const r = run(argv);
      expect(r.code, argv[0]).toBe(EXIT_OK);
      expect(r.out, argv[0]).not.toBe('');
      expect(r.err, argv[0]).toBe('');
    }
  });

  it("exits 2 for usage errors, commander's and those found after parsing", () => {
    expect(run(['--nope']).code).toBe(EXIT_USAGE);
    expect(run(['--n', '2']).code).toBe(EXIT_USAGE);
    const lines: string[] = [];
    expect(exitCodeFor(new InvalidArgumentError('--a and --b contradict each other'), [], (l) => lines.push(l))).toBe(EXIT_USAGE);
    expect(lines).toEqual(['error: --a and --b contradict each other']);
  });

  it('exits 1 after one line for a known failure, and rethrows a bug', () => {
    const lines: string[] = [];
    expect(exitCodeFor(new DataError('d.csv:3: unclosed quote'), [DataError], (l) => lines.push(l))).toBe(EXIT_FAILURE);
    expect(lines).toEqual(['error: d.csv:3: unclosed quote']);
    const bug = new TypeError('x is undefined');
    expect(() => exitCodeFor(bug, [DataError])).toThrow(bug);
    expect(exitCodeFor(new CommanderError(1, 'commander.unknownOption', 'x'), [])).toBe(EXIT_USAGE);
  });
});
