/**
 * Stopping through the README's own commands: `pnpm serve` and `pnpm train`
 * run as users run them (pnpm's script `exec`s node on the built bundle), and
 * the signal goes to the process that command started (pnpm), or to its whole
 * process group as a terminal's Ctrl-C does; also with node stopped for 200 ms
 * around the signal, so that pnpm's relay and the original arrive together.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BASE_MODEL = join(REPO_ROOT, 'models', 'hanmadi-base');
const CORPUS = join(REPO_ROOT, 'data', 'hanmadi-qa.csv');

interface Stop {
  signal: 'SIGTERM' | 'SIGINT';
  /** pnpm alone, or its process group (a terminal's Ctrl-C). */
  to: 'pnpm' | 'group';
  /** Node stopped from before the signal until 200 ms after it. */
  frozen: boolean;
}

const STOPS: Stop[] = [
  { signal: 'SIGTERM', to: 'pnpm', frozen: false },
  { signal: 'SIGINT', to: 'pnpm', frozen: false },
  { signal: 'SIGTERM', to: 'pnpm', frozen: true },
  { signal: 'SIGINT', to: 'group', frozen: true },
];

const label = (s: Stop): string =>
  `${s.signal} to ${s.to === 'pnpm' ? 'pnpm' : 'the process group (Ctrl-C)'}${s.frozen ? ', node stopped 200 ms around it' : ''}`;

interface Started {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

/** `pnpm <args>` from the repository root, as the README has users type it, in a process group of its own. */
function pnpm(args: string[]): Started {
  const child = spawn('pnpm', args, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

/** The node process under pnpm that runs the bundle. */
function nodeUnder(pid: number): number {
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/u).filter(Boolean).map(Number)) {
      if (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('hanmadi.mjs')) return child;
    }
  }
  throw new Error(`no node process running hanmadi.mjs under pnpm (${pid})`);
}

async function waitFor(started: Started, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(started.output());
    if (match) return match;
    if (started.child.exitCode !== null || Date.now() > deadline) throw new Error(`never printed ${pattern}:\n${started.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Sends the stop as `stop` says. */
async function sendStop(pnpmPid: number, stop: Stop): Promise<void> {
  const node = nodeUnder(pnpmPid);
  if (stop.frozen) process.kill(node, 'SIGSTOP');
  process.kill(stop.to === 'pnpm' ? pnpmPid : -pnpmPid, stop.signal);
  if (stop.frozen) {
    await new Promise((r) => setTimeout(r, 200));
    process.kill(node, 'SIGCONT');
  }
}

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hanmadi-signals-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('pnpm serve stops cleanly', () => {
  for (const stop of STOPS) {
    it(`${label(stop)}: all 10 requests in flight finish (200) and it exits 0`, async () => {
      // A long batching window keeps the requests in flight when the signal arrives.
      const server = pnpm(['serve', '--model', BASE_MODEL, '--port', '0', '--backend', 'wasm', '--max-wait-ms', '1500']);
      try {
        const [, url] = await waitFor(server, /ready: chat at (http:\/\/\S+\/)/u);
        const requests = Array.from({ length: 10 }, (_, i) =>
          fetch(`${url}v1/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: `안녕 ${i}` }) }).then(
            (r) => r.status,
            (error: Error) => `${error.message} (${(error.cause as Error | undefined)?.message ?? ''})`,
          ),
        );
        await new Promise((r) => setTimeout(r, 300));
        await sendStop(server.child.pid!, stop);
        expect(await Promise.all(requests)).toEqual(Array(10).fill(200));
        expect(await server.exit, server.output()).toBe(0);
        expect(server.output()).toContain(`${stop.signal}: finishing requests in flight`);
        expect(server.output()).toMatch(/"msg":"stopped"/u);
      } finally {
        if (server.child.exitCode === null) process.kill(-server.child.pid!, 'SIGKILL');
      }
    });
  }
});

describe('pnpm train stops cleanly', () => {
  for (const stop of [STOPS[0]!, STOPS[3]!]) {
    it(`${label(stop)}: finishes the step, writes its checkpoint and exits 0`, async () => {
      const out = join(root, `train-${stop.signal}-${stop.to}`);
      const run = pnpm([
        'train',
        '--data',
        CORPUS,
        '--out',
        out,
        '--max-steps',
        '5000',
        '--workers',
        '1',
        '--backend',
        'wasm',
        '--log-every',
        '1',
        '--checkpoint-every',
        '1000',
        '--valid-samples',
        '0',
      ]);
      try {
        await waitFor(run, /"msg":"step"/u);
        await sendStop(run.child.pid!, stop);
        expect(await run.exit, run.output()).toBe(0);
        const [, step] = await waitFor(run, /stopped by SIG\w+ at step (\d+); continue with --resume/u, 0);
        expect(run.output()).toContain(`stopped by ${stop.signal}`);
        expect(existsSync(join(out, 'checkpoints', `step-${step!.padStart(7, '0')}`))).toBe(true);
      } finally {
        if (run.child.exitCode === null) process.kill(-run.child.pid!, 'SIGKILL');
      }
    });
  }
});
