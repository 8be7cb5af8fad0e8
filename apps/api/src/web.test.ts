/**
 * The chat page end to end, in headless Chromium against a real server and a
 * tiny trained model: typing a message streams the model's reply into a bot
 * bubble, an API key is asked for when the server wants one, and the page
 * talks to nothing but the server it came from.
 *
 * Needs a Chromium binary ($CHROMIUM_PATH, else /usr/bin/chromium): CI
 * (CI=true) fails without one; elsewhere the tests are skipped, saying why.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { GENERATION_CONFIG_FILE, initBackend } from '@hanmadi/model';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from './app.js';
import { startServer, type RunningServer } from './serve-command.js';
import { trainTinyModelDir } from '@hanmadi/testing';
import { testServeSettings } from './testing/serve-settings.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] || '/usr/bin/chromium';
const IN_CI = process.env['CI'] === 'true';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SKIP_REASON = HAVE_CHROMIUM || IN_CI ? undefined : `no Chromium at ${CHROMIUM} (install chromium or set CHROMIUM_PATH); skipped outside CI`;
if (SKIP_REASON) console.warn(`web.test.ts: ${SKIP_REASON}`);

/** No traffic of the browser's own (updates, metrics, safe browsing...), and flags a root user in a container needs. */
const CHROMIUM_ARGS = [
  '--disable-background-networking',
  '--no-sandbox',
  '--disable-dev-shm-usage',
  '--disable-gpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--no-proxy-server',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--disable-extensions',
  '--disable-breakpad',
  '--disable-client-side-phishing-detection',
  '--disable-domain-reliability',
  '--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater',
  '--metrics-recording-only',
  '--password-store=basic',
  '--use-mock-keychain',
];

/** A message the tiny model answers with several tokens, each streamed as its own delta. */
const MESSAGE = '오늘 너무 힘들어';
const API_KEY = 'test-key-1234';
const TIMEOUT_MS = 30_000;

interface ChatAnswer {
  reply: string;
  tokens: number;
  tokenIds: number[];
}

