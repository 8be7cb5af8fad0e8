import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CurvePoint, learningCurvesSvg, niceTicks } from './plot.js';

interface Element {
  name: string;
  attributes: Record<string, string>;
  text: string;
  children: Element[];
}

/**
 * A strict parser for the XML subset the plot writes (prolog, elements,
 * double-quoted attributes, text, the five predefined entities); it throws on
 * anything malformed, so a passing parse means the file is well-formed.
 */
function parseXml(xml: string): Element {
  const prolog = '<?xml version="1.0" encoding="UTF-8"?>\n';
  if (!xml.startsWith(prolog)) throw new Error('missing XML declaration');
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[A-Za-z][\w:-]*="[^"<]*")*)\s*(\/?)>/y;
  const attribute = /([A-Za-z][\w:-]*)="([^"<]*)"/g;
  const stack: Element[] = [{ name: '#document', attributes: {}, text: '', children: [] }];
  let pos = prolog.length;
  while (pos < xml.length) {
    const next = xml.indexOf('<', pos);
    const text = xml.slice(pos, next === -1 ? xml.length : next);
    checkText(text);
    stack[stack.length - 1]!.text += decode(text);
    if (next === -1) break;
    tag.lastIndex = next;
    const match = tag.exec(xml);
    if (match === null) throw new Error(`malformed tag at ${next}: ${xml.slice(next, next + 40)}`);
    const [whole, closing, name = '', attrs = '', selfClosing] = match;
    pos = next + whole.length;
    if (closing === '/') {
      const open = stack.pop();
      if (open?.name !== name || stack.length === 0) throw new Error(`</${name}> closes <${open?.name}>`);
      continue;
    }
    const element: Element = { name, attributes: {}, text: '', children: [] };
    for (const [, key = '', value = ''] of attrs.matchAll(attribute)) {
      if (key in element.attributes) throw new Error(`duplicate attribute ${key} on <${name}>`);
      checkText(value);
      element.attributes[key] = decode(value);
    }
    stack[stack.length - 1]!.children.push(element);
    if (selfClosing !== '/') stack.push(element);
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const roots = stack[0]!.children;
  if (roots.length !== 1 || stack[0]!.text.trim() !== '') throw new Error('expected exactly one root element');
  return roots[0]!;
}

function checkText(text: string): void {
  if (/&(?!(?:amp|lt|gt|quot|apos);)/u.test(text)) throw new Error(`bare & in ${JSON.stringify(text)}`);
  if (text.includes('>') && text.includes(']]>')) throw new Error(']]> in text');
  // eslint-disable-next-line no-control-regex -- looking for exactly the characters XML forbids
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/u.test(text)) throw new Error('control character in text');
}

function decode(text: string): string {
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(amp|lt|gt|quot|apos);/gu, (_, name: string) => entities[name] ?? '');
}

function all(root: Element, predicate: (e: Element) => boolean): Element[] {
  const found: Element[] = [];
  const walk = (e: Element): void => {
    if (predicate(e)) found.push(e);
    e.children.forEach(walk);
  };
  walk(root);
  return found;
}

const hasClass = (e: Element, name: string): boolean => (e.attributes['class'] ?? '').split(' ').includes(name);
const byClass = (root: Element, name: string): Element[] => all(root, (e) => hasClass(e, name));
/** All text of an element and its descendants, in document order. */
const textOf = (e: Element): string => e.text + e.children.map(textOf).join('');

function seriesPoints(root: Element, name: string): [number, number][] {
  const [line, ...more] = all(root, (e) => e.name === 'polyline' && hasClass(e, name));
  expect(more).toHaveLength(0);
  if (line === undefined) return [];
  return (line.attributes['points'] ?? '').split(' ').map((pair) => {
    const [x = Number.NaN, y = Number.NaN] = pair.split(',').map(Number);
    return [x, y];
  });
}

/** Whether consecutive ticks differ by one 1, 2 or 5 × 10^k step and every tick is a multiple of it. */
function isRoundLadder(values: readonly number[]): boolean {
  if (values.length < 2) return false;
  const difference = values[1]! - values[0]!;
  const exponent = Math.floor(Math.log10(difference) + 1e-9);
  const mantissa = Math.round(difference / 10 ** exponent);
  if (![1, 2, 5].includes(mantissa) || Math.abs(difference / 10 ** exponent - mantissa) > 1e-6) return false;
  // The round step itself, not the difference, which cancellation makes inexact far from zero.
  const step = exponent >= 0 ? mantissa * 10 ** exponent : mantissa / 10 ** -exponent;
  return values.every((v, i) => Math.abs(v - values[0]! - i * step) <= step * 1e-6 && Math.abs(v / step - Math.round(v / step)) <= 1e-6);
}

