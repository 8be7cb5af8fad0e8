import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ChatModel } from '../chat-model.js';
import { assertReady, checkMessage, generateOptions, replyFor, type ReplyLimits } from '../replying.js';
import { ChatRequestSchema, ChatResponseSchema, ErrorSchema } from '../schemas.js';

export interface ChatOptions {
  model: ChatModel;
  limits: ReplyLimits;
  isClosing: () => boolean;
}

/** `POST /v1/chat`: the project's own endpoint, with every decoding option of the model. */
export const chatPlugin: FastifyPluginAsync<ChatOptions> = async (app, { model, limits, isClosing }) => {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/chat',
    {
      schema: {
        tags: ['chat'],
        summary: 'Reply to a message',
        body: ChatRequestSchema,
        response: { 200: ChatResponseSchema, '4xx': ErrorSchema, '5xx': ErrorSchema },
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const message = checkMessage(request.body.message, 'message', limits);
      const options = generateOptions(request.body.decoding, model.generationConfig);
      assertReady(model, isClosing());
      const out = await replyFor(model, message, options, limits, reply, { stop: request.body.stop ?? [] });
      return {
        reply: out.reply,
        finishReason: out.finishReason,
        tokens: out.tokenIds.length,
        tokenIds: out.tokenIds,
        score: out.score,
        latencyMs: Math.round((performance.now() - started) * 100) / 100,
      };
    },
  );
};
