import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { ChatModel } from './chat-model.js';
import { authPlugin } from './plugins/auth.js';
import type { CorsOrigins, TrustProxy } from './network-options.js';
import { chatPlugin } from './plugins/chat.js';
import { corsPlugin } from './plugins/cors.js';
import { docsPlugin } from './plugins/docs.js';
import { ApiError, errorsPlugin } from './plugins/errors.js';
import { healthPlugin } from './plugins/health.js';
import { jsonBodyPlugin } from './plugins/json-body.js';
import { metricsPlugin } from './plugins/metrics.js';
import { openAiPlugin } from './plugins/openai.js';
import { securityHeadersPlugin } from './plugins/security-headers.js';
import { webPlugin } from './plugins/web.js';
import { DEFAULT_LIMITS, shuttingDownError, type ReplyLimits } from './replying.js';
import { requestLogValue } from './request-log.js';

const HEALTH_ROUTES = new Set(['/healthz', '/readyz']);

export interface AppOptions {
  model: ChatModel;
  limits?: ReplyLimits;
  /** Bearer key required on /v1/*; none (default) leaves the API open. */
  apiKey?: string | undefined;
  /** Requests per minute per client address on /v1/*; 0 or none is unlimited. */
  rateLimitPerMinute?: number | undefined;
  /** Origins allowed to call the API from a browser (`--cors-origin`); none (default) sends no CORS headers. */
  corsOrigins?: CorsOrigins | undefined;
  /** Fastify's trustProxy (`--trust-proxy`): whose X-Forwarded-For names the client that rate limits and logs see. */
  trustProxy?: TrustProxy | undefined;
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
    // Request log lines without query values: clients put keys there (?api_key=…).
    ...(options.logger ? { loggerInstance: options.logger.child({}, { serializers: { req: requestLogValue } }) as FastifyBaseLogger } : { logger: false }),
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    // A hop count as the function Fastify makes of one (its types leave numbers out).
    trustProxy: typeof options.trustProxy === 'number' ? trustHops(options.trustProxy) : (options.trustProxy ?? false),
    // Streams and slow replies end on our own timeout (504), not a socket cut.
    requestTimeout: limits.requestTimeoutMs + 5_000,
    // Fastify's own 503 while closing has neither our error shape nor Retry-After; the hook below answers instead.
    return503OnClosing: false,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  let closing = false;
  const isClosing = () => closing;
  // Fastify stops accepting connections and waits for in-flight requests on
  // close(); readiness and new chat requests say so meanwhile.
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Requests still arriving on open connections are refused; the health probes answer, /readyz with "closing".
  app.addHook('onRequest', async (request) => {
    if (closing && !HEALTH_ROUTES.has(request.routeOptions.url ?? '')) throw shuttingDownError();
  });
  // A keep-alive connection that finishes its last request during shutdown
  // would hold close() open until the keep-alive timeout (72 s).
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close');
  });

  await app.register(securityHeadersPlugin);
  await app.register(errorsPlugin);
  if (options.corsOrigins) await app.register(corsPlugin, { origins: options.corsOrigins });
  await app.register(jsonBodyPlugin);
  await app.register(docsPlugin, { version: options.version ?? '0.1.0', bearer: Boolean(options.apiKey) });
  await app.register(metricsPlugin, { model });
  await app.register(healthPlugin, { model, isClosing });
  await app.register(webPlugin, { modelId: model.id, maxMessageChars: limits.maxMessageChars });
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

/** Trusts the `hops` nearest proxies: X-Forwarded-For's address that many hops back is the client. */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}
