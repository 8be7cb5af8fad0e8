/**
 * `pnpm chat --model <run-dir> ["message"]`: replies once to a message, or,
 * without one, opens a read–eval–print loop. The model runs in this process;
 * no server is involved.
 */
import { createInterface } from 'node:readline/promises';
import { initBackend, parseBackendChoice } from '@hanmadi/model';
import { EXIT_USAGE, number as anyNumber } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ChatModel } from './chat-model.js';
import { ApiError } from './plugins/errors.js';
import { checkMessage, DEFAULT_LIMITS, generateOptions } from './replying.js';
import { DecodingSchema, type Decoding } from './schemas.js';
import { cliExitCode, wasmThreadsOption } from './serve-command.js';

export interface ChatIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  err: (line: string) => void;
  interactive: boolean;
}

const processIo = (): ChatIo => ({
  input: process.stdin,
  output: process.stdout,
  err: (line) => process.stderr.write(`${line}\n`),
  interactive: Boolean(process.stdin.isTTY),
});

/** Any finite number: DecodingSchema, the HTTP API's own, says what each flag accepts. */
const number = anyNumber();

/** Decoding flags → the same schema as the HTTP API's `decoding`; flags not given stay undefined. */
function decodingFrom(o: Record<string, unknown>): Decoding {
  const raw = {
    strategy: o['strategy'],
    maxNewTokens: o['maxNewTokens'],
    minNewTokens: o['minNewTokens'],
    noRepeatNgramSize: o['blockRepeatNgram'],
    repetitionPenalty: o['repetitionPenalty'],
    temperature: o['temperature'],
    topK: o['topK'],
    topP: o['topP'],
    seed: o['seed'],
    numBeams: o['beams'],
    lengthPenalty: o['lengthPenalty'],
  };
  const parsed = DecodingSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgumentError(`${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

export async function runChatCli(argv: string[], io: ChatIo = processIo()): Promise<number> {
  const program = new Command('pnpm chat')
    .description('Chat with a trained model in the terminal')
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.output.write(t), writeErr: (t) => io.err(t.trimEnd()) })
    .argument('[message]', 'reply to this message and exit (without it: an interactive prompt)')
    .requiredOption('--model <dir>', 'a model directory (a run directory of pnpm train)')
    .option('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu')
    .option('--wasm-threads <n>', "threads for the wasm backend's kernels, 1 to 8 or auto", wasmThreadsOption)
    .addOption(new Option('--strategy <name>', 'search strategy').choices(['greedy', 'beam', 'sample']))
    .option('--beams <n>', 'beam search width', number)
    .option('--length-penalty <x>', 'beam search length penalty', number)
    .option('--max-new-tokens <n>', 'most tokens to generate', number)
    .option('--min-new-tokens <n>', 'forbid EOS before this many tokens', number)
    // Not "--no-repeat-ngram-size": commander reads a leading "no-" as a negated boolean.
    .option('--block-repeat-ngram <n>', 'forbid repeating n-grams of this size (no_repeat_ngram_size)', number)
    .option('--repetition-penalty <x>', 'CTRL repetition penalty (1: off)', number)
    .option('--temperature <x>', 'sampling temperature', number)
    .option('--top-k <n>', 'sample from the k most probable tokens', number)
    .option('--top-p <x>', 'sample from the smallest set with this probability', number)
    .option('--seed <n>', 'sampling seed', number);
  let model: ChatModel | undefined;
  try {
    program.parse(argv, { from: 'user' });
    const o = program.opts<Record<string, unknown> & { model: string; backend?: string; wasmThreads?: number }>();
    const decoding = decodingFrom(o);
    await initBackend(o.backend ? parseBackendChoice(o.backend, '--backend') : undefined, () => {}, { wasmThreads: o.wasmThreads });
    model = await ChatModel.load(o.model, { batching: false, maxBatch: 1, maxWaitMs: 0, maxQueue: 1 });
    // Flags given win; the rest come from the model's generation_config.json, as for the server.
    const options = generateOptions(decoding, model.generationConfig);
    const answer = async (text: string) => {
      const message = checkMessage(text, 'message', { ...DEFAULT_LIMITS, maxMessageChars: Infinity });
      const out = await model!.reply(message, options);
      io.output.write(`${out.reply}\n`);
    };
    const [message] = program.args;
    if (message !== undefined) {
      await answer(message);
      return 0;
    }
    const rl = createInterface({ input: io.input, output: io.output, terminal: io.interactive });
    if (io.interactive) io.output.write(`${model.id} — 메시지를 입력하세요 (끝내려면 Ctrl-D)\n`);
    rl.setPrompt(io.interactive ? '> ' : '');
    rl.prompt();
    for await (const line of rl) {
      if (line.trim() !== '') {
        try {
          await answer(line);
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          io.err(error.message);
        }
      }
      rl.prompt();
    }
    return 0;
  } catch (error) {
    // The API's refusal of a decoding option the flags asked for: a usage error.
    if (error instanceof ApiError) {
      io.err(`error: ${error.message}`);
      return EXIT_USAGE;
    }
    return cliExitCode(error, io.err);
  } finally {
    await model?.close();
  }
}
