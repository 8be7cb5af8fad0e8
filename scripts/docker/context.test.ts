import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '@hanmadi/trainer';
import { parse as parseYaml } from 'yaml';
import {
  contextExceptions,
  contextFiles,
  contextFilter,
  copiedFiles,
  DOCKER_DIR,
  DOCKERFILES,
  execForm,
  last,
  only,
  readDockerfile,
  REPO_ROOT,
  stage,
  stageEnv,
  type ParsedDockerfile,
} from './dockerfile.js';

// No Docker engine runs here: these check what `docker build` would be given.

const files = contextFiles();
const sent = new Set(files);

/** The shipped base model: in the repository, and where both images carry it (outside the /models volume). */
const BASE_MODEL = 'models/hanmadi-base';
const IMAGE_BASE_MODEL = '/opt/hanmadi/models/hanmadi-base';

/** The repository path a file or directory of the image was copied from (by a COPY from the build context). */
function contextPathOf(dockerfile: ParsedDockerfile, imagePath: string): string {
  for (const step of stage(dockerfile).steps.filter((s) => s.keyword === 'COPY' && s.from === null)) {
    const destination = step.args.at(-1)!.replace(/\/$/u, '');
    const sources = step.args.slice(0, -1);
    if (sources.length === 1 && (imagePath === destination || imagePath.startsWith(`${destination}/`)))
      return join(REPO_ROOT, sources[0]!, imagePath.slice(destination.length));
  }
  throw new Error(`${dockerfile.path}: nothing is copied to ${imagePath}`);
}

/** Whether a COPY source (relative to the context) names something that is sent. */
function inContext(source: string): boolean {
  const path = source.replace(/^\.\/?/u, '').replace(/\/$/u, '');
  if (path === '') return files.length > 0;
  return sent.has(path) || files.some((f) => f.startsWith(`${path}/`));
}

/** The workspace packages (pnpm-workspace.yaml's globs are `dir/*` or a plain dir). */
function workspacePackages(): string[] {
  const workspace = parseYaml(readFileSync(join(REPO_ROOT, 'pnpm-workspace.yaml'), 'utf8')) as { packages: string[] };
  return workspace.packages.flatMap((glob) => {
    if (!glob.endsWith('/*')) return [glob];
    const dir = glob.slice(0, -2);
    return files.filter((f) => new RegExp(`^${dir}/[^/]+/package\\.json$`, 'u').test(f)).map((f) => f.slice(0, -'/package.json'.length));
  });
}

