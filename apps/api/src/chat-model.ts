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
}

export interface Reply {
  reply: string;
  finishReason: FinishReason;
  tokenIds: number[];
  score: number;
  promptTokens: number;
}

interface ChatModelEvents {
  /** Requests that started a batch, or joined a running one, together. */
  batch: [size: number];
  /** Requests decoded by one decoder step. */
  step: [requests: number];
  tokens: [count: number];
}

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

  /** Loads a model directory (a run directory of `pnpm train` serves its best model) with its generation config. */
  static async load(dir: string, batching: BatchingOptions = DEFAULT_BATCHING): Promise<ChatModel> {
    const { model, dir: loaded } = await loadModel(dir);
    try {
      const generationConfig = await readGenerationConfig(loaded.dir);
      const tokenizer = await Tokenizer.load(join(loaded.dir, TOKENIZER_FILE));
      return new ChatModel(basename(resolve(dir)), resolve(dir), generationConfig, model, tokenizer, batching);
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
    const streamer = options.onText ? new TextStreamer((ids) => this.tokenizer.decode(ids), options.onText) : undefined;
    const out = await this.batcher.submit({
      source,
      options: decoding,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(streamer ? { onToken: (id: number) => streamer.put(id) } : {}),
    });
    streamer?.end(out.tokens);
    this.emit('tokens', out.tokens.length);
    return {
      reply: this.tokenizer.decode(out.tokens),
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
