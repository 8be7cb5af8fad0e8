import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import { CSP_DIRECTIVES } from './security-headers.js';

// From source the page is src/web/index.html; the bundled `hanmadi` (apps/cli/dist) ships web/ beside it.
const PAGE = new URL(new URL(import.meta.url).pathname.endsWith('.ts') ? '../web/index.html' : './web/index.html', import.meta.url);

export interface WebOptions {
  modelId: string;
  /** The longest message the server accepts, which the page's input enforces too. */
  maxMessageChars: number;
}

/** A CSP hash-source admitting the inline element with this text. https://www.w3.org/TR/CSP3/#grammardef-hash-source */
const hashSource = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Hash-sources of the page's inline `<script>` or `<style>` elements. */
function inlineHashes(html: string, tag: 'script' | 'style'): string[] {
  return [...html.matchAll(new RegExp(`<${tag}\\b[^>]*>([\\s\\S]*?)</${tag}>`, 'g'))].map((match) => hashSource(match[1]!));
}

/** The chat page at `/`: one static file that streams replies from /v1/chat/completions. */
export const webPlugin: FastifyPluginAsync<WebOptions> = async (app, { modelId, maxMessageChars }) => {
  // The page learns the model id and the message limit from its own HTML, saving a round trip before the first message.
  const html = (await readFile(PAGE, 'utf8'))
    .replace('__MODEL_ID__', () => JSON.stringify(modelId).replace(/</g, '\\u003c'))
    .replace('__MAX_MESSAGE_CHARS__', String(maxMessageChars));
  // Its inline script and style are admitted by hash, so neither needs 'unsafe-inline'.
  const directives = { ...CSP_DIRECTIVES, scriptSrc: inlineHashes(html, 'script'), styleSrc: inlineHashes(html, 'style') };
  app.get('/', { schema: { hide: true }, helmet: { contentSecurityPolicy: { useDefaults: false, directives } } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(html),
  );
};
