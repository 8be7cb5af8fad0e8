import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { ChatModel } from './chat-model.js';
import { authPlugin } from './plugins/auth.js';
import { chatPlugin } from './plugins/chat.js';
import { docsPlugin } from './plugins/docs.js';
import { ApiError, errorsPlugin } from './plugins/errors.js';
import { healthPlugin } from './plugins/health.js';
import { metricsPlugin } from './plugins/metrics.js';
import { openAiPlugin } from './plugins/openai.js';
import { webPlugin } from './plugins/web.js';
import { DEFAULT_LIMITS, type ReplyLimits } from './replying.js';

export interface AppOptions {
  model: ChatModel;
  limits?: ReplyLimits;
  /** Bearer key required on /v1/*; none (default) leaves the API open. */
  apiKey?: string | undefined;
  /** Requests per minute per client address on /v1/*; 0 or none is unlimited. */
  rateLimitPerMinute?: number | undefined;
  /** Largest request body in bytes (413 beyond). */
  bodyLimit?: number;
  logger?: Logger | false;
  version?: string;
}

/**
 * The chat service as a Fastify app, not yet listening: health, metrics,
 * docs and the page are open; the /v1 routes sit in a scope of their own,
 * behind the API key and the rate limit when those are set.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { model } = options;
  const limits = options.limits ?? DEFAULT_LIMITS;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    // Streams and slow replies end on our own timeout (504), not a socket cut.
    requestTimeout: limits.requestTimeoutMs + 5_000,
  });
  // Fastify parses text/plain by default; this API takes JSON only (415 otherwise).
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  let closing = false;
  const isClosing = () => closing;
  // Fastify stops accepting connections and waits for in-flight requests on
  // close(); readiness and new chat requests say so meanwhile.
  app.addHook('preClose', async () => {
    closing = true;
  });
  // A keep-alive connection that finishes its last request during shutdown
  // would hold close() open until the keep-alive timeout (72 s).
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close');
  });

  await app.register(errorsPlugin);
  await app.register(docsPlugin, { version: options.version ?? '0.1.0', bearer: Boolean(options.apiKey) });
  await app.register(metricsPlugin, { model });
  await app.register(healthPlugin, { model, isClosing });
  await app.register(webPlugin, { modelId: model.id });
  await app.register(async (v1) => {
    if (options.rateLimitPerMinute) {
      await v1.register(rateLimit, {
        max: options.rateLimitPerMinute,
        timeWindow: 60_000,
        errorResponseBuilder: (_request, context) =>
          new ApiError(429, `rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`, null, 'rate_limited', {
            'retry-after': String(Math.ceil(context.ttl / 1000)),
          }),
      });
    }
    if (options.apiKey) await v1.register(authPlugin, { apiKey: options.apiKey });
    await v1.register(chatPlugin, { model, limits, isClosing });
    await v1.register(openAiPlugin, { model, limits, isClosing });
  });
  return app;
}
