/**
 * The `pnpm bench` program: one commander subcommand per benchmark, each
 * parsing its own flags, so that `--help` lists them and runs nothing.
 */
import { EXIT_USAGE } from '@hanmadi/cli-kit';
import { Command, CommanderError } from 'commander';
import { kernelsCommand } from './kernels.js';
import { modelCommand } from './model.js';
import { qualityCommand } from './quality.js';
import { serveCommand } from './serve.js';
import { tokenizerCommand } from './tokenizer.js';
import { trainCommand } from './train.js';

export { EXIT_USAGE };

export interface BenchIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: BenchIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Every benchmark, in the order the README's efficiency section reads them. */
export const BENCH_COMMANDS = [tokenizerCommand, kernelsCommand, modelCommand, trainCommand, serveCommand, qualityCommand] as const;

export function benchProgram(io: BenchIo = processIo): Command {
  const program = new Command('pnpm bench')
    .description('Benchmarks that print figures beside a reference measured in the same run; never run as tests')
    .usage('<name> [flags]')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nThe ChatbotData benchmarks read $HANMADI_CHATBOT_DATA, else ../shared/data/chatbot-data/ChatbotData.csv.\nRun pnpm bench <name> --help for its flags.',
    );
  // addCommand, unlike command(), does not pass the parent's settings on.
  for (const make of BENCH_COMMANDS) program.addCommand(make().copyInheritedSettings(program));
  return program;
}

/** Runs `pnpm bench` on `argv` (the arguments after the script name); returns the exit code. */
export async function runBench(argv: readonly string[], program: Command = benchProgram()): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // Commander has printed the help or the error and the usage; --help and --version exit 0.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_USAGE;
    const name = program.args[0] ?? '';
    process.stderr.write(`bench ${name} failed: ${(error as Error).message}\n`);
    return 1;
  }
}
