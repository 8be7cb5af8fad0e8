/**
 * compose.yaml's scale-out, run without Docker: two `hanmadi serve` processes
 * on loopback behind Debian's haproxy running docker/haproxy.cfg (addresses
 * changed, every check and retry setting as written), under 32 clients for
 * 20 s, one replica stopped by SIGTERM halfway. Also a second SIGTERM during
 * the drain, which exits at once.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { DOCKER_DIR, REPO_ROOT } from './dockerfile.js';
import { freePort, haproxyVersion, loopbackConfigFor, REPLICA_HEADER, startHaproxy, startReplica, stop, waitFor200, type Started } from './replicas.js';

const BASE_MODEL = join(REPO_ROOT, 'models', 'hanmadi-base');
/** The drain compose.yaml gives each replica. */
const DRAIN_MS = Number(
  (parseYaml(readFileSync(join(DOCKER_DIR, 'compose.yaml'), 'utf8')) as { services: { api: { environment: Record<string, string> } } }).services.api
    .environment['HANMADI_DRAIN_MS'],
);
const CLIENTS = 32;
const LOAD_MS = 20_000;
const STOP_AT_MS = 10_000;
const MESSAGES = ['안녕', '배고파', '오늘 뭐 하지', '심심해', '잘 자', '고마워', '날씨 좋다', '힘들어'];

const version = haproxyVersion();
// CI installs haproxy (.ci/run) and must never skip; elsewhere a missing haproxy skips with its reason.
const skipReason = version === undefined && process.env['CI'] !== 'true' ? ' (skipped: haproxy is not installed; apt-get install haproxy)' : '';

interface Outcome {
  sentAt: number;
  doneAt: number;
  status: number | string;
  replica: string | null;
}

/** `clients` closed-loop clients POSTing /v1/chat to `url` until `untilMs` has passed. */
async function load(url: string, clients: number, untilMs: number): Promise<Outcome[]> {
  const end = performance.now() + untilMs;
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const sentAt = performance.now();
        const body = JSON.stringify({ message: MESSAGES[next++ % MESSAGES.length], decoding: { maxNewTokens: 8 } });
        try {
          const res = await fetch(`${url}v1/chat`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            signal: AbortSignal.timeout(30_000),
          });
          const text = await res.text();
          outcomes.push({
            sentAt,
            doneAt: performance.now(),
            status: res.status === 200 ? 200 : `${res.status} ${text.slice(0, 200)}`,
            replica: res.headers.get(REPLICA_HEADER),
          });
        } catch (error) {
          outcomes.push({
            sentAt,
            doneAt: performance.now(),
            status: `${(error as Error).message} (${((error as Error).cause as Error | undefined)?.message ?? ''})`,
            replica: null,
          });
        }
      }
    }),
  );
  return outcomes;
}

let dir: string;
const running: Started[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hanmadi-replicas-'));
});

afterAll(async () => {
  await Promise.all(running.map((p) => stop(p, 'SIGKILL')));
  await rm(dir, { recursive: true, force: true });
});

