/**
 * `pnpm bench serve`: the chat service under load (issue 5). With a trained
 * `tutorial`-preset run directory, it measures
 *
 *  1. the latency of one reply over HTTP, one request at a time (p50/p99 as
 *     the client sees it, and the server's own `latencyMs`): greedy 20 tokens
 *     (EOS forbidden before), greedy and beam 4 natural replies to "오늘 너무
 *     힘들어", and beam 4 over 20 tokens — each beside the PyTorch reference
 *     (../shared/anchors/torch-cpu/bench_decode.py) measured right before, or
 *     its recorded figures, labelled as such;
 *  2. throughput with autocannon against POST /v1/chat (greedy, natural
 *     replies to a mix of ChatbotData questions) under 1, 8 and 32 concurrent
 *     clients, each run bounded in time, with request batching on and off,
 *     side by side: both servers up at once, loaded in alternating rounds;
 *  3. the same mix decoded by the model alone (one copy in this thread, a
 *     DecodeBatcher on and one off, tokenizing as the service does, no HTTP)
 *     by as many closed-loop callers as the most clients, in alternating
 *     rounds: the ratio batching reaches before HTTP and JSON take their share.
 *
 * The server is the real one (`startServer` of @hanmadi/api on 127.0.0.1:0,
 * loopback only) running in a worker thread of this process, so that the
 * load generator's event loop is not blocked by decoding; each server is
 * closed and its thread ended (the model freed) before the next starts.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import { integer, number, positive } from '@hanmadi/cli-kit';
import { Command, Option } from 'commander';
import { BUNDLED_CORPUS, readPairs, referenceCorpusPath, REPO_ROOT, splitPairs } from '@hanmadi/corpus';
import { median, printTable } from './table.js';
import { ANCHOR_DIR, referenceAvailable, runReferenceDecoding, runReferenceGreedySteps, runReferenceTraining, type ReferenceDecoding } from './reference.js';

const WORKER_ROLE = 'hanmadi-bench-serve';
const DEFAULT_MODEL = 'runs/tutorial-ref';
const REFERENCE_RUN_COMMAND =
  'pnpm train --data ../shared/data/chatbot-data/ChatbotData.csv --out runs/tutorial-ref --preset tutorial \\\n' +
  '    --max-steps 1372 --valid-every 343 --checkpoint-every 343';
const PROMPT = '오늘 너무 힘들어';
const LATENCY_WARMUP = 5;
const MIX_SIZE = 64;

// --- the server thread -------------------------------------------------------

interface ServerSpec {
  model: string;
  backend: string;
  wasmThreads: number;
  batching: boolean;
  maxBatch: number;
  maxWaitMs: number;
}

interface WorkerInit {
  role: typeof WORKER_ROLE;
  spec: ServerSpec;
}

interface ServerStats {
  inFlight: number;
  queueLength: number;
  steps: number;
  stepRequests: number;
}

type ToWorker = { type: 'stats'; reset: boolean } | { type: 'close' };
type FromWorker =
  | { type: 'ready'; url: string; modelId: string; backend: string; backendLine: string }
  | { type: 'stats'; stats: ServerStats }
  | { type: 'closed' }
  | { type: 'error'; message: string };

/** Runs inside the worker thread: the real server, answering the main thread's messages. */
async function serveInWorker(spec: ServerSpec): Promise<void> {
  const port = parentPort!;
  const [{ startServer, DEFAULT_BATCHING, DEFAULT_LIMITS }, { pino }, tf] = await Promise.all([
    import('@hanmadi/api'),
    import('pino'),
    import('@tensorflow/tfjs-core'),
  ]);
  // Level info, as `pnpm serve` logs by default (a line per request); the lines are kept until the
  // server is ready (to report the backend), then only warnings and errors are shown.
  const lines: string[] = [];
  let collecting = true;
  const log = pino(
    { level: 'info' },
    {
      write(line: string) {
        if (collecting) {
          const msg = (JSON.parse(line) as { msg?: string }).msg;
          if (msg) lines.push(msg);
        }
        if (/"level":[456]0/.test(line)) process.stderr.write(`server: ${line}`);
      },
    },
  );
  try {
    const server = await startServer(
      {
        model: spec.model,
        port: 0,
        host: '127.0.0.1',
        backend: spec.backend,
        wasmThreads: spec.wasmThreads,
        maxMessageChars: DEFAULT_LIMITS.maxMessageChars,
        timeoutMs: DEFAULT_LIMITS.requestTimeoutMs,
        batching: spec.batching,
        maxBatch: spec.maxBatch,
        maxWaitMs: spec.maxWaitMs,
        maxQueue: DEFAULT_BATCHING.maxQueue,
        rateLimit: 0,
        logLevel: 'info',
      },
      log,
    );
    let steps = 0;
    let stepRequests = 0;
    server.model.on('step', (requests) => {
      steps++;
      stepRequests += requests;
    });
    await server.ready;
    collecting = false;
    const backendLine = lines.find((l) => l.toLowerCase().includes(tf.getBackend())) ?? lines[0] ?? '';
    port.postMessage({ type: 'ready', url: server.url, modelId: server.model.id, backend: tf.getBackend(), backendLine } satisfies FromWorker);
    port.on('message', (message: ToWorker) => {
      if (message.type === 'stats') {
        port.postMessage({
          type: 'stats',
          stats: { inFlight: server.model.inFlight, queueLength: server.model.queueLength, steps, stepRequests },
        } satisfies FromWorker);
        if (message.reset) steps = stepRequests = 0;
      } else {
        void server.close().then(
          () => port.postMessage({ type: 'closed' } satisfies FromWorker),
          (error: unknown) => port.postMessage({ type: 'error', message: (error as Error).message } satisfies FromWorker),
        );
      }
    });
  } catch (error) {
    port.postMessage({ type: 'error', message: (error as Error).message } satisfies FromWorker);
  }
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.role === WORKER_ROLE) {
  await serveInWorker((workerData as WorkerInit).spec);
}

