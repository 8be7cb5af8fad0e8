/**
 * Learning curves as a self-contained SVG, rewritten into the run directory
 * after every validation so that a person can look at a run instead of
 * reading its log.
 *
 * The SVG is written by hand: it is a few lines, polylines and labels, and no
 * chart library renders SVG in Node without a DOM. The output depends only on
 * the input (coordinates rounded to 0.1 px, numbers formatted without the
 * locale), so an unchanged history gives a byte-identical file.
 */

/** One logged moment of a run; any series may be missing at any step. */
export interface CurvePoint {
  step: number;
  trainLoss?: number;
  validLoss?: number;
  learningRate?: number;
  /** Defaults to e^validLoss (the loss is a mean per-token cross-entropy in nats). */
  validPerplexity?: number;
}

export interface CurveOptions {
  /** Shown after "learning curves", e.g. "tutorial preset on ChatbotData". */
  title?: string;
}

/** Tick positions at a multiple of `mantissa` × 10^`exponent` (1, 2 or 5 × 10^k). */
export interface Ticks {
  values: number[];
  step: number;
  mantissa: 1 | 2 | 5;
  exponent: number;
}

const WIDTH = 900;
const HEIGHT = 520;
const PLOT = { left: 64, right: 828, top: 68, bottom: 470 } as const;
const FONT = "'Noto Sans', 'Noto Sans CJK KR', 'Apple SD Gothic Neo', 'Malgun Gothic', 'DejaVu Sans', sans-serif";
const COLOR = {
  text: '#222',
  muted: '#666',
  axis: '#444',
  grid: '#e6e6e6',
  train: '#4c78a8',
  valid: '#e4572e',
  rate: '#3f8f3a',
} as const;

/**
 * Ticks covering [lo, hi] with about `target` intervals at a round step.
 * `minStep` keeps integer quantities (steps) from getting fractional ticks.
 */
export function niceTicks(lo: number, hi: number, target: number, minStep = 0): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new RangeError(`cannot place ticks on [${lo}, ${hi}]`);
  if (!(hi > lo)) hi = lo + Math.max(1, Math.abs(lo));
  // Steps below a billionth of the values' size cannot be told apart in a
  // double, and tick indices past 2^53 would stop counting up.
  const precision = Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9;
  const rough = Math.max((hi - lo) / Math.max(1, target), minStep, precision);
  let exponent = Math.floor(Math.log10(rough));
  const fraction = rough / 10 ** exponent;
  // Thresholds at the geometric means of 1, 2, 5, 10 pick the closest round step.
  let mantissa: 1 | 2 | 5;
  if (fraction < Math.SQRT2) mantissa = 1;
  else if (fraction < Math.sqrt(10)) mantissa = 2;
  else if (fraction < Math.sqrt(50)) mantissa = 5;
  else {
    mantissa = 1;
    exponent += 1;
  }
  let step = scaled(mantissa, exponent);
  if (step < minStep) {
    // minStep is itself round in practice (1); go up to the next 1-2-5 value.
    ({ mantissa, exponent } = roundUp(minStep));
    step = scaled(mantissa, exponent);
  }
  // The epsilon keeps 0.0006 / 0.0002 = 2.9999999999999996 from adding a tick.
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const values: number[] = [];
  for (let n = first; n <= last; n++) values.push(scaled(n * mantissa, exponent));
  return { values, step, mantissa, exponent };
}

/** n × 10^exponent, dividing for negative exponents so that 3 × 10^-4 is exactly the double nearest 0.0003. */
function scaled(n: number, exponent: number): number {
  return exponent >= 0 ? n * 10 ** exponent : n / 10 ** -exponent;
}

function roundUp(value: number): { mantissa: 1 | 2 | 5; exponent: number } {
  const exponent = Math.floor(Math.log10(value));
  const fraction = value / 10 ** exponent;
  if (fraction <= 1) return { mantissa: 1, exponent };
  if (fraction <= 2) return { mantissa: 2, exponent };
  if (fraction <= 5) return { mantissa: 5, exponent };
  return { mantissa: 1, exponent: exponent + 1 };
}

