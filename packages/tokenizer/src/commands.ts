import { CorpusError, readSentences, type SentenceFormat } from '@hanmadi/corpus';
import { exitCodeFor, integer, number } from '@hanmadi/cli-kit';
import { Command, Option } from 'commander';
import { ModelFileError, writeModelFile } from './model-file.js';
import { Tokenizer } from './tokenizer.js';
import { trainBpe, VocabSizeError } from './trainer.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIo: Io = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };

/** What --format accepts: every format readSentences reads. */
const FORMATS = ['csv', 'tsv', 'jsonl', 'txt'] as const satisfies readonly SentenceFormat[];

interface TrainFlags {
  input: string;
  out: string;
  vocabSize: number;
  characterCoverage: number;
  byteFallback: boolean;
  userDefinedSymbols?: string;
  format?: SentenceFormat;
  skipInvalid: boolean;
}

const tokenId = integer(0);

function program(io: Io): Command {
  const cli = new Command('pnpm tokenizer')
    .description('Train a SentencePiece-compatible BPE tokenizer and apply it')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  cli
    .command('train')
    .description('train a BPE vocabulary and write <out>.model and <out>.vocab')
    .requiredOption('--input <file>', 'corpus: .csv/.tsv/.jsonl question-answer pairs (both sides are used) or .txt, one sentence a line')
    .requiredOption('--out <file.model>', 'where to write the SentencePiece model')
    .option('--vocab-size <n>', 'vocabulary size, special pieces included', integer(1), 8000)
    .option('--character-coverage <x>', 'share of character occurrences the alphabet covers', number({ min: 0, minExclusive: true, max: 1 }), 1)
    .option('--byte-fallback', 'spell characters outside the alphabet as UTF-8 byte pieces instead of <unk>', false)
    .option('--user-defined-symbols <list>', 'comma-separated pieces that are never split or merged')
    .addOption(new Option('--format <format>', 'override the format taken from the extension').choices(FORMATS))
    .option('--skip-invalid', 'skip invalid records with a warning instead of stopping', false)
    .action(async (flags: TrainFlags) => {
      const started = performance.now();
      const sentences = await readSentences(flags.input, {
        skipInvalid: flags.skipInvalid,
        ...(flags.format ? { format: flags.format } : {}),
      });
      const model = trainBpe(sentences, {
        vocabSize: flags.vocabSize,
        characterCoverage: flags.characterCoverage,
        byteFallback: flags.byteFallback,
        userDefinedSymbols: flags.userDefinedSymbols ? flags.userDefinedSymbols.split(',').filter(Boolean) : [],
        input: [flags.input],
      });
      const out = flags.out.endsWith('.model') ? flags.out : `${flags.out}.model`;
      const written = await writeModelFile(out, model);
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      io.out(`trained ${model.pieces.length} pieces on ${sentences.length} sentences in ${seconds} s`);
      io.out(`wrote ${written.model} and ${written.vocab}`);
    });

  cli
    .command('encode')
    .description('print the pieces and ids of a text')
    .requiredOption('--model <file.model>', 'SentencePiece model')
    .argument('<text...>', 'text to encode')
    .action(async (words: string[], flags: { model: string }) => {
      const tokenizer = await Tokenizer.load(flags.model);
      const text = words.join(' ');
      io.out(`pieces: ${tokenizer.encodePieces(text).join(' ')}`);
      io.out(`ids:    ${tokenizer.encode(text).join(' ')}`);
    });

  cli
    .command('decode')
    .description('print the text of a sequence of ids')
    .requiredOption('--model <file.model>', 'SentencePiece model')
    .argument('<ids...>', 'token ids')
    .action(async (ids: string[], flags: { model: string }) => {
      const tokenizer = await Tokenizer.load(flags.model);
      io.out(tokenizer.decode(ids.map((id) => tokenId(id, undefined))));
    });

  return cli;
}

/** Runs the tokenizer CLI; returns the process exit code. Known failures print one line, never a stack. */
export async function runTokenizerCli(argv: string[], io: Io = consoleIo): Promise<number> {
  try {
    await program(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return exitCodeFor(error, [CorpusError, ModelFileError, VocabSizeError, RangeError], io.err);
  }
}