/** The main thread's handle on a server thread. */
class ServerThread {
  private waiting: ((message: FromWorker) => void) | undefined;
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly ready: Extract<FromWorker, { type: 'ready' }>,
  ) {
    worker.on('message', (message: FromWorker) => this.deliver(message));
  }

  /** Starts the server in a worker thread; resolves once it has warmed up. */
  static async start(spec: ServerSpec): Promise<ServerThread> {
    // Node 20 does not apply tsx's hooks to a worker's entry, so the worker imports this file through tsx's API.
    const self = import.meta.url;
    const code = self.endsWith('.ts')
      ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => m.tsImport(${JSON.stringify(self)}, ${JSON.stringify(self)}))`
      : `import(${JSON.stringify(self)})`;
    const worker = new Worker(code, { eval: true, workerData: { role: WORKER_ROLE, spec } satisfies WorkerInit });
    const first = await new Promise<FromWorker>((resolveFirst, reject) => {
      worker.once('message', resolveFirst);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the server thread exited (code ${code}) before it was ready`)));
    });
    if (first.type !== 'ready') {
      await worker.terminate();
      throw new Error(first.type === 'error' ? first.message : `unexpected message from the server thread: ${first.type}`);
    }
    const thread = new ServerThread(worker, first);
    worker.on('error', (error) => {
      thread.failure = error;
      thread.deliver({ type: 'error', message: `the server thread failed: ${error.message}` });
    });
    worker.on('exit', (code) => {
      thread.failure ??= new Error(`the server thread exited (code ${code})`);
      thread.deliver({ type: 'error', message: thread.failure.message });
    });
    return thread;
  }

  private deliver(message: FromWorker): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(message);
  }

  private ask(message: ToWorker): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolveReply) => {
      this.waiting = resolveReply;
      this.worker.postMessage(message);
    });
  }

  async stats(reset = false): Promise<ServerStats> {
    const reply = await this.ask({ type: 'stats', reset });
    if (reply.type === 'error') throw new Error(reply.message);
    if (reply.type !== 'stats') throw new Error(`unexpected message from the server thread: ${reply.type}`);
    return reply.stats;
  }

  /** Waits until no request waits or decodes (those a finished load run left behind are abandoned by the server). */
  async settle(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const s = await this.stats();
      if (s.inFlight === 0 && s.queueLength === 0) break;
      await sleep(50);
    }
    await sleep(300); // an abandoned batch may still be finishing its current step
  }

  /** Closes the server (finishing requests in flight, freeing the model) and ends the thread. */
  async close(): Promise<void> {
    try {
      if (this.failure) return;
      const reply = await this.ask({ type: 'close' });
      if (reply.type === 'error') throw new Error(`closing the server: ${reply.message}`);
    } finally {
      await this.worker.terminate();
    }
  }
}

// --- measurements --------------------------------------------------------------

/** Nearest-rank percentile. */
function percentile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

interface ChatResponse {
  reply: string;
  finishReason: 'eos' | 'length';
  tokens: number;
  latencyMs: number;
}