/** Renders the training curves; an empty or all-invalid history gives a "no data yet" placeholder. */
export function learningCurvesSvg(points: readonly CurvePoint[], options: CurveOptions = {}): string {
  const data = collect(points);
  const out: string[] = [];
  const heading = options.title === undefined || options.title.trim() === '' ? undefined : options.title;
  out.push(
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img">`,
    `<title>${escapeXml(heading === undefined ? 'learning curves' : `learning curves · ${heading}`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<g font-family="${escapeXml(FONT)}" font-size="12" fill="${COLOR.text}">`,
  );

  const empty = data.train.length + data.valid.length + data.rate.length === 0;
  const summary = empty ? [] : summaryLines(data.lastValid);
  const summaryWidth = Math.max(0, ...summary.map((line) => textWidth(line.text, line.size)));
  out.push(...headingText(heading, PLOT.right - PLOT.left - summaryWidth - 24));
  summary.forEach((line, i) => {
    const weight = line.bold ? ' font-weight="bold"' : '';
    out.push(
      `<text class="summary" x="${PLOT.right}" y="${26 + 19 * i}" text-anchor="end" font-size="${line.size}"${weight} fill="${line.muted ? COLOR.muted : COLOR.text}">${escapeXml(line.text)}</text>`,
    );
  });

  if (empty) {
    out.push(
      `<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="${COLOR.grid}"/>`,
      `<text class="placeholder" x="${(PLOT.left + PLOT.right) / 2}" y="${(PLOT.top + PLOT.bottom) / 2}" text-anchor="middle" font-size="18" fill="${COLOR.muted}">no data yet</text>`,
      '</g>',
      '</svg>',
      '',
    );
    return out.join('\n');
  }

  const allSteps = [...data.train, ...data.valid, ...data.rate].map(([step]) => step);
  const xTicks = niceTicks(Math.min(0, minimum(allSteps)), Math.max(1, maximum(allSteps)), 8, 1);
  const losses = [...data.train, ...data.valid].map(([, value]) => value);
  const yTicks = niceTicks(Math.min(0, minimum(losses)), Math.max(0, maximum(losses)), 6);
  const rates = data.rate.map(([, value]) => value);
  // Headroom keeps a constant learning rate off the frame's top edge.
  const rTicks = rates.length > 0 ? niceTicks(Math.min(0, minimum(rates)), Math.max(0, maximum(rates)) * 1.08, 6) : undefined;

  const x = axisMap(xTicks, PLOT.left, PLOT.right);
  const y = axisMap(yTicks, PLOT.bottom, PLOT.top);
  const r = rTicks === undefined ? undefined : axisMap(rTicks, PLOT.bottom, PLOT.top);

  // Grid follows one vertical axis only (loss, or the learning rate while no loss
  // is known): two sets of horizontal lines would be noise.
  const [gridTicks, gridMap] = losses.length === 0 && rTicks !== undefined && r !== undefined ? [rTicks, r] : [yTicks, y];
  out.push(`<g class="grid" stroke="${COLOR.grid}" stroke-width="1">`);
  for (const v of xTicks.values) out.push(`<line x1="${fmt(x(v))}" y1="${PLOT.top}" x2="${fmt(x(v))}" y2="${PLOT.bottom}"/>`);
  for (const v of gridTicks.values) out.push(`<line x1="${PLOT.left}" y1="${fmt(gridMap(v))}" x2="${PLOT.right}" y2="${fmt(gridMap(v))}"/>`);
  out.push('</g>');

  if (data.train.length > 0) {
    out.push(polyline('train-loss', data.train, x, y, `stroke="${COLOR.train}" stroke-width="1.2" stroke-opacity="0.9"`));
    if (data.train.length === 1) out.push(markers('train-loss', data.train, x, y, COLOR.train, 3));
  }
  if (r !== undefined) {
    out.push(polyline('learning-rate', data.rate, x, r, `stroke="${COLOR.rate}" stroke-width="1.6" stroke-dasharray="7 4"`));
    if (data.rate.length === 1) out.push(markers('learning-rate', data.rate, x, r, COLOR.rate, 3));
  }
  if (data.valid.length > 0) {
    out.push(polyline('valid-loss', data.valid, x, y, `stroke="${COLOR.valid}" stroke-width="2" stroke-linejoin="round"`));
    // Dots shrink as they crowd, so a long run still shows its line.
    const radius = data.valid.length <= 40 ? 3.5 : data.valid.length <= 150 ? 2.5 : 1.5;
    out.push(markers('valid-loss', data.valid, x, y, COLOR.valid, radius));
  }

  out.push(...axes(xTicks, losses.length > 0 ? yTicks : undefined, rTicks, x, y, r));
  out.push(...legend(data));
  out.push('</g>', '</svg>', '');
  return out.join('\n');
}

type Pair = readonly [step: number, value: number];