/** A run with the shapes seen in practice: noisy training loss, sparse validation, warm-up then decay. */
function realisticRun(totalSteps: number, logEvery: number, validEvery: number): CurvePoint[] {
  const points: CurvePoint[] = [];
  for (let step = logEvery; step <= totalSteps; step += logEvery) {
    const learningRate = 256 ** -0.5 * Math.min(step ** -0.5, step * 4000 ** -1.5);
    points.push({ step, trainLoss: 1.5 + 8 * Math.exp(-step / (totalSteps / 10)) + 0.1 * Math.sin(step), learningRate });
    if (step % validEvery === 0) points.push({ step, validLoss: 2.2 + 6 * Math.exp(-step / (totalSteps / 8)) });
  }
  return points;
}

describe('learningCurvesSvg', () => {
  it('writes a well-formed 900×520 SVG on a white background, Korean text intact', () => {
    const svg = learningCurvesSvg(realisticRun(3000, 10, 500), { title: '튜토리얼 프리셋 · ChatbotData' });
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(root.attributes).toMatchObject({ xmlns: 'http://www.w3.org/2000/svg', width: '900', height: '520', viewBox: '0 0 900 520' });
    const background = root.children.find((e) => e.name === 'rect');
    expect(background?.attributes).toMatchObject({ width: '900', height: '520', fill: '#ffffff' });
    expect(textOf(root.children.find((e) => e.name === 'title')!)).toBe('learning curves · 튜토리얼 프리셋 · ChatbotData');
    expect(textOf(byClass(root, 'title')[0]!)).toContain('튜토리얼 프리셋');
    // Nothing refers outside the file: no images, links or external fonts.
    expect(svg).not.toMatch(/href|<image|@import|url\(/u);
  });

  it('draws each series as one polyline with a point per finite value, validation with dot markers', () => {
    const points = realisticRun(3000, 10, 500);
    const root = parseXml(learningCurvesSvg(points));
    expect(seriesPoints(root, 'train-loss')).toHaveLength(300);
    expect(seriesPoints(root, 'valid-loss')).toHaveLength(6);
    expect(seriesPoints(root, 'learning-rate')).toHaveLength(300);
    const dots = byClass(root, 'markers').filter((g) => hasClass(g, 'valid-loss'));
    expect(dots).toHaveLength(1);
    expect(dots[0]!.children.filter((e) => e.name === 'circle')).toHaveLength(6);
    const rate = all(root, (e) => e.name === 'polyline' && hasClass(e, 'learning-rate'))[0]!;
    expect(rate.attributes['stroke-dasharray']).toBeDefined();
    // Every coordinate lies inside the plot frame.
    for (const [x, y] of ['train-loss', 'valid-loss', 'learning-rate'].flatMap((name) => seriesPoints(root, name))) {
      expect(x).toBeGreaterThanOrEqual(64);
      expect(x).toBeLessThanOrEqual(828);
      expect(y).toBeGreaterThanOrEqual(68);
      expect(y).toBeLessThanOrEqual(470);
    }
  });

  it('puts later steps further right and higher losses higher up', () => {
    const root = parseXml(
      learningCurvesSvg([
        { step: 0, trainLoss: 9 },
        { step: 100, trainLoss: 5 },
        { step: 200, trainLoss: 1 },
      ]),
    );
    const [a, b, c] = seriesPoints(root, 'train-loss');
    expect(a![0]).toBeLessThan(b![0]);
    expect(b![0]).toBeLessThan(c![0]);
    expect(a![1]).toBeLessThan(b![1]); // SVG y grows downwards
    expect(b![1]).toBeLessThan(c![1]);
  });

  it('labels the axes and writes a legend naming only the series present', () => {
    const root = parseXml(learningCurvesSvg(realisticRun(3000, 10, 500)));
    const titles = byClass(root, 'axis-title').map(textOf);
    expect(titles).toContain('step');
    expect(titles).toContain('loss');
    expect(titles.some((t) => t.startsWith('learning rate'))).toBe(true);
    const legendOf = (svg: Element): string[] => all(byClass(svg, 'legend')[0]!, (e) => e.name === 'text').map(textOf);
    expect(legendOf(root)).toEqual(['training loss', 'validation loss', 'learning rate (right axis)']);

    const noRate = parseXml(
      learningCurvesSvg([
        { step: 10, trainLoss: 5 },
        { step: 20, trainLoss: 4 },
      ]),
    );
    expect(legendOf(noRate)).toEqual(['training loss']);
    expect(seriesPoints(noRate, 'learning-rate')).toHaveLength(0);
    expect(seriesPoints(noRate, 'valid-loss')).toHaveLength(0);
    expect(byClass(noRate, 'tick-lr')).toHaveLength(0);
    expect(byClass(noRate, 'axis-title').map(textOf)).not.toContain('learning rate');
  });

  it('writes the last validation loss and its perplexity in the corner', () => {
    const points: CurvePoint[] = [
      { step: 2000, validLoss: 3.5, validPerplexity: 33.115 },
      { step: 12000, validLoss: 2.25, validPerplexity: 9.4877 },
      { step: 500, trainLoss: 6 },
    ];
    const summary = byClass(parseXml(learningCurvesSvg(points)), 'summary')
      .map(textOf)
      .join('\n');
    expect(summary).toContain('validation loss 2.250');
    expect(summary).toContain('perplexity 9.488');
    expect(summary).toContain('step 12,000');

    // Without a perplexity it is e^loss; a later NaN validation does not replace the last real one.
    const derived = learningCurvesSvg([
      { step: 100, validLoss: Math.log(20) },
      { step: 200, validLoss: Number.NaN },
    ]);
    expect(byClass(parseXml(derived), 'summary').map(textOf).join('\n')).toMatch(/perplexity 20\.00.*\n.*step 100$/u);
  });

  it('skips NaN and infinite values and steps instead of drawing them', () => {
    const points: CurvePoint[] = [
      { step: 0, trainLoss: 9, learningRate: 0 },
      { step: 10, trainLoss: Number.NaN, learningRate: Number.POSITIVE_INFINITY },
      { step: 20, trainLoss: Number.POSITIVE_INFINITY, validLoss: Number.NaN },
      { step: Number.NaN, trainLoss: 3 },
      { step: Number.POSITIVE_INFINITY, trainLoss: 3 },
      { step: 30, trainLoss: 4, validLoss: 4.5, learningRate: 1e-4 },
    ];
    const svg = learningCurvesSvg(points);
    expect(svg).not.toMatch(/NaN|Infinity/u);
    const root = parseXml(svg);
    expect(seriesPoints(root, 'train-loss')).toHaveLength(2);
    expect(seriesPoints(root, 'learning-rate')).toHaveLength(2);
    expect(seriesPoints(root, 'valid-loss')).toHaveLength(1);
  });

  it('escapes XML characters in the title and drops characters XML cannot hold', () => {
    const title = `<script>alert("x & y")</script> 'ok' \u0000\u001b\uD800 끝`;
    const svg = learningCurvesSvg([{ step: 1, trainLoss: 2 }], { title });
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&lt;script&gt;alert(&quot;x &amp; y&quot;)&lt;/script&gt; &apos;ok&apos;');
    const root = parseXml(svg);
    expect(textOf(root.children.find((e) => e.name === 'title')!)).toBe(`learning curves · <script>alert("x & y")</script> 'ok'  끝`);
  });

  it('shortens a title too long for the heading, keeping the full one in <title>', () => {
    const title = '아주 긴 제목 '.repeat(20);
    const root = parseXml(learningCurvesSvg([{ step: 1, trainLoss: 2, validLoss: 2.5 }], { title }));
    const shown = textOf(byClass(root, 'title')[0]!);
    expect(shown.endsWith('…')).toBe(true);
    expect(shown.length).toBeLessThan(title.length / 2);
    expect(textOf(root.children.find((e) => e.name === 'title')!)).toContain(title.trim());
  });

  it('shows a "no data yet" placeholder for no points, or none with a finite value', () => {
    for (const points of [[], [{ step: 5 }, { step: 10, trainLoss: Number.NaN }]] satisfies CurvePoint[][]) {
      const root = parseXml(learningCurvesSvg(points, { title: 'tiny' }));
      expect(byClass(root, 'placeholder').map(textOf)).toEqual(['no data yet']);
      expect(all(root, (e) => e.name === 'polyline' || e.name === 'circle')).toHaveLength(0);
      expect(byClass(root, 'tick-x')).toHaveLength(0);
    }
  });

  it('draws a single point visibly, on axes that still have a range', () => {
    for (const point of [
      { step: 0, trainLoss: 9.2, learningRate: 0 },
      { step: 500, trainLoss: 0, validLoss: 7.1, learningRate: 2e-4 },
    ]) {
      const root = parseXml(learningCurvesSvg([point]));
      expect(seriesPoints(root, 'train-loss')).toHaveLength(1);
      expect(all(root, (e) => e.name === 'circle' && e.attributes['r'] !== undefined).length).toBeGreaterThan(0);
      for (const axis of ['tick-x', 'tick-y', 'tick-lr']) {
        const values = byClass(root, axis).map((e) => Number(e.attributes['data-value']));
        expect(isRoundLadder(values), `${axis}: ${values.join(', ')}`).toBe(true);
      }
    }
  });

  it('places ticks at round values covering the data: 100k steps, losses 0.01–12, learning rates around 1e-4', () => {
    const points: CurvePoint[] = [];
    for (let step = 0; step <= 100_000; step += 250) {
      points.push({ step, trainLoss: 0.01 + 11.99 * Math.exp(-step / 5000), learningRate: step === 0 ? 0 : 7e-4 * Math.min(1, 4000 / step) });
    }
    const root = parseXml(learningCurvesSvg(points));
    const ticks = (axis: string): number[] => byClass(root, axis).map((e) => Number(e.attributes['data-value']));
    for (const axis of ['tick-x', 'tick-y', 'tick-lr']) {
      expect(isRoundLadder(ticks(axis)), `${axis}: ${ticks(axis).join(', ')}`).toBe(true);
      expect(ticks(axis).length).toBeGreaterThanOrEqual(4);
      expect(ticks(axis).length).toBeLessThanOrEqual(11);
    }
    expect(ticks('tick-x')[0]).toBe(0);
    expect(ticks('tick-x').at(-1)).toBeGreaterThanOrEqual(100_000);
    expect(ticks('tick-y').at(-1)).toBeGreaterThanOrEqual(12);
    expect(ticks('tick-lr').at(-1)).toBeGreaterThanOrEqual(7e-4);
    expect(byClass(root, 'tick-x').map(textOf)).toContain('100k');
    // The learning-rate labels are short multiples of a power of ten named in the axis title.
    expect(byClass(root, 'tick-lr').map(textOf)).toContain('2');
    expect(byClass(root, 'axis-title').map(textOf)).toContain('learning rate (×10⁻⁴)');
  });

  it('handles a run logged at every one of 300k steps', () => {
    const points = Array.from({ length: 300_000 }, (_, i): CurvePoint => ({ step: i + 1, trainLoss: 10 / Math.sqrt(i + 1), learningRate: 1e-3 }));
    const root = parseXml(learningCurvesSvg(points));
    expect(seriesPoints(root, 'train-loss')).toHaveLength(300_000);
    expect(byClass(root, 'tick-x').map(textOf).at(-1)).toBe('300k');
  });

  it('is deterministic: equal input gives the same string, whatever the order of the points', () => {
    const points = realisticRun(20_000, 50, 2000);
    const svg = learningCurvesSvg(points, { title: 'base' });
    expect(learningCurvesSvg(points, { title: 'base' })).toBe(svg);
    // The run's history may be concatenated out of order after a resume.
    expect(learningCurvesSvg([...points].reverse(), { title: 'base' })).toBe(svg);
    // Coordinates carry at most one decimal.
    for (const [, value] of svg.matchAll(/\b(?:x|y|x1|y1|x2|y2|cx|cy|points)="([^"]*)"/gu)) {
      expect(value).toMatch(/^-?\d+(?:\.\d)?(?:[ ,]-?\d+(?:\.\d)?)*$/u);
    }
  });
});

