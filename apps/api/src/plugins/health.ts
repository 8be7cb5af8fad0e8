import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ChatModel } from '../chat-model.js';
import { HealthSchema, ReadySchema } from '../schemas.js';

export interface HealthOptions {
  model: ChatModel;
  isClosing: () => boolean;
}

/**
 * Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the
 * model is loaded and warmed, and the server is not shutting down), kept
 * apart so an orchestrator restarts a hung process but only routes traffic
 * to a ready one.
 */
export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, { model, isClosing }) => {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  typed.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness', response: { 200: HealthSchema } } }, () => ({ status: 'ok' as const }));
  typed.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'Readiness: model loaded and warmed', response: { 200: ReadySchema, 503: ReadySchema } } },
    async (_request, reply) => {
      const status = isClosing() ? 'closing' : model.isReady ? 'ready' : 'loading';
      return reply.code(status === 'ready' ? 200 : 503).send({ status, model: model.id });
    },
  );
};
