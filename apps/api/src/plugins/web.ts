import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';

const PAGE = new URL('../web/index.html', import.meta.url);

/** The chat page at `/`: one static file that streams replies from /v1/chat/completions. */
export const webPlugin: FastifyPluginAsync<{ modelId: string }> = async (app, { modelId }) => {
  // The page learns the model id from its own HTML, saving a round trip before the first message.
  const html = (await readFile(PAGE, 'utf8')).replace('__MODEL_ID__', JSON.stringify(modelId).replace(/</g, '\\u003c'));
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(html));
};
