import { normalizeText } from '@hanmadi/corpus';
import { ModelType, PieceType, type ModelProto, type SentencePiece } from './proto.js';
import { INHERITED, scriptOf } from './scripts.js';

/** The project's fixed special ids, shared by the tokenizer, the model and the service. */
export const SPECIAL_IDS = { pad: 0, unk: 1, bos: 2, eos: 3 } as const;
export const SPECIAL_PIECES = { pad: '<pad>', unk: '<unk>', bos: '<s>', eos: '</s>' } as const;

/** SentencePiece's whitespace marker, U+2581 LOWER ONE EIGHTH BLOCK. */
export const WHITESPACE_MARK = '\u2581';

export interface BpeOptions {
  vocabSize: number;
  /** Share of character occurrences the alphabet must cover; rarer characters become `<unk>` (or bytes). */
  characterCoverage?: number;
  /** Add the 256 `<0xNN>` byte pieces so that characters outside the alphabet survive a round trip. */
  byteFallback?: boolean;
  /** Pieces kept whole and never merged, such as `<sep>` or a product name. */
  userDefinedSymbols?: string[];
  /** Longest piece, in characters (SentencePiece's `max_sentencepiece_length`). */
  maxPieceLength?: number;
  /** Recorded in the trainer spec for provenance only. */
  input?: string[];
  /**
   * With false, a corpus too small for `vocabSize` yields the largest
   * vocabulary it supports instead of an error (SentencePiece's
   * `hard_vocab_limit`). Default true.
   */
  hardVocabLimit?: boolean;
}

const META: readonly SentencePiece[] = [
  { piece: SPECIAL_PIECES.pad, score: 0, type: PieceType.CONTROL },
  { piece: SPECIAL_PIECES.unk, score: 0, type: PieceType.UNKNOWN },
  { piece: SPECIAL_PIECES.bos, score: 0, type: PieceType.CONTROL },
  { piece: SPECIAL_PIECES.eos, score: 0, type: PieceType.CONTROL },
];

/** Thrown when the options cannot produce a vocabulary from this corpus. */
export class VocabSizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VocabSizeError';
  }
}

/**
 * Trains a byte-pair-encoding vocabulary the way SentencePiece's BPE trainer
 * does (Sennrich et al. 2016; Kudo & Richardson 2018), and returns it as a
 * SentencePiece `ModelProto`.
 *
 * - Text is normalised (NFC, whitespace collapsed); each word is prefixed with
 *   `▁`, the first one too (the dummy prefix), so spaces survive decoding.
 * - The alphabet is every character needed to reach `characterCoverage` of
 *   character occurrences; it is placed at the end of the vocabulary.
 * - Starting from characters, the most frequent adjacent pair is merged, ties
 *   going to the shorter, then the lexically smaller piece. A merge never
 *   crosses a word, a change of Unicode script, a user-defined symbol or an
 *   out-of-alphabet character, nor makes a piece longer than `maxPieceLength`.
 * - Merged pieces are scored `-rank`, so SentencePiece's encoder, which merges
 *   the highest-scoring adjacent pair first, replays the merges in order.
 */
