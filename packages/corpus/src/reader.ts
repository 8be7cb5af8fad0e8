import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { CsvError, parse as parseCsv } from 'csv-parse/sync';
import { CorpusError, type CorpusIssue } from './errors.js';
import { normalizeText } from './normalize.js';

export type PairFormat = 'csv' | 'tsv' | 'jsonl';
export type SentenceFormat = PairFormat | 'txt';

/** One question/answer pair, normalised, with the line it came from. */
export interface QaPair {
  question: string;
  answer: string;
  /** ChatbotData's topic label (0 everyday, 1 breakup, 2 love) when the file has one. */
  label?: number;
  /** 1-based line where the record starts in its file. */
  line: number;
}

export interface ReadOptions {
  /** Overrides the format guessed from the file extension. */
  format?: SentenceFormat;
  /**
   * Longest record accepted, in characters of its raw text. Guards the trainer
   * against a missing closing quote that swallows the rest of the file, and
   * against pasted documents that are not chat turns.
   */
  maxRecordLength?: number;
  /** Skip bad records with a counted warning instead of failing on the first one. */
  skipInvalid?: boolean;
}

export interface ReadResult {
  file: string;
  pairs: QaPair[];
  /** Records left out because `skipInvalid` was set; empty otherwise. */
  skipped: CorpusIssue[];
}

export const DEFAULT_MAX_RECORD_LENGTH = 4000;

const FORMAT_BY_EXTENSION: Record<string, SentenceFormat> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.txt': 'txt',
};

export function formatFromPath(file: string): SentenceFormat {
  const format = FORMAT_BY_EXTENSION[extname(file).toLowerCase()];
  if (format === undefined) {
    throw new CorpusError({
      file,
      line: 0,
      message: `unknown file type "${extname(file) || '(none)'}"; expected .csv, .tsv, .jsonl or .txt`,
    });
  }
  return format;
}

export async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String(error);
    throw new CorpusError({ file, line: 0, message: `cannot read file: ${why}` });
  }
}

/** Reads question/answer pairs from a CSV, TSV or JSONL file. */
export async function readPairs(file: string, options: ReadOptions = {}): Promise<ReadResult> {
  const format = options.format ?? formatFromPath(file);
  return parsePairs(await readBytes(file), file, { ...options, format });
}

/** Parses question/answer pairs from file contents; `file` is used in messages only. */
export function parsePairs(data: Uint8Array | string, file: string, options: ReadOptions = {}): ReadResult {
  const format = options.format ?? formatFromPath(file);
  if (format === 'txt') {
    throw new CorpusError({ file, line: 0, message: 'a .txt file holds sentences, not question/answer pairs; use CSV, TSV or JSONL' });
  }
  const ctx = new RecordContext(file, options);
  const text = typeof data === 'string' ? data : decodeUtf8(data, file, ctx.skipInvalid);
  if (format === 'jsonl') parseJsonl(text, ctx);
  else parseDelimited(text, format === 'tsv' ? '\t' : ',', ctx);
  if (ctx.pairs.length === 0) {
    const hint = ctx.skipped.length > 0 ? ` (${ctx.skipped.length} invalid record(s) skipped)` : '';
    throw new CorpusError({ file, line: 0, message: `no question/answer pairs found${hint}` });
  }
  return { file, pairs: ctx.pairs, skipped: ctx.skipped };
}

/**
 * Reads the sentences a tokenizer is trained on: both sides of every pair of a
 * CSV/TSV/JSONL corpus, or every non-empty line of a .txt file, normalised.
 */
