/**
 * Exit codes shared by every command: 0 for success, help and --version; 1
 * for a failure the user can fix (bad data, a missing model), reported in one
 * line; 2 for a usage error (an unknown flag, a bad value), as in
 * sysexits-style tools and commander's own help.
 */
import { CommanderError, InvalidArgumentError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any error class
type ErrorClass = abstract new (...args: any[]) => Error;

/** Commander's codes for output that was asked for rather than a mistake. */
const ASKED_FOR = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/**
 * The exit code for an error a command threw: commander's own (it already
 * printed why), 2 after one line for a flag refused after parsing, 1 after one
 * line for an instance of `known`; anything else is a bug and is rethrown.
 */
export function exitCodeFor(error: unknown, known: readonly ErrorClass[], err: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): number {
  if (error instanceof InvalidArgumentError) {
    err(`error: ${error.message}`);
    return EXIT_USAGE;
  }
  if (error instanceof CommanderError) return ASKED_FOR.has(error.code) ? EXIT_OK : EXIT_USAGE;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const isKnown = known.some((k) => error instanceof k) || code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL';
  if (!isKnown) throw error;
  err(`error: ${(error as Error).message}`);
  return EXIT_FAILURE;
}
