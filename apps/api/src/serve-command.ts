/**
 * `pnpm serve --model <run-dir>`: loads the model, listens, warms the model
 * up (so /readyz turns 200 only once a reply is fast), and on SIGINT/SIGTERM
 * drains (--drain-ms: /readyz 503, still serving), stops taking requests,
 * finishes those in flight and exits 0.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import {
  BackendUnavailableError,
  GENERATION_CONFIG_FILE,
  initBackend,
  ModelDirError,
  parseBackendChoice,
  parseWasmThreads,
  SafetensorsError,
} from '@hanmadi/model';
import { ModelFileError } from '@hanmadi/tokenizer';
import { exitCodeFor, integer, onStopSignals } from '@hanmadi/cli-kit';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { ChatModel, DEFAULT_BATCHING } from './chat-model.js';
import { startDraining } from './plugins/health.js';
import { DEFAULT_LIMITS } from './replying.js';
import { parseCorsOrigin, parseTrustProxy, type CorsOrigins, type TrustProxy } from './network-options.js';

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
  corsOrigin?: CorsOrigins;
  servedModelName?: string;
  trustProxy?: TrustProxy;
  logLevel: string;
  /** After a stop, how long /readyz answers 503 while requests are still served (0 or none: close at once). */
  drainMs?: number;
}

/** `--wasm-threads`: a count from 1 to 8 or `auto`, as a commander parser. */
export function wasmThreadsOption(value: string, _previous: unknown): number {
  try {
    return parseWasmThreads(value, '--wasm-threads');
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.replace(/^--wasm-threads: /u, ''));
  }
}

/**
 * A serve flag, also read from the environment (`--max-queue` from
 * HANMADI_MAX_QUEUE, `--no-batching` from HANMADI_NO_BATCHING being set):
 * what containers and clusters configure.
 */
function flag(flags: string, description: string): Option {
  const long = /--([a-z-]+)/u.exec(flags)![1]!;
  return new Option(flags, description).env(`HANMADI_${long.toUpperCase().replaceAll('-', '_')}`);
}

