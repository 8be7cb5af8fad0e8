import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ChatModel, ReplyTiming } from '../chat-model.js';

export interface MetricsOptions {
  model: ChatModel;
}

declare module 'fastify' {
  interface FastifyRequest {
    metricsStartedAt?: bigint;
  }
}

/**
 * Prometheus metrics at `GET /metrics`, in a registry of this app's own
 * (prom-client's default registry is process-global, and two apps in one
 * process — as in the tests — would count into each other).
 */
const metricsPluginBody: FastifyPluginAsync<MetricsOptions> = async (app, { model }) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hanmadi_' });
  const duration = new Histogram({
    name: 'hanmadi_http_request_duration_seconds',
    help: 'HTTP request latency by route and status (streams: until the last event)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const tokens = new Counter({ name: 'hanmadi_generated_tokens_total', help: 'Tokens generated (EOS not counted)', registers: [registry] });
  const batchSize = new Histogram({
    name: 'hanmadi_batch_size',
    help: 'Requests that started a batch, or joined a running one, together',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const stepSize = new Histogram({
    name: 'hanmadi_decode_step_requests',
    help: 'Requests decoded together by one decoder step',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  // Named as vLLM names its own (vllm:time_to_first_token_seconds, …), so dashboards carry over.
  const latencyBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30];
  const firstToken = new Histogram({
    name: 'hanmadi_time_to_first_token_seconds',
    help: 'From a request reaching the decoder queue to its first reply token (queue wait included)',
    buckets: latencyBuckets,
    registers: [registry],
  });
  const perToken = new Histogram({
    name: 'hanmadi_time_per_output_token_seconds',
    help: "Mean time between a reply's tokens after the first (greedy and sampling; beam search sends its tokens at once)",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 1],
    registers: [registry],
  });
  const queueTime = new Histogram({
    name: 'hanmadi_request_queue_time_seconds',
    help: 'How long a request waited in the decoder queue before a batch took it',
    buckets: latencyBuckets,
    registers: [registry],
  });
  new Gauge({
    name: 'hanmadi_queue_length',
    help: 'Requests waiting for the decoder',
    registers: [registry],
    collect() {
      this.set(model.queueLength);
    },
  });
  new Gauge({
    name: 'hanmadi_requests_decoding',
    help: 'Requests being decoded now',
    registers: [registry],
    collect() {
      this.set(model.inFlight);
    },
  });

  const onTokens = (count: number) => tokens.inc(count);
  const onBatch = (size: number) => batchSize.observe(size);
  const onStep = (requests: number) => stepSize.observe(requests);
  const onTiming = (t: ReplyTiming) => {
    queueTime.observe(t.queueSeconds);
    firstToken.observe(t.firstTokenSeconds);
    if (t.perTokenSeconds !== undefined) perToken.observe(t.perTokenSeconds);
  };
  model.on('tokens', onTokens);
  model.on('batch', onBatch);
  model.on('step', onStep);
  model.on('timing', onTiming);
  app.addHook('onClose', async () => {
    model.off('tokens', onTokens);
    model.off('batch', onBatch);
    model.off('step', onStep);
    model.off('timing', onTiming);
  });

  app.addHook('onRequest', async (request) => {
    request.metricsStartedAt = process.hrtime.bigint();
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.metricsStartedAt === undefined) return;
    const seconds = Number(process.hrtime.bigint() - request.metricsStartedAt) / 1e9;
    // Unmatched URLs share one label: a scanner must not create a series per path.
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe({ method: request.method, route, status: String(reply.statusCode) }, seconds);
  });

  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' } }, async (_request, reply) => {
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
};

export const metricsPlugin = fp(metricsPluginBody);
