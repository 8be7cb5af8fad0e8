import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chatbotDataCachePath, chatbotDataTarget, referenceCorpusAvailable, referenceCorpusPath } from './reference.js';

const dir = mkdtempSync(join(tmpdir(), 'hanmadi-reference-'));
const shared = join(dir, 'shared.csv');
const absent = join(dir, 'absent.csv');
writeFileSync(shared, 'Q,A\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the reference corpus', () => {
  it('is looked for in $HANMADI_CHATBOT_DATA, then ../shared if there, then the cache', () => {
    const cache = { XDG_CACHE_HOME: join(dir, 'cache') };
    expect(referenceCorpusPath({ ...cache, HANMADI_CHATBOT_DATA: '/data/c.csv' }, shared)).toBe('/data/c.csv');
    expect(referenceCorpusPath(cache, shared)).toBe(shared);
    expect(referenceCorpusPath(cache, absent)).toBe(join(dir, 'cache', 'hanmadi', 'ChatbotData.csv'));
    // An empty variable is no choice.
    expect(referenceCorpusPath({ ...cache, HANMADI_CHATBOT_DATA: '' }, shared)).toBe(shared);
  });

  it('is available when the file it would read is there, and always in CI', () => {
    const cache = { XDG_CACHE_HOME: join(dir, 'cache') };
    expect(referenceCorpusAvailable(cache, shared)).toBe(true);
    expect(referenceCorpusAvailable(cache, absent)).toBe(false);
    expect(referenceCorpusAvailable({ ...cache, CI: 'true' }, absent)).toBe(true);
    writeFileSync(join(dir, 'fetched.csv'), 'Q,A\n');
    expect(referenceCorpusAvailable({ ...cache, HANMADI_CHATBOT_DATA: join(dir, 'fetched.csv') }, absent)).toBe(true);
  });

  it('is cached under $XDG_CACHE_HOME if absolute, else ~/.cache, and fetched to $HANMADI_CHATBOT_DATA if set', () => {
    expect(chatbotDataCachePath({ XDG_CACHE_HOME: '/var/cache/me' })).toBe('/var/cache/me/hanmadi/ChatbotData.csv');
    expect(chatbotDataCachePath({ XDG_CACHE_HOME: 'relative' })).toBe(join(homedir(), '.cache', 'hanmadi', 'ChatbotData.csv'));
    expect(chatbotDataCachePath({})).toBe(join(homedir(), '.cache', 'hanmadi', 'ChatbotData.csv'));
    expect(chatbotDataTarget({ HANMADI_CHATBOT_DATA: '/data/c.csv', XDG_CACHE_HOME: '/x' })).toBe('/data/c.csv');
    expect(chatbotDataTarget({ XDG_CACHE_HOME: '/x' })).toBe('/x/hanmadi/ChatbotData.csv');
  });
});
