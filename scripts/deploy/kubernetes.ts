import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';

/**
 * Reads deploy/kubernetes and checks each manifest offline against the
 * OpenAPI schemas of one Kubernetes release, as kubernetes-models compiles them.
 */

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const KUBERNETES_DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
/** The release kubernetes-models 4.5.x was generated from (its changelog: "Update schema version to v1.33.0"). */
export const KUBERNETES_VERSION = '1.33.0';

/** The kinds hanmadi deploys, by `apiVersion/kind`; anything else is refused, not waved through. */
const MODELS: Record<string, { prototype: { validate(): void } }> = {
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, read by the tests field by field
export type Resource = Record<string, any>;

export interface Manifest {
  /** Relative to deploy/kubernetes. */
  file: string;
  resource: Resource;
}

export interface Kustomization {
  /** The directory, relative to deploy/kubernetes ('' for the top). */
  dir: string;
  resources: string[];
  images: { name: string; newName?: string; newTag?: string }[];
  resource: Resource;
}

/** The YAML files under `dir`, relative to it. */
export function yamlFiles(dir = KUBERNETES_DIR): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/u.test(f))
    .map((f) => f.split('\\').join('/'))
    .sort();
}

/** Every document of a YAML file, refusing a file YAML itself refuses. */
export function parseYamlFile(path: string): Resource[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { prettyErrors: true });
  return docs.map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${relative(REPO_ROOT, path)}: ${doc.errors[0]!.message}`);
    return doc.toJS() as Resource;
  });
}

export function readKustomizations(dir = KUBERNETES_DIR): Kustomization[] {
  return yamlFiles(dir)
    .filter((f) => f === 'kustomization.yaml' || f.endsWith('/kustomization.yaml'))
    .map((f) => {
      const [resource] = parseYamlFile(join(dir, f));
      return {
        dir: f.slice(0, -'kustomization.yaml'.length).replace(/\/$/u, ''),
        resources: resource!['resources'] ?? [],
        images: resource!['images'] ?? [],
        resource: resource!,
      };
    });
}

/** The Kubernetes objects under `dir` (everything but the kustomizations). */
export function readManifests(dir = KUBERNETES_DIR): Manifest[] {
  return yamlFiles(dir)
    .filter((f) => !f.endsWith('kustomization.yaml'))
    .flatMap((file) => parseYamlFile(join(dir, file)).map((resource) => ({ file, resource })));
}

/**
 * What is wrong with `resource` by its kind's schema: ajv's messages, and the
 * fields the schema does not have (a real API server refuses those under
 * kubectl's default strict field validation; the compiled schemas alone let them through).
 */
export function schemaErrors(resource: Resource): string[] {
  const key = `${resource['apiVersion']}/${resource['kind']}`;
  const model = MODELS[key];
  if (!model) return [`${key}: not a kind hanmadi deploys (${Object.keys(MODELS).join(', ')})`];
  const errors: string[] = [];
  const watched = watchReads(resource);
  try {
    // The model's validate() runs the compiled schema on `this`.
    model.prototype.validate.call(watched.proxy);
  } catch (error) {
    errors.push((error as Error).message);
  }
  return [...errors, ...watched.unread().map((path) => `${path}: unknown field`)];
}

/**
 * A proxy that records which keys the validator reads of each object, and
 * which objects it enumerates (maps such as labels and resource lists): a key
 * it never reads of an object it never enumerates is one the schema lacks.
 */
function watchReads(root: Resource): { proxy: Resource; unread: () => string[] } {
  const read = new Map<object, Set<string | symbol>>();
  const enumerated = new Set<object>();
  const note = (target: object, key: string | symbol) => {
    if (!read.has(target)) read.set(target, new Set());
    read.get(target)!.add(key);
  };
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    return new Proxy(value, {
      get: (target, key) => (note(target, key), wrap(Reflect.get(target, key))),
      has: (target, key) => (note(target, key), Reflect.has(target, key)),
      getOwnPropertyDescriptor: (target, key) => (note(target, key), Reflect.getOwnPropertyDescriptor(target, key)),
      ownKeys: (target) => (enumerated.add(target), Reflect.ownKeys(target)),
    });
  };
  const unread = (value: unknown, path: string): string[] => {
    if (value === null || typeof value !== 'object') return [];
    if (Array.isArray(value)) return value.flatMap((item, i) => unread(item, `${path}/${i}`));
    return Object.entries(value).flatMap(([key, child]) => {
      const known = enumerated.has(value) || read.get(value)?.has(key);
      return known ? unread(child, `${path}/${key}`) : [`${path}/${key}`];
    });
  };
  return { proxy: wrap(root) as Resource, unread: () => unread(root, '') };
}
