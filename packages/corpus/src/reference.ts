import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Environment variable that points at a downloaded ChatbotData.csv. */
export const CHATBOT_DATA_ENV = 'HANMADI_CHATBOT_DATA';

/** ChatbotData (Youngsook Song, 2018, MIT) as `hanmadi data fetch chatbotdata` downloads it. */
export const CHATBOT_DATA = {
  url: 'https://raw.githubusercontent.com/songys/Chatbot_data/master/ChatbotData.csv',
  /** Of the copy the base model was trained on (11,823 pairs, 889,842 bytes). */
  sha256: '287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2',
  file: 'ChatbotData.csv',
} as const;

/** The repository root, found from this file's place in packages/corpus/src. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The small corpus this project ships, for the quickstart and tests. */
export const BUNDLED_CORPUS = fileURLToPath(new URL('../../../data/hanmadi-qa.csv', import.meta.url));

/** Where CI and the benchmarks keep the reference corpus: ../shared beside the repository. */
export const SHARED_CORPUS = fileURLToPath(new URL('../../../../shared/data/chatbot-data/ChatbotData.csv', import.meta.url));

/** `$XDG_CACHE_HOME/hanmadi/ChatbotData.csv` (an absolute XDG_CACHE_HOME only, as the XDG spec says), else under ~/.cache. */
export function chatbotDataCachePath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'hanmadi', CHATBOT_DATA.file);
}

/** Where `hanmadi data fetch chatbotdata` puts the corpus: `$HANMADI_CHATBOT_DATA`, else the cache. */
export function chatbotDataTarget(env: NodeJS.ProcessEnv = process.env): string {
  return env[CHATBOT_DATA_ENV] || chatbotDataCachePath(env);
}

/**
 * Where the reference corpus (ChatbotData, MIT, not in this repository) is read
 * from: `$HANMADI_CHATBOT_DATA`, else `../shared/data/chatbot-data/` beside the
 * repository if it is there, else the cache `hanmadi data fetch chatbotdata` fills.
 */
export function referenceCorpusPath(env: NodeJS.ProcessEnv = process.env, shared = SHARED_CORPUS): string {
  const chosen = env[CHATBOT_DATA_ENV];
  if (chosen) return chosen;
  return existsSync(shared) ? shared : chatbotDataCachePath(env);
}

/**
 * Tests that need the reference corpus run whenever it is present, and must run
 * in CI (CI=true), where its absence is a failure rather than a silent skip.
 */
export function referenceCorpusAvailable(env: NodeJS.ProcessEnv = process.env, shared = SHARED_CORPUS): boolean {
  return existsSync(referenceCorpusPath(env, shared)) || env['CI'] === 'true';
}
