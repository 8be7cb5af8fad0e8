export { normalizeText } from './normalize.js';
export { CorpusError, formatIssue, type CorpusIssue } from './errors.js';
export {
  DEFAULT_MAX_RECORD_LENGTH,
  decodeUtf8,
  firstInvalidUtf8,
  formatFromPath,
  parsePairs,
  readPairs,
  readSentences,
  type PairFormat,
  type QaPair,
  type ReadOptions,
  type ReadResult,
  type SentenceFormat,
} from './reader.js';
export { dedupePairs, splitPairs, unitHash, type DedupeResult, type Split, type SplitOptions } from './split.js';
export {
  BUNDLED_CORPUS,
  CHATBOT_DATA,
  CHATBOT_DATA_ENV,
  chatbotDataCachePath,
  chatbotDataTarget,
  REPO_ROOT,
  referenceCorpusAvailable,
  referenceCorpusPath,
  SHARED_CORPUS,
} from './reference.js';