interface Series {
  train: Pair[];
  valid: Pair[];
  rate: Pair[];
  lastValid: { step: number; loss: number; perplexity: number | undefined } | undefined;
}

/** Finite values only, in step order; a NaN loss from a diverged step is simply not drawn. */
function collect(points: readonly CurvePoint[]): Series {
  // Sorting by step (stable, ties in input order) makes the drawing independent
  // of the order in which a resumed run's history was concatenated.
  const sorted = points.filter((p) => Number.isFinite(p.step)).sort((a, b) => a.step - b.step);
  const series: Series = { train: [], valid: [], rate: [], lastValid: undefined };
  for (const p of sorted) {
    if (isFiniteNumber(p.trainLoss)) series.train.push([p.step, p.trainLoss]);
    if (isFiniteNumber(p.learningRate)) series.rate.push([p.step, p.learningRate]);
    if (isFiniteNumber(p.validLoss)) {
      series.valid.push([p.step, p.validLoss]);
      const perplexity = isFiniteNumber(p.validPerplexity) ? p.validPerplexity : Math.exp(p.validLoss);
      series.lastValid = { step: p.step, loss: p.validLoss, perplexity: Number.isFinite(perplexity) ? perplexity : undefined };
    }
  }
  return series;
}

// Math.min(...values) passes every value as an argument and overflows the stack
// for a long run logged at every step.
function minimum(values: readonly number[]): number {
  let result = Number.POSITIVE_INFINITY;
  for (const v of values) if (v < result) result = v;
  return result;
}

function maximum(values: readonly number[]): number {
  let result = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v > result) result = v;
  return result;
}

function isFiniteNumber(value: number | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function axisMap(ticks: Ticks, from: number, to: number): (value: number) => number {
  const lo = ticks.values[0] ?? 0;
  const hi = ticks.values[ticks.values.length - 1] ?? 1;
  const span = hi - lo || 1;
  return (value) => from + ((value - lo) / span) * (to - from);
}

function polyline(name: string, pairs: readonly Pair[], x: (v: number) => number, y: (v: number) => number, style: string): string {
  const coords = pairs.map(([step, value]) => `${fmt(x(step))},${fmt(y(value))}`).join(' ');
  return `<polyline class="series ${name}" points="${coords}" fill="none" ${style}/>`;
}

function markers(name: string, pairs: readonly Pair[], x: (v: number) => number, y: (v: number) => number, color: string, radius: number): string {
  const dots = pairs.map(([step, value]) => `<circle cx="${fmt(x(step))}" cy="${fmt(y(value))}" r="${radius}"/>`);
  return [`<g class="markers ${name}" fill="${color}" stroke="#ffffff" stroke-width="0.8">`, ...dots, '</g>'].join('\n');
}

function axes(
  xTicks: Ticks,
  yTicks: Ticks | undefined,
  rTicks: Ticks | undefined,
  x: (v: number) => number,
  y: (v: number) => number,
  r: ((v: number) => number) | undefined,
): string[] {
  const out: string[] = [];
  out.push(
    `<g class="axes" stroke="${COLOR.axis}" stroke-width="1" fill="none">`,
    `<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}"/>`,
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}"/>`,
  );
  if (rTicks !== undefined) out.push(`<line x1="${PLOT.right}" y1="${PLOT.top}" x2="${PLOT.right}" y2="${PLOT.bottom}"/>`);
  for (const v of xTicks.values) out.push(`<line x1="${fmt(x(v))}" y1="${PLOT.bottom}" x2="${fmt(x(v))}" y2="${PLOT.bottom + 5}"/>`);
  for (const v of yTicks?.values ?? []) out.push(`<line x1="${PLOT.left - 5}" y1="${fmt(y(v))}" x2="${PLOT.left}" y2="${fmt(y(v))}"/>`);
  if (rTicks !== undefined && r !== undefined) {
    for (const v of rTicks.values) out.push(`<line x1="${PLOT.right}" y1="${fmt(r(v))}" x2="${PLOT.right + 5}" y2="${fmt(r(v))}"/>`);
  }
  out.push('</g>');

  const xLabels = stepLabels(xTicks);
  xTicks.values.forEach((v, i) => {
    out.push(tickText('tick-x', v, x(v), PLOT.bottom + 19, 'middle', xLabels[i] ?? '', COLOR.text));
  });
  out.push(`<text class="axis-title" x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 41}" text-anchor="middle" font-size="13">step</text>`);
  // Without a loss yet, numbers on the loss axis would describe nothing.
  if (yTicks !== undefined) {
    const yLabels = scaledLabels(yTicks);
    yTicks.values.forEach((v, i) => {
      out.push(tickText('tick-y', v, PLOT.left - 8, y(v) + 4, 'end', yLabels.labels[i] ?? '', COLOR.text));
    });
    out.push(rotatedTitle(18, `loss${yLabels.suffix}`, -90, COLOR.text));
  }
  if (rTicks !== undefined && r !== undefined) {
    const rLabels = scaledLabels(rTicks);
    rTicks.values.forEach((v, i) => {
      out.push(tickText('tick-lr', v, PLOT.right + 8, r(v) + 4, 'start', rLabels.labels[i] ?? '', COLOR.rate));
    });
    out.push(rotatedTitle(WIDTH - 14, `learning rate${rLabels.suffix}`, 90, COLOR.rate));
  }
  return out;
}

