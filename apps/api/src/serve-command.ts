/**
 * `pnpm serve --model <run-dir>`: loads the model, listens, warms the model
 * up (so /readyz turns 200 only once a reply is fast), and on SIGINT/SIGTERM
 * stops taking requests, finishes those in flight and exits 0.
 */
import type { FastifyInstance } from 'fastify';
import { BackendUnavailableError, GENERATION_CONFIG_FILE, initBackend, ModelDirError, parseBackendChoice, parseWasmThreads, SafetensorsError, WASM_THREADS_ENV } from '@hanmadi/model';
import { ModelFileError } from '@hanmadi/tokenizer';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { ChatModel, DEFAULT_BATCHING } from './chat-model.js';
import { DEFAULT_LIMITS } from './replying.js';

export const API_KEY_ENV = 'HANMADI_API_KEY';

export interface ServeSettings {
  model: string;
  port: number;
  host: string;
  backend?: string;
  wasmThreads?: number;
  maxMessageChars: number;
  timeoutMs: number;
  batching: boolean;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  rateLimit: number;
  logLevel: string;
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string, _previous: unknown): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** `--wasm-threads`: a count from 1 to 8 or `auto`, as a commander parser. */
export function wasmThreadsOption(value: string, _previous: unknown): number {
  try {
    return parseWasmThreads(value, '--wasm-threads');
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.replace(/^--wasm-threads: /u, ''));
  }
}

/** The serve command's flags, shared with `pnpm start`. */
export function serveOptions(program: Command): Command {
  return program
    .option('--port <n>', 'TCP port (0 picks a free one)', integer(0, 65535), 3000)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface, as in Docker)', '127.0.0.1')
    .option('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu (default: auto, or $HANMADI_BACKEND)')
    .option('--wasm-threads <n>', `threads for the wasm backend's kernels, 1 to 8 or auto (default: 1, or $${WASM_THREADS_ENV})`, wasmThreadsOption)
    .option('--max-message-chars <n>', 'longest message accepted, in characters (413 beyond)', integer(1), DEFAULT_LIMITS.maxMessageChars)
    .option('--timeout-ms <n>', 'longest a request may wait and decode (504 beyond)', integer(1), DEFAULT_LIMITS.requestTimeoutMs)
    .option('--no-batching', 'decode requests one at a time instead of together')
    .option('--max-batch <n>', 'most requests decoded together', integer(1, 1024), DEFAULT_BATCHING.maxBatch)
    .option('--max-wait-ms <n>', 'how long a request waits for company while nothing decodes (later ones join a running batch)', integer(0, 10_000), DEFAULT_BATCHING.maxWaitMs)
    .option('--max-queue <n>', 'requests allowed to wait (503 with Retry-After beyond)', integer(1), DEFAULT_BATCHING.maxQueue)
    .option('--rate-limit <n>', 'requests per minute per client address on /v1/* (0: unlimited)', integer(0), 0)
    .addOption(new Option('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
}

export interface RunningServer {
  app: FastifyInstance;
  model: ChatModel;
  url: string;
  /** Resolves when the model is warmed up and /readyz answers 200. */
  ready: Promise<void>;
  /** Stops taking requests, finishes those in flight, frees the model. */
  close(): Promise<void>;
}

/** Loads the model and listens; the caller decides when to close. */
export async function startServer(settings: ServeSettings, log: Logger): Promise<RunningServer> {
  await initBackend(settings.backend ? parseBackendChoice(settings.backend, '--backend') : undefined, (line) => log.info(line), { wasmThreads: settings.wasmThreads });
  const model = await ChatModel.load(settings.model, {
    batching: settings.batching,
    maxBatch: settings.maxBatch,
    maxWaitMs: settings.maxWaitMs,
    maxQueue: settings.maxQueue,
  });
  const apiKey = process.env[API_KEY_ENV] || undefined;
  let app: FastifyInstance;
  try {
    app = await buildApp({
      model,
      limits: { maxMessageChars: settings.maxMessageChars, requestTimeoutMs: settings.timeoutMs },
      apiKey,
      rateLimitPerMinute: settings.rateLimit,
      logger: log,
    });
    await app.listen({ port: settings.port, host: settings.host });
  } catch (error) {
    await model.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : settings.port;
  const shownHost = settings.host === '0.0.0.0' || settings.host === '::' ? 'localhost' : settings.host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}/`;
  log.info({ model: model.id, dir: model.dir, apiKey: apiKey ? 'required' : 'off', batching: settings.batching }, `serving ${model.id}`);
  const defaults = Object.entries(model.generationConfig).map(([field, value]) => `${field}=${String(value)}`);
  log.info(`decoding defaults from ${GENERATION_CONFIG_FILE}: ${defaults.join(' ') || 'none (built-in: greedy, at most 32 tokens)'}`);
  const ready = model.warmUp().then(() => log.info(`ready: chat at ${url}  (API docs: ${url}docs)`));
  let closed: Promise<void> | undefined;
  return {
    app,
    model,
    url,
    ready,
    close: () => {
      closed ??= (async () => {
        await app.close();
        await ready.catch(() => {});
        await model.close();
      })();
      return closed;
    },
  };
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function nextSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (signal: NodeJS.Signals) => {
      if (seen) process.exit(130);
      seen = true;
      log.info(`${signal}: finishing requests in flight, then exiting`);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** Serves until SIGINT/SIGTERM; `onReady` hears the chat page's URL once the model is warm. */
export async function serveUntilSignal(settings: ServeSettings, log: Logger, onReady?: (url: string) => void): Promise<void> {
  const signal = nextSignal(log);
  const server = await startServer(settings, log);
  if (onReady) void server.ready.then(() => onReady(server.url), () => {});
  try {
    // A failed warm-up ends the server too: a model that cannot reply must not look alive.
    await Promise.race([signal, server.ready.then(() => signal)]);
  } finally {
    await server.close();
  }
  log.info('stopped');
}

const KNOWN_ERRORS = [ModelDirError, ModelFileError, SafetensorsError, BackendUnavailableError, InvalidArgumentError];

/** One line for the errors a user can fix; anything else is a bug and keeps its stack. */
export function describeKnownError(error: unknown): string | undefined {
  if (KNOWN_ERRORS.some((k) => error instanceof k)) return (error as Error).message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') return (error as Error).message;
  return undefined;
}

/**
 * A command's exit code for an error: commander's own (it already printed
 * why), 1 after one line for a known failure; anything else is rethrown.
 */
export function cliExitCode(error: unknown, err: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): number {
  if (error instanceof CommanderError && !(error instanceof InvalidArgumentError)) return error.exitCode;
  const known = describeKnownError(error);
  if (known === undefined) throw error;
  err(`error: ${known}`);
  return 1;
}

export async function runServeCli(argv: string[]): Promise<number> {
  const program = serveOptions(
    new Command('pnpm serve')
      .description('Serve a trained model over HTTP: chat page at /, API under /v1, docs at /docs')
      .exitOverride()
      .requiredOption('--model <dir>', 'a model directory (a run directory of pnpm train)'),
  );
  try {
    program.parse(argv, { from: 'user' });
    const settings = program.opts<ServeSettings>();
    const log = pino({ level: settings.logLevel });
    await serveUntilSignal(settings, log);
    return 0;
  } catch (error) {
    return cliExitCode(error);
  }
}