describe('docker build context (.dockerignore)', () => {
  it('keeps installs, runs, other models, training leftovers and git out; its one exception lets the shipped base model in', () => {
    expect(contextExceptions()).toEqual([BASE_MODEL]);
    const keep = contextFilter();
    for (const path of [
      'node_modules/x/package.json',
      'apps/api/node_modules/fastify/package.json',
      'packages/model/node_modules/.bin/tsx',
      'runs/tiny/config.json',
      'models/tiny/config.json',
      'models/other/x',
      'models/hanmadi-base-old/config.json',
      `${BASE_MODEL}/checkpoints/step-0000100/model.safetensors`,
      `${BASE_MODEL}/model.safetensors.tmp-123-abcd`,
      `${BASE_MODEL}/.step-0000100.tmp-abcd/config.json`,
      '.git/HEAD',
    ]) {
      expect(keep(path), path).toBe(false);
    }
    for (const name of ['config.json', 'tokenizer.model', 'model.safetensors', 'generation_config.json', 'README.md'])
      expect(keep(`${BASE_MODEL}/${name}`), name).toBe(true);
    expect(files.some((f) => f.includes('node_modules/') || f.startsWith('runs/') || f.startsWith('.git/'))).toBe(false);
    // What is sent of models/: the base model directory, whole.
    expect(files.filter((f) => f.startsWith('models/') && !f.startsWith(`${BASE_MODEL}/`))).toEqual([]);
    for (const name of ['config.json', 'tokenizer.model', 'model.safetensors']) expect(sent.has(`${BASE_MODEL}/${name}`), name).toBe(true);
  });

  it('sends the workspace manifests, the lockfile and every workspace package', () => {
    for (const path of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'tsconfig.base.json', 'data/hanmadi-qa.csv'])
      expect(sent.has(path), path).toBe(true);
    const packages = workspacePackages();
    expect(packages).toEqual(expect.arrayContaining(['apps/api', 'apps/trainer', 'packages/corpus', 'packages/model', 'packages/tokenizer', 'scripts']));
    for (const dir of packages) {
      expect(sent.has(`${dir}/package.json`), `${dir}/package.json`).toBe(true);
      const manifest = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'package.json'), 'utf8')) as { exports?: Record<string, string> };
      // What the deployed apps import: each package's TypeScript entry.
      for (const entry of Object.values(manifest.exports ?? {})) expect(sent.has(join(dir, entry).replace(/^\.\//u, '')), `${dir} exports ${entry}`).toBe(true);
    }
    // The model's training workers load this file at run time.
    expect(sent.has('packages/model/src/parallel/worker-entry.mjs')).toBe(true);
  });

  for (const name of DOCKERFILES) {
    it(`${name}: every path it COPYs from the build context is sent`, () => {
      const dockerfile = readDockerfile(name);
      const sources = dockerfile.stages.flatMap((s) =>
        s.steps.filter((step) => (step.keyword === 'COPY' || step.keyword === 'ADD') && step.from === null).flatMap((step) => step.args.slice(0, -1)),
      );
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) {
        expect(source.includes('*') || source.includes('$'), `${source}: no globs or variables, so that this check is exact`).toBe(false);
        expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
        expect(inContext(source), `${source} survives .dockerignore`).toBe(true);
      }
    });

    it(`${name}: carries the shipped base model, read-only at ${IMAGE_BASE_MODEL} outside the /models volume`, () => {
      const final = stage(readDockerfile(name));
      const copy = only(final, 'COPY', new RegExp(`^${BASE_MODEL}\\s`, 'u'));
      expect(copy.args).toEqual([BASE_MODEL, IMAGE_BASE_MODEL]);
      // Root owns the copy and the service runs as another user: read-only to it.
      expect(copy.content).not.toMatch(/--chown|--chmod/u);
      const copied = new Map(copiedFiles(copy).map(([from, to]) => [to, from]));
      for (const file of ['config.json', 'tokenizer.model', 'model.safetensors'])
        expect(copied.get(`${IMAGE_BASE_MODEL}/${file}`), file).toBe(`${BASE_MODEL}/${file}`);
      // A volume mounted at /models must not hide it.
      const volumes = execForm(last(final, 'VOLUME')!);
      expect(volumes).toEqual(['/models']);
      for (const volume of volumes) expect(IMAGE_BASE_MODEL.startsWith(`${volume}/`)).toBe(false);
      expect(final.steps.some((s) => s.keyword === 'RUN' && /\/opt\/hanmadi/u.test(s.content))).toBe(false);
    });

    it(`${name}: every COPY --from names an earlier stage`, () => {
      const dockerfile = readDockerfile(name);
      dockerfile.stages.forEach((current, index) => {
        const earlier = new Set(dockerfile.stages.slice(0, index).map((s) => s.name));
        for (const step of current.steps.filter((s) => s.from !== null)) expect(earlier.has(step.from), `line ${step.line}: --from=${step.from}`).toBe(true);
      });
    });
  }

  it('api.Dockerfile: serves the base model it carries unless HANMADI_MODEL names another', () => {
    const api = readDockerfile('api.Dockerfile');
    expect(stageEnv(stage(api))['HANMADI_MODEL']).toBe(IMAGE_BASE_MODEL);
    expect(contextPathOf(api, IMAGE_BASE_MODEL)).toBe(join(REPO_ROOT, BASE_MODEL));
  });
});

