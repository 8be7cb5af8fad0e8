/**
 * `hanmadi <command>`: every command of the product in one program, which
 * node runs itself (bundled into dist/hanmadi.mjs), so that a signal reaches
 * the command's own handlers with no tsx in between. The README's `pnpm
 * <command>` scripts are aliases that `exec` it.
 */
import { EXIT_USAGE, exitCodeFor } from '@hanmadi/cli-kit';
import { runChatCli, runServeCli } from '@hanmadi/api';
import { runTokenizerCli } from '@hanmadi/tokenizer';
import { runEvaluateCli, runExportCli, runTrainCli } from '@hanmadi/trainer';
import { Command } from 'commander';
import manifest from '../package.json' with { type: 'json' };
import { runDataCli } from './data-command.js';
import { runStartCli } from './start-command.js';

interface Subcommand {
  summary: string;
  run: (argv: string[]) => Promise<number>;
}

/** In the order a newcomer meets them. */
export const COMMANDS: Readonly<Record<string, Subcommand>> = {
  start: { summary: 'serve the shipped base model (--fine-tune: fine-tune it on the bundled corpus first)', run: runStartCli },
  train: { summary: 'train (or fine-tune) the Transformer on question/answer pairs', run: (argv) => runTrainCli(argv) },
  evaluate: { summary: 'measure a model on pairs (perplexity, BLEU, chrF) or prompts (reply measures)', run: (argv) => runEvaluateCli(argv) },
  export: { summary: 'write a model directory with float16 (or float32) weights', run: (argv) => runExportCli(argv) },
  serve: { summary: 'serve a model over HTTP: chat page, API, OpenAI-compatible endpoint', run: runServeCli },
  chat: { summary: 'chat with a model in the terminal', run: (argv) => runChatCli(argv) },
  tokenizer: { summary: 'train a SentencePiece-compatible BPE tokenizer and apply it', run: (argv) => runTokenizerCli(argv) },
  data: { summary: 'download the reference corpus, checked by its sha256 (data fetch chatbotdata)', run: (argv) => runDataCli(argv) },
};

export const VERSION = manifest.version;

/** The top level's help, --version and usage errors; the commands parse their own flags. */
function topLevel(): Command {
  const program = new Command('hanmadi')
    .description('한마디: train and serve your own Korean Transformer chatbot')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .helpCommand(false)
    .addHelpText('after', '\nRun hanmadi <command> --help for its flags.');
  for (const [name, { summary }] of Object.entries(COMMANDS)) program.command(name).description(summary);
  return program;
}

export async function runHanmadi(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (command) return command.run(rest);
  // `hanmadi help train` is `hanmadi train --help`.
  const helped = name === 'help' && rest.length === 1 ? COMMANDS[rest[0]!] : undefined;
  if (helped) return helped.run(['--help']);
  const program = topLevel();
  if (name === undefined) {
    process.stderr.write(program.helpInformation());
    return EXIT_USAGE;
  }
  try {
    program.parse(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return exitCodeFor(error, []);
  }
}
