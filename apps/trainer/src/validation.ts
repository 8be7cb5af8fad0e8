import { normalizeText, unitHash, type QaPair } from '@hanmadi/corpus';
import { disposeBatch, greedyDecode, makeBatch, type Example, type Transformer } from '@hanmadi/model';
import type { Tokenizer } from '@hanmadi/tokenizer';
import { epochBatches } from './batching.js';
import { corpusBleu } from './metrics/bleu.js';
import { corpusChrf } from './metrics/chrf.js';

/** Prompts whose greedy replies are logged at each validation, to read how the model is doing. */
export const SAMPLE_PROMPTS = ['안녕하세요', '오늘 너무 힘들어', '배고파', '이별했어', '심심해', '내일 시험이야'];

export interface ValidationResult {
  /** Token-level cross-entropy without label smoothing, nats per target token. */
  loss: number;
  perplexity: number;
  bleu: number;
  chrf: number;
  /** Pairs decoded for BLEU and chrF. */
  decoded: number;
  /** Mean reply length over mean reference length, in characters: chrF's β = 2 rewards long replies. */
  lengthRatio: number;
  replies: { prompt: string; reply: string }[];
}

const DECODE_BATCH = 32;

/** Greedy replies for a list of messages, decoded to text. */
export function replyAll(model: Transformer, tokenizer: Tokenizer, messages: readonly string[], maxNewTokens = model.config.maxLength - 1): string[] {
  const replies: string[] = [];
  for (let i = 0; i < messages.length; i += DECODE_BATCH) {
    const sources = messages.slice(i, i + DECODE_BATCH).map((m) => tokenizer.encode(m));
    for (const out of greedyDecode(model, sources, maxNewTokens)) replies.push(tokenizer.decode(out.tokens));
  }
  return replies;
}

/** Seed offset of the halves: with the 95/5 split's own seed every validation pair would hash to one half. */
const HALVES_SEED = 0x5e1ec7;

/**
 * The validation split cut in two by a seeded hash of the question: the
 * served model is chosen on the selection half and reported on the other, so
 * the reported figures are not the ones it was picked for. A split too small
 * to cut (an empty half) uses all its pairs for both.
 */
export function validationHalves(pairs: readonly QaPair[], seed: number): { selection: QaPair[]; report: QaPair[] } {
  const selection: QaPair[] = [];
  const report: QaPair[] = [];
  for (const pair of pairs) (unitHash(pair.question, seed ^ HALVES_SEED) < 0.5 ? selection : report).push(pair);
  if (selection.length === 0 || report.length === 0) return { selection: [...pairs], report: [...pairs] };
  return { selection, report };
}

/**
 * Validation: cross-entropy and perplexity over every validation pair, BLEU
 * and chrF (sacreBLEU's definitions) of greedy replies to the first `samples`
 * of them against their reference answers, and replies to fixed prompts.
 */
export function validate(
  model: Transformer,
  tokenizer: Tokenizer,
  examples: readonly Example[],
  references: readonly { question: string; answer: string }[],
  options: { samples: number; batchTokens: number; prompts?: readonly string[] },
): ValidationResult {
  let sum = 0;
  let tokens = 0;
  // Sorted: validation has no gradient to spoil, and padding less is faster.
  for (const group of epochBatches(examples, Math.max(options.batchTokens, 256), 0, 0, 1000)) {
    const batch = makeBatch(group, model.config);
    sum += model.crossEntropy(batch);
    tokens += batch.targetTokens;
    disposeBatch(batch);
  }
  const loss = tokens > 0 ? sum / tokens : Number.NaN;
  const sampled = references.slice(0, options.samples);
  const hypotheses = replyAll(
    model,
    tokenizer,
    sampled.map((p) => p.question),
  );
  const answers = sampled.map((p) => normalizeText(p.answer));
  const prompts = options.prompts ?? SAMPLE_PROMPTS;
  const chars = (texts: readonly string[]) => texts.reduce((n, t) => n + [...t].length, 0);
  return {
    loss,
    perplexity: Math.exp(loss),
    bleu: sampled.length > 0 ? corpusBleu(hypotheses, answers).score : Number.NaN,
    chrf: sampled.length > 0 ? corpusChrf(hypotheses, answers).score : Number.NaN,
    decoded: sampled.length,
    lengthRatio: sampled.length > 0 ? chars(hypotheses) / chars(answers) : Number.NaN,
    replies: replyAll(model, tokenizer, prompts).map((reply, i) => ({ prompt: prompts[i]!, reply })),
  };
}
