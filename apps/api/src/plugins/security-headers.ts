import helmet from '@fastify/helmet';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

/**
 * The Content Security Policy of every response: only this server's own
 * scripts, styles and connections, and no framing (the page holds an API
 * key). A route with inline code (the chat page) extends it with hashes.
 * https://www.w3.org/TR/CSP3/
 */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  imgSrc: ["'self'", 'data:'],
  objectSrc: ["'none'"],
  scriptSrc: ["'self'"],
  scriptSrcAttr: ["'none'"],
  styleSrc: ["'self'"],
} satisfies Record<string, string[]>;

/** Security headers (helmet) on every route: CSP, X-Frame-Options DENY, nosniff, no referrer. */
const securityHeadersPluginBody: FastifyPluginAsync = async (app) => {
  await app.register(helmet, {
    // Listed in full: helmet's defaults add upgrade-insecure-requests, which breaks the page served over plain HTTP on a LAN address.
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // TLS, if any, ends in a proxy in front of this server; HSTS is the proxy's to send.
    strictTransportSecurity: false,
  });
};

export const securityHeadersPlugin = fp(securityHeadersPluginBody, { name: 'security-headers', fastify: '5.x' });
