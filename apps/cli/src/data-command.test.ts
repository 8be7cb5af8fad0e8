/**
 * `hanmadi data fetch chatbotdata` against a local HTTP server that serves
 * files from a temporary directory: the pinned file is fetched, checked and
 * put in place; anything else is refused with nothing written.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHATBOT_DATA, REPO_ROOT, SHARED_CORPUS } from '@hanmadi/corpus';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DATASETS, runDataCli } from './data-command.js';

const dir = mkdtempSync(join(tmpdir(), 'hanmadi-data-'));
let server: Server;
let base: string;
/** What the server's files are; ChatbotData's pinned sha256 is swapped for this one's (the real file is not needed). */
const CORPUS = Buffer.from('Q,A,label\n12시 땡!,하루가 또 가네요.,0\n', 'utf8');
const CORPUS_SHA256 = createHash('sha256').update(CORPUS).digest('hex');

beforeAll(async () => {
  (DATASETS['chatbotdata'] as { sha256: string }).sha256 = CORPUS_SHA256;
  writeFileSync(join(dir, 'served-ChatbotData.csv'), CORPUS);
  writeFileSync(join(dir, 'served-wrong.csv'), Buffer.concat([CORPUS, Buffer.from('extra,row,0\n')]));
  server = createServer((request, response) => {
    const file = join(dir, `served-${request.url!.slice(1)}`);
    if (!existsSync(file)) return void response.writeHead(404, 'Not Found').end();
    response.writeHead(200, { 'content-type': 'text/csv' }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

let target: string;
beforeEach(() => {
  target = join(mkdtempSync(join(dir, 'cache-')), 'nested', 'ChatbotData.csv');
});

async function data(argv: string[], env: NodeJS.ProcessEnv = { HANMADI_CHATBOT_DATA: target }) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runDataCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('hanmadi data fetch chatbotdata', () => {
  it.runIf(existsSync(SHARED_CORPUS) || process.env['CI'] === 'true')('pins the sha256 of the copy the base model was trained on (../shared)', () => {
    expect(createHash('sha256').update(readFileSync(SHARED_CORPUS)).digest('hex')).toBe(CHATBOT_DATA.sha256);
    expect(CHATBOT_DATA.url).toBe('https://raw.githubusercontent.com/songys/Chatbot_data/master/ChatbotData.csv');
  });

  it('downloads, verifies and puts the file at $HANMADI_CHATBOT_DATA, saying where; a second run leaves it', async () => {
    const r = await data(['fetch', 'chatbotdata', '--url', `${base}/ChatbotData.csv`]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain(`wrote ${target} (${CORPUS.length} bytes, sha256 ${CORPUS_SHA256} verified)`);
    expect(readFileSync(target)).toEqual(CORPUS);
    // No temporary left beside it.
    expect(readdirSync(join(target, '..'))).toEqual(['ChatbotData.csv']);
    const again = await data(['fetch', 'chatbotdata', '--url', `${base}/gone.csv`]);
    expect(again).toMatchObject({ code: 0 });
    expect(again.out).toMatch(/is already there \(sha256 [0-9a-f]{64} verified\)/u);
  });

  it('goes to $XDG_CACHE_HOME/hanmadi/ without $HANMADI_CHATBOT_DATA', async () => {
    const cache = mkdtempSync(join(dir, 'xdg-'));
    const r = await data(['fetch', 'chatbotdata', '--url', `${base}/ChatbotData.csv`], { XDG_CACHE_HOME: cache });
    expect(r.code).toBe(0);
    expect(readFileSync(join(cache, 'hanmadi', 'ChatbotData.csv'))).toEqual(CORPUS);
  });

  it('refuses a file with another sha256, naming both, and writes nothing', async () => {
    const r = await data(['fetch', 'chatbotdata', '--url', `${base}/wrong.csv`]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^error: .*/wrong\\.csv: sha256 [0-9a-f]{64}, expected ${CORPUS_SHA256}; nothing written$`, 'u'));
    expect(r.err).not.toContain(`sha256 ${CORPUS_SHA256},`);
    expect(existsSync(join(target, '..'))).toBe(false);
  });

  it('keeps a different file already there unless --force, which replaces it', async () => {
    expect((await data(['fetch', 'chatbotdata', '--url', `${base}/ChatbotData.csv`])).code).toBe(0);
    writeFileSync(target, 'edited');
    const kept = await data(['fetch', 'chatbotdata', '--url', `${base}/ChatbotData.csv`]);
    expect(kept.code).toBe(1);
    expect(kept.err).toMatch(/exists but its sha256 is [0-9a-f]{64}, not [0-9a-f]{64}; --force replaces it/u);
    expect(readFileSync(target, 'utf8')).toBe('edited');
    expect((await data(['fetch', 'chatbotdata', '--force', '--url', `${base}/ChatbotData.csv`])).code).toBe(0);
    expect(readFileSync(target)).toEqual(CORPUS);
  });

  it('reports an HTTP error and an unreachable server in one line, exit 1', async () => {
    const missing = await data(['fetch', 'chatbotdata', '--url', `${base}/missing.csv`]);
    expect(missing).toMatchObject({ code: 1, err: `error: ${base}/missing.csv: HTTP 404 Not Found` });
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await data(['fetch', 'chatbotdata', '--url', `http://127.0.0.1:${port}/x.csv`]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^error: http:\/\/127\.0\.0\.1:\d+\/x\.csv: .*ECONNREFUSED/u);
    expect(existsSync(join(target, '..'))).toBe(false);
  });

  it('exits 2 for a usage error: no subcommand, an unknown data set, a bad --url, a target inside the repository', async () => {
    expect((await data([])).code).toBe(2);
    const unknown = await data(['fetch', 'wikipedia']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/'wikipedia' is invalid for argument 'name'\. Allowed choices are chatbotdata/u);
    const url = await data(['fetch', 'chatbotdata', '--url', 'ftp://example.com/x.csv']);
    expect(url).toMatchObject({ code: 2 });
    expect(url.err).toMatch(/expected an http\(s\) URL, got "ftp:\/\/example\.com\/x\.csv"/u);
    const inRepo = await data(['fetch', 'chatbotdata', '--url', `${base}/ChatbotData.csv`], {
      HANMADI_CHATBOT_DATA: join(REPO_ROOT, 'data', 'ChatbotData.csv'),
    });
    expect(inRepo.code).toBe(2);
    expect(inRepo.err).toMatch(/HANMADI_CHATBOT_DATA: .* is inside the repository/u);
    expect(existsSync(join(REPO_ROOT, 'data', 'ChatbotData.csv'))).toBe(false);
  });

  it('prints its help on stdout, exit 0', async () => {
    const help = await data(['fetch', '--help']);
    expect(help).toMatchObject({ code: 0, err: '' });
    expect(help.out).toMatch(/^Usage: hanmadi data fetch \[options\] <name>/u);
  });
});
