import type { ModelConfig } from '../config.js';
import type { DecoderCache } from './decoder-cache.js';
import { abandoned, type GenerationHooks } from './hooks.js';
import type { LogitsProcessorList } from './logits-processors.js';
import { logProbability, logSumExp, topIndices } from './math.js';
import type { ResolvedGenerateOptions } from './options.js';
import { emptyOutput, type GenerateOutput } from './output.js';
import type { FinishReason } from './stopping-criteria.js';

/**
 * Beam search over B sources × K beams in one batch: beam j of source b lives
 * in row b·K + j, and after every step the cache is gathered so that each row
 * holds its new hypothesis's parent. Each source searches up to its own limit;
 * the batch steps until the last of them is done.
 */
export function* beamSearch(
  config: ModelConfig,
  cache: DecoderCache,
  limits: readonly number[],
  processors: LogitsProcessorList,
  o: ResolvedGenerateOptions,
  hooks: GenerationHooks,
): Generator<void, GenerateOutput[], void> {
  return yield* new BeamSearch(config, limits, processors, o, hooks).run(cache);
}

interface Hypothesis {
  tokens: number[];
  /** Sum of log-probabilities so far. */
  sum: number;
}

interface FinishedHypothesis extends Hypothesis {
  score: number;
  finishReason: FinishReason;
}

/** An extension of live beam j by token id, with its new sum. */
interface Candidate {
  j: number;
  id: number;
  sum: number;
}

/** The best finished hypotheses of one source, at most `size`, best first. */
class FinishedHypotheses {
  private readonly pool: FinishedHypothesis[] = [];

  constructor(private readonly size: number) {}

  get best(): FinishedHypothesis | undefined {
    return this.pool[0];
  }

  add(h: FinishedHypothesis): void {
    this.pool.push(h);
    this.pool.sort((x, y) => y.score - x.score);
    if (this.pool.length > this.size) this.pool.pop();
  }

  /** The source's output: its best hypothesis. Final once the source has no live beam left. */
  output(): GenerateOutput {
    const best = this.best;
    if (!best) return emptyOutput();
    return { tokens: best.tokens, score: best.score, finishReason: best.finishReason };
  }
}

class BeamSearch {
  private readonly K: number;
  /** Per source, its live beams; none once its search is over. */
  private live: Hypothesis[][];
  private readonly finished: FinishedHypotheses[];

  constructor(
    private readonly config: ModelConfig,
    private readonly limits: readonly number[],
    private readonly processors: LogitsProcessorList,
    private readonly o: ResolvedGenerateOptions,
    private readonly hooks: GenerationHooks,
  ) {
    this.K = o.numBeams;
    // Every source starts with one live beam: K copies of the same BOS would only tie.
    this.live = limits.map((limit) => (limit > 0 ? [{ tokens: [], sum: 0 }] : []));
    this.finished = limits.map(() => new FinishedHypotheses(o.numBeams));
  }

  *run(cache: DecoderCache): Generator<void, GenerateOutput[], void> {
    const { K, limits, hooks } = this;
    const maxLimit = Math.max(0, ...limits);
    limits.forEach((limit, b) => limit === 0 && hooks.onFinish?.(b, this.finished[b]!.output()));
    if (maxLimit > 0) cache.select(Array.from({ length: limits.length * K }, (_, r) => Math.floor(r / K)));
    for (let t = 0; t < maxLimit; t++) {
      if (t > 0) yield;
      this.abandon(t);
      if (!this.searching()) break;
      const fed = this.fed();
      hooks.onStep?.(this.live.filter((beams) => beams.length > 0).length);
      const rows = cache.stepRows(fed);
      const parents: number[] = [];
      this.live = this.live.map((beams, b) => {
        const next = this.advance(b, beams, rows, t + 1);
        // Rows past the live beams are filler: any row of this source will do.
        parents.push(...next.parents, ...Array.from({ length: K - next.parents.length }, () => b * K));
        return next.beams;
      });
      if (!this.searching()) break;
      if (t + 1 < maxLimit) cache.select(parents);
    }
    return this.finished.map((f) => f.output());
  }

  private searching(): boolean {
    return this.live.some((beams) => beams.length > 0);
  }

  /** Ends the sources the caller gave up on, cut as at the length limit, so that the best hypothesis so far is the answer. */
  private abandon(t: number): void {
    const searching = this.live.flatMap((beams, b) => (beams.length > 0 ? [b] : []));
    for (const b of abandoned(searching, this.hooks)) {
      for (const h of this.live[b]!) this.finished[b]!.add({ ...h, score: this.normalise(h.sum, t), finishReason: 'length' });
      this.live[b] = [];
      this.streamBest(b);
    }
  }

