export { isTemporaryOf, syncDirectory, TEMPORARY_SUFFIX, writeFileDurably } from './durable.js';
