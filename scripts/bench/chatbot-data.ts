/**
 * ChatbotData prepared the way every benchmark here uses it: read from
 * ../shared (or $HANMADI_CHATBOT_DATA), split 95/5 by the corpus package's
 * seeded hash, a vocab-8000 BPE trained on the training side's Q and A lines,
 * and every pair encoded.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPairs, referenceCorpusPath, splitPairs, type QaPair } from '@hanmadi/corpus';
import type { Example } from '@hanmadi/model';
import { Tokenizer, trainBpe, writeModelFile } from '@hanmadi/tokenizer';

export interface PreparedCorpus {
  tokenizer: Tokenizer;
  tokenizerPath: string;
  train: Example[];
  valid: Example[];
  validPairs: QaPair[];
}

export async function prepareChatbotData(vocabSize = 8000): Promise<PreparedCorpus> {
  const { pairs } = await readPairs(referenceCorpusPath());
  const { train, valid } = splitPairs(pairs);
  const tokenizerPath = join(mkdtempSync(join(tmpdir(), 'hanmadi-bench-')), 'tokenizer.model');
  await writeModelFile(
    tokenizerPath,
    trainBpe(
      train.flatMap((p) => [p.question, p.answer]),
      { vocabSize },
    ),
  );
  const tokenizer = await Tokenizer.load(tokenizerPath);
  const encode = (p: QaPair): Example => ({ source: tokenizer.encode(p.question), target: tokenizer.encode(p.answer) });
  return { tokenizer, tokenizerPath, train: train.map(encode), valid: valid.map(encode), validPairs: valid };
}

/**
 * Batches of `size` pairs with similar lengths (paper §5.1: "sentence pairs
 * were batched together by approximate sequence length"): pairs are shuffled,
 * sorted by target then source length inside windows of `window` batches, cut
 * into batches, and the batches shuffled, so each batch pads little and the
 * order stays random. The default window spans ChatbotData's whole training
 * set: the wider the window, the less a batch pads.
 */
export function lengthBucketedBatches(examples: readonly Example[], size: number, seed: number, window = 200): Example[][] {
  const rng = mulberry32(seed);
  const shuffled = [...examples];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  const batches: Example[][] = [];
  for (let start = 0; start < shuffled.length; start += window * size) {
    const chunk = shuffled.slice(start, start + window * size).sort((a, b) => a.target.length - b.target.length || a.source.length - b.source.length);
    for (let i = 0; i < chunk.length; i += size) batches.push(chunk.slice(i, i + size));
  }
  for (let i = batches.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [batches[i], batches[j]] = [batches[j]!, batches[i]!];
  }
  return batches.filter((b) => b.length === size);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
