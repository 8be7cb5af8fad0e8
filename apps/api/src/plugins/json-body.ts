import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './errors.js';

/**
 * The path of the first key that could reach an object's prototype once
 * parsed (`__proto__`, or `constructor.prototype`), as "decoding.__proto__";
 * the keys Fastify's default parser (secure-json-parse) refuses without
 * saying which, and which the strict schemas would never see.
 */
export function prototypeKeyPath(value: unknown, path: readonly string[] = []): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Object.hasOwn(value, '__proto__')) return [...path, '__proto__'].join('.');
  const ctor: unknown = (value as Record<string, unknown>)['constructor'];
  if (Object.hasOwn(value, 'constructor') && typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype'))
    return [...path, 'constructor', 'prototype'].join('.');
  for (const [key, child] of Object.entries(value)) {
    const found = prototypeKeyPath(child, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

/** Request bodies are JSON only (415 otherwise), and a body that will not parse gets a 400 that says why. */
const jsonBodyPluginBody: FastifyPluginAsync = async (app) => {
  // Fastify also parses text/plain by default.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body: string, done) => {
    if (body.length === 0) return done(new ApiError(400, 'the request body is empty; send a JSON object', null, 'invalid_json'), undefined);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (error) {
      return done(new ApiError(400, `the request body is not valid JSON: ${(error as Error).message}`, null, 'invalid_json'), undefined);
    }
    const poisoned = prototypeKeyPath(value);
    if (poisoned) return done(new ApiError(400, `${poisoned}: not an accepted field name`, poisoned, 'invalid_value'), undefined);
    done(null, value);
  });
};

export const jsonBodyPlugin = fp(jsonBodyPluginBody, { name: 'json-body', fastify: '5.x' });
