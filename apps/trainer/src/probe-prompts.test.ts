import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPairs, REPO_ROOT, referenceCorpusAvailable, referenceCorpusPath } from '@hanmadi/corpus';
import { describe, expect, it } from 'vitest';

// The probe set lives in data/, which vitest's include does not cover, so it is
// checked from here and read by its path from the repository root.
const PROBE_FILE = join(REPO_ROOT, 'data', 'probe-prompts.txt');

/** A prompt this close to a ChatbotData question or closer is not "fresh". */
const MAX_DISTANCE = 0.2;

function readProbe(): string[] {
  return readFileSync(PROBE_FILE, 'utf8').replace(/\n$/u, '').split('\n');
}

/** NFC, then whitespace and punctuation dropped; symbols and emoji are kept. */
function squeeze(text: string): string[] {
  return [...text.normalize('NFC').replace(/[\s\p{P}]/gu, '')];
}

/** Levenshtein distance over code points (an emoji is one unit, not two UTF-16 halves). */
function levenshtein(a: readonly string[], b: readonly string[]): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Levenshtein / longer length; two empty strings are identical (0). */
function normalisedDistance(a: readonly string[], b: readonly string[]): number {
  const longer = Math.max(a.length, b.length);
  return longer === 0 ? 0 : levenshtein(a, b) / longer;
}

interface Nearest {
  question: string;
  line: number;
  distance: number;
}

/** The closest question within MAX_DISTANCE, or undefined when none is that close. */
function nearestWithin(prompt: readonly string[], questions: readonly { text: string; line: number; units: string[] }[]): Nearest | undefined {
  let best: Nearest | undefined;
  for (const q of questions) {
    const longer = Math.max(prompt.length, q.units.length);
    // The distance is at least the length difference, so most pairs never need the DP.
    if (longer > 0 && Math.abs(prompt.length - q.units.length) / longer > MAX_DISTANCE) continue;
    const distance = normalisedDistance(prompt, q.units);
    if (distance <= MAX_DISTANCE && (best === undefined || distance < best.distance)) {
      best = { question: q.text, line: q.line, distance };
    }
  }
  return best;
}

describe('data/probe-prompts.txt', () => {
  const prompts = readProbe();

  it('has at least 80 prompts, one per line, with no empty line and no duplicate', () => {
    expect(prompts.length).toBeGreaterThanOrEqual(80);
    expect(prompts.filter((p) => p === '')).toEqual([]);
    expect(prompts.filter((p, i) => prompts.indexOf(p) !== i)).toEqual([]);
  });

  it('is NFC, trimmed, and ends in a single newline without carriage returns', () => {
    const text = readFileSync(PROBE_FILE, 'utf8');
    expect(text.endsWith('\n') && !text.endsWith('\n\n')).toBe(true);
    expect(text.includes('\r')).toBe(false);
    expect(prompts.filter((p) => p !== p.normalize('NFC'))).toEqual([]);
    expect(prompts.filter((p) => p !== p.trim())).toEqual([]);
    // A prompt of punctuation alone would make the distance check below meaningless.
    expect(prompts.filter((p) => squeeze(p).length === 0)).toEqual([]);
  });

  it('measures distance over code points after dropping spaces and punctuation', () => {
    expect(normalisedDistance(squeeze('12시 땡!'), squeeze('12시땡'))).toBe(0);
    expect(normalisedDistance(squeeze('헐'), squeeze('헉'))).toBe(1);
    // Emoji are one code point each, and kept: one differing unit out of three.
    expect(normalisedDistance(squeeze('좋아 💕'), squeeze('좋아 🐶'))).toBeCloseTo(1 / 3);
    expect(levenshtein([...'kitten'], [...'sitting'])).toBe(3);
    expect(normalisedDistance([], [])).toBe(0);
  });

  it.runIf(referenceCorpusAvailable())('has no prompt within normalised edit distance 0.2 of a ChatbotData question', async () => {
    const { pairs } = await readPairs(referenceCorpusPath());
    expect(pairs).toHaveLength(11823);
    const questions = pairs.map((p) => ({ text: p.question, line: p.line, units: squeeze(p.question) }));

    // The check must catch what it is for: a real question with one syllable changed.
    expect(nearestWithin(squeeze('3박4일 정도 놀러가고 싶어'), questions)?.question).toBe('3박4일 정도 놀러가고 싶다');

    const tooClose = prompts.flatMap((prompt) => {
      const nearest = nearestWithin(squeeze(prompt), questions);
      return nearest === undefined
        ? []
        : [`"${prompt}" is ${nearest.distance.toFixed(3)} from ChatbotData question "${nearest.question}" (line ${nearest.line})`];
    });
    expect(tooClose).toEqual([]);
  });
});
