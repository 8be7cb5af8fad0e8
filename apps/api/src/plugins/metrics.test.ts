import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import type { RunningServer } from '../serve-command.js';

const DASHBOARD = new URL('../../../../deploy/grafana/hanmadi.json', import.meta.url);

/** PromQL words that are neither metrics nor followed by "(". */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers left once strings,
 * label matchers, grouping clauses, ranges, Grafana variables, numbers,
 * function calls and keywords are taken out.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/gu, '""')
    .replace(/\{[^}]*\}/gu, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gu, ' ')
    .replace(/\[[^\]]*\]/gu, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/gu, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/gu)) {
    const rest = bare.slice(m.index + m[0].length);
    if (/^\s*\(/u.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    // An exponent of a number ("1e3") is no name.
    if (m.index > 0 && /[0-9.]/u.test(bare[m.index - 1]!)) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every sample's name in a Prometheus text exposition, with its value summed over labels. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/u.exec(line)![0];
    out.set(name, (out.get(name) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

let testServer: TestServer | undefined;
let server: RunningServer;

beforeAll(async () => {
  testServer = await startTestServer();
  ({ server } = testServer);
});

afterAll(() => testServer?.stop());

const complete = (body: Record<string, unknown>) =>
  fetch(`${server.url}v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: '안녕' }], max_tokens: 8, ...body }),
  }).then((r) => r.text());

describe('metricNames', () => {
  it('finds the metrics of an expression and nothing else', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{route=~"/v1/.*"}[$__rate_interval])))')).toEqual(['a_seconds_bucket']);
    expect(metricNames('sum(rate(x_total[5m])) / sum without (pod) (rate(y_count{status=~"5.."}[1m])) * 1e3 offset 5m')).toEqual(['x_total', 'y_count']);
  });
});

describe('GET /metrics', () => {
  it('exports time to first token, time per output token and queue wait after requests, as histograms in seconds', async () => {
    await Promise.all([complete({}), complete({ stream: true }), complete({ temperature: 0.8, seed: 3 }), complete({ max_tokens: 1 })]);
    const text = await (await fetch(`${server.url}metrics`)).text();
    const values = samples(text);
    for (const name of ['hanmadi_time_to_first_token_seconds', 'hanmadi_time_per_output_token_seconds', 'hanmadi_request_queue_time_seconds']) {
      expect(text).toContain(`# TYPE ${name} histogram`);
      expect(values.get(`${name}_count`), name).toBeGreaterThan(0);
    }
    // Every request is timed to its first token and for its queue wait (the four above and the two warm-up replies).
    expect(values.get('hanmadi_time_to_first_token_seconds_count')).toBe(values.get('hanmadi_request_queue_time_seconds_count'));
    expect(values.get('hanmadi_time_to_first_token_seconds_count')).toBeGreaterThanOrEqual(4);
    expect(values.get('hanmadi_time_to_first_token_seconds_sum')).toBeGreaterThanOrEqual(values.get('hanmadi_request_queue_time_seconds_sum')!);
  });

  it('exports every metric the Grafana dashboard queries', async () => {
    await complete({});
    const exported = samples(await (await fetch(`${server.url}metrics`)).text());
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const queried = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr, names: metricNames(t.expr) })));
    expect(queried.length).toBeGreaterThanOrEqual(8);
    for (const { panel, expr, names } of queried) {
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${panel}: ${name} is not exported`).toBe(true);
    }
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const wanted of ['first token', 'per output token', 'queue wait', 'request rate', 'error rate', 'tokens per second']) expect(titles).toContain(wanted);
  });
});
