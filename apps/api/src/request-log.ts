import type { FastifyRequest } from 'fastify';

export const REDACTED = '[Redacted]';

/** The URL with every query value replaced by `[Redacted]`: keys and tokens travel there (`?api_key=…`). */
export function redactQuery(url: string): string {
  const start = url.indexOf('?');
  if (start < 0) return url;
  const params = url
    .slice(start + 1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => (pair.includes('=') ? `${pair.slice(0, pair.indexOf('='))}=${REDACTED}` : REDACTED));
  return `${url.slice(0, start)}?${params.join('&')}`;
}

/**
 * A request as log lines show it: the fields of Fastify's default `req`
 * serializer, the URL's query values redacted. Given as the pino logger's
 * own `req` serializer, it overrides Fastify's (lib/logger-pino.js merges
 * the instance's serializers over its defaults).
 */
export function requestLogValue(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactQuery(request.url),
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