async function postChat(url: string, body: unknown): Promise<{ ms: number; response: ChatResponse }> {
  const started = performance.now();
  const res = await fetch(`${url}v1/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  const ms = performance.now() - started;
  if (!res.ok) throw new Error(`POST /v1/chat answered ${res.status}: ${text}`);
  return { ms, response: JSON.parse(text) as ChatResponse };
}

interface LatencyCase {
  label: string;
  natural: boolean;
  decoding: Record<string, unknown>;
  reference: (r: RefFigures) => number | undefined;
  /** PyTorch's decoder steps for the reference figure (EOS step included). */
  referenceSteps: (r: RefFigures) => number | undefined;
  /** Greedy to EOS: compared, when the reference ran now, with its greedy reply forced to our number of steps. */
  forcedNatural?: boolean;
}

interface LatencyRow {
  label: string;
  reply: string;
  tokens: number;
  steps: number;
  clientP50: number;
  clientP99: number;
  serverP50: number;
  n: number;
}

/** What one server's requests of one case gave, gathered over the rounds. */
interface LatencySamples {
  client: number[];
  server: number[];
  /** Decoder steps the server counted for these requests. */
  steps: number;
  last?: ChatResponse;
}

const noSamples = (): LatencySamples => ({ client: [], server: [], steps: 0 });

/**
 * One case on both servers: warm-up on each, then `requests` requests each,
 * sent in `rounds` alternating groups (each server first every other round)
 * so that the machine's drift falls on both alike; → appended to `into`.
 */
async function measureLatency(
  threads: Record<'off' | 'on', ServerThread>,
  c: LatencyCase,
  requests: number,
  rounds: number,
  into: Record<'off' | 'on', LatencySamples>,
): Promise<void> {
  const body = { message: PROMPT, decoding: c.decoding };
  const modes = ['off', 'on'] as const;
  for (const mode of modes) {
    for (let i = 0; i < LATENCY_WARMUP; i++) await postChat(threads[mode].ready.url, body);
    await threads[mode].stats(true);
  }
  for (let round = 0; round < rounds; round++) {
    const count = Math.floor(requests / rounds) + (round < requests % rounds ? 1 : 0);
    for (const mode of round % 2 === 0 ? modes : ([...modes].reverse() as ('off' | 'on')[])) {
      for (let i = 0; i < count; i++) {
        const { ms, response } = await postChat(threads[mode].ready.url, body);
        into[mode].client.push(ms);
        into[mode].server.push(response.latencyMs);
        into[mode].last = response;
      }
    }
  }
  // The server counts the decoder steps it ran: beam search may go on past its winner's EOS.
  for (const mode of modes) into[mode].steps += (await threads[mode].stats(true)).steps;
}

function latencyRow(c: LatencyCase, s: LatencySamples): LatencyRow {
  return {
    label: c.label,
    reply: s.last!.reply,
    tokens: s.last!.tokens,
    steps: s.steps / s.client.length,
    clientP50: median(s.client),
    clientP99: percentile(s.client, 0.99),
    serverP50: median(s.server),
    n: s.client.length,
  };
}

/** Rounds of one server at one client count as one row: req/s over all of them, the median p50, the worst p99. */
function combineRounds(rows: readonly LoadRow[]): LoadRow {
  const sum = (pick: (r: LoadRow) => number) => rows.reduce((s, r) => s + pick(r), 0);
  const seconds = sum((r) => r.seconds);
  const replies = sum((r) => r.ok);
  const steps = sum((r) => r.steps);
  return {
    connections: rows[0]!.connections,
    seconds,
    rps: replies / seconds,
    p50: median(rows.map((r) => r.p50)),
    p99: Math.max(...rows.map((r) => r.p99)),
    ok: replies,
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    tokensPerReply: replies ? sum((r) => r.tokensPerReply * r.ok) / replies : 0,
    steps,
    meanBatch: steps ? sum((r) => r.meanBatch * r.steps) / steps : 0,
  };
}

interface LoadRow {
  connections: number;
  /** Seconds under load, as autocannon measured them. */
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  errors: number;
  non2xx: number;
  tokensPerReply: number;
  /** Decoder steps the server ran, and the mean requests per step. */
  steps: number;
  meanBatch: number;
}

async function runLoad(server: ServerThread, questions: readonly string[], connections: number, seconds: number): Promise<LoadRow> {
  const { result, replies, tokens } = await loadChat(server.ready.url, questions, connections, seconds);
  const stats = await server.stats(true);
  return {
    connections,
    seconds: result.duration,
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    errors: result.errors,
    non2xx: result.non2xx,
    tokensPerReply: replies ? tokens / replies : 0,
    steps: stats.steps,
    meanBatch: stats.steps ? stats.stepRequests / stats.steps : 0,
  };
}

/** autocannon against POST `url`v1/chat, greedy replies to `questions` in turn; `byHeader` counts 200s by that response header's value. */
async function loadChat(url: string, questions: readonly string[], connections: number, seconds: number, byHeader?: string) {
  let next = 0;
  let replies = 0;
  let tokens = 0;
  const counts = new Map<string, number>();
  const result = await autocannon({
    url: `${url}v1/chat`,
    connections,
    pipelining: 1,
    duration: seconds,
    timeout: 30,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (request) => ({ ...request, body: JSON.stringify({ message: questions[next++ % questions.length], decoding: { strategy: 'greedy' } }) }),
        onResponse: (status, body, _context, headers) => {
          if (status !== 200) return;
          replies++;
          tokens += (JSON.parse(body) as ChatResponse).tokens;
          if (byHeader) {
            const value = Object.entries(headers ?? {}).find(([name]) => name.toLowerCase() === byHeader)?.[1] ?? '(none)';
            counts.set(String(value), (counts.get(String(value)) ?? 0) + 1);
          }
        },
      },
    ],
  });
  return { result, replies, tokens, counts };
}

// --- the PyTorch reference -------------------------------------------------------

interface RefFigures {
  source: string;
  greedy20?: number;
  greedyNatural?: number;
  greedyNaturalSteps?: number;
  greedyNaturalReply?: string;
  beam20?: number;
  beamNatural?: number;
  beamNaturalReply?: string;
  /** Measured now only: the greedy reply forced to N decoder steps, by N. */
  greedyForced?: Record<number, number>;
}

/** Step counts of natural replies the forced reference covers. */
const FORCED_STEPS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

type FullReferenceDecoding = ReferenceDecoding & {
  greedy_cache_natural: { reply?: string };
  beam4_cache_natural?: { median_ms: number; reply?: string };
};

function figures(d: FullReferenceDecoding, source: string): RefFigures {
  return {
    source,
    greedy20: d.greedy_cache_20.median_ms,
    greedyNatural: d.greedy_cache_natural.median_ms,
    greedyNaturalSteps: d.greedy_cache_natural.tokens,
    ...(d.greedy_cache_natural.reply !== undefined ? { greedyNaturalReply: d.greedy_cache_natural.reply } : {}),
    beam20: d.beam4_cache_20.median_ms,
    ...(d.beam4_cache_natural ? { beamNatural: d.beam4_cache_natural.median_ms } : {}),
    ...(d.beam4_cache_natural?.reply !== undefined ? { beamNaturalReply: d.beam4_cache_natural.reply } : {}),
  };
}

/** The anchors' recorded decoding runs (2 threads, OMP_WAIT_POLICY=passive), as written by bench_decode.py. */
function recordedReference(): { figures: RefFigures; greedy20Range: [number, number] } | undefined {
  if (!existsSync(ANCHOR_DIR)) return undefined;
  const files = readdirSync(ANCHOR_DIR).filter((f) => /^raw_bench_decode_t2_passive.*\.json$/.test(f));
  const runs: FullReferenceDecoding[] = [];
  for (const f of files) {
    const text = readFileSync(join(ANCHOR_DIR, f), 'utf8');
    const start = text.indexOf('\n{');
    const end = text.lastIndexOf('\n}');
    if (start >= 0 && end > start) runs.push(JSON.parse(text.slice(start + 1, end + 2)) as FullReferenceDecoding);
  }
  if (runs.length === 0) return undefined;
  const med = (pick: (d: FullReferenceDecoding) => number | undefined): number | undefined => {
    const xs = runs.map(pick).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const g20 = runs.map((d) => d.greedy_cache_20.median_ms);
  const steps = med((d) => d.greedy_cache_natural.tokens);
  const gN = med((d) => d.greedy_cache_natural.median_ms);
  const b20 = med((d) => d.beam4_cache_20.median_ms);
  const bN = med((d) => d.beam4_cache_natural?.median_ms);
  return {
    figures: {
      source: `recorded (median of ${runs.length} runs in ${relative(process.cwd(), ANCHOR_DIR)}/raw_bench_decode_t2_passive*.json)`,
      ...(g20.length ? { greedy20: median(g20) } : {}),
      ...(gN !== undefined ? { greedyNatural: gN } : {}),
      ...(steps !== undefined ? { greedyNaturalSteps: steps } : {}),
      ...(b20 !== undefined ? { beam20: b20 } : {}),
      ...(bN !== undefined ? { beamNatural: bN } : {}),
    },
    greedy20Range: [Math.min(...g20), Math.max(...g20)],
  };
}

function measuredReference(): RefFigures | undefined {
  console.log('PyTorch reference (../shared/anchors/torch-cpu): data preparation and training benchmark, then bench_decode.py (2 threads) — about a minute …');
  const started = performance.now();
  const { work } = runReferenceTraining();
  try {
    const d = runReferenceDecoding(work) as FullReferenceDecoding;
    const greedyForced = runReferenceGreedySteps(work, FORCED_STEPS);
    console.log(`PyTorch reference done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return { ...figures(d, 'measured now (bench_decode.py, and torch_greedy_steps.py for natural-length replies; 2 threads)'), greedyForced };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// --- output -------------------------------------------------------------------

const f1 = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(1));
const ratio = (ours: number, theirs: number | undefined): string => (theirs === undefined ? '–' : `${(ours / theirs).toFixed(2)}×`);

function readPreset(dir: string): string {
  try {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { training?: { preset?: string } };
    return config.training?.preset ?? 'unknown';
  } catch {
    return 'unknown (no readable config.json)';
  }
}

async function questionMix(): Promise<{ questions: string[]; source: string }> {
  const chatbotData = referenceCorpusPath();
  if (existsSync(chatbotData)) {
    const { valid } = splitPairs((await readPairs(chatbotData)).pairs);
    return { questions: valid.slice(0, MIX_SIZE).map((p) => p.question), source: `the first ${MIX_SIZE} validation-side questions of ChatbotData` };
  }
  const { pairs } = await readPairs(BUNDLED_CORPUS);
  return {
    questions: pairs.slice(0, MIX_SIZE).map((p) => p.question),
    source: `the first ${MIX_SIZE} questions of data/hanmadi-qa.csv (ChatbotData not found)`,
  };
}

interface ServeOptions {
  model?: string;
  backend: string;
  wasmThreads: string;
  duration: number;
  warmup: number;
  requests: number;
  clients: number[];
  rounds: number;
  maxBatch: number;
  maxWaitMs: number;
  only?: 'latency' | 'throughput' | 'model';
  replicas?: number;
  reference: boolean;
  recordedReference: boolean;
}

/** `--clients 1,8,32`: counts of at least one client. */
function clientCounts(value: string): number[] {
  return value.split(',').map((c) => integer(1)(c.trim(), undefined));
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('the chat service under load: latency of one reply beside PyTorch, throughput with batching on and off, and the model alone without HTTP')
    .option('--model <run-dir>', `a tutorial-preset run directory (default: ${DEFAULT_MODEL})`)
    .option('--backend <name>', "the servers' backend", 'wasm')
    .option('--wasm-threads <n>', "threads of each server's wasm backend, and of the model-alone part's", '1')
    .option('--duration <s>', 'seconds of load per client count and server (throughput; model alone: per mode)', positive, 12)
    .option('--warmup <s>', 'seconds of warm-up load per server before the throughput rounds, and per mode before the model-alone ones', number({ min: 0 }), 2)
    .option('--requests <n>', 'requests per latency case and server', integer(1), 50)
    .option('--clients <list>', 'comma-separated concurrent client counts for throughput; the largest is the model-alone callers', clientCounts, [1, 8, 32])
    .option('--rounds <n>', 'alternating rounds of batching on and off the measurements are split into', integer(1), 6)
    .option('--max-batch <n>', "the batching server's maxBatch", integer(1), 32)
    .option('--max-wait-ms <ms>', "the batching server's maxWaitMs", integer(0), 0)
    .addOption(new Option('--only <part>', 'measure one part only').choices(['latency', 'throughput', 'model']))
    .option(
      '--replicas <n>',
      'instead of the parts above: req/s of one `hanmadi serve` process, then of <n> behind HAProxy (docker/haproxy.cfg on loopback), the largest --clients for --duration s each',
      integer(1),
    )
    .option('--no-reference', 'no PyTorch figures at all')
    .option('--recorded-reference', "PyTorch's recorded figures instead of running it now")
    .action((_, command: Command) => benchServe(command.opts<ServeOptions>()));
}

export async function benchServe(values: ServeOptions): Promise<void> {
  const { duration, warmup, requests, clients, rounds, maxBatch, maxWaitMs } = values;
  const wasmThreads = (await import('@hanmadi/model')).parseWasmThreads(values.wasmThreads, '--wasm-threads');
  const doLatency = values.only === undefined || values.only === 'latency';
  const doThroughput = values.only === undefined || values.only === 'throughput';
  const doModel = values.only === undefined || values.only === 'model';

  // pnpm runs the script from the repository root; a relative --model is read from where pnpm was called.
  const modelDir = values.model !== undefined ? resolve(process.env['INIT_CWD'] ?? process.cwd(), values.model) : join(REPO_ROOT, DEFAULT_MODEL);
  if (!existsSync(join(modelDir, 'config.json'))) {
    throw new Error(
      `no run directory at ${modelDir}.\nThis benchmark serves a tutorial-preset model trained on ChatbotData (the README's reference run, about 20 minutes here):\n\n  ${REFERENCE_RUN_COMMAND}\n\nor pass --model <run-dir>.`,
    );
  }
  const preset = readPreset(modelDir);

  const cpus = os.cpus();
  console.log(
    `machine: ${cpus[0]?.model ?? 'unknown CPU'} × ${cpus.length}, ${os.platform()} ${os.release()}, Node ${process.version}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `model: ${relative(process.cwd(), modelDir) || modelDir} (preset ${preset}); backend requested: ${values.backend}${values.backend === 'wasm' ? ` with ${wasmThreads} thread${wasmThreads === 1 ? '' : 's'} (--wasm-threads)` : ''}`,
  );
  if (preset !== 'tutorial') console.log(`note: issue 5's targets are for the tutorial preset; this model's preset is ${preset}`);
  if (values.replicas !== undefined) {
    const replicas = values.replicas;
    const { questions, source } = await questionMix();
    await benchReplicas({ modelDir, backend: values.backend, wasmThreads, replicas, clients: Math.max(...clients), duration, warmup, questions, source });
    return;
  }

  // The reference first, right before our own figures, as the other benchmarks do.
  let measured: RefFigures | undefined;
  const recorded = recordedReference();
  if (doLatency && values.reference && !values.recordedReference && referenceAvailable()) {
    try {
      measured = measuredReference();
    } catch (error) {
      console.log(`PyTorch reference failed (${(error as Error).message.split('\n')[0]}); using its recorded figures instead`);
    }
  }
  const withReference = doLatency && values.reference;
  // runReferenceDecoding trains PyTorch 20 steps only: its weights do not stop at EOS, so its
  // "natural" replies run to the length limit; the natural rows then take the recorded figures.
  const measuredNatural = measured?.greedyNaturalSteps !== undefined && measured.greedyNaturalSteps <= 20;

  let backendLine = '';
  if (doLatency) {
    const cases: LatencyCase[] = [
      {
        label: 'greedy, 20 tokens',
        natural: false,
        decoding: { strategy: 'greedy', minNewTokens: 20, maxNewTokens: 20 },
        reference: (r) => r.greedy20,
        referenceSteps: (r) => (r.greedy20 === undefined ? undefined : 20),
      },
      {
        label: 'greedy, natural',
        natural: true,
        forcedNatural: true,
        decoding: { strategy: 'greedy', maxNewTokens: 20 },
        reference: (r) => r.greedyNatural,
        referenceSteps: (r) => r.greedyNaturalSteps,
      },
      {
        label: 'beam 4, natural',
        natural: true,
        decoding: { strategy: 'beam', numBeams: 4, lengthPenalty: 0, maxNewTokens: 20 },
        reference: (r) => r.beamNatural,
        referenceSteps: () => undefined,
      },
      {
        label: 'beam 4, 20 tokens',
        natural: false,
        decoding: { strategy: 'beam', numBeams: 4, lengthPenalty: 0, minNewTokens: 20, maxNewTokens: 20 },
        reference: (r) => r.beam20,
        referenceSteps: (r) => (r.beam20 === undefined ? undefined : 20),
      },
    ];
    // One request at a time, on a server with batching off (each request decodes at once) and on
    // (the default; a lone request waits maxWaitMs, if any, for company).
    // Half the requests with the batching-off server started first, half with it started second: whichever
    // thread starts first measured consistently slower here, for no reason in the servers themselves.
    const samples = cases.map(() => ({ off: noSamples(), on: noSamples() }));
    for (const order of [
      ['off', 'on'],
      ['on', 'off'],
    ] as const) {
      const threads = {} as Record<'off' | 'on', ServerThread>;
      for (const mode of order)
        threads[mode] = await ServerThread.start({ model: modelDir, backend: values.backend, wasmThreads, batching: mode === 'on', maxBatch, maxWaitMs });
      if (!backendLine) {
        backendLine = threads.on.ready.backendLine;
        for (const mode of ['off', 'on'] as const) console.log(`server (batching ${mode}): ${threads[mode].ready.modelId} — ${backendLine}`);
      }
      try {
        for (const [i, c] of cases.entries()) await measureLatency(threads, c, Math.ceil(requests / 2), Math.max(1, Math.ceil(rounds / 2)), samples[i]!);
      } finally {
        await Promise.all([threads.off.close(), threads.on.close()]);
      }
    }
    const rows: Record<'off' | 'on', LatencyRow[]> = {
      off: cases.map((c, i) => latencyRow(c, samples[i]!.off)),
      on: cases.map((c, i) => latencyRow(c, samples[i]!.on)),
    };

    console.log(
      `\nlatency of one reply to "${PROMPT}", POST /v1/chat over loopback, one request at a time, ${rows.off[0]!.n} measured per server after warm-ups,`,
    );
    console.log(`in rounds alternating batching off and on, half of them with each server's thread started first (ms; p99 by nearest rank)`);
    // The reference's weights never emit EOS: its greedy reply forced to as many steps as ours took stands in for a natural one.
    const naturalSteps = rows.off[cases.findIndex((c) => c.forcedNatural)]?.steps;
    const forced = naturalSteps === undefined ? undefined : measured?.greedyForced?.[naturalSteps];
    const forcedRef: RefFigures | undefined =
      forced === undefined
        ? undefined
        : { source: `measured now: its greedy reply forced to ${naturalSteps} steps`, greedyNatural: forced, greedyNaturalSteps: naturalSteps! };
    const refFor = (c: LatencyCase): RefFigures | undefined => {
      if (!withReference) return undefined;
      if (c.forcedNatural && forcedRef) return forcedRef;
      if (measured && (!c.natural || measuredNatural)) return measured;
      return recorded?.figures;
    };
    const sourceLabel = (r: RefFigures | undefined): string => (r === undefined ? '–' : r === measured ? 'now' : r === forcedRef ? 'now*' : 'recorded');
    if (!withReference) console.log('PyTorch: not run (--no-reference)');
    else {
      if (measured) console.log(`PyTorch "now": ${measured.source}`);
      if (forcedRef) console.log(`PyTorch "now*": ${forcedRef.source} (torch_greedy_steps.py), right after bench_decode.py`);
      if (recorded && cases.some((c) => refFor(c) === recorded.figures)) console.log(`PyTorch "recorded": ${recorded.figures.source}`);
    }
    const table: string[][] = [
      [
        'decoding',
        'batching',
        'tokens',
        'steps',
        'client p50',
        'client p99',
        'server p50',
        'ms/step',
        'PyTorch',
        'PyTorch p50',
        'PyTorch steps',
        'PyTorch ms/step',
        'p50 vs PyTorch',
        'ms/step vs PyTorch',
      ],
    ];
    cases.forEach((c, i) => {
      for (const mode of ['off', 'on'] as const) {
        const row = rows[mode][i]!;
        const r = refFor(c);
        const theirs = r ? c.reference(r) : undefined;
        const theirSteps = r ? c.referenceSteps(r) : undefined;
        const theirPerStep = theirs !== undefined && theirSteps ? theirs / theirSteps : undefined;
        const perStep = row.clientP50 / row.steps;
        const refCells =
          mode === 'off'
            ? [
                theirs === undefined ? '–' : sourceLabel(r),
                f1(theirs),
                theirSteps === undefined ? '–' : String(theirSteps),
                theirPerStep === undefined ? '–' : theirPerStep.toFixed(2),
              ]
            : ['', '', '', ''];
        table.push([
          mode === 'off' ? row.label : '',
          mode,
          String(row.tokens),
          Number.isInteger(row.steps) ? String(row.steps) : row.steps.toFixed(1),
          f1(row.clientP50),
          f1(row.clientP99),
          f1(row.serverP50),
          perStep.toFixed(2),
          ...refCells,
          ratio(row.clientP50, theirs),
          ratio(perStep, theirPerStep),
        ]);
      }
    });
    printTable(table);
    console.log(
      `(tokens: reply tokens, EOS not counted; steps: decoder steps the server ran per request; ms/step: client p50 / steps, HTTP and encoder included;`,
    );
    console.log(
      ` beam 4 scores as the reference does, by the sum of log-probabilities (lengthPenalty 0), and stops once no live beam can beat its best finished one;`,
    );
    console.log(` batching on: maxWaitMs ${maxWaitMs}, which a lone request waits; ratios of times: below 1× is faster than PyTorch)`);
    for (const row of rows.off) console.log(`  ${row.label}: ${JSON.stringify(row.reply)}`);
    if (measured && !measuredNatural) {
      console.log(
        `  PyTorch "now" ran on weights of 20 training steps, whose greedy reply did not stop (${measured.greedyNaturalSteps} steps: ${JSON.stringify(measured.greedyNaturalReply ?? '')});`,
      );
      console.log(
        forcedRef
          ? '  so greedy natural compares with its reply forced to the same steps ("now*"), and beam natural with its recorded figure, taken with trained weights'
          : '  the natural rows use its recorded figures, taken with trained weights',
      );
    }
    const g20Ref = refFor(cases[0]!);
    const naturalRef = refFor(cases[1]!);
    for (const mode of ['off', 'on'] as const) {
      const g20 = rows[mode][0]!;
      const natural = rows[mode][1]!;
      if (g20Ref?.greedy20 !== undefined) {
        const range = recorded ? `; recorded range ${f1(recorded.greedy20Range[0])}–${f1(recorded.greedy20Range[1])} ms` : '';
        console.log(
          `target, batching ${mode}: greedy 20-token reply no slower than PyTorch: ${f1(g20.clientP50)} ms vs ${f1(g20Ref.greedy20)} ms (${sourceLabel(g20Ref)}${range}) → ${g20.clientP50 <= g20Ref.greedy20 ? 'met' : 'NOT met'}`,
        );
      }
      if (naturalRef?.greedyNatural !== undefined) {
        const alsoRecorded =
          naturalRef === forcedRef && recorded?.figures.greedyNatural !== undefined
            ? `; recorded natural reply: ${f1(recorded.figures.greedyNatural)} ms over ${recorded.figures.greedyNaturalSteps ?? '?'} steps`
            : '';
        console.log(
          `target, batching ${mode}: natural greedy reply no slower than PyTorch's: ${f1(natural.clientP50)} ms over ${natural.steps} steps vs ${f1(naturalRef.greedyNatural)} ms over ${naturalRef.greedyNaturalSteps ?? '?'} (${sourceLabel(naturalRef)}${alsoRecorded}) → ${natural.clientP50 <= naturalRef.greedyNatural ? 'met' : 'NOT met'}`,
        );
      }
    }
  }

  if (doThroughput) {
    const { questions, source } = await questionMix();
    const slice = duration / (2 * Math.ceil(rounds / 2));
    console.log(`\nthroughput: autocannon, POST /v1/chat, greedy natural replies (default maxNewTokens) to ${source}, round robin;`);
    console.log(
      `per client count about ${duration} s per server, in rounds of ${slice.toFixed(1)} s that alternate batching on and off (this machine's speed drifts by tens`,
    );
    console.log(
      `of per cent within a minute: alternating lets both see the same drift), half of them with each server's thread started first, after a ${warmup} s`,
    );
    console.log(`warm-up per server; batching on: maxBatch ${maxBatch}, maxWaitMs ${maxWaitMs}`);
    // Both servers up at once, each in its own thread; only the one under load works. Half the rounds
    // with each server's thread started first, as for latency.
    const parts = clients.map(() => ({ on: [] as LoadRow[], off: [] as LoadRow[] }));
    for (const order of [
      ['on', 'off'],
      ['off', 'on'],
    ] as const) {
      const servers = {} as Record<'on' | 'off', ServerThread>;
      for (const mode of order)
        servers[mode] = await ServerThread.start({ model: modelDir, backend: values.backend, wasmThreads, batching: mode === 'on', maxBatch, maxWaitMs });
      backendLine ||= servers.on.ready.backendLine;
      try {
        for (const mode of ['on', 'off'] as const) {
          if (warmup <= 0) continue;
          await runLoad(servers[mode], questions, Math.max(...clients), warmup);
          await servers[mode].settle();
          await servers[mode].stats(true);
        }
        for (const [i, connections] of clients.entries()) {
          for (let round = 0; round < Math.ceil(rounds / 2); round++) {
            // Each mode goes first every other round, so that neither always follows the other.
            for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
              parts[i]![mode].push(await runLoad(servers[mode], questions, connections, slice));
              await servers[mode].settle();
            }
          }
        }
      } finally {
        await Promise.all([servers.on.close(), servers.off.close()]);
      }
    }
    const results: Record<'on' | 'off', LoadRow[]> = { on: parts.map((p) => combineRounds(p.on)), off: parts.map((p) => combineRounds(p.off)) };
    const roundRatios = parts.map((p) => p.on.map((on, r) => on.rps / p.off[r]!.rps));
    clients.forEach((connections, i) => {
      const line = (mode: 'on' | 'off') => `${results[mode][i]!.rps.toFixed(1)} req/s (rounds: ${parts[i]![mode].map((r) => r.rps.toFixed(0)).join(', ')})`;
      console.log(`  ${String(connections).padStart(3)} clients: batching on ${line('on')}; off ${line('off')}`);
    });

    const errs = (r: LoadRow): string => `${r.errors}/${r.non2xx}`;
    const table: string[][] = [
      [
        'clients',
        'on req/s',
        'on p50',
        'on p99',
        'on err/non2xx',
        'on batch',
        'on tok/reply',
        'off req/s',
        'off p50',
        'off p99',
        'off err/non2xx',
        'off tok/reply',
        'on/off req/s',
        'by round (median)',
      ],
    ];
    clients.forEach((c, i) => {
      const on = results.on[i]!;
      const off = results.off[i]!;
      table.push([
        String(c),
        on.rps.toFixed(1),
        String(on.p50),
        String(on.p99),
        errs(on),
        on.meanBatch.toFixed(1),
        on.tokensPerReply.toFixed(1),
        off.rps.toFixed(1),
        String(off.p50),
        String(off.p99),
        errs(off),
        off.tokensPerReply.toFixed(1),
        `${(on.rps / off.rps).toFixed(2)}×`,
        `${median(roundRatios[i]!).toFixed(2)}×`,
      ]);
    });
    console.log(
      `\nthroughput, batching on vs off (req/s: 2xx replies per second over all rounds; p50: median of the rounds' p50, p99: the worst round's p99, client latency in ms;`,
    );
    console.log(` batch: mean requests per decoder step; by round: the median of the rounds' on/off ratios)`);
    printTable(table);
    const top = clients.indexOf(32) >= 0 ? clients.indexOf(32) : clients.length - 1;
    const on = results.on[top]!;
    const off = results.off[top]!;
    const r = on.rps / off.rps;
    console.log(
      `target at ${clients[top]} clients: batching ≥ 3× the req/s of batching off → ${r.toFixed(2)}× ${r >= 3 ? 'met' : 'NOT met'} (rounds: ${roundRatios[top]!.map((x) => x.toFixed(2)).join(', ')}); p99 under 1 s with batching → ${on.p99} ms ${on.p99 < 1000 ? 'met' : 'NOT met'}`,
    );
  }
  if (doModel) {
    const { questions, source } = await questionMix();
    const callers = Math.max(...clients);
    const slice = duration / (2 * Math.ceil(rounds / 2));
    console.log(
      `\nthe model alone: one copy of the model in the benchmark's own thread, tokenizing, decoding (DecodeBatcher) and detokenizing as the service does,`,
    );
    console.log(`without HTTP or JSON; ${callers} closed-loop callers, each sending its next question once its reply came;`);
    console.log(
      `greedy natural replies to ${source}; about ${duration} s per mode in rounds of ${slice.toFixed(1)} s alternating batching on and off, after a ${Math.max(warmup, MODEL_WARMUP_MIN_S)} s warm-up each`,
    );
    const rows = await measureModelAlone(
      { model: modelDir, backend: values.backend, wasmThreads, maxBatch, maxWaitMs },
      questions,
      callers,
      slice,
      Math.ceil(rounds / 2) * 2,
      warmup,
    );
    const table: string[][] = [
      ['callers', 'on req/s', 'on ms/reply', 'on batch', 'on tok/reply', 'off req/s', 'off ms/reply', 'off tok/reply', 'on/off req/s', 'by round (median)'],
    ];
    const ratios = rows.on.map((on, r) => on.replies / on.seconds / (rows.off[r]!.replies / rows.off[r]!.seconds));
    const on = sumModelRounds(rows.on);
    const off = sumModelRounds(rows.off);
    table.push([
      String(callers),
      on.rps.toFixed(1),
      (1000 / on.rps).toFixed(2),
      on.meanBatch.toFixed(1),
      on.tokensPerReply.toFixed(1),
      off.rps.toFixed(1),
      (1000 / off.rps).toFixed(2),
      off.tokensPerReply.toFixed(1),
      `${(on.rps / off.rps).toFixed(2)}×`,
      `${median(ratios).toFixed(2)}×`,
    ]);
    console.log(`(ms/reply: the thread's time per reply, 1000 / req/s, since the callers keep it busy; batch: mean requests per decoder step)`);
    printTable(table);
    console.log(
      `the model alone at ${callers} callers: batching on/off ${(on.rps / off.rps).toFixed(2)}× (rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}), the ceiling for the service's ratio over HTTP`,
    );
    backendLine ||= rows.backendLine;
  }
  if (backendLine) console.log(`\nserver ${backendLine}`);
}

