import { Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { integer, number, positive } from './numbers.js';

/** Parses `--n <value>` with `parser`, returning the value or commander's message. */
function parse(parser: (value: string, previous: unknown) => number, value: string): number | string {
  let message = '';
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: (s) => (message += s), writeOut: () => {} })
    .option('--n <value>', 'a number', parser);
  try {
    program.parse(['--n', value], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return message.trim();
    throw error;
  }
  return program.opts<{ n: number }>().n;
}

describe('integer', () => {
  it('takes integers in range and names the range it accepts otherwise', () => {
    expect(parse(integer(0, 65535), '8080')).toBe(8080);
    expect(parse(integer(0, 65535), '65536')).toBe(`error: option '--n <value>' argument '65536' is invalid. expected an integer from 0 to 65535, got "65536"`);
    expect(parse(integer(1), '0')).toMatch(/expected an integer ≥ 1, got "0"$/u);
    for (const bad of ['', ' ', '1.5', 'abc', '1e400', 'NaN']) expect(parse(integer(0), bad), bad).toMatch(/expected an integer ≥ 0/u);
  });
});

describe('number', () => {
  it('follows interval notation for inclusive and exclusive bounds', () => {
    const fraction = number({ min: 0, max: 1, maxExclusive: true });
    expect(parse(fraction, '0')).toBe(0);
    expect(parse(fraction, '1')).toMatch(/expected a number in \[0, 1\), got "1"$/u);
    expect(parse(number({ min: 0, max: 1, minExclusive: true }), '0')).toMatch(/expected a number in \(0, 1\]/u);
    expect(parse(positive, '1e-4')).toBe(1e-4);
    expect(parse(positive, '0')).toMatch(/expected a number > 0/u);
    expect(parse(number(), '-2.5')).toBe(-2.5);
    for (const bad of ['', 'Infinity', 'x']) expect(parse(number(), bad), bad).toMatch(/expected a number, got/u);
  });
});
