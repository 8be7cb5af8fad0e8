import type { ResolvedGenerateOptions } from './options.js';
import { softmax, sortedIndices, topIndices } from './math.js';

/**
 * Next-token score processors for a batch of hypotheses, after
 * transformers.js's `generation/logits_process`. They work in place on plain
 * Float32Array rows read once per step: at batch sizes up to a few dozen rows
 * and an 8,000-token vocabulary one `dataSync` plus a loop in JS costs less
 * than launching many tiny kernels per step.
 *
 * `generated[b]` holds the tokens hypothesis b has produced so far, without
 * BOS; `rows[b]` its scores over the vocabulary. A token is forbidden by
 * setting its score to -Infinity.
 */
export interface LogitsProcessor {
  process(generated: readonly (readonly number[])[], rows: readonly Float32Array[]): void;
}

/** A processor that treats every hypothesis on its own. */
abstract class RowProcessor implements LogitsProcessor {
  process(generated: readonly (readonly number[])[], rows: readonly Float32Array[]): void {
    rows.forEach((row, b) => this.processRow(generated[b] ?? [], row));
  }

  abstract processRow(generated: readonly number[], row: Float32Array): void;
}

/** Applies processors in order. */
export class LogitsProcessorList implements LogitsProcessor {
  readonly processors: LogitsProcessor[];

  constructor(processors: readonly LogitsProcessor[] = []) {
    this.processors = [...processors];
  }

  push(processor: LogitsProcessor): this {
    this.processors.push(processor);
    return this;
  }

  get length(): number {
    return this.processors.length;
  }

  process(generated: readonly (readonly number[])[], rows: readonly Float32Array[]): void {
    for (const p of this.processors) p.process(generated, rows);
  }
}

/** Forbids EOS until a hypothesis has `minNewTokens` tokens, so replies are not cut to nothing. */
export class MinLengthProcessor extends RowProcessor {
  constructor(
    readonly minNewTokens: number,
    readonly eosId: number,
  ) {
    super();
    if (!Number.isInteger(minNewTokens) || minNewTokens < 0) throw new RangeError(`minNewTokens must be a non-negative integer, got ${minNewTokens}`);
  }

  processRow(generated: readonly number[], row: Float32Array): void {
    if (generated.length < this.minNewTokens) row[this.eosId] = -Infinity;
  }
}

/**
 * Forbids every token that would complete an n-gram the hypothesis already
 * contains (fairseq's / HF's `no_repeat_ngram_size`): the last n-1 tokens are
 * matched against every earlier (n-1)-gram and the token that followed it is banned.
 */
export class NoRepeatNgramProcessor extends RowProcessor {
  constructor(readonly n: number) {
    super();
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`noRepeatNgramSize must be a positive integer, got ${n}`);
  }

  /** Tokens that would repeat an n-gram if appended to `generated`. */
  bannedTokens(generated: readonly number[]): Set<number> {
    const n = this.n;
    const banned = new Set<number>();
    const len = generated.length;
    if (len + 1 < n) return banned;
    const prefixStart = len - (n - 1);
    for (let i = 0; i + n <= len; i++) {
      let same = true;
      for (let j = 0; j < n - 1 && same; j++) same = generated[i + j] === generated[prefixStart + j];
      if (same) banned.add(generated[i + n - 1]!);
    }
    return banned;
  }

  processRow(generated: readonly number[], row: Float32Array): void {
    for (const id of this.bannedTokens(generated)) row[id] = -Infinity;
  }
}

/**
 * CTRL's repetition penalty (Keskar et al. 2019): the score of every token
 * already generated is divided by `penalty` when positive and multiplied when
 * negative, so that it always moves towards less likely for penalty > 1.
 */
export class RepetitionPenaltyProcessor extends RowProcessor {
  constructor(readonly penalty: number) {
    super();
    if (!(penalty > 0) || !Number.isFinite(penalty)) throw new RangeError(`repetitionPenalty must be a positive number, got ${penalty}`);
  }

  processRow(generated: readonly number[], row: Float32Array): void {
    for (const id of new Set(generated)) {
      const v = row[id]!;
      row[id] = v > 0 ? v / this.penalty : v * this.penalty;
    }
  }
}

/** Counts of each token in `generated`. */
function tokenCounts(generated: readonly number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const id of generated) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** OpenAI's penalties lie in [-2, 2]; a negative one favours repeats. */
function checkOpenAiPenalty(name: string, value: number): void {
  if (!(value >= -2 && value <= 2)) throw new RangeError(`${name} must be in [-2, 2], got ${value}`);
}

