/**
 * The number parsers of every command's flags, as commander option
 * arguments: `.option('--port <n>', '…', integer(0, 65535), 3000)`. A bad
 * value is an InvalidArgumentError, which commander reports with the flag.
 */
import { InvalidArgumentError } from 'commander';

/** Commander's signature for an option parser. */
export type OptionParser<T> = (value: string, previous: unknown) => T;

/** Number('') is 0 and Number(' 7 ') is 7: only a written-out number counts. */
function toNumber(value: string): number {
  return /^\s*$/u.test(value) ? Number.NaN : Number(value);
}

/** An integer in [min, max]; the message names the range actually accepted. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): OptionParser<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
  return (value) => {
    const n = toNumber(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected ${range}, got "${value}"`);
    return n;
  };
}

/** Bounds of a real number; each one inclusive or not, as in interval notation. */
export interface Bounds {
  min?: number;
  max?: number;
  /** Whether min itself is refused: (min, …. */
  minExclusive?: boolean;
  /** Whether max itself is refused: …, max). */
  maxExclusive?: boolean;
}

/** A finite number within `bounds`, e.g. number({ min: 0, max: 1, maxExclusive: true }) for [0, 1). */
export function number(bounds: Bounds = {}): OptionParser<number> {
  const { min, max, minExclusive = false, maxExclusive = false } = bounds;
  const range =
    min === undefined && max === undefined
      ? 'a number'
      : max === undefined
        ? `a number ${minExclusive ? '>' : '≥'} ${min}`
        : min === undefined
          ? `a number ${maxExclusive ? '<' : '≤'} ${max}`
          : `a number in ${minExclusive ? '(' : '['}${min}, ${max}${maxExclusive ? ')' : ']'}`;
  return (value) => {
    const n = toNumber(value);
    const fits = Number.isFinite(n) && (min === undefined || (minExclusive ? n > min : n >= min)) && (max === undefined || (maxExclusive ? n < max : n <= max));
    if (!fits) throw new InvalidArgumentError(`expected ${range}, got "${value}"`);
    return n;
  };
}

/** A positive number: a learning rate, a norm. */
export const positive = number({ min: 0, minExclusive: true });