export function trainBpe(sentences: Iterable<string>, options: BpeOptions): ModelProto {
  const coverage = options.characterCoverage ?? 1;
  const maxPieceLength = options.maxPieceLength ?? 16;
  const userSymbols = [...new Set(options.userDefinedSymbols ?? [])];
  const byteFallback = options.byteFallback ?? false;
  if (!(coverage > 0 && coverage <= 1)) throw new RangeError(`characterCoverage must be in (0, 1], got ${coverage}`);
  for (const s of userSymbols) {
    if (s === '' || /\s/u.test(s)) throw new RangeError(`user-defined symbol ${JSON.stringify(s)} must be non-empty and contain no space`);
  }

  const words = countWords(sentences);
  const alphabet = chooseAlphabet(words, coverage, userSymbols);
  const fixed = META.length + userSymbols.length + (byteFallback ? 256 : 0);
  const mergeBudget = options.vocabSize - fixed - alphabet.length;
  if (!Number.isInteger(options.vocabSize) || mergeBudget < 0) {
    throw new VocabSizeError(
      `vocabSize ${options.vocabSize} is too small: this corpus needs at least ${fixed + alphabet.length} ` +
        `(${META.length} special, ${userSymbols.length} user-defined, ${byteFallback ? 256 : 0} byte and ${alphabet.length} character pieces)`,
    );
  }

  const merges = new BpeMerger(words, alphabet, userSymbols, maxPieceLength).run(mergeBudget);
  if (merges.length < mergeBudget && options.hardVocabLimit !== false) {
    const most = fixed + alphabet.length + merges.length;
    throw new VocabSizeError(`vocabSize ${options.vocabSize} is too large for this corpus: it supports at most ${most} pieces`);
  }

  const pieces: SentencePiece[] = [
    ...META,
    ...userSymbols.map((piece) => ({ piece, score: 0, type: PieceType.USER_DEFINED })),
    ...(byteFallback ? Array.from({ length: 256 }, (_, b) => ({ piece: bytePiece(b), score: 0, type: PieceType.BYTE })) : []),
    ...[...merges, ...alphabet].map((piece, rank) => ({ piece, score: -rank, type: PieceType.NORMAL })),
  ];
  return {
    pieces,
    trainerSpec: {
      input: options.input ?? [],
      inputFormat: 'text',
      modelType: ModelType.BPE,
      vocabSize: fixed + alphabet.length + merges.length,
      characterCoverage: coverage,
      maxSentencepieceLength: maxPieceLength,
      splitByUnicodeScript: true,
      splitByNumber: true,
      splitByWhitespace: true,
      treatWhitespaceAsSuffix: false,
      splitDigits: false,
      userDefinedSymbols: userSymbols,
      controlSymbols: [],
      byteFallback,
      unkId: SPECIAL_IDS.unk,
      bosId: SPECIAL_IDS.bos,
      eosId: SPECIAL_IDS.eos,
      padId: SPECIAL_IDS.pad,
      unkPiece: SPECIAL_PIECES.unk,
      bosPiece: SPECIAL_PIECES.bos,
      eosPiece: SPECIAL_PIECES.eos,
      padPiece: SPECIAL_PIECES.pad,
    },
    // NFC and whitespace cleanup happen in TypeScript (normalizeText) before
    // any text reaches SentencePiece, so its normaliser maps nothing: "identity"
    // with no character map, only the dummy prefix and whitespace escaping.
    normalizerSpec: {
      name: 'identity',
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: true,
      escapeWhitespaces: true,
    },
  };
}

export function bytePiece(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Frequency of each `▁`-prefixed word over all normalised sentences. */
function countWords(sentences: Iterable<string>): Map<string, number> {
  const words = new Map<string, number>();
  for (const sentence of sentences) {
    const text = normalizeText(sentence);
    if (text === '') continue;
    for (const w of text.split(' ')) {
      const word = WHITESPACE_MARK + w;
      words.set(word, (words.get(word) ?? 0) + 1);
    }
  }
  return words;
}

/**
 * The characters that reach the coverage, most frequent first (ties by code
 * point), as SentencePiece orders its required characters.
 */
function chooseAlphabet(words: Map<string, number>, coverage: number, userSymbols: string[]): string[] {
  const counts = new Map<string, number>();
  let total = 0;
  for (const [word, freq] of words) {
    for (const ch of stripUserSymbols(word, userSymbols)) {
      counts.set(ch, (counts.get(ch) ?? 0) + freq);
      total += freq;
    }
  }
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].codePointAt(0)! - b[0].codePointAt(0)!);
  const alphabet: string[] = [];
  let covered = 0;
  for (const [ch, n] of sorted) {
    if (covered / total >= coverage) break;
    covered += n;
    alphabet.push(ch);
  }
  return alphabet;
}

function stripUserSymbols(word: string, userSymbols: string[]): string {
  let out = word;
  for (const s of userSymbols) out = out.split(s).join('');
  return out;
}

