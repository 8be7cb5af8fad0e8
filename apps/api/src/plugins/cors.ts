import cors from '@fastify/cors';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { CorsOrigins } from '../network-options.js';

export interface CorsOptions {
  origins: CorsOrigins;
}

/**
 * CORS for browsers on other origins (`--cors-origin`): preflights answered
 * before the API key is checked, errors included in the allowed responses.
 * https://fetch.spec.whatwg.org/#http-cors-protocol
 */
const corsPluginBody: FastifyPluginAsync<CorsOptions> = async (app, { origins }) => {
  await app.register(cors, {
    origin: origins === '*' ? '*' : origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After'],
    maxAge: 600,
  });
};

export const corsPlugin = fp(corsPluginBody, { name: 'cors', fastify: '5.x' });