export async function readSentences(file: string, options: ReadOptions = {}): Promise<string[]> {
  const format = options.format ?? formatFromPath(file);
  if (format !== 'txt') {
    const { pairs } = await readPairs(file, { ...options, format });
    return pairs.flatMap((p) => [p.question, p.answer]);
  }
  const text = decodeUtf8(await readBytes(file), file, options.skipInvalid ?? false);
  const limit = options.maxRecordLength ?? DEFAULT_MAX_RECORD_LENGTH;
  const sentences: string[] = [];
  text.split(/\r?\n/u).forEach((raw, i) => {
    if (raw.length > limit && !options.skipInvalid) {
      throw new CorpusError({ file, line: i + 1, message: `line is ${raw.length} characters, over the limit of ${limit}` });
    }
    const sentence = normalizeText(raw);
    if (sentence !== '' && raw.length <= limit && !sentence.includes('\uFFFD')) sentences.push(sentence);
  });
  if (sentences.length === 0) throw new CorpusError({ file, line: 0, message: 'no sentences found' });
  return sentences;
}

/**
 * Strict UTF-8 decoding. Korean files saved by older Windows tools are often
 * CP949/EUC-KR, which fails here; the message says how to convert rather than
 * letting mojibake into the vocabulary. With `lenient`, bad bytes become U+FFFD
 * and the records holding them are skipped later.
 */
export function decodeUtf8(bytes: Uint8Array, file: string, lenient = false): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new CorpusError({ file, line: 0, message: 'file is UTF-16 encoded; save it as UTF-8' });
  }
  try {
    return new TextDecoder('utf-8', { fatal: !lenient, ignoreBOM: false }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    const byte = (bytes[offset] ?? 0).toString(16).toUpperCase().padStart(2, '0');
    throw new CorpusError({
      file,
      line,
      message:
        `not valid UTF-8 (byte 0x${byte} at offset ${offset}); if the file is CP949/EUC-KR, ` + 'convert it first: iconv -f cp949 -t utf-8 in.csv > out.csv',
    });
  }
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return i;
    }
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Collects pairs and issues, applying the options' policy to each bad record. */
class RecordContext {
  readonly pairs: QaPair[] = [];
  readonly skipped: CorpusIssue[] = [];
  readonly maxRecordLength: number;
  readonly skipInvalid: boolean;

  constructor(
    readonly file: string,
    options: ReadOptions,
  ) {
    this.maxRecordLength = options.maxRecordLength ?? DEFAULT_MAX_RECORD_LENGTH;
    this.skipInvalid = options.skipInvalid ?? false;
  }

  /** Records an invalid record: throws unless skipping was asked for. */
  invalid(line: number, message: string): void {
    const issue = { file: this.file, line, message };
    if (!this.skipInvalid) throw new CorpusError(issue);
    this.skipped.push(issue);
  }

  /** Validates one record's fields and keeps it if they make a pair. */
  add(line: number, raw: string, question: unknown, answer: unknown, label: unknown, names: [string, string]): void {
    if (raw.length > this.maxRecordLength) {
      return this.invalid(line, `record is ${raw.length} characters, over the limit of ${this.maxRecordLength}`);
    }
    if (raw.includes('\uFFFD')) return this.invalid(line, 'record holds bytes that are not valid UTF-8');
    const fields: string[] = [];
    for (const [value, name] of [
      [question, names[0]],
      [answer, names[1]],
    ] as const) {
      if (typeof value !== 'string') {
        return this.invalid(line, value === undefined ? `missing field "${name}"` : `field "${name}" must be a string`);
      }
      const text = normalizeText(value);
      if (text === '') return this.invalid(line, `empty field "${name}"`);
      fields.push(text);
    }
    const pair: QaPair = { question: fields[0]!, answer: fields[1]!, line };
    if (label !== undefined && label !== null && String(label).trim() !== '') {
      const value = Number(String(label).trim());
      if (!Number.isInteger(value)) return this.invalid(line, `label "${String(label)}" is not an integer`);
      pair.label = value;
    }
    this.pairs.push(pair);
  }
}

const QUESTION_HEADERS = ['q', 'question'];
const ANSWER_HEADERS = ['a', 'answer'];

interface CsvRecord {
  record: string[];
  info: { lines: number };
  raw: string;
}