function tickText(name: string, value: number, x: number, y: number, anchor: string, label: string, color: string): string {
  return `<text class="${name}" data-value="${value}" x="${fmt(x)}" y="${fmt(y)}" text-anchor="${anchor}" font-size="11" fill="${color}">${escapeXml(label)}</text>`;
}

function rotatedTitle(x: number, text: string, angle: number, color: string): string {
  const cy = fmt((PLOT.top + PLOT.bottom) / 2);
  return `<text class="axis-title" x="${x}" y="${cy}" transform="rotate(${angle} ${x} ${cy})" text-anchor="middle" font-size="13" fill="${color}">${escapeXml(text)}</text>`;
}

/** Step counts as 0, 500, 1500 or 20k, 100k or 1.5M: short enough for 8 ticks across. */
function stepLabels(ticks: Ticks): string[] {
  const unit = ticks.step >= 1e6 ? 6 : ticks.step >= 1e3 ? 3 : 0;
  const suffix = unit === 6 ? 'M' : unit === 3 ? 'k' : '';
  const decimals = Math.max(0, unit - ticks.exponent);
  return ticks.values.map((v) => (v === 0 ? '0' : `${(v / 10 ** unit).toFixed(decimals)}${suffix}`));
}

/**
 * Labels with a common decimal count; values far from 1 (a learning rate of
 * 0.0004) are shown as multiples of a power of ten named in the axis title,
 * which reads better than a column of 4e-4, 6e-4, 8e-4, 1e-3.
 */
function scaledLabels(ticks: Ticks): { labels: string[]; suffix: string } {
  const largest = Math.max(...ticks.values.map(Math.abs));
  const power = largest > 0 ? Math.floor(Math.log10(largest) + 1e-9) : 0;
  const shift = power < -2 || power > 4 ? power : 0;
  const decimals = Math.max(0, shift - ticks.exponent);
  const labels = ticks.values.map((_, i) => {
    const n = Math.round(ticks.values[0]! / ticks.step) + i;
    return scaled(n * ticks.mantissa, ticks.exponent - shift).toFixed(decimals);
  });
  return { labels, suffix: shift === 0 ? '' : ` (×10${superscript(shift)})` };
}

function superscript(n: number): string {
  const digits = '⁰¹²³⁴⁵⁶⁷⁸⁹';
  return [...String(n)].map((c) => (c === '-' ? '⁻' : (digits[Number(c)] ?? c))).join('');
}

function headingText(title: string | undefined, available: number): string[] {
  const lead = 'learning curves';
  const leadWidth = textWidth(lead, 16, true);
  const out = [`<text class="title" x="${PLOT.left}" y="28" font-size="16"><tspan font-weight="bold">${lead}</tspan>`];
  if (title !== undefined) {
    // Renderers drop a tspan's leading space, so the gap is a dx offset.
    const rest = truncate(`· ${title}`, 15, available - leadWidth - 6);
    out[0] += `<tspan dx="6" fill="${COLOR.muted}" font-size="15">${escapeXml(rest)}</tspan>`;
  }
  out[0] += '</text>';
  return out;
}

interface SummaryLine {
  text: string;
  size: number;
  bold?: boolean;
  muted?: boolean;
}

function summaryLines(last: Series['lastValid']): SummaryLine[] {
  if (last === undefined) return [{ text: 'no validation yet', size: 12, muted: true }];
  const perplexity = last.perplexity === undefined ? '' : ` · perplexity ${formatQuantity(last.perplexity)}`;
  return [
    { text: `validation loss ${formatQuantity(last.loss)}${perplexity}`, size: 13, bold: true },
    { text: `last validation at step ${groupDigits(last.step)}`, size: 11, muted: true },
  ];
}