/** The model-alone part always warms up this long: its first requests compile kernels. */
const MODEL_WARMUP_MIN_S = 0.5;

/** What one round of the model-alone measurement gave for one mode. */
interface ModelRound {
  seconds: number;
  replies: number;
  tokens: number;
  steps: number;
  stepRequests: number;
}

function sumModelRounds(rounds: readonly ModelRound[]): { rps: number; meanBatch: number; tokensPerReply: number } {
  const sum = (pick: (r: ModelRound) => number) => rounds.reduce((s, r) => s + pick(r), 0);
  const replies = sum((r) => r.replies);
  return {
    rps: replies / sum((r) => r.seconds),
    meanBatch:
      sum((r) => r.stepRequests) /
      Math.max(
        1,
        sum((r) => r.steps),
      ),
    tokensPerReply: sum((r) => r.tokens) / Math.max(1, replies),
  };
}

/**
 * The run directory's model and tokenizer, loaded once in this thread, and
 * two DecodeBatchers over that one model, batching on and off (with two
 * copies loaded the unbatched one ran slower here, which flattered
 * batching). Each caller tokenizes its next question, submits
 * it and decodes the reply, as ChatModel.reply does, as soon as its last
 * reply came; `rounds` rounds of `seconds` per mode, each first every other round.
 */
