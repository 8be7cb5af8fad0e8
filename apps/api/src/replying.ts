import type { FastifyReply } from 'fastify';
import {
  BatcherClosedError,
  GENERATION_CONFIG_FILE,
  QueueFullError,
  resolveGenerateOptions,
  type GenerateOptions,
  type GenerationConfig,
  type ResolvedGenerateOptions,
} from '@hanmadi/model';
import { normalizeText } from '@hanmadi/corpus';
import type { ChatModel, Reply, ReplyOptions } from './chat-model.js';
import { ApiError } from './plugins/errors.js';
import type { Decoding } from './schemas.js';

/** The limits every chat route enforces. */
export interface ReplyLimits {
  /** Longest message, in characters after NFC normalisation. */
  maxMessageChars: number;
  /** Longest a request may wait and decode before it is abandoned (HTTP 504). */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: ReplyLimits = { maxMessageChars: 500, requestTimeoutMs: 30_000 };

/** Seconds a client told "try again" should wait. */
const RETRY_AFTER_S = '1';

/**
 * The message as the model will see it: NFC with whitespace cleaned, not
 * empty, within the limit (413, naming the limit, when longer).
 */
export function checkMessage(raw: string, param: string, limits: ReplyLimits): string {
  const message = normalizeText(raw);
  if (message === '') throw new ApiError(400, `${param}: must contain some text`, param, 'empty_message');
  if ([...message].length > limits.maxMessageChars) {
    throw new ApiError(413, `${param}: longer than the limit of ${limits.maxMessageChars} characters`, param, 'message_too_long');
  }
  return message;
}

/**
 * /v1/chat's decoding options as `generate()` takes them, what the request
 * leaves out filled from the model's generation config and then the
 * built-in defaults (`resolveGenerateOptions`). Options of another strategy
 * than the one decided on are refused rather than ignored: a temperature
 * sent with greedy decoding would otherwise look like it had an effect.
 */
export function generateOptions(decoding: Decoding = {}, config: GenerationConfig = {}): ResolvedGenerateOptions {
  const strategy = decoding.strategy ?? config.strategy ?? 'greedy';
  const only: Record<string, 'sample' | 'beam'> = {
    temperature: 'sample',
    topK: 'sample',
    topP: 'sample',
    seed: 'sample',
    numBeams: 'beam',
    lengthPenalty: 'beam',
    earlyStopping: 'beam',
  };
  for (const [field, owner] of Object.entries(only)) {
    if (decoding[field as keyof Decoding] !== undefined && strategy !== owner) {
      throw new ApiError(400, `decoding.${field}: only used with strategy "${owner}"`, `decoding.${field}`, 'invalid_value');
    }
  }
  // A minimum the request asks for is checked against the maximum it will get, its own or the config's.
  const max = decoding.maxNewTokens ?? config.maxNewTokens;
  if (decoding.minNewTokens !== undefined && max !== undefined && decoding.minNewTokens > max) {
    const which = decoding.maxNewTokens !== undefined ? 'decoding.maxNewTokens' : `maxNewTokens ${max} of the model's ${GENERATION_CONFIG_FILE}`;
    throw new ApiError(400, `decoding.minNewTokens: must not exceed ${which}`, 'decoding.minNewTokens', 'invalid_value');
  }
  return resolveDecoding({ ...decoding, strategy }, config);
}

/** `resolveGenerateOptions` with its RangeError as a 400; the schemas leave nothing for it to refuse, so this is a safety net. */
export function resolveDecoding(request: GenerateOptions, config: GenerationConfig): ResolvedGenerateOptions {
  try {
    return resolveGenerateOptions(request, config);
  } catch (error) {
    if (error instanceof RangeError) throw new ApiError(400, `decoding: ${error.message}`, 'decoding', 'invalid_value');
    throw error;
  }
}

/** The refusal of a request that comes while the server is shutting down. */
export function shuttingDownError(): ApiError {
  return new ApiError(503, 'the server is shutting down', null, 'shutting_down', { 'retry-after': RETRY_AFTER_S });
}

/** Refuses chat requests while the model is warming up or the server is closing. */
export function assertReady(model: ChatModel, closing: boolean): void {
  if (closing) throw shuttingDownError();
  if (!model.isReady) throw new ApiError(503, 'the model is still loading', null, 'not_ready', { 'retry-after': RETRY_AFTER_S });
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`the reply took longer than the limit of ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

class ClientGoneError extends Error {}

/**
 * Decodes one reply for an HTTP request: abandoned when the time limit
 * passes or the client disconnects, with the batcher's refusals turned into
 * the status codes a client can act on.
 */
export async function replyFor(
  model: ChatModel,
  message: string,
  options: GenerateOptions,
  limits: ReplyLimits,
  reply: FastifyReply,
  { onText, stop }: Pick<ReplyOptions, 'onText' | 'stop'> = {},
): Promise<Reply> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError(limits.requestTimeoutMs)), limits.requestTimeoutMs);
  const gone = () => {
    if (!reply.raw.writableFinished) controller.abort(new ClientGoneError('the client closed the connection'));
  };
  reply.raw.on('close', gone);
  try {
    return await model.reply(message, options, { signal: controller.signal, ...(onText ? { onText } : {}), ...(stop ? { stop } : {}) });
  } catch (error) {
    if (error instanceof QueueFullError) {
      throw new ApiError(503, 'too many requests are waiting; try again shortly', null, 'queue_full', { 'retry-after': RETRY_AFTER_S });
    }
    if (error instanceof BatcherClosedError) throw shuttingDownError();
    if (controller.signal.aborted && controller.signal.reason instanceof TimeoutError)
      throw new ApiError(504, controller.signal.reason.message, null, 'timeout');
    if (controller.signal.aborted) throw new ApiError(499, 'the client closed the connection', null, 'client_closed');
    if (error instanceof RangeError) throw new ApiError(400, `decoding: ${error.message}`, 'decoding', 'invalid_value');
    throw error;
  } finally {
    clearTimeout(timer);
    reply.raw.off('close', gone);
  }
}
