import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { GenerateOptions, GenerationConfig, ResolvedGenerateOptions } from '@hanmadi/model';
import type { ChatModel, Reply } from '../chat-model.js';
import { assertReady, checkMessage, replyFor, resolveDecoding, type ReplyLimits } from '../replying.js';
import { CompletionRequestSchema, CompletionResponseSchema, ErrorSchema, ModelListSchema, type CompletionRequest } from '../schemas.js';
import { ApiError } from './errors.js';

export interface OpenAiOptions {
  model: ChatModel;
  limits: ReplyLimits;
  isClosing: () => boolean;
}

/**
 * The message the model answers: the last user turn. The model was trained
 * on single question/answer pairs, so earlier turns and system prompts
 * cannot condition it; they are accepted so that existing clients work.
 */
function lastUserMessage(request: CompletionRequest, limits: ReplyLimits): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i]!;
    if (m.role !== 'user') continue;
    const text = typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join('');
    return checkMessage(text, `messages.${i}.content`, limits);
  }
  throw new ApiError(400, 'messages: needs at least one message with role "user"', 'messages', 'invalid_value');
}

/**
 * OpenAI's sampling fields in the model's terms. What the client sends wins:
 * temperature 0 is greedy decoding, above 0 sampling at that temperature.
 * What it leaves out comes from the model's generation_config.json, as for
 * /v1/chat: an absent temperature decodes with the config's strategy (and
 * its temperature, beams, …), greedy when the config names none.
 */
function completionOptions(request: CompletionRequest, config: GenerationConfig): ResolvedGenerateOptions {
  const options: GenerateOptions = {};
  if (request.temperature != null) {
    options.strategy = request.temperature > 0 ? 'sample' : 'greedy';
    if (request.temperature > 0) options.temperature = request.temperature;
  }
  const strategy = options.strategy ?? config.strategy ?? 'greedy';
  if (request.top_p != null && request.top_p < 1) {
    if (strategy !== 'sample')
      throw new ApiError(
        400,
        `top_p: only used when sampling: send a temperature above 0 (this request would decode with strategy "${strategy}")`,
        'top_p',
        'invalid_value',
      );
    options.topP = request.top_p;
  }
  if (request.seed != null) options.seed = request.seed;
  if (request.frequency_penalty != null) options.frequencyPenalty = request.frequency_penalty;
  if (request.presence_penalty != null) options.presencePenalty = request.presence_penalty;
  const maxNewTokens = request.max_completion_tokens ?? request.max_tokens;
  if (maxNewTokens != null) options.maxNewTokens = maxNewTokens;
  return resolveDecoding(options, config);
}

/** OpenAI's "stop" covers both EOS and a stop string. */
const finishReason = (reply: Reply) => (reply.finishReason === 'length' ? ('length' as const) : ('stop' as const));

/** `stop` as a list: a string is a list of one. */
const stopStrings = (stop: CompletionRequest['stop']): string[] => (stop == null ? [] : typeof stop === 'string' ? [stop] : stop);

/**
 * Server-sent events in OpenAI's chunk format. The stream's headers are sent
 * with the first piece of text, not before: a request refused while queued
 * (full queue, shutdown) still gets a plain JSON error with its status code.
 */
class CompletionStream {
  private stream: PassThrough | undefined;

  constructor(
    private readonly reply: FastifyReply,
    private readonly base: { id: string; object: 'chat.completion.chunk'; created: number; model: string },
  ) {}

  get started(): boolean {
    return this.stream !== undefined;
  }

  private open(): PassThrough {
    if (this.stream) return this.stream;
    this.stream = new PassThrough();
    void this.reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no')
      .send(this.stream);
    this.event({ ...this.base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    return this.stream;
  }

  event(data: unknown): void {
    this.open().write(`data: ${JSON.stringify(data)}\n\n`);
  }

  text(delta: string): void {
    this.event({ ...this.base, choices: [{ index: 0, delta: { content: delta }, logprobs: null, finish_reason: null }] });
  }

  finish(out: Reply, includeUsage: boolean): void {
    this.event({ ...this.base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(out) }] });
    if (includeUsage) this.event({ ...this.base, choices: [], usage: usage(out) });
    this.end();
  }

  /** An error after the stream began can only travel inside it, as OpenAI sends one. */
  fail(error: ApiError): void {
    this.event(error.body());
    this.end();
  }

  private end(): void {
    const stream = this.open();
    stream.end('data: [DONE]\n\n');
  }
}

function usage(out: Reply) {
  return { prompt_tokens: out.promptTokens, completion_tokens: out.tokenIds.length, total_tokens: out.promptTokens + out.tokenIds.length };
}

/** `POST /v1/chat/completions` and `GET /v1/models`, as OpenAI's clients expect them. */
export const openAiPlugin: FastifyPluginAsync<OpenAiOptions> = async (app, { model, limits, isClosing }) => {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  const created = Math.floor(Date.now() / 1000);

  typed.get('/v1/models', { schema: { tags: ['openai'], summary: 'The served model', response: { 200: ModelListSchema } } }, () => ({
    object: 'list' as const,
    data: [{ id: model.id, object: 'model' as const, created, owned_by: 'hanmadi' }],
  }));

  typed.post(
    '/v1/chat/completions',
    {
      schema: {
        tags: ['openai'],
        summary: 'OpenAI-compatible chat completion (stream: true sends server-sent events ending in "data: [DONE]")',
        body: CompletionRequestSchema,
        response: { 200: CompletionResponseSchema, '4xx': ErrorSchema, '5xx': ErrorSchema },
      },
    },
    async (request, reply) => {
      const body = request.body;
      if (body.model !== model.id)
        throw new ApiError(404, `model: "${body.model}" is not served here; GET /v1/models lists "${model.id}"`, 'model', 'model_not_found');
      const message = lastUserMessage(body, limits);
      const options = completionOptions(body, model.generationConfig);
      const stop = stopStrings(body.stop);
      assertReady(model, isClosing());
      const id = `chatcmpl-${randomUUID()}`;

      if (!body.stream) {
        const out = await replyFor(model, message, options, limits, reply, { stop });
        return {
          id,
          object: 'chat.completion' as const,
          created: Math.floor(Date.now() / 1000),
          model: model.id,
          choices: [{ index: 0, message: { role: 'assistant' as const, content: out.reply, refusal: null }, logprobs: null, finish_reason: finishReason(out) }],
          usage: usage(out),
        };
      }

      const stream = new CompletionStream(reply, { id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: model.id });
      try {
        const out = await replyFor(model, message, options, limits, reply, { stop, onText: (delta) => stream.text(delta) });
        stream.finish(out, body.stream_options?.include_usage === true);
      } catch (error) {
        if (!stream.started) throw error;
        stream.fail(error instanceof ApiError ? error : new ApiError(500, 'internal error; see the server log', null, 'internal_error'));
        if (!(error instanceof ApiError)) request.log.error({ err: error }, 'stream failed');
      }
      return reply;
    },
  );
};