/** The serve command's flags, shared with `pnpm start`; each also from an environment variable, the flag winning. */
export function serveOptions(program: Command): Command {
  return program
    .addOption(flag('--port <n>', 'TCP port (0 picks a free one)').argParser(integer(0, 65535)).default(3000))
    .addOption(flag('--host <address>', 'address to listen on (0.0.0.0 for every interface, as in Docker)').default('127.0.0.1'))
    .addOption(flag('--backend <name>', 'auto, tensorflow, wasm, cpu or webgpu (default: auto)'))
    .addOption(flag('--wasm-threads <n>', "threads for the wasm backend's kernels, 1 to 8 or auto (default: 1)").argParser(wasmThreadsOption))
    .addOption(
      flag('--max-message-chars <n>', 'longest message accepted, in characters (413 beyond)').argParser(integer(1)).default(DEFAULT_LIMITS.maxMessageChars),
    )
    .addOption(flag('--timeout-ms <n>', 'longest a request may wait and decode (504 beyond)').argParser(integer(1)).default(DEFAULT_LIMITS.requestTimeoutMs))
    .addOption(flag('--no-batching', 'decode requests one at a time instead of together'))
    .addOption(flag('--max-batch <n>', 'most requests decoded together').argParser(integer(1, 1024)).default(DEFAULT_BATCHING.maxBatch))
    .addOption(
      flag('--max-wait-ms <n>', 'how long a request waits for company while nothing decodes (later ones join a running batch)')
        .argParser(integer(0, 10_000))
        .default(DEFAULT_BATCHING.maxWaitMs),
    )
    .addOption(flag('--max-queue <n>', 'requests allowed to wait (503 with Retry-After beyond)').argParser(integer(1)).default(DEFAULT_BATCHING.maxQueue))
    .addOption(flag('--rate-limit <n>', 'requests per minute per client address on /v1/* (0: unlimited)').argParser(integer(0)).default(0))
    .addOption(
      flag(
        '--drain-ms <n>',
        "on SIGTERM, /readyz answers 503 but requests are still served this long before closing: at least a load balancer's check interval × fall count",
      )
        .argParser(integer(0, 600_000))
        .default(0),
    )
    .addOption(
      flag(
        '--cors-origin <origins>',
        'origins allowed to call the API from a browser: * or a comma list such as https://chat.example.com (default: off)',
      ).argParser(parseCorsOrigin),
    )
    .addOption(flag('--served-model-name <name>', "the model id /v1/models reports and requests must name (default: the model directory's name)"))
    .addOption(
      flag(
        '--trust-proxy <value>',
        'trust X-Forwarded-For from proxies in front: true, a hop count, or a comma list of addresses/CIDRs (default: off)',
      ).argParser(parseTrustProxy),
    )
    .addOption(flag('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
}

export interface RunningServer {
  app: FastifyInstance;
  model: ChatModel;
  url: string;
  /** Resolves when the model is warmed up and /readyz answers 200. */
  ready: Promise<void>;
  /** Drains (`drainMs`), stops taking requests, finishes those in flight, frees the model. */
  close(): Promise<void>;
}

/** Loads the model and listens; the caller decides when to close. */
export async function startServer(settings: ServeSettings, log: Logger): Promise<RunningServer> {
  await initBackend(settings.backend ? parseBackendChoice(settings.backend, '--backend') : undefined, (line) => log.info(line), {
    wasmThreads: settings.wasmThreads,
  });
  const model = await ChatModel.load(
    settings.model,
    {
      batching: settings.batching,
      maxBatch: settings.maxBatch,
      maxWaitMs: settings.maxWaitMs,
      maxQueue: settings.maxQueue,
    },
    settings.servedModelName,
  );
  const apiKey = process.env[API_KEY_ENV] || undefined;
  let app: FastifyInstance;
  try {
    app = await buildApp({
      model,
      limits: { maxMessageChars: settings.maxMessageChars, requestTimeoutMs: settings.timeoutMs },
      apiKey,
      rateLimitPerMinute: settings.rateLimit,
      corsOrigins: settings.corsOrigin,
      trustProxy: settings.trustProxy,
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
        // A model that never warmed up was never ready, so no balancer routes here: nothing to drain.
        if (settings.drainMs && model.isReady) await drain(app, settings.drainMs, log);
        await app.close();
        await ready.catch(() => {});
        await model.close();
      })();
      return closed;
    },
  };
}

/** Out of readiness but still serving for `ms`, so that a balancer checking /readyz routes elsewhere before the port closes. */
async function drain(app: FastifyInstance, ms: number, log: Logger): Promise<void> {
  startDraining(app);
  log.info(`draining: /readyz answers 503, requests are still served for ${ms} ms (--drain-ms), then closing`);
  await sleep(ms);
}

/** Resolves on the first SIGINT/SIGTERM; a later one exits at once (`onStopSignals`). */
function nextSignal(log: Logger): { signal: Promise<NodeJS.Signals>; dispose: () => void } {
  let dispose = (): void => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    dispose = onStopSignals({
      onStop: (s) => {
        log.info(`${s}: finishing requests in flight, then exiting (again to exit now)`);
        resolve(s);
      },
    });
  });
  return { signal, dispose };
}

/** Serves until SIGINT/SIGTERM; `onReady` hears the chat page's URL once the model is warm. */
export async function serveUntilSignal(settings: ServeSettings, log: Logger, onReady?: (url: string) => void): Promise<void> {
  const { signal, dispose } = nextSignal(log);
  try {
    const server = await startServer(settings, log);
    if (onReady)
      void server.ready.then(
        () => onReady(server.url),
        () => {},
      );
    try {
      // A failed warm-up ends the server too: a model that cannot reply must not look alive.
      await Promise.race([signal, server.ready.then(() => signal)]);
    } finally {
      await server.close();
    }
    log.info('stopped');
  } finally {
    dispose();
  }
}

/** Failures a user can fix, reported in one line (exit 1); anything else is a bug and keeps its stack. */
const KNOWN_ERRORS = [ModelDirError, ModelFileError, SafetensorsError, BackendUnavailableError];

/** The exit code of a serving command's error (`exitCodeFor`: 2 for usage, 1 for a known failure). */
export function cliExitCode(error: unknown, err?: (line: string) => void): number {
  return exitCodeFor(error, KNOWN_ERRORS, err);
}

export async function runServeCli(argv: string[]): Promise<number> {
  const program = serveOptions(
    new Command('pnpm serve')
      .description('Serve a trained model over HTTP: chat page at /, API under /v1, docs at /docs')
      .exitOverride()
      .addOption(flag('--model <dir>', 'a model directory (a run directory of pnpm train)').makeOptionMandatory()),
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
