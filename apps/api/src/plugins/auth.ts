import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './errors.js';

export interface AuthOptions {
  /** The bearer key every request of this scope must carry. */
  apiKey: string;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Requires `Authorization: Bearer <key>`. Written here rather than with
 * @fastify/bearer-auth because that plugin's error body is a bare string,
 * and every error of this API has OpenAI's `{ error: {...} }` shape.
 * Keys are compared as digests in constant time, so neither the length nor
 * a prefix of the key leaks through timing.
 */
const authPluginBody: FastifyPluginAsync<AuthOptions> = async (app, { apiKey }) => {
  const expected = digest(apiKey);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) throw new ApiError(401, 'missing API key: send "Authorization: Bearer <key>"', null, 'missing_api_key');
    if (!timingSafeEqual(digest(match[1]!.trim()), expected)) throw new ApiError(401, 'invalid API key', null, 'invalid_api_key');
  });
};

export const authPlugin = fp(authPluginBody);