/**
 * OpenAI's frequency penalty: logit[t] -= count[t] · penalty over the tokens
 * generated so far, so a token is penalised more the more often it came.
 * https://platform.openai.com/docs/advanced-usage#frequency-and-presence-penalties
 */
export class FrequencyPenaltyProcessor extends RowProcessor {
  constructor(readonly penalty: number) {
    super();
    checkOpenAiPenalty('frequencyPenalty', penalty);
  }

  processRow(generated: readonly number[], row: Float32Array): void {
    for (const [id, count] of tokenCounts(generated)) row[id] = row[id]! - count * this.penalty;
  }
}

/**
 * OpenAI's presence penalty: logit[t] -= penalty once for every token that
 * has been generated at all, however often.
 * https://platform.openai.com/docs/advanced-usage#frequency-and-presence-penalties
 */
export class PresencePenaltyProcessor extends RowProcessor {
  constructor(readonly penalty: number) {
    super();
    checkOpenAiPenalty('presencePenalty', penalty);
  }

  processRow(generated: readonly number[], row: Float32Array): void {
    for (const id of new Set(generated)) row[id] = row[id]! - this.penalty;
  }
}

/** Divides scores by the temperature: below 1 sharpens the distribution, above 1 flattens it. */
export class TemperatureProcessor extends RowProcessor {
  constructor(readonly temperature: number) {
    super();
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`temperature must be a positive number, got ${temperature}`);
  }

  processRow(_generated: readonly number[], row: Float32Array): void {
    if (this.temperature === 1) return;
    for (let i = 0; i < row.length; i++) row[i] = row[i]! / this.temperature;
  }
}

/** Keeps the k highest-scoring tokens (ties go to the lower id, as argmax does) and forbids the rest. */
export class TopKProcessor extends RowProcessor {
  constructor(readonly k: number) {
    super();
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`topK must be a positive integer, got ${k}`);
  }

  processRow(_generated: readonly number[], row: Float32Array): void {
    if (this.k >= row.length) return;
    const keep = new Set(topIndices(row, this.k));
    for (let i = 0; i < row.length; i++) if (!keep.has(i)) row[i] = -Infinity;
  }
}

/**
 * Nucleus filtering (Holtzman et al. 2020): keeps the smallest set of most
 * probable tokens whose probabilities sum to at least p, and at least
 * `minTokensToKeep` of them, and forbids the rest.
 */
export class TopPProcessor extends RowProcessor {
  constructor(
    readonly p: number,
    readonly minTokensToKeep = 1,
  ) {
    super();
    if (!(p > 0 && p <= 1)) throw new RangeError(`topP must be in (0, 1], got ${p}`);
  }

  processRow(_generated: readonly number[], row: Float32Array): void {
    if (this.p >= 1) return;
    const probs = softmax(row);
    const order = sortedIndices(row);
    let cumulative = 0;
    let kept = 0;
    for (; kept < order.length; kept++) {
      if (cumulative >= this.p && kept >= this.minTokensToKeep) break;
      cumulative += probs[order[kept]!]!;
    }
    for (let i = kept; i < order.length; i++) row[order[i]!] = -Infinity;
  }
}

/** Processors that define the model's distribution for every strategy. */
export function scoreProcessors(o: ResolvedGenerateOptions, eosId: number): LogitsProcessorList {
  const list = new LogitsProcessorList();
  if (o.minNewTokens > 0) list.push(new MinLengthProcessor(o.minNewTokens, eosId));
  if (o.noRepeatNgramSize > 0) list.push(new NoRepeatNgramProcessor(o.noRepeatNgramSize));
  if (o.repetitionPenalty !== 1) list.push(new RepetitionPenaltyProcessor(o.repetitionPenalty));
  if (o.frequencyPenalty !== 0) list.push(new FrequencyPenaltyProcessor(o.frequencyPenalty));
  if (o.presencePenalty !== 0) list.push(new PresencePenaltyProcessor(o.presencePenalty));
  return list;
}

/** Processors that only reshape the distribution sampled from. */
export function samplingWarpers(o: ResolvedGenerateOptions): LogitsProcessorList {
  const list = new LogitsProcessorList([new TemperatureProcessor(o.temperature)]);
  if (o.topK > 0) list.push(new TopKProcessor(o.topK));
  if (o.topP < 1) list.push(new TopPProcessor(o.topP));
  return list;
}
