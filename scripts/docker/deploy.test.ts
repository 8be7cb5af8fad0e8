import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { copiedFiles, execForm, last, only, readDockerfile, REPO_ROOT, stage, stageEnv, substitute, type ParsedDockerfile } from './dockerfile.js';

/**
 * The images without Docker: each Dockerfile's `pnpm deploy` line runs here
 * as written (into the image's WORKDIR under a temporary directory standing
 * for the image's root, instead of /out), the final stage's COPYs from the
 * build context are replayed under that root (what .dockerignore sends: the
 * base model, the corpus), and the ENTRYPOINT and CMD run from the WORKDIR
 * with the image's ENV, image paths mapped under that root and the /models
 * volume to a directory both images share, as compose shares it. What cannot
 * run here:
 * apt-get and `npm i -g pnpm` (this machine has both), and in the GPU image
 * the tfjs-node-gpu install (its script downloads libtensorflow, and there is
 * no GPU), which is why the trainer is run with `--backend wasm`.
 */

/** Where both images carry the shipped base model (models/hanmadi-base). */
const BASE_MODEL = '/opt/hanmadi/models/hanmadi-base';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'hanmadi-docker-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 100_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** A shell-form RUN, as the builder runs it: `/bin/sh -c`, in the context root (WORKDIR /src). */
function runStep(file: ParsedDockerfile, content: string, cwd = REPO_ROOT, env: Record<string, string> = {}): Promise<Result> {
  return run('/bin/sh', ['-c', substitute(content, file.args)], { cwd, env: { ...process.env, ...env } });
}

/** The images' volume. */
const VOLUME = '/models';

/** A container's filesystem, here. */
interface Image {
  /** The WORKDIR. */
  app: string;
  /** Where an absolute path of the container is here: under the image's root, or in the shared volume. */
  hostPath: (path: string) => string;
}

/** The environment a container of the image starts with: the image's ENV (paths mapped) over a bare PATH/HOME. */
function imageEnv(file: ParsedDockerfile, image: Image, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { PATH, HOME, TMPDIR } = process.env;
  const env = Object.fromEntries(Object.entries({ ...stageEnv(stage(file)), ...extra }).map(([k, v]) => [k, v.startsWith('/') ? image.hostPath(v) : v]));
  return { PATH, HOME, ...(TMPDIR ? { TMPDIR } : {}), ...env };
}

/**
 * Runs the build stage's `pnpm … deploy … /out` into the WORKDIR under `root`
 * and replays the final stage's COPYs from the build context under it; the
 * volume is `models`.
 */
async function deployImage(file: ParsedDockerfile, root: string, models: string): Promise<Image> {
  const final = stage(file);
  const workdir = last(final, 'WORKDIR')?.args[0];
  expect(workdir).toBe('/app');
  expect(execForm(last(final, 'VOLUME')!)).toEqual([VOLUME]);
  const hostPath = (path: string): string => (path === VOLUME || path.startsWith(`${VOLUME}/`) ? join(models, path.slice(VOLUME.length)) : join(root, path));
  const app = hostPath(workdir!);
  const fromBuild = final.steps.filter((s) => s.keyword === 'COPY' && s.from !== null);
  expect(fromBuild.map((s) => s.from)).toContain('build');
  const out = fromBuild.find((s) => s.from === 'build')!;
  expect(out.args).toEqual(['/out', workdir]);

  const build = stage(file, 'build');
  const deploy = only(build, 'RUN', /\bpnpm\b.*\sdeploy\s/u);
  expect(deploy.content.endsWith(' /out')).toBe(true);
  const env = stageEnv(build);
  const result = await runStep(file, `${deploy.content.slice(0, -' /out'.length)} '${app}'`, REPO_ROOT, env);
  expect(result.code, result.output).toBe(0);

  // The COPYs from the build context: each file .dockerignore sends, where the image has it.
  for (const copy of final.steps.filter((s) => s.keyword === 'COPY' && s.from === null)) {
    for (const [from, to] of copiedFiles(copy)) {
      expect(to.startsWith(`${VOLUME}/`), `${to}: the volume would hide it`).toBe(false);
      mkdirSync(dirname(hostPath(to)), { recursive: true });
      copyFileSync(join(REPO_ROOT, from), hostPath(to));
    }
  }
  return { app, hostPath };
}

