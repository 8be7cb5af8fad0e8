import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import dockerignore from '@balena/dockerignore';
import { Copy, DockerfileParser, Env, type Instruction } from 'dockerfile-ast';

/**
 * Reads the repository's Dockerfiles the way `docker build` would, so that the
 * tests can check them and run their commands without a Docker engine.
 */

/** The repository root: the build context of both images. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DOCKER_DIR = join(REPO_ROOT, 'docker');
export const DOCKERFILES = ['api.Dockerfile', 'trainer-gpu.Dockerfile'] as const;
export type DockerfileName = (typeof DOCKERFILES)[number];

export interface Step {
  keyword: string;
  /** Arguments with line continuations joined, flags left out for COPY/ADD (see `from`). */
  args: string[];
  /** The whole argument text, continuations joined: what `sh -c` gets for a shell-form RUN. */
  content: string;
  /** COPY --from, if given. */
  from: string | null;
  /** The variables an ENV step sets. */
  env: Record<string, string>;
  line: number;
}

export interface Stage {
  /** `FROM <image>` with the global ARG defaults substituted. */
  image: string;
  name: string | null;
  steps: Step[];
}

export interface ParsedDockerfile {
  path: string;
  text: string;
  /** Global ARGs (before the first FROM) and their defaults. */
  args: Map<string, string>;
  stages: Stage[];
}

export function readDockerfile(name: DockerfileName): ParsedDockerfile {
  const path = join(DOCKER_DIR, name);
  const text = readFileSync(path, 'utf8');
  return parseDockerfile(text, path);
}

export function parseDockerfile(text: string, path = '<inline>'): ParsedDockerfile {
  const dockerfile = DockerfileParser.parse(text);
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword().toUpperCase();
    const content = instruction.getArgumentsContent() ?? '';
    if (keyword === 'FROM') {
      const words = content
        .trim()
        .split(/\s+/u)
        .filter((w) => !w.startsWith('--'));
      stages.push({ image: substitute(words[0] ?? '', args), name: words[1]?.toUpperCase() === 'AS' ? (words[2] ?? null) : null, steps: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (keyword === 'ARG') {
        const [key, value = ''] = content.trim().split('=', 2) as [string, string?];
        args.set(key, value);
      }
      continue;
    }
    stage.steps.push(toStep(instruction, keyword, content));
  }
  return { path, text, args, stages };
}

function toStep(instruction: Instruction, keyword: string, content: string): Step {
  const from = instruction instanceof Copy ? (instruction.getFromFlag()?.getValue() ?? null) : null;
  const env = instruction instanceof Env ? Object.fromEntries(instruction.getProperties().map((p) => [p.getName(), p.getUnescapedValue() ?? ''])) : {};
  return {
    keyword,
    args: instruction.getArguments().map((a) => a.getValue()),
    content: content.trim(),
    from,
    env,
    line: instruction.getRange().start.line + 1,
  };
}

/** `${NAME}` and `$NAME` replaced by the ARG defaults given (others left alone). */
export function substitute(value: string, args: ReadonlyMap<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/gu, (whole, braced: string | undefined, bare: string | undefined) => args.get((braced ?? bare)!) ?? whole);
}

/** The stage a `COPY --from` names, or the final stage. */
export function stage(file: ParsedDockerfile, name?: string): Stage {
  const found = name === undefined ? file.stages.at(-1) : file.stages.find((s) => s.name === name);
  if (!found) throw new Error(`${file.path}: no stage ${name ?? '(final)'}`);
  return found;
}

/** ENV of a stage, later values winning. */
export function stageEnv(target: Stage): Record<string, string> {
  return Object.assign({}, ...target.steps.map((s) => s.env)) as Record<string, string>;
}

/** The exec-form (JSON) array of an ENTRYPOINT, CMD or `HEALTHCHECK … CMD`. */
export function execForm(step: Step): string[] {
  const json = step.keyword === 'HEALTHCHECK' ? step.content.replace(/^(--\S+\s+)*CMD\s+/u, '') : step.content;
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string'))
    throw new Error(`line ${step.line}: ${step.keyword} is not a JSON array of strings`);
  return parsed;
}

/** The one step of `keyword` in a stage that matches, failing unless there is exactly one. */
export function only(target: Stage, keyword: string, match: RegExp = /[^]/u): Step {
  const steps = target.steps.filter((s) => s.keyword === keyword && match.test(s.content));
  if (steps.length !== 1) throw new Error(`expected one ${keyword} matching ${match}, found ${steps.length}`);
  return steps[0]!;
}

/** The last step of `keyword` in a stage (the one Docker uses for ENTRYPOINT, CMD, WORKDIR, USER). */
export function last(target: Stage, keyword: string): Step | undefined {
  return target.steps.filter((s) => s.keyword === keyword).at(-1);
}

// --- build context -------------------------------------------------------------

/** A predicate telling whether a context path (relative, `/`-separated) is sent to the builder. */
// CommonJS typed as `export default`: under NodeNext the default import is
// module.exports (the factory), which also carries itself as `.default`.
const ignore = dockerignore.default;

export function contextFilter(root = REPO_ROOT): (path: string) => boolean {
  let rules = '';
  try {
    rules = readFileSync(join(root, '.dockerignore'), 'utf8');
  } catch {
    // No .dockerignore: everything is sent.
  }
  return ignore().add(rules.split('\n')).createFilter();
}

/** The `!` exceptions of .dockerignore, without the `!` and a leading `/`. */
export function contextExceptions(root = REPO_ROOT): string[] {
  let rules = '';
  try {
    rules = readFileSync(join(root, '.dockerignore'), 'utf8');
  } catch {
    return [];
  }
  return rules
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).trim().replace(/^\/+/u, ''));
}

/**
 * Every file of the build context, relative to `root`, after .dockerignore;
 * with `under`, only those below that context directory. An excluded
 * directory is entered only where a `!` exception names something below it
 * (as Docker does, e.g. `models/*` then `!models/hanmadi-base`), so that
 * node_modules is never walked.
 */
export function contextFiles(root = REPO_ROOT, under = ''): string[] {
  const keep = contextFilter(root);
  const exceptions = contextExceptions(root);
  const mayReinclude = (rel: string): boolean => exceptions.some((e) => e.startsWith(`${rel}/`) || /^[*?[]/u.test(e));
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      const rel = relative(root, full).split(sep).join('/');
      if (entry.isDirectory()) {
        if (keep(rel) || mayReinclude(rel)) walk(full);
      } else if (keep(rel)) files.push(rel);
    }
  };
  walk(join(root, under));
  return files.sort();
}

/**
 * What a `COPY <sources…> <destination>` from the build context puts where in
 * the image: [context path, absolute image path] for each file sent, with
 * Docker's rules (a directory's contents go into the destination; a file goes
 * into a destination ending in `/`, or becomes it).
 */
export function copiedFiles(step: Step, root = REPO_ROOT): [string, string][] {
  const destination = step.args.at(-1)!;
  const pairs: [string, string][] = [];
  for (const raw of step.args.slice(0, -1)) {
    const source = raw.replace(/^\.\/?/u, '').replace(/\/$/u, '');
    if (statSync(join(root, source)).isDirectory()) {
      for (const file of contextFiles(root, source)) pairs.push([file, posix.join(destination, file.slice(source.length + 1))]);
    } else if (contextFilter(root)(source)) {
      pairs.push([source, destination.endsWith('/') ? posix.join(destination, posix.basename(source)) : destination]);
    }
  }
  return pairs;
}