describe('niceTicks', () => {
  it('picks 1, 2 or 5 × 10^k steps for typical ranges', () => {
    expect(niceTicks(0, 100_000, 8).values).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => n * 10_000));
    expect(niceTicks(0, 100_000, 5).values).toEqual([0, 20_000, 40_000, 60_000, 80_000, 100_000]);
    expect(niceTicks(0, 12.01, 6).values).toEqual([0, 2, 4, 6, 8, 10, 12, 14]);
    expect(niceTicks(0, 7.56e-4, 4).values).toEqual([0, 2e-4, 4e-4, 6e-4, 8e-4]);
    expect(niceTicks(0, 3, 6).values).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3]);
  });

  it('stays finite for a span too small to resolve', () => {
    const { values } = niceTicks(1e6, 1e6 + 1e-9, 5);
    expect(values.length).toBeLessThanOrEqual(3);
    expect(isRoundLadder(values)).toBe(true);
  });

  it('keeps integer quantities on integer ticks', () => {
    expect(niceTicks(0, 3, 8, 1).values).toEqual([0, 1, 2, 3]);
    expect(niceTicks(0, 1, 8, 1).values).toEqual([0, 1]);
  });

  it('covers any range with a round ladder of at most a dozen ticks', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: 1e-9, max: 1e7, noNaN: true }),
        fc.integer({ min: 2, max: 10 }),
        (lo, span, target) => {
          const hi = lo + span;
          // A span below a millionth of the values is no plot anyone draws.
          fc.pre(hi > lo && span >= Math.abs(lo) * 1e-6);
          const { values, step, mantissa } = niceTicks(lo, hi, target);
          expect([1, 2, 5]).toContain(mantissa);
          expect(isRoundLadder(values)).toBe(true);
          expect(values[0]).toBeLessThanOrEqual(lo + step * 1e-6);
          expect(values.at(-1)).toBeGreaterThanOrEqual(hi - step * 1e-6);
          expect(values.length).toBeLessThanOrEqual(2 * target + 2);
        },
      ),
    );
  });
});