// A pair of symbol ids packed into one number: symbol ids stay below 2^21.
const SHIFT = 2 ** 21;
const pairKey = (a: number, b: number): number => a * SHIFT + b;

interface HeapEntry {
  count: number;
  key: number;
  length: number;
  text: string;
}

/** Higher count first, then shorter, then lexically smaller (SentencePiece's order). */
function better(x: HeapEntry, y: HeapEntry): boolean {
  if (x.count !== y.count) return x.count > y.count;
  if (x.length !== y.length) return x.length < y.length;
  return x.text < y.text;
}

/**
 * The merge loop. Words are cut into runs inside which merges are allowed; each
 * distinct run is a symbol sequence with a frequency. Pair counts are kept
 * exactly and updated only for runs that hold the merged pair; a lazy max-heap
 * holds candidate pairs, and stale entries are dropped when popped.
 */
class BpeMerger {
  private readonly symbolText: string[] = [];
  private readonly symbolLength: number[] = [];
  private readonly symbolId = new Map<string, number>();
  private readonly runs: number[][] = [];
  private readonly runFreq: number[] = [];
  private readonly pairCount = new Map<number, number>();
  private readonly pairRuns = new Map<number, number[]>();
  private readonly heap: HeapEntry[] = [];

  constructor(
    words: Map<string, number>,
    alphabet: string[],
    userSymbols: string[],
    private readonly maxPieceLength: number,
  ) {
    for (const ch of alphabet) this.symbol(ch);
    const runFreq = new Map<string, number>();
    for (const [word, freq] of words) {
      for (const run of splitRuns(word, this.symbolId, userSymbols)) runFreq.set(run, (runFreq.get(run) ?? 0) + freq);
    }
    for (const [run, freq] of runFreq) {
      const seq = Array.from(run, (ch) => this.symbolId.get(ch)!);
      if (seq.length < 2) continue;
      const r = this.runs.length;
      this.runs.push(seq);
      this.runFreq.push(freq);
      for (let i = 0; i + 1 < seq.length; i++) this.addPair(seq[i]!, seq[i + 1]!, freq, r);
    }
    for (const [key, count] of this.pairCount) this.push(key, count);
  }

  /** Performs up to `budget` merges that add a new piece; returns the new pieces in order. */
  run(budget: number): string[] {
    const pieces: string[] = [];
    const stamp = new Int32Array(this.runs.length).fill(-1);
    let round = 0;
    while (pieces.length < budget) {
      const best = this.pop();
      if (best === undefined) break;
      const a = Math.floor(best.key / SHIFT);
      const b = best.key % SHIFT;
      // Two pairs can spell the same piece ("ab"+"c", "a"+"bc"); they share one id.
      const known = this.symbolId.has(best.text);
      const c = this.symbol(best.text);
      if (!known) pieces.push(best.text);
      const touched = new Set<number>();
      round++;
      for (const r of this.pairRuns.get(best.key) ?? []) {
        if (stamp[r] === round) continue;
        stamp[r] = round;
        this.mergeInRun(r, a, b, c, touched);
      }
      this.pairRuns.delete(best.key);
      for (const key of touched) {
        const count = this.pairCount.get(key) ?? 0;
        if (count > 0) this.push(key, count);
      }
    }
    return pieces;
  }

  private symbol(text: string): number {
    let id = this.symbolId.get(text);
    if (id === undefined) {
      id = this.symbolText.length;
      this.symbolText.push(text);
      this.symbolLength.push([...text].length);
      this.symbolId.set(text, id);
    }
    return id;
  }

  private allowed(a: number, b: number): boolean {
    return this.symbolLength[a]! + this.symbolLength[b]! <= this.maxPieceLength;
  }

  private addPair(a: number, b: number, freq: number, run: number): void {
    if (!this.allowed(a, b)) return;
    const key = pairKey(a, b);
    this.pairCount.set(key, (this.pairCount.get(key) ?? 0) + freq);
    let list = this.pairRuns.get(key);
    if (list === undefined) this.pairRuns.set(key, (list = []));
    list.push(run);
  }