describe(`two replicas behind HAProxy (docker/haproxy.cfg)${skipReason}`, () => {
  it.skipIf(skipReason !== '')(
    `${CLIENTS} clients for ${LOAD_MS / 1000} s, SIGTERM to one replica halfway: every request 200, the other answers on, the stopped one exits 0`,
    async () => {
      expect(version, 'haproxy is not on the PATH (.ci/run installs it)').toBeDefined();
      const [p1, p2, lb] = [await freePort(), await freePort(), await freePort()];
      const replicas = [p1, p2].map((port) => startReplica(BASE_MODEL, port, ['--backend', 'wasm', '--drain-ms', String(DRAIN_MS)]));
      running.push(...replicas);
      await Promise.all(replicas.map((r, i) => waitFor200(`http://127.0.0.1:${[p1, p2][i]}/readyz`, r)));
      const haproxy = startHaproxy(loopbackConfigFor(lb, [p1, p2]), dir);
      running.push(haproxy);
      const url = `http://127.0.0.1:${lb}/`;
      await waitFor200(`${url}readyz`, haproxy, 10_000);

      const [stopped, other] = replicas as [Started, Started];
      const began = performance.now();
      const outcomes = load(url, CLIENTS, LOAD_MS);
      await sleep(STOP_AT_MS);
      const termAt = performance.now();
      stopped.child.kill('SIGTERM');
      const exitCode = await stopped.exit;
      const exitAt = performance.now();
      const results = await outcomes;

      const downLine = haproxy.lines.find((l) => /Server api\/api1 is DOWN/u.test(l.text));
      const t = (at: number) => `${((at - began) / 1000).toFixed(1)} s`;
      const phases = [
        ['before SIGTERM', (o: Outcome) => o.doneAt < termAt],
        ['SIGTERM to DOWN in haproxy', (o: Outcome) => o.doneAt >= termAt && o.doneAt < (downLine?.at ?? exitAt)],
        ['DOWN to exit', (o: Outcome) => o.doneAt >= (downLine?.at ?? exitAt) && o.doneAt < exitAt],
        ['after exit', (o: Outcome) => o.doneAt >= exitAt],
      ] as const;
      console.log(
        `${version}; ${results.length} requests; SIGTERM to api1 at ${t(termAt)}, haproxy DOWN at ${downLine ? t(downLine.at) : 'never'}, api1 exited (${exitCode}) at ${t(exitAt)}`,
      );
      for (const [label, inPhase] of phases) {
        const done = results.filter(inPhase);
        console.log(
          `  ${label.padEnd(27)} api1 ${done.filter((o) => o.replica === 'api1').length}, api2 ${done.filter((o) => o.replica === 'api2').length}, not 200: ${done.filter((o) => o.status !== 200).length}`,
        );
      }
      if (downLine) console.log(`  haproxy: ${downLine.text}`);

      expect(results.filter((o) => o.status !== 200).slice(0, 5)).toEqual([]);
      expect(exitCode, stopped.output().slice(-3000)).toBe(0);
      expect(stopped.output()).toMatch(/"msg":"draining: \/readyz answers 503/u);
      expect(stopped.output()).toMatch(/"msg":"stopped"/u);
      // Taken out by its /readyz (503), during the drain, before its port closed.
      expect(downLine?.text).toMatch(/Layer7 wrong status, code: 503/u);
      expect(downLine!.at).toBeLessThan(exitAt);
      // Both answered before the stop; the stopping one took new requests during its drain; the other answered on.
      expect(results.some((o) => o.replica === 'api1' && o.doneAt < termAt)).toBe(true);
      expect(results.some((o) => o.replica === 'api2' && o.doneAt < termAt)).toBe(true);
      expect(results.some((o) => o.replica === 'api1' && o.sentAt > termAt)).toBe(true);
      expect(results.filter((o) => o.sentAt > exitAt).length).toBeGreaterThan(0);
      expect(results.filter((o) => o.sentAt > exitAt).every((o) => o.replica === 'api2')).toBe(true);
      expect(other.child.exitCode).toBeNull();
      expect(await stop(other)).toBe(0);
      await stop(haproxy);
    },
    120_000,
  );
});

describe('hanmadi serve --drain-ms', () => {
  it('exits at once on a second SIGTERM during the drain (143)', async () => {
    const port = await freePort();
    const server = startReplica(BASE_MODEL, port, ['--backend', 'wasm', '--drain-ms', '60000']);
    running.push(server);
    await waitFor200(`http://127.0.0.1:${port}/readyz`, server);
    server.child.kill('SIGTERM');
    const drainLine = /"msg":"draining: /u;
    while (!drainLine.test(server.output())) await sleep(25);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    // Signals within a second of the first count as one (pnpm's relay: packages/cli-kit).
    await sleep(1200);
    const secondAt = performance.now();
    server.child.kill('SIGTERM');
    expect(await server.exit).toBe(143);
    expect(performance.now() - secondAt).toBeLessThan(2000);
    expect(server.output()).not.toMatch(/"msg":"stopped"/u);
  });
});