  /** The token each row is fed: its beam's last (BOS at first), EOS for a row without a beam. */
  private fed(): number[] {
    const { K } = this;
    return Array.from({ length: this.live.length * K }, (_, r) => {
      const h = this.live[Math.floor(r / K)]![r % K];
      return h ? (h.tokens[h.tokens.length - 1] ?? this.config.bosId) : this.config.eosId;
    });
  }

  /**
   * Source b's beams after a step that made them `length` tokens long: the
   * K best live extensions and their parent rows, or none once its search is over.
   */
  private advance(b: number, beams: Hypothesis[], rows: Float32Array[], length: number): { beams: Hypothesis[]; parents: number[] } {
    if (beams.length === 0) return { beams: [], parents: [] };
    const beamRows = beams.map((_, j) => rows[b * this.K + j]!);
    this.processors.process(
      beams.map((h) => h.tokens),
      beamRows,
    );
    const next = this.extend(b, beams, this.candidates(beams, beamRows));
    if (this.isDone(b, next.beams, length)) {
      this.streamBest(b);
      return { beams: [], parents: [] };
    }
    return next;
  }

  /** Every beam's extensions by its 2K best tokens, best first: 2K guarantee K live ones even if K of them are EOS. */
  private candidates(beams: Hypothesis[], beamRows: Float32Array[]): Candidate[] {
    const candidates: Candidate[] = [];
    beamRows.forEach((row, j) => {
      const logZ = logSumExp(row);
      for (const id of topIndices(row, Math.min(2 * this.K, row.length))) {
        const logProb = logProbability(row, id, logZ);
        if (logProb > -Infinity) candidates.push({ j, id, sum: beams[j]!.sum + logProb });
      }
    });
    // Stable sort: ties stay in (beam, token id) order, as argmax breaks them.
    return candidates.sort((x, y) => y.sum - x.sum);
  }

  /** The K best candidates that do not end in EOS, as beams; those that do, among the top K, finish. */
  private extend(b: number, beams: Hypothesis[], candidates: Candidate[]): { beams: Hypothesis[]; parents: number[] } {
    const { K } = this;
    const next: Hypothesis[] = [];
    const parents: number[] = [];
    for (const [rank, c] of candidates.slice(0, 2 * K).entries()) {
      const tokens = beams[c.j]!.tokens;
      if (c.id === this.config.eosId) {
        // An EOS below the top K would not have survived as a beam either.
        if (rank < K) this.finished[b]!.add({ tokens, sum: c.sum, score: this.normalise(c.sum, tokens.length + 1), finishReason: 'eos' });
        continue;
      }
      next.push({ tokens: [...tokens, c.id], sum: c.sum });
      parents.push(b * K + c.j);
      if (next.length === K) break;
    }
    return { beams: next, parents };
  }

  /** Whether source b's search is over: no live beam, its length limit (the live beams then finish), or no live beam can still win. */
  private isDone(b: number, beams: Hypothesis[], length: number): boolean {
    const limit = this.limits[b]!;
    if (beams.length === 0) return true;
    if (length >= limit) {
      for (const h of beams) this.finished[b]!.add({ ...h, score: this.normalise(h.sum, length), finishReason: 'length' });
      return true;
    }
    // Only the best finished hypothesis is returned: once no live one can beat it, the search is over.
    const best = this.finished[b]!.best;
    if (!this.o.earlyStopping || best === undefined) return false;
    return !beams.some((h) => this.bestReachable(h.sum, length, limit) > best.score);
  }

  /** A finished hypothesis's score: sum / len^lengthPenalty. */
  private normalise(sum: number, length: number): number {
    return sum / Math.max(length, 1) ** this.o.lengthPenalty;
  }

  /**
   * Best score reachable from `sum` at `length` tokens: sums only fall, so the
   * bound is the current sum at the most favourable final length.
   */
  private bestReachable(sum: number, length: number, limit: number): number {
    return this.o.lengthPenalty > 0 ? this.normalise(sum, limit) : this.normalise(sum, length + 1);
  }

  /** Reports source b's winner: its tokens all at once, then its output. */
  private streamBest(b: number): void {
    const onToken = this.hooks.onToken;
    if (onToken) for (const id of this.finished[b]!.best?.tokens ?? []) onToken(b, id);
    this.hooks.onFinish?.(b, this.finished[b]!.output());
  }
}