/** Three decimals for losses and small perplexities, whole numbers once they are large. */
function formatQuantity(value: number): string {
  if (Math.abs(value) >= 1000) return groupDigits(Math.round(value));
  if (Math.abs(value) >= 100) return value.toFixed(1);
  return value.toFixed(Math.abs(value) >= 10 ? 2 : 3);
}

/** 12345 → "12,345" without Intl, whose output depends on the machine's locale. */
function groupDigits(value: number): string {
  const [whole = '', fraction] = String(value).split('.');
  const sign = whole.startsWith('-') ? '-' : '';
  const digits = whole.replace('-', '').replace(/\B(?=(\d{3})+(?!\d))/gu, ',');
  return `${sign}${digits}${fraction === undefined ? '' : `.${fraction}`}`;
}

function legend(data: Series): string[] {
  const entries: { label: string; draw: (x: number, y: number) => string }[] = [];
  if (data.train.length > 0) {
    entries.push({
      label: 'training loss',
      draw: (x, y) => `<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${COLOR.train}" stroke-width="1.6"/>`,
    });
  }
  if (data.valid.length > 0) {
    entries.push({
      label: 'validation loss',
      draw: (x, y) =>
        `<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${COLOR.valid}" stroke-width="2"/>` +
        `<circle cx="${x + 13}" cy="${y}" r="3.5" fill="${COLOR.valid}" stroke="#ffffff" stroke-width="0.8"/>`,
    });
  }
  if (data.rate.length > 0) {
    entries.push({
      label: 'learning rate (right axis)',
      draw: (x, y) => `<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${COLOR.rate}" stroke-width="1.6" stroke-dasharray="7 4"/>`,
    });
  }
  const out = ['<g class="legend" font-size="12">'];
  let x = PLOT.left;
  const y = 48;
  for (const entry of entries) {
    out.push(entry.draw(x, y), `<text x="${x + 32}" y="${y + 4}">${escapeXml(entry.label)}</text>`);
    // Whole pixels keep every legend coordinate as short as the data's.
    x += Math.round(32 + textWidth(entry.label, 12) + 22);
  }
  out.push('</g>');
  return out;
}

/** Rough advance width in px: enough to keep text apart without measuring fonts. */
function textWidth(text: string, size: number, bold = false): number {
  let em = 0;
  for (const c of text) {
    const code = c.codePointAt(0) ?? 0;
    // Hangul, CJK and full-width forms are square; narrow Latin marks are about a third of that.
    if (
      (code >= 0x1100 && code <= 0x11ff) ||
      (code >= 0x2e80 && code <= 0xa4cf) ||
      (code >= 0xac00 && code <= 0xd7af) ||
      (code >= 0xf900 && code <= 0xfaff) ||
      (code >= 0xff00 && code <= 0xff60)
    )
      em += 1;
    else if (/[ilj.,:;'!|·()[\] ]/u.test(c)) em += 0.3;
    else if (/[A-Z@%MWmw]/u.test(c)) em += 0.75;
    else em += 0.58;
  }
  return em * size * (bold ? 1.08 : 1);
}

function truncate(text: string, size: number, available: number): string {
  if (textWidth(text, size) <= available) return text;
  const chars = [...text];
  while (chars.length > 0 && textWidth(`${chars.join('')}…`, size) > available) chars.pop();
  return `${chars.join('').trimEnd()}…`;
}

function escapeXml(text: string): string {
  return [...text]
    .filter(isXmlChar)
    .join('')
    .replace(/&/gu, '&amp;')
    .replace(/</gu, '&lt;')
    .replace(/>/gu, '&gt;')
    .replace(/"/gu, '&quot;')
    .replace(/'/gu, '&apos;');
}

/**
 * XML 1.0 cannot carry C0 controls other than tab, newline and CR, nor U+FFFE,
 * U+FFFF or unpaired surrogates, not even as character references: a title
 * holding one would make the whole file unreadable, so such characters are dropped.
 */
function isXmlChar(c: string): boolean {
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20) return code === 0x09 || code === 0x0a || code === 0x0d;
  if (code >= 0xd800 && code <= 0xdfff) return false;
  return code !== 0xfffe && code !== 0xffff;
}

/** One decimal is finer than a pixel; "-0" would make equal drawings differ as text. */
function fmt(value: number): string {
  const rounded = Math.round(value * 10) / 10;
  return Object.is(rounded, -0) ? '0' : String(rounded);
}