describe('docker/compose.yaml', () => {
  interface Service {
    build?: { context: string; dockerfile: string };
    image?: string;
    command?: string[];
    volumes?: string[];
    ports?: string[];
    environment?: Record<string, string>;
    depends_on?: unknown;
    stop_grace_period?: string;
    deploy?: { replicas?: number; resources?: { reservations?: { devices?: { driver?: string; count?: number | string; capabilities?: string[] }[] } } };
  }
  const compose = parseYaml(readFileSync(join(DOCKER_DIR, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };

  it('builds both images from the repository root with the Dockerfiles here', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'haproxy', 'trainer']);
    const dockerfiles = { api: 'docker/api.Dockerfile', trainer: 'docker/trainer-gpu.Dockerfile' };
    for (const [name, dockerfile] of Object.entries(dockerfiles)) {
      const build = compose.services[name]!.build;
      expect(resolve(DOCKER_DIR, build!.context)).toBe(resolve(REPO_ROOT));
      expect(build!.dockerfile).toBe(dockerfile);
      expect(existsSync(join(REPO_ROOT, build!.dockerfile))).toBe(true);
    }
  });

  it('reserves an NVIDIA GPU for the trainer', () => {
    const devices = compose.services['trainer']!.deploy?.resources?.reservations?.devices ?? [];
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ driver: 'nvidia' });
    expect(devices[0]!.capabilities).toContain('gpu');
  });

  it("fine-tunes the image's base model on the bundled corpus with arguments pnpm train accepts, as the image's CMD and pnpm start do", () => {
    const command = compose.services['trainer']!.command ?? [];
    const trainer = readDockerfile('trainer-gpu.Dockerfile');
    expect(command).toEqual(execForm(last(stage(trainer), 'CMD')!));
    const initFrom = command[command.indexOf('--init-from') + 1];
    expect(initFrom).toBe(IMAGE_BASE_MODEL);
    // parseTrainArgs reads <init-from>/config.json: the repository's copy of what the image holds there.
    const base = contextPathOf(trainer, initFrom!);
    expect(base).toBe(join(REPO_ROOT, BASE_MODEL));
    const request = parseTrainArgs(
      command.map((a) => (a === initFrom ? base : a)),
      (text) => {
        throw new Error(text);
      },
    );
    expect(request.settings).toMatchObject({ data: 'data/hanmadi-qa.csv', out: '/models/hanmadi', initFrom: base, epochs: 8, average: 1, select: 'average' });
  });

  it('shares the models volume, the api reading the model the trainer writes', () => {
    expect(Object.keys(compose.volumes)).toContain('models');
    expect(compose.services['trainer']!.volumes).toContain('models:/models');
    expect(compose.services['api']!.volumes?.some((v) => v.startsWith('models:/models'))).toBe(true);
    // The api serves what the trainer writes.
    const trainer = compose.services['trainer']!.command ?? [];
    expect(compose.services['api']!.environment?.['HANMADI_MODEL']).toBe(trainer[trainer.indexOf('--out') + 1]);
    expect(compose.services['api']!.environment?.['HANMADI_MODEL']).toMatch(/^\/models\//u);
    // The api needs a trained model, not a running trainer.
    expect(compose.services['api']!.depends_on).toBeUndefined();
  });

  it('scales the api to 2 replicas behind HAProxy, which routes by /readyz and publishes the port', () => {
    const api = compose.services['api']!;
    const haproxy = compose.services['haproxy']!;
    expect(api.deploy?.replicas).toBe(2);
    // Replicas cannot share a host port: only HAProxy publishes one.
    expect(api.ports).toBeUndefined();
    expect(haproxy.ports).toEqual(['3000:3000']);
    expect(haproxy.image).toMatch(/^haproxy:\d/u);
    expect(haproxy.build).toBeUndefined();
    expect(haproxy.volumes).toEqual(['./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro']);
    const cfg = readFileSync(join(DOCKER_DIR, 'haproxy.cfg'), 'utf8');
    const lines = cfg.split('\n').map((l) => l.trim());
    // The replicas by Docker's DNS name and the port the api image listens on.
    const apiEnv = stageEnv(stage(readDockerfile('api.Dockerfile')));
    expect(lines.find((l) => l.startsWith('server-template'))).toMatch(new RegExp(`^server-template api \\d+ api:${apiEnv['HANMADI_PORT']} `, 'u'));
    expect(lines).toContain('bind :3000');
    expect(lines).toContain('option httpchk GET /readyz');
    expect(lines).toContain('http-check expect status 200');
    const check = / check inter (\d+)s fall (\d+) rise (\d+)$/u.exec(lines.find((l) => l.startsWith('default-server')) ?? '');
    expect(check?.slice(1)).toEqual(['1', '2', '2']);
    // Retried only when the request never reached a replica.
    expect(lines.filter((l) => l.startsWith('retry-on'))).toEqual(['retry-on conn-failure']);
    expect(lines).toContain('option redispatch 1');
    // A stopping replica stays up, /readyz 503, until HAProxy has seen it fail (inter × fall), with room to spare.
    const drainMs = Number(api.environment?.['HANMADI_DRAIN_MS']);
    expect(drainMs).toBeGreaterThan(Number(check![1]) * Number(check![2]) * 1000);
    // docker stop waits for the drain and requests in flight (--timeout-ms, 30 s by default) before SIGKILL.
    expect(Number(/^(\d+)s$/u.exec(api.stop_grace_period ?? '')?.[1]) * 1000).toBeGreaterThan(drainMs + 30_000);
  });
});