/** `docker run image args…`: ENTRYPOINT + (args or CMD), from WORKDIR, with the image's ENV. */
function containerCommand(file: ParsedDockerfile, args?: string[]): [string, string[]] {
  const final = stage(file);
  const entrypoint = execForm(last(final, 'ENTRYPOINT')!);
  const cmd = args ?? execForm(last(final, 'CMD')!);
  const [command, ...rest] = [...entrypoint, ...cmd];
  return [command!, rest];
}

function dependencies(dir: string): { dependencies: Record<string, string>; devDependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies?: Record<string, string> };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * What both images run: apps/cli/dist (the bundle, the training worker, the
 * chat page) and only the packages the bundle leaves to node_modules; the
 * workspace's sources, tsx and dev tools stay out.
 */
function expectBundledCommand(app: string): void {
  const manifest = dependencies(app);
  expect(Object.keys(manifest.devDependencies ?? {})).toEqual([]);
  for (const file of ['dist/hanmadi.mjs', 'dist/training-worker.mjs', 'dist/web/index.html']) expect(existsSync(join(app, file)), file).toBe(true);
  for (const pkg of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@fastify/swagger-ui'])
    expect(existsSync(join(app, 'node_modules', pkg, 'package.json')), pkg).toBe(true);
  for (const left of ['tsx', '@hanmadi/model', 'fastify', 'vitest', 'typescript', 'esbuild', 'openai'])
    expect(existsSync(join(app, 'node_modules', left)), left).toBe(false);
}

describe('docker/trainer-gpu.Dockerfile without Docker', () => {
  const file = readDockerfile('trainer-gpu.Dockerfile');
  let image: Image;
  let app: string;

  it('deploys the bundled hanmadi command with the packages it leaves to node_modules only, and the base model and corpus', async () => {
    image = await deployImage(file, join(work, 'trainer'), join(work, 'models'));
    app = image.app;
    expectBundledCommand(app);
    expect(existsSync(join(app, 'data/hanmadi-qa.csv'))).toBe(true);
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.model']) expect(existsSync(image.hostPath(`${BASE_MODEL}/${name}`)), name).toBe(true);
  });

  it('its allowBuilds edit turns on exactly the tfjs-node-gpu install script of pnpm-workspace.yaml', async () => {
    const dir = join(work, 'allow-builds');
    mkdirSync(dir);
    copyFileSync(join(REPO_ROOT, 'pnpm-workspace.yaml'), join(dir, 'pnpm-workspace.yaml'));
    const step = only(stage(file, 'build'), 'RUN', /^sed .*tfjs-node-gpu/u);
    const result = await runStep(file, step.content, dir);
    expect(result.code, result.output).toBe(0);
    const before = (parseYaml(readFileSync(join(REPO_ROOT, 'pnpm-workspace.yaml'), 'utf8')) as { allowBuilds: Record<string, boolean> }).allowBuilds;
    const after = (parseYaml(readFileSync(join(dir, 'pnpm-workspace.yaml'), 'utf8')) as { allowBuilds: Record<string, boolean> }).allowBuilds;
    expect(before['@tensorflow/tfjs-node-gpu']).toBe(false);
    expect(after).toEqual({ ...before, '@tensorflow/tfjs-node-gpu': true });
  });

  it('its entrypoint, by default, fine-tunes the base model it carries into the models volume (a few steps on the CPU, wasm)', async () => {
    // The image's CMD, paths mapped, cut short and on the CPU.
    const cmd = execForm(last(stage(file), 'CMD')!);
    expect(cmd[cmd.indexOf('--init-from') + 1]).toBe(BASE_MODEL);
    const out = cmd[cmd.indexOf('--out') + 1]!;
    expect(out.startsWith(`${VOLUME}/`)).toBe(true);
    const mapped = cmd.map((a) => (a.startsWith('/') ? image.hostPath(a) : a));
    const [command, args] = containerCommand(file, [
      ...mapped,
      '--epochs',
      '1',
      '--max-steps',
      '3',
      '--backend',
      'wasm',
      '--workers',
      '2',
      '--valid-samples',
      '4',
    ]);
    const result = await run(command, args, { cwd: app, env: imageEnv(file, image), timeoutMs: 280_000 });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/backend: wasm/u);
    const run0 = image.hostPath(out);
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.model']) expect(existsSync(join(run0, name)), name).toBe(true);
    // The base's architecture and tokenizer.
    const config = JSON.parse(readFileSync(join(run0, 'config.json'), 'utf8')) as { model: unknown };
    const base = JSON.parse(readFileSync(image.hostPath(`${BASE_MODEL}/config.json`), 'utf8')) as { model: unknown };
    expect(config.model).toEqual(base.model);
    expect(readFileSync(join(run0, 'tokenizer.model')).equals(readFileSync(image.hostPath(`${BASE_MODEL}/tokenizer.model`)))).toBe(true);
  }, 300_000);

  it('under its HANMADI_BACKEND=tensorflow it fails loudly without tfjs-node-gpu instead of falling back to the CPU', async () => {
    expect(stageEnv(stage(file))['HANMADI_BACKEND']).toBe('tensorflow');
    const [command, args] = containerCommand(file, ['--data', 'data/hanmadi-qa.csv', '--out', image.hostPath('/models/no-gpu'), '--max-steps', '1']);
    const result = await run(command, args, { cwd: app, env: imageEnv(file, image) });
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/backend "tensorflow" is unavailable/u);
    expect(existsSync(image.hostPath('/models/no-gpu/config.json'))).toBe(false);
  });
});