describe.skipIf(SKIP_REASON !== undefined)(`the chat page in headless Chromium${SKIP_REASON ? ` (${SKIP_REASON})` : ''}`, () => {
  let run: Awaited<ReturnType<typeof trainTinyModelDir>> | undefined;
  let server: RunningServer | undefined;
  /** A second app on the same model that requires an API key. */
  let keyed: FastifyInstance | undefined;
  let keyedUrl = '';
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`no Chromium at ${CHROMIUM}: CI must install it (apt-get install chromium) or set CHROMIUM_PATH`);
    // Started first: a browser that cannot start fails the suite before the training.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: TIMEOUT_MS });
    await initBackend('wasm', () => {});
    run = await trainTinyModelDir();
    // The built-in greedy decoding: the trainer's guards make this tiny model's reply too short to watch stream.
    writeFileSync(join(run.dir, GENERATION_CONFIG_FILE), '{}\n');
    server = await startServer(testServeSettings(run.dir, { timeoutMs: TIMEOUT_MS }), pino({ level: 'silent' }));
    await server.ready;
    keyed = await buildApp({ model: server.model, apiKey: API_KEY, limits: { maxMessageChars: 500, requestTimeoutMs: TIMEOUT_MS } });
    await keyed.listen({ port: 0, host: '127.0.0.1' });
    const address = keyed.server.address();
    if (typeof address !== 'object' || !address) throw new Error('the keyed server has no port');
    keyedUrl = `http://127.0.0.1:${address.port}/`;
  });

  afterAll(async () => {
    // Each step runs even when one before it failed; the first failure is reported.
    const steps = [...contexts.map((c) => () => c.close()), () => browser?.close(), () => keyed?.close(), () => server?.close(), () => run?.remove()];
    const errors: unknown[] = [];
    for (const step of steps)
      await Promise.resolve()
        .then(step)
        .catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  });

  /** A fresh page in its own context, recording the URL of every request it makes. */
  async function openPage(url: string): Promise<{ page: Page; requests: string[]; authorizations: (string | undefined)[] }> {
    const context = await browser!.newContext();
    contexts.push(context);
    const requests: string[] = [];
    const authorizations: (string | undefined)[] = [];
    context.on('request', (request) => {
      requests.push(request.url());
      if (request.method() === 'POST') authorizations.push(request.headers()['authorization']);
    });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    await page.goto(url);
    return { page, requests, authorizations };
  }

  /** Types a message, presses Enter and waits until the reply is done or an error is shown. */
  async function send(page: Page, text: string): Promise<void> {
    const before = await page.locator('.msg.bot[data-state="done"], .msg.error').count();
    await page.locator('#message').pressSequentially(text);
    await page.locator('#message').press('Enter');
    // A locator, not waitForFunction: the page's CSP forbids the eval that runs a predicate.
    await page.locator('.msg.bot[data-state="done"], .msg.error').nth(before).waitFor({ state: 'attached', timeout: TIMEOUT_MS });
  }

  /**
   * Records the bot bubble's text each time the page changes it, one entry per
   * MutationObserver callback (a callback runs after each batch of network
   * data the page reads), skipping repeats.
   */
  const watchBotText = (page: Page) =>
    page.evaluate(`(() => {
      window.__botTexts = [];
      new MutationObserver(() => {
        const bots = document.querySelectorAll('.msg.bot');
        const text = bots.length ? bots[bots.length - 1].textContent : null;
        const seen = window.__botTexts;
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(document.getElementById('log'), { childList: true, subtree: true, characterData: true });
    })()`);
  const botTexts = (page: Page) => page.evaluate('window.__botTexts') as Promise<string[]>;

  async function chat(base: string, body: object, headers: Record<string, string> = {}): Promise<ChatAnswer> {
    const res = await fetch(`${base}v1/chat`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    return (await res.json()) as ChatAnswer;
  }

  it('streams the greedy reply /v1/chat gives into a bot bubble', async () => {
    const url = server!.url;
    // The page sends neither decoding options nor max_tokens: the server's greedy default.
    const expected = await chat(url, { message: MESSAGE });
    const explicit = await chat(url, { message: MESSAGE, decoding: { strategy: 'greedy' } });
    expect(explicit.tokenIds).toEqual(expected.tokenIds);
    // A reply of one token would make the streaming check below vacuous.
    expect(expected.tokens).toBeGreaterThanOrEqual(2);

    const { page } = await openPage(url);
    await expect(page.title()).resolves.toBe('한마디');
    await watchBotText(page);
    await send(page, MESSAGE);

    expect(await page.locator('.msg.error').count()).toBe(0);
    const bot = page.locator('.msg.bot');
    expect(await bot.count()).toBe(1);
    expect(await bot.getAttribute('data-state')).toBe('done');
    const shown = await bot.textContent();
    expect(shown).toBe(expected.reply);

    // Streamed: the text grew over several updates, each a prefix of the whole.
    const texts = await botTexts(page);
    expect(texts.length).toBeGreaterThanOrEqual(2);
    expect(texts.at(-1)).toBe(expected.reply);
    for (const [i, text] of texts.entries()) {
      expect(expected.reply.startsWith(text)).toBe(true);
      if (i > 0) expect(text.length).toBeGreaterThan(texts[i - 1]!.length);
    }
    // Ready for the next message.
    expect(await page.locator('#send').isEnabled()).toBe(true);
    expect(await page.locator('#message').inputValue()).toBe('');
  });

  it("shows the user's message in its own bubble, exactly as typed (NFC)", async () => {
    const { page } = await openPage(server!.url);
    const message = '  한글 메시지, 잘 보이나요? 😀 ';
    await send(page, message);
    const user = page.locator('.msg.user');
    expect(await user.count()).toBe(1);
    const shown = await user.textContent();
    expect(shown).toBe(message.trim());
    expect(shown).toBe(shown!.normalize('NFC'));
    // In order: the user's bubble, then the reply.
    expect(await page.locator('#log > .msg').count()).toBe(2);
    expect(await page.locator('#log > .msg').nth(0).getAttribute('class')).toMatch(/\buser\b/);
    expect(await page.locator('#log > .msg').nth(1).getAttribute('class')).toMatch(/\bbot\b/);
  });

  it('asks for the API key when the server wants one, and replies once it is given', async () => {
    const refused = await fetch(`${keyedUrl}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: server!.model.id, stream: true, messages: [{ role: 'user', content: MESSAGE }] }),
    });
    expect(refused.status).toBe(401);
    const refusal = ((await refused.json()) as { error: { message: string } }).error.message;
    const expected = await chat(keyedUrl, { message: MESSAGE }, { authorization: `Bearer ${API_KEY}` });

    const { page, authorizations } = await openPage(keyedUrl);
    const key = page.locator('#key');
    expect(await key.isHidden()).toBe(true);
    await send(page, MESSAGE);
    expect(await page.locator('.msg.error').count()).toBe(1);
    expect(await page.locator('.msg.error').textContent()).toBe(refusal);
    expect(await page.locator('.msg.bot').count()).toBe(0);
    expect(await key.isVisible()).toBe(true);

    await key.fill(API_KEY);
    await send(page, MESSAGE);
    expect(await page.locator('.msg.error').count()).toBe(1);
    const bot = page.locator('.msg.bot');
    expect(await bot.count()).toBe(1);
    expect(await bot.getAttribute('data-state')).toBe('done');
    expect(await bot.textContent()).toBe(expected.reply);
    expect(authorizations).toEqual([undefined, `Bearer ${API_KEY}`]);
  });

  it('works under its Content Security Policy, as do the API docs', async () => {
    const context = await browser!.newContext();
    contexts.push(context);
    const violations: string[] = [];
    context.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    const response = await page.goto(server!.url);
    expect(response?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await send(page, MESSAGE);
    expect(await page.locator('.msg.bot[data-state="done"]').count()).toBe(1);
    await page.goto(`${server!.url}docs`);
    await expect(page.locator('.swagger-ui .info .title').textContent()).resolves.toContain('hanmadi');
    expect(violations).toEqual([]);
  });

  it('makes no request anywhere but the server it was loaded from', async () => {
    const origin = new URL(server!.url).origin;
    const { page, requests } = await openPage(server!.url);
    await send(page, MESSAGE);
    expect(await page.locator('.msg.bot[data-state="done"]').count()).toBe(1);
    // Time for any late request (a favicon, a prefetch) to show up.
    await page.waitForTimeout(500);
    expect(requests).toContain(`${origin}/`);
    expect(requests).toContain(`${origin}/v1/chat/completions`);
    expect(requests.filter((url) => !url.startsWith(`${origin}/`))).toEqual([]);
  });
});