  private mergeInRun(r: number, a: number, b: number, c: number, touched: Set<number>): void {
    const seq = this.runs[r]!;
    const freq = this.runFreq[r]!;
    let found = false;
    for (let i = 0; i + 1 < seq.length; i++) {
      if (seq[i] === a && seq[i + 1] === b) {
        found = true;
        break;
      }
    }
    if (!found) return;
    for (let i = 0; i + 1 < seq.length; i++) {
      if (!this.allowed(seq[i]!, seq[i + 1]!)) continue;
      const key = pairKey(seq[i]!, seq[i + 1]!);
      this.pairCount.set(key, this.pairCount.get(key)! - freq);
      touched.add(key);
    }
    const merged: number[] = [];
    for (let i = 0; i < seq.length; i++) {
      if (i + 1 < seq.length && seq[i] === a && seq[i + 1] === b) {
        merged.push(c);
        i++;
      } else {
        merged.push(seq[i]!);
      }
    }
    this.runs[r] = merged;
    for (let i = 0; i + 1 < merged.length; i++) {
      const x = merged[i]!;
      const y = merged[i + 1]!;
      if (!this.allowed(x, y)) continue;
      const key = pairKey(x, y);
      this.pairCount.set(key, (this.pairCount.get(key) ?? 0) + freq);
      touched.add(key);
      // Runs are listed under every pair they may hold; a stale listing is
      // harmless because mergeInRun checks before it changes anything.
      if (x === c || y === c) {
        let list = this.pairRuns.get(key);
        if (list === undefined) this.pairRuns.set(key, (list = []));
        list.push(r);
      }
    }
  }

  private push(key: number, count: number): void {
    const a = Math.floor(key / SHIFT);
    const b = key % SHIFT;
    const entry: HeapEntry = {
      count,
      key,
      length: this.symbolLength[a]! + this.symbolLength[b]!,
      text: this.symbolText[a]! + this.symbolText[b]!,
    };
    const heap = this.heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!better(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** The best pair whose heap entry is still current, or undefined when none is left. */
  private pop(): HeapEntry | undefined {
    const heap = this.heap;
    while (heap.length > 0) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= heap.length) break;
          const r = l + 1;
          const child = r < heap.length && better(heap[r]!, heap[l]!) ? r : l;
          if (!better(heap[child]!, last)) break;
          heap[i] = heap[child]!;
          i = child;
        }
        heap[i] = last;
      }
      if (top.count > 0 && this.pairCount.get(top.key) === top.count) return top;
    }
    return undefined;
  }
}

/**
 * Cuts a `▁`-prefixed word into the stretches inside which merges are allowed:
 * boundaries fall at changes of Unicode script (`▁` belongs to any script),
 * around user-defined symbols and around characters outside the alphabet.
 */
function splitRuns(word: string, alphabet: Map<string, number>, userSymbols: string[]): string[] {
  const runs: string[] = [];
  let current = '';
  let script = -1;
  const flush = (): void => {
    if (current !== '') runs.push(current);
    current = '';
    script = -1;
  };
  const chars = [...word];
  for (let i = 0; i < chars.length; i++) {
    const user = userSymbols.find((s) => chars.slice(i, i + [...s].length).join('') === s);
    if (user !== undefined) {
      flush();
      i += [...user].length - 1;
      continue;
    }
    const ch = chars[i]!;
    if (!alphabet.has(ch)) {
      flush();
      continue;
    }
    if (ch === WHITESPACE_MARK) {
      // Only a leading ▁ may join a piece; one typed inside a word stands alone.
      if (i > 0) flush();
      current += ch;
      if (i > 0) flush();
      continue;
    }
    let s = scriptOf(ch);
    if (s === INHERITED) s = script;
    if (script >= 0 && s >= 0 && s !== script) flush();
    current += ch;
    if (s >= 0) script = s;
  }
  flush();
  return runs;
}