async function measureModelAlone(
  spec: Omit<ServerSpec, 'batching'>,
  questions: readonly string[],
  callers: number,
  seconds: number,
  rounds: number,
  warmup: number,
): Promise<{ on: ModelRound[]; off: ModelRound[]; backendLine: string }> {
  const [{ DecodeBatcher, initBackend, loadModel, parseBackendChoice, TOKENIZER_FILE }, { Tokenizer }] = await Promise.all([
    import('@hanmadi/model'),
    import('@hanmadi/tokenizer'),
  ]);
  let backendLine = '';
  await initBackend(parseBackendChoice(spec.backend, '--backend'), (line) => (backendLine = line), { wasmThreads: spec.wasmThreads });
  const { model, dir } = await loadModel(spec.model);
  const counts = { on: { steps: 0, stepRequests: 0 }, off: { steps: 0, stepRequests: 0 } };
  const batchers = {
    on: new DecodeBatcher(model, {
      batching: true,
      maxBatch: spec.maxBatch,
      maxWaitMs: spec.maxWaitMs,
      onStep: (n) => ((counts.on.steps += 1), (counts.on.stepRequests += n)),
    }),
    off: new DecodeBatcher(model, { batching: false, onStep: (n) => ((counts.off.steps += 1), (counts.off.stepRequests += n)) }),
  };
  try {
    const tokenizer = await Tokenizer.load(join(dir.dir, TOKENIZER_FILE));
    let next = 0;
    const load = async (mode: 'on' | 'off', forSeconds: number): Promise<ModelRound> => {
      counts[mode] = { steps: 0, stepRequests: 0 };
      let replies = 0;
      let tokens = 0;
      const started = performance.now();
      const end = started + forSeconds * 1000;
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (performance.now() < end) {
            const source = tokenizer.encode(questions[next++ % questions.length]!);
            const out = await batchers[mode].submit({ source, options: { strategy: 'greedy' } });
            tokenizer.decode(out.tokens);
            replies++;
            tokens += out.tokens.length;
          }
        }),
      );
      return { seconds: (performance.now() - started) / 1000, replies, tokens, ...counts[mode] };
    };
    for (const mode of ['on', 'off'] as const) await load(mode, Math.max(warmup, MODEL_WARMUP_MIN_S));
    const out = { on: [] as ModelRound[], off: [] as ModelRound[] };
    for (let round = 0; round < rounds; round++) {
      for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) out[mode].push(await load(mode, seconds));
    }
    return { ...out, backendLine };
  } finally {
    await Promise.all([batchers.on.close(), batchers.off.close()]);
    model.dispose();
  }
}

