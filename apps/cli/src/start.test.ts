import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const HANMADI = fileURLToPath(new URL('../dist/hanmadi.mjs', import.meta.url));
let root: string | undefined;

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs `pnpm start`'s script until it prints the chat URL; then checks the page and stops it with SIGTERM. */
async function startOnce(out: string, ...flags: string[]): Promise<string> {
  const child = spawn(process.execPath, [HANMADI, 'start', '--out', out, '--epochs', '1', '--port', '0', '--backend', 'wasm', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        const match = /한마디 is ready: open (http:\/\/\S+\/) to chat/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`pnpm start exited with ${code} before serving:\n${output}`)));
    });
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>한마디</title>');
    const ready = await fetch(`${url}readyz`);
    expect(ready.status).toBe(200);
  } finally {
    child.kill('SIGTERM');
  }
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(0);
  return output;
}

it('serves the shipped base model; with --fine-tune fine-tunes it once on the bundled corpus and serves the result', async () => {
  root = await mkdtemp(join(tmpdir(), 'hanmadi-start-'));
  const out = join(root, 'hanmadi');
  expect(await startOnce(out)).toMatch(/Serving the base model in \S*models\/hanmadi-base as it is/u);
  const first = await startOnce(out, '--fine-tune');
  expect(first).toMatch(/Fine-tuning \S*models\/hanmadi-base on data\/hanmadi-qa\.csv into/u);
  // Its own step 0 is the base, measured on the bundled corpus; it serves the last checkpoint.
  expect(first).toMatch(/fine-tuning \S*models\/hanmadi-base: peak learning rate/u);
  expect(first).toMatch(/serves the last checkpoint, step-\d{7} \(validation perplexity/u);
  const second = await startOnce(out, '--fine-tune');
  expect(second).toContain('Serving the model in');
  expect(second).not.toContain('Fine-tuning');
}, 240_000);

it('stops on SIGTERM during its fine-tuning without going on to serve, and the next start resumes it', async () => {
  root ??= await mkdtemp(join(tmpdir(), 'hanmadi-start-'));
  const out = join(root, 'stopped');
  const child = spawn(process.execPath, [HANMADI, 'start', '--fine-tune', '--out', out, '--epochs', '3', '--port', '0', '--backend', 'wasm'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
    if (output.includes('"msg":"step"') && !child.killed) child.kill('SIGTERM');
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code, output).toBe(0);
  expect(output).toMatch(/stopped by SIGTERM at step \d+/u);
  expect(output).toContain('Fine-tuning stopped; its last checkpoint is in');
  expect(output).not.toContain('is ready');
  const resumed = await startOnce(out, '--fine-tune', '--epochs', '3');
  expect(resumed).toMatch(/Resuming \S*models\/hanmadi-base on data\/hanmadi-qa\.csv into/u);
  expect(resumed).toMatch(/resumed from \S+ at step \d+/u);
  expect(resumed).toMatch(/serves the last checkpoint, step-\d{7}/u);
  // Finished now: served as it is.
  expect(await startOnce(out, '--fine-tune', '--epochs', '3')).toContain('Serving the model in');
}, 240_000);
