import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/**
 * OpenAPI documentation generated from the routes' zod schemas: the
 * interactive page at `/docs`, the document at `/docs/json`. Registered
 * before the routes, whose schemas it collects as they are added.
 */
const docsPluginBody: FastifyPluginAsync<{ version: string; bearer: boolean }> = async (app, { version, bearer }) => {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'hanmadi (한마디) chat API',
        description: 'Replies of a Korean seq2seq Transformer trained with `pnpm train`. Errors are `{ "error": { message, type, param, code } }`.',
        version,
      },
      ...(bearer ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }, security: [{ bearer: [] }] } : {}),
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Swagger UI sets inline styles (never inline scripts): its pages alone allow them.
    transformStaticCSP: (header) => header.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
  });
};

export const docsPlugin = fp(docsPluginBody);
