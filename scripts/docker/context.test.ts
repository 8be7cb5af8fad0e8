import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '@hanmadi/trainer';
import { parse as parseYaml } from 'yaml';
import { contextFiles, contextFilter, DOCKER_DIR, DOCKERFILES, readDockerfile, REPO_ROOT } from './dockerfile.js';

// No Docker engine runs here: these check what `docker build` would be given.

const files = contextFiles();
const sent = new Set(files);

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
  it('keeps installs, runs, models and git out, with no exceptions that would re-include them', () => {
    const rules = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    expect(rules.filter((l) => l.startsWith('!'))).toEqual([]);
    const keep = contextFilter();
    for (const path of ['node_modules/x/package.json', 'apps/api/node_modules/fastify/package.json', 'packages/model/node_modules/.bin/tsx', 'runs/tiny/config.json', 'models/tiny/config.json', '.git/HEAD']) {
      expect(keep(path), path).toBe(false);
    }
    expect(files.some((f) => f.includes('node_modules/') || f.startsWith('runs/') || f.startsWith('.git/'))).toBe(false);
  });

  it('sends the workspace manifests, the lockfile and every workspace package', () => {
    for (const path of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'tsconfig.base.json', 'data/hanmadi-qa.csv']) expect(sent.has(path), path).toBe(true);
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
      const sources = dockerfile.stages.flatMap((s) => s.steps.filter((step) => (step.keyword === 'COPY' || step.keyword === 'ADD') && step.from === null).flatMap((step) => step.args.slice(0, -1)));
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) {
        expect(source.includes('*') || source.includes('$'), `${source}: no globs or variables, so that this check is exact`).toBe(false);
        expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
        expect(inContext(source), `${source} survives .dockerignore`).toBe(true);
      }
    });

    it(`${name}: every COPY --from names an earlier stage`, () => {
      const dockerfile = readDockerfile(name);
      dockerfile.stages.forEach((current, index) => {
        const earlier = new Set(dockerfile.stages.slice(0, index).map((s) => s.name));
        for (const step of current.steps.filter((s) => s.from !== null)) expect(earlier.has(step.from), `line ${step.line}: --from=${step.from}`).toBe(true);
      });
    });
  }
});

describe('docker/compose.yaml', () => {
  interface Service {
    build: { context: string; dockerfile: string };
    command?: string[];
    volumes?: string[];
    environment?: Record<string, string>;
    depends_on?: unknown;
    deploy?: { resources?: { reservations?: { devices?: { driver?: string; count?: number | string; capabilities?: string[] }[] } } };
  }
  const compose = parseYaml(readFileSync(join(DOCKER_DIR, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };

  it('builds both images from the repository root with the Dockerfiles here', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'trainer']);
    const dockerfiles = { api: 'docker/api.Dockerfile', trainer: 'docker/trainer-gpu.Dockerfile' };
    for (const [name, dockerfile] of Object.entries(dockerfiles)) {
      const build = compose.services[name]!.build;
      expect(resolve(DOCKER_DIR, build.context)).toBe(resolve(REPO_ROOT));
      expect(build.dockerfile).toBe(dockerfile);
      expect(existsSync(join(REPO_ROOT, build.dockerfile))).toBe(true);
    }
  });

  it('reserves an NVIDIA GPU for the trainer', () => {
    const devices = compose.services['trainer']!.deploy?.resources?.reservations?.devices ?? [];
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ driver: 'nvidia' });
    expect(devices[0]!.capabilities).toContain('gpu');
  });

  it("gives the trainer arguments pnpm train accepts, serving the quickstart's average of 5 checkpoints", () => {
    const request = parseTrainArgs(compose.services['trainer']!.command ?? [], (text) => {
      throw new Error(text);
    });
    expect(request.settings).toMatchObject({ data: 'data/hanmadi-qa.csv', out: '/models/tiny', average: 5 });
  });

  it('shares the models volume, the api reading the model the trainer writes', () => {
    expect(Object.keys(compose.volumes)).toContain('models');
    expect(compose.services['trainer']!.volumes).toContain('models:/models');
    expect(compose.services['api']!.volumes?.some((v) => v.startsWith('models:/models'))).toBe(true);
    expect(compose.services['api']!.environment?.['HANMADI_MODEL']).toMatch(/^\/models\//u);
    // The api needs a trained model, not a running trainer.
    expect(compose.services['api']!.depends_on).toBeUndefined();
  });
});
