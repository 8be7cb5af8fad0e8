import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ChatModel } from '../chat-model.js';
import { HealthSchema, ReadySchema } from '../schemas.js';

export interface HealthOptions {
  model: ChatModel;
  isClosing: () => boolean;
}

// Keyed by the HTTP server, which the root instance and every encapsulated plugin share.
const draining = new WeakSet<object>();

/**
 * Takes a server out of readiness while it still serves: /readyz answers 503
 * `closing`, so a load balancer checking it stops routing here before the
 * port closes; every other route answers as before.
 */
export function startDraining(app: FastifyInstance): void {
  draining.add(app.server);
}

/**
 * Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the
 * model is loaded and warmed, and the server is neither draining nor shutting
 * down), kept apart so an orchestrator restarts a hung process but only
 * routes traffic to a ready one.
 */
export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, { model, isClosing }) => {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  typed.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness', response: { 200: HealthSchema } } }, () => ({ status: 'ok' as const }));
  typed.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'Readiness: model loaded and warmed, not draining or closing', response: { 200: ReadySchema, 503: ReadySchema } } },
    async (_request, reply) => {
      const status = isClosing() || draining.has(app.server) ? 'closing' : model.isReady ? 'ready' : 'loading';
      return reply.code(status === 'ready' ? 200 : 503).send({ status, model: model.id });
    },
  );
};
