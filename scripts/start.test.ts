import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const START = fileURLToPath(new URL('./start.ts', import.meta.url));
let root: string | undefined;

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs `pnpm start`'s script until it prints the chat URL; then checks the page and stops it with SIGTERM. */
async function startOnce(out: string): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', START, '--out', out, '--epochs', '5', '--port', '0', '--backend', 'wasm'], {
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

it('trains the tiny model when there is none, serves it and prints the chat URL; serves it again without training', async () => {
  root = await mkdtemp(join(tmpdir(), 'hanmadi-start-'));
  const out = join(root, 'tiny');
  const first = await startOnce(out);
  expect(first).toContain('Training the tiny model on data/hanmadi-qa.csv');
  // One checkpoint an epoch; the quickstart serves the average of the last five (§6.1).
  expect(first).toMatch(/serves the average of step-\d{7}, step-\d{7}, step-\d{7}, step-\d{7}, step-\d{7} \(validation perplexity/u);
  const second = await startOnce(out);
  expect(second).toContain('Serving the model in');
  expect(second).not.toContain('Training the tiny model');
});
