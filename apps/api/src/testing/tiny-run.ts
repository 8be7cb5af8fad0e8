import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { BUNDLED_CORPUS } from '@hanmadi/corpus';
import { runTrainCli } from '@hanmadi/trainer';
import type { ServeSettings } from '../serve-command.js';

/**
 * A run directory of the `tiny` preset trained for a few epochs on the
 * bundled corpus — a real model for the service tests, in a few seconds.
 * Its replies are poor; the tests check the service, not the chatbot.
 */
export async function trainTinyRun(epochs = 2): Promise<{ dir: string; remove: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'hanmadi-api-'));
  const dir = join(root, 'tiny');
  const lines: string[] = [];
  const code = await runTrainCli(['--data', BUNDLED_CORPUS, '--preset', 'tiny', '--epochs', String(epochs), '--out', dir, '--backend', 'wasm', '--valid-samples', '0'], {
    interactive: false,
    stdout: new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
    err: (line) => lines.push(line),
  });
  if (code !== 0) throw new Error(`training the test model failed:\n${lines.join('')}`);
  return { dir, remove: () => rm(root, { recursive: true, force: true }) };
}

/** `pnpm serve`'s settings for a test server: any free port on loopback, wasm, quiet. */
export function testServeSettings(model: string, overrides: Partial<ServeSettings> = {}): ServeSettings {
  return {
    model,
    port: 0,
    host: '127.0.0.1',
    backend: 'wasm',
    maxMessageChars: 500,
    timeoutMs: 30_000,
    batching: true,
    maxBatch: 32,
    maxWaitMs: 5,
    maxQueue: 256,
    rateLimit: 0,
    logLevel: 'silent',
    ...overrides,
  };
}
