import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Environment variable that points at a downloaded ChatbotData.csv. */
export const CHATBOT_DATA_ENV = 'HANMADI_CHATBOT_DATA';

/** The repository root, found from this file's place in packages/corpus/src. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The small corpus this project ships, for the quickstart and tests. */
export const BUNDLED_CORPUS = fileURLToPath(new URL('../../../data/hanmadi-qa.csv', import.meta.url));

/**
 * Where the reference corpus (ChatbotData, MIT, not in this repository) is read
 * from: `$HANMADI_CHATBOT_DATA`, else `../shared/data/chatbot-data/` beside the
 * repository, where CI and the benchmarks find it.
 */
export function referenceCorpusPath(): string {
  return process.env[CHATBOT_DATA_ENV] ?? fileURLToPath(new URL('../../../../shared/data/chatbot-data/ChatbotData.csv', import.meta.url));
}

/**
 * Tests that need the reference corpus run whenever it is present, and must run
 * in CI (CI=true), where its absence is a failure rather than a silent skip.
 */
export function referenceCorpusAvailable(): boolean {
  return existsSync(referenceCorpusPath()) || process.env['CI'] === 'true';
}
