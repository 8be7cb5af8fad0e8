import { EventEmitter } from 'node:events';
import { basename, join, resolve } from 'node:path';
import {
  DecodeBatcher,
  loadModel,
  readGenerationConfig,
  resolveGenerateOptions,
  TOKENIZER_FILE,
  type FinishReason,
  type GenerateOptions,
  type GenerationConfig,
  type ModelConfig,
  type Transformer,
} from '@hanmadi/model';
import { Tokenizer } from '@hanmadi/tokenizer';
import { StopSequences } from './stop-sequences.js';
import { TextStreamer } from './text-streamer.js';

export interface BatchingOptions {
  /** Decode concurrent requests together (false: one request at a time, for comparison). */
  batching: boolean;
  /** Most requests decoded as one batch. */
  maxBatch: number;
  /** How long the first request of a batch waits for others while the decoder is idle. */
  maxWaitMs: number;
  /** Requests waiting beyond the one decoding; more are refused (HTTP 503). */
  maxQueue: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { batching: true, maxBatch: 32, maxWaitMs: 0, maxQueue: 256 };

export interface ReplyOptions {
  /** Aborting it (timeout, client gone) abandons the request, queued or decoding. */
  signal?: AbortSignal;
  /** Called with each new piece of reply text as tokens are chosen (beam search: once, at the end). */
  onText?: (delta: string) => void;
  /** Strings on which the reply ends (OpenAI's `stop`): decoding stops as one appears, and the reply is the text before it. */
  stop?: readonly string[];
}

export interface Reply {
  reply: string;
  /** 'stop': a stop string appeared. */
  finishReason: FinishReason | 'stop';
  tokenIds: number[];
  /** Sum of log-probabilities as the search scored it; null when a stop string cut the reply short. */
  score: number | null;
  promptTokens: number;
}

interface ChatModelEvents {
  /** Requests that started a batch, or joined a running one, together. */
  batch: [size: number];
  /** Requests decoded by one decoder step. */
  step: [requests: number];
  tokens: [count: number];
  /** A finished reply's latencies, in seconds (vLLM's and TGI's metrics). */
  timing: [timing: ReplyTiming];
}

export interface ReplyTiming {
  /** From submission until a batch took the request. */
  queueSeconds: number;
  /** From submission until the first token (a reply without tokens: until it ended). */
  firstTokenSeconds: number;
  /** Mean time between later tokens; undefined for fewer than two tokens, or beam search (its tokens come at once). */
  perTokenSeconds: number | undefined;
}

/** The reason a request's signal carries when a stop string ended it. */
const STOPPED = Symbol('stop string');

/**
 * A served run directory: the model, its tokenizer and the batcher that
 * decodes concurrent requests together. Text in, text out; everything
 * about HTTP lives in the plugins.
 */
export class ChatModel extends EventEmitter<ChatModelEvents> {
  private ready = false;
  private readonly batcher: DecodeBatcher;

  private constructor(
    readonly id: string,
    readonly dir: string,
    /** The directory's generation_config.json: decoding defaults for what a request leaves out ({} when it has none). */
    readonly generationConfig: GenerationConfig,
    private readonly model: Transformer,
    private readonly tokenizer: Tokenizer,
    batching: BatchingOptions,
  ) {
    super();
    this.batcher = new DecodeBatcher(model, { ...batching, onBatch: (size) => this.emit('batch', size), onStep: (requests) => this.emit('step', requests) });
  }

  /** Loads a model directory (a run directory of `pnpm train` serves its best model) with its generation config; its id is `servedName`, else the directory's name. */
  static async load(dir: string, batching: BatchingOptions = DEFAULT_BATCHING, servedName?: string): Promise<ChatModel> {
    const { model, dir: loaded } = await loadModel(dir);
    try {
      const generationConfig = await readGenerationConfig(loaded.dir);
      const tokenizer = await Tokenizer.load(join(loaded.dir, TOKENIZER_FILE));
      return new ChatModel(servedName ?? basename(resolve(dir)), resolve(dir), generationConfig, model, tokenizer, batching);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  /** True once the model has decoded its warm-up replies. */
  get isReady(): boolean {
    return this.ready;
  }

  get queueLength(): number {
    return this.batcher.queueLength;
  }

  get inFlight(): number {
    return this.batcher.inFlight;
  }

  /**
   * Decodes a reply with each search strategy once, so that the first real
   * request does not pay for kernel compilation and buffer allocation.
   */
  async warmUp(): Promise<void> {
    // With the generation config's options, so that its processors run before the first request does.
    await this.reply('안녕하세요', resolveGenerateOptions({ maxNewTokens: 4 }, this.generationConfig));
    await this.reply('안녕하세요', resolveGenerateOptions({ strategy: 'beam', numBeams: 2, maxNewTokens: 4 }, this.generationConfig));
    this.ready = true;
  }

  /** The model's reply to one message; rejects on a full queue, an abort or a closed model. */
  async reply(message: string, decoding: GenerateOptions, options: ReplyOptions = {}): Promise<Reply> {
    // The tokenizer normalises (NFC, whitespace) as it encodes.
    const source = this.tokenizer.encode(message);
    const stops = options.stop ?? [];
    // Decoding every prefix costs; only a stream or stop strings need it.
    const streamer =
      options.onText || stops.length > 0
        ? new TextStreamer((ids) => this.tokenizer.decode(ids), options.onText ?? (() => {}), new StopSequences(stops))
        : undefined;
    // A stop string ends the request the way a client's abort does: the batcher drops its row at the next step.
    const stop = new AbortController();
    const clock = new ReplyClock();
    const out = await this.batcher
      .submit({
        source,
        options: decoding,
        signal: options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal,
        onStart: () => clock.start(),
        onToken: (id: number) => {
          clock.token();
          if (streamer?.put(id)) stop.abort(STOPPED);
        },
      })
      .catch((error: unknown) => {
        if (stop.signal.aborted && streamer?.stopped) return { tokens: streamer.stopped.tokens, finishReason: 'stop' as const, score: null };
        throw error;
      });
    streamer?.end(out.tokens);
    this.emit('tokens', out.tokens.length);
    this.emit('timing', clock.timing(decoding.strategy !== 'beam'));
    return {
      reply: streamer?.stopped?.text ?? this.tokenizer.decode(out.tokens),
      finishReason: out.finishReason,
      tokenIds: out.tokens,
      score: out.score,
      promptTokens: Math.min(source.length, this.model.config.maxLength - 1) + 1,
    };
  }

  /** Stops taking requests, finishes those already taken, then frees the model. */
  async close(): Promise<void> {
    this.ready = false;
    await this.batcher.close();
    this.model.dispose();
  }
}

/** The moments of one request: submitted, taken into a batch, each token. */
class ReplyClock {
  private readonly submitted = performance.now();
  private started: number | undefined;
  private first: number | undefined;
  private last: number | undefined;
  private tokens = 0;

  start(): void {
    this.started = performance.now();
  }

  token(): void {
    const now = performance.now();
    this.first ??= now;
    this.last = now;
    this.tokens++;
  }

  timing(streamsTokens: boolean): ReplyTiming {
    const end = performance.now();
    const seconds = (ms: number) => ms / 1000;
    return {
      queueSeconds: seconds((this.started ?? end) - this.submitted),
      firstTokenSeconds: seconds((this.first ?? end) - this.submitted),
      perTokenSeconds: streamsTokens && this.tokens > 1 ? seconds((this.last! - this.first!) / (this.tokens - 1)) : undefined,
    };
  }
}
