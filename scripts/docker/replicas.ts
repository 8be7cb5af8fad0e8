import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DOCKER_DIR, REPO_ROOT } from './dockerfile.js';

/**
 * compose.yaml's scale-out without Docker: `hanmadi serve` replicas as
 * processes on loopback behind Debian's haproxy, which runs
 * docker/haproxy.cfg with only its addresses changed. Used by
 * replicas.test.ts and `pnpm bench serve --replicas`.
 */

export const HAPROXY_CONFIG = join(DOCKER_DIR, 'haproxy.cfg');
/** The bundled CLI, as the image runs it (`pnpm build`; vitest's global setup builds it). */
export const CLI = join(REPO_ROOT, 'apps', 'cli', 'dist', 'hanmadi.mjs');
/** The response header haproxy.cfg sets to the name of the replica that answered. */
export const REPLICA_HEADER = 'x-hanmadi-replica';

/** Whether `haproxy` is on the PATH, and its version line. */
export function haproxyVersion(): string | undefined {
  const result = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.split('\n')[0] : undefined;
}

/**
 * docker/haproxy.cfg for loopback: the frontend bound to 127.0.0.1:`listenPort`,
 * the server-template (Docker's DNS) replaced by one server per port, named
 * api1, api2, … as the template names them, and the resolvers section
 * dropped. Check, retry and routing settings stay as written.
 */
export function loopbackConfig(text: string, listenPort: number, replicaPorts: readonly number[]): string {
  const lines: string[] = [];
  let inResolvers = false;
  let binds = 0;
  let templates = 0;
  for (const line of text.split('\n')) {
    if (/^\S/u.test(line)) inResolvers = /^resolvers\s/u.test(line);
    if (inResolvers) continue;
    if (/^\s+bind\s/u.test(line)) {
      binds++;
      lines.push(`  bind 127.0.0.1:${listenPort}`);
    } else if (/^\s+server-template\s/u.test(line)) {
      templates++;
      lines.push(...replicaPorts.map((port, i) => `  server api${i + 1} 127.0.0.1:${port}`));
    } else {
      lines.push(line);
    }
  }
  if (binds !== 1 || templates !== 1) throw new Error(`${HAPROXY_CONFIG}: expected one bind and one server-template line, found ${binds} and ${templates}`);
  return lines.join('\n');
}

/** A free TCP port on loopback (free when asked; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

export interface Started {
  child: ChildProcess;
  /** Output lines, stdout and stderr together, each with when it arrived (performance.now()). */
  lines: { at: number; text: string }[];
  output: () => string;
  exit: Promise<number | null>;
}

/** Spawns a process, keeping at most `keepLines` lines of its output. */
export function start(command: string, args: string[], keepLines = 20_000): Started {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Started['lines'] = [];
  let partial = '';
  const take = (d: Buffer): void => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    const at = performance.now();
    for (const text of parts) lines.push({ at, text });
    if (lines.length > keepLines) lines.splice(0, lines.length - keepLines);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, lines, output: () => lines.map((l) => l.text).join('\n') + (partial ? `\n${partial}` : ''), exit };
}

/** `hanmadi serve` on 127.0.0.1:`port`, run by node from the bundle as the image does. */
export function startReplica(model: string, port: number, flags: string[] = []): Started {
  return start(process.execPath, [CLI, 'serve', '--model', model, '--port', String(port), '--host', '127.0.0.1', ...flags]);
}

/** haproxy in the foreground (-db) with `config`, written to `dir`. */
export function startHaproxy(config: string, dir: string): Started {
  const path = join(dir, 'haproxy.cfg');
  writeFileSync(path, config);
  return start('haproxy', ['-db', '-f', path]);
}

/** Loopback haproxy.cfg for these ports, read from docker/haproxy.cfg. */
export function loopbackConfigFor(listenPort: number, replicaPorts: readonly number[]): string {
  return loopbackConfig(readFileSync(HAPROXY_CONFIG, 'utf8'), listenPort, replicaPorts);
}

/** Polls GET `url` until it answers 200; fails if `started` exits first or `timeoutMs` passes. */
export async function waitFor200(url: string, started: Started, timeoutMs = 90_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const status = await fetch(url).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    if (started.child.exitCode !== null || started.child.signalCode !== null) throw new Error(`exited before ${url} answered 200:\n${started.output()}`);
    if (performance.now() > deadline) throw new Error(`${url} did not answer 200 in ${timeoutMs} ms:\n${started.output()}`);
    await sleep(100);
  }
}

/** Ends a process this module started: `signal`, then SIGKILL after `graceMs`. */
export async function stop(started: Started, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
  if (started.child.exitCode !== null || started.child.signalCode !== null) return started.exit;
  started.child.kill(signal);
  const timer = setTimeout(() => started.child.kill('SIGKILL'), graceMs);
  try {
    return await started.exit;
  } finally {
    clearTimeout(timer);
  }
}