// --- replicas behind HAProxy -------------------------------------------------------

interface ReplicaBench {
  modelDir: string;
  backend: string;
  wasmThreads: number;
  replicas: number;
  clients: number;
  duration: number;
  warmup: number;
  questions: readonly string[];
  source: string;
}

/**
 * One `hanmadi serve` process under the load, then `replicas` of them behind
 * Debian's haproxy running docker/haproxy.cfg (loopback addresses), under the
 * same load right after: the processes are the bundled CLI, as the image runs it.
 */
async function benchReplicas(b: ReplicaBench): Promise<void> {
  const { CLI, freePort, haproxyVersion, loopbackConfigFor, REPLICA_HEADER, startHaproxy, startReplica, stop, waitFor200 } =
    await import('../docker/replicas.js');
  const version = haproxyVersion();
  if (!version) throw new Error('--replicas runs HAProxy from the PATH: apt-get install haproxy');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: pnpm build`);
  const flags = ['--backend', b.backend, '--wasm-threads', String(b.wasmThreads)];
  const dir = mkdtempSync(join(os.tmpdir(), 'hanmadi-bench-replicas-'));
  console.log(
    `\nreplicas: autocannon, ${b.clients} clients, POST /v1/chat, greedy natural replies to ${b.source}; ${b.duration} s per setup after a ${b.warmup} s warm-up;`,
  );
  console.log(`each replica a \`hanmadi serve\` process (${flags.join(' ')}); ${version}`);
  const rows: string[][] = [['setup', 'req/s', 'p50 ms', 'p99 ms', 'err/non2xx', 'answered by']];
  let oneRps = 0;
  try {
    for (const count of [1, b.replicas]) {
      const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
      const servers = ports.map((port) => startReplica(b.modelDir, port, flags));
      const started = [...servers];
      try {
        await Promise.all(servers.map((s, i) => waitFor200(`http://127.0.0.1:${ports[i]}/readyz`, s)));
        let url = `http://127.0.0.1:${ports[0]}/`;
        let label = '1 process, direct';
        if (count > 1) {
          const lb = await freePort();
          const haproxy = startHaproxy(loopbackConfigFor(lb, ports), dir);
          started.push(haproxy);
          url = `http://127.0.0.1:${lb}/`;
          await waitFor200(`${url}readyz`, haproxy, 10_000);
          label = `${count} processes behind HAProxy`;
        }
        if (b.warmup > 0) await loadChat(url, b.questions, b.clients, b.warmup);
        const { result, counts } = await loadChat(url, b.questions, b.clients, b.duration, count > 1 ? REPLICA_HEADER : undefined);
        const rps = result['2xx'] / result.duration;
        if (count === 1) oneRps = rps;
        const by =
          count > 1
            ? [...counts]
                .sort()
                .map(([name, n]) => `${name} ${n}`)
                .join(', ')
            : '–';
        rows.push([label, rps.toFixed(1), String(result.latency.p50), String(result.latency.p99), `${result.errors}/${result.non2xx}`, by]);
      } finally {
        await Promise.all(started.reverse().map((p) => stop(p)));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(rows);
  const many = Number(rows.at(-1)![1]);
  console.log(
    `${b.replicas} replicas / 1 process: ${(many / oneRps).toFixed(2)}× the req/s on ${os.cpus().length} CPU cores (replicas share the cores: expect a gain only with cores to spare)`,
  );
}