describe('docker/api.Dockerfile without Docker', () => {
  const file = readDockerfile('api.Dockerfile');
  let image: Image;
  let app: string;

  it('deploys the bundled hanmadi command with the packages it leaves to node_modules only, and the base model', async () => {
    image = await deployImage(file, join(work, 'api'), join(work, 'models'));
    app = image.app;
    expectBundledCommand(app);
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.model']) expect(existsSync(image.hostPath(`${BASE_MODEL}/${name}`)), name).toBe(true);
  });

  /**
   * Starts the image's entrypoint (no arguments: its CMD) with its ENV and
   * `extra`, waits for its own HEALTHCHECK command to pass and /readyz to say
   * ready, and returns the id of the model it serves.
   */
  async function serveImage(extra: Record<string, string>): Promise<string> {
    const port = await freePort();
    const env = imageEnv(file, image, { ...extra, HANMADI_PORT: String(port) });
    const [command, args] = containerCommand(file);
    const server = spawn(command, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const healthcheck = execForm(only(stage(file), 'HEALTHCHECK'));
      const deadline = Date.now() + 90_000;
      let healthy = false;
      while (!healthy && Date.now() < deadline) {
        if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}:\n${output}`);
        // The image's own HEALTHCHECK command, run as Docker would inside the container.
        const probe = await run(healthcheck[0]!, healthcheck.slice(1), { cwd: app, env, timeoutMs: 5_000 });
        healthy = probe.code === 0;
        if (!healthy) await new Promise((r) => setTimeout(r, 500));
      }
      expect(healthy, `no healthy /healthz within 90 s:\n${output}`).toBe(true);
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/json/u);
      await response.json();
      let ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      while (ready.status !== 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      }
      expect(ready.status, output).toBe(200);
      return ((await ready.json()) as { model: string }).model;
    } finally {
      await stop(server);
    }
  }

  it('its entrypoint serves the base model it carries, with no volume and no HANMADI_MODEL, and its HEALTHCHECK passes', async () => {
    expect(stageEnv(stage(file))['HANMADI_MODEL']).toBe(BASE_MODEL);
    expect(await serveImage({})).toBe('hanmadi-base');
  }, 180_000);

  // compose's api: HANMADI_MODEL names the run the trainer test above wrote into the shared volume.
  it('with HANMADI_MODEL=/models/hanmadi it serves the fine-tuned model from the volume', async () => {
    expect(existsSync(image.hostPath('/models/hanmadi/config.json')), 'the trainer test wrote a model').toBe(true);
    expect(await serveImage({ HANMADI_MODEL: '/models/hanmadi' })).toBe('hanmadi');
  }, 180_000);
});