function parseDelimited(text: string, delimiter: ',' | '\t', ctx: RecordContext): void {
  let records: CsvRecord[];
  try {
    records = parseCsv(text, {
      bom: true,
      delimiter,
      // TSV files are written without quoting; a stray quote is just text there.
      quote: delimiter === ',' ? '"' : false,
      relax_column_count: true,
      skip_empty_lines: true,
      info: true,
      raw: true,
      skip_records_with_error: ctx.skipInvalid,
      on_skip: (error: CsvError | undefined) => {
        if (error) ctx.skipped.push({ file: ctx.file, line: csvErrorLine(error, text, delimiter), message: csvMessage(error) });
      },
    }) as unknown as CsvRecord[];
  } catch (error) {
    if (error instanceof CsvError) throw new CorpusError({ file: ctx.file, line: csvErrorLine(error, text, delimiter), message: csvMessage(error) });
    throw error;
  }
  const [header, ...rows] = records;
  if (header === undefined) return;
  const names = header.record.map((h) => h.trim().toLowerCase());
  const qi = names.findIndex((n) => QUESTION_HEADERS.includes(n));
  const ai = names.findIndex((n) => ANSWER_HEADERS.includes(n));
  const li = names.indexOf('label');
  if (qi < 0 || ai < 0) {
    const missing = [qi < 0 ? '"Q" (or "question")' : '', ai < 0 ? '"A" (or "answer")' : ''].filter(Boolean).join(' and ');
    throw new CorpusError({
      file: ctx.file,
      line: 1,
      message: `header is missing column ${missing}; found: ${header.record.map((h) => JSON.stringify(h)).join(', ')}`,
    });
  }
  const columnNames: [string, string] = [header.record[qi]!.trim(), header.record[ai]!.trim()];
  for (const { record, info, raw } of rows) {
    const body = raw.replace(/^[\r\n]+/u, '').replace(/\r?\n$/u, '');
    const line = info.lines - (body.match(/\n/gu)?.length ?? 0);
    ctx.add(line, body, record[qi], record[ai], li >= 0 ? record[li] : undefined, columnNames);
  }
}

/** The line to blame: csv-parse reports an unclosed quote where the file ends, the user needs where it opened. */
function csvErrorLine(error: CsvError, text: string, delimiter: string): number {
  if (error.code !== 'CSV_QUOTE_NOT_CLOSED') return Number(error.lines);
  return unclosedQuoteLine(text, delimiter) ?? Number(error.lines);
}

/** The 1-based line where the last quoted field left open at the end of `text` began (RFC 4180 quoting). */
export function unclosedQuoteLine(text: string, delimiter: string): number | undefined {
  let line = 1;
  let opened: number | undefined;
  let fieldStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (opened !== undefined) {
      if (c === '"' && text[i + 1] === '"') i++;
      else if (c === '"') opened = undefined;
      else if (c === '\n') line++;
      continue;
    }
    if (c === '\n') line++;
    if (fieldStart && c === '"') opened = line;
    fieldStart = c === delimiter || c === '\n' || (c === '\r' && fieldStart);
  }
  return opened;
}

function csvMessage(error: CsvError): string {
  if (error.code === 'CSV_QUOTE_NOT_CLOSED') return 'quoted field is never closed (missing ")';
  if (error.code === 'CSV_INVALID_CLOSING_QUOTE') return 'unexpected character after a closing quote';
  return error.message.replace(/^Invalid [^:]*: /u, '');
}

function parseJsonl(text: string, ctx: RecordContext): void {
  const lines = text.replace(/^\uFEFF/u, '').split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const body = raw.replace(/\r$/u, '');
    if (body.trim() === '') return;
    if (body.length > ctx.maxRecordLength) {
      return ctx.invalid(line, `record is ${body.length} characters, over the limit of ${ctx.maxRecordLength}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (error) {
      return ctx.invalid(line, `invalid JSON: ${(error as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return ctx.invalid(line, 'expected a JSON object with "q" and "a" (or "question" and "answer")');
    }
    const obj = value as Record<string, unknown>;
    const long = 'question' in obj || 'answer' in obj;
    const names: [string, string] = long ? ['question', 'answer'] : ['q', 'a'];
    ctx.add(line, body, obj[names[0]], obj[names[1]], obj['label'], names);
  });
}
