import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { API_KEY_ENV, runServeCli } from '@hanmadi/api';
import { describe, expect, it, vi } from 'vitest';
import { execForm, readDockerfile, stage, stageEnv } from '../docker/dockerfile.js';
import { KUBERNETES_DIR, KUBERNETES_VERSION, readKustomizations, readManifests, schemaErrors, yamlFiles, type Manifest, type Resource } from './kubernetes.js';

// No cluster runs here: these check deploy/kubernetes offline, as kubectl and the API server would read it.

const manifests = readManifests();
const kustomizations = readKustomizations();

function only(kind: string, component?: string): Manifest {
  const found = manifests.filter(
    (m) => m.resource['kind'] === kind && (!component || m.resource['metadata']?.labels?.['app.kubernetes.io/component'] === component),
  );
  expect(
    found.map((m) => m.file),
    `one ${kind}`,
  ).toHaveLength(1);
  return found[0]!;
}

const deployment = only('Deployment').resource;
const pod = deployment['spec'].template;
const api = pod.spec.containers[0];
const job = only('Job').resource;
const trainer = job['spec'].template.spec.containers[0];
const pvc = only('PersistentVolumeClaim').resource;

/** `name` → value of a container's plain `env` entries. */
function envOf(container: Resource): Map<string, string | undefined> {
  return new Map((container['env'] ?? []).map((e: Resource) => [e['name'], e['value']]));
}

/** The HANMADI_* variables `hanmadi serve --help` lists (`(env: HANMADI_…)`). */
async function serveEnvNames(): Promise<Set<string>> {
  let help = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((help += String(chunk)), true));
  try {
    expect(await runServeCli(['--help'])).toBe(0);
  } finally {
    write.mockRestore();
  }
  return new Set([...help.matchAll(/env:\s+(HANMADI_[A-Z0-9_]+)/gu)].map((m) => m[1]!));
}

/** Every volume a pod's containers mount is one the pod defines. */
function expectMountsDefined(spec: Resource): void {
  const volumes = new Set(spec['volumes'].map((v: Resource) => v['name']));
  for (const container of spec['containers'])
    for (const mount of container.volumeMounts ?? []) expect(volumes, `${container.name} mounts ${mount.name}`).toContain(mount.name);
}

function expectNonRoot(spec: Resource, container: Resource): void {
  expect(spec['securityContext']).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 });
  expect(container['securityContext']).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  // The read-only root leaves /tmp to an emptyDir.
  const tmp = container['volumeMounts'].find((m: Resource) => m['mountPath'] === '/tmp');
  expect(spec['volumes'].find((v: Resource) => v['name'] === tmp?.name)?.emptyDir, 'an emptyDir at /tmp').toBeDefined();
}

describe(`deploy/kubernetes against the Kubernetes ${KUBERNETES_VERSION} schemas (kubernetes-models)`, () => {
  it.each(manifests.map((m) => [`${m.file}: ${m.resource['kind']}`, m] as const))('%s is valid, with no unknown fields', (_name, { resource }) => {
    expect(schemaErrors(resource)).toEqual([]);
  });

  it('refuses a wrong type, an unknown field and a kind it does not know', () => {
    const broken = structuredClone(deployment);
    const container = broken['spec'].template.spec.containers[0];
    container.ports[0].containerPort = '3000';
    container.readinesProbe = container.readinessProbe;
    expect(schemaErrors(broken)).toEqual([
      expect.stringMatching(/containers\/0\/ports\/0\/containerPort must be integer/u),
      '/spec/template/spec/containers/0/readinesProbe: unknown field',
    ]);
    expect(schemaErrors({ apiVersion: 'v1', kind: 'Pod' })[0]).toMatch(/v1\/Pod: not a kind hanmadi deploys/u);
  });
});

describe('kustomizations', () => {
  it('list every manifest beside them, once, and nothing that is not there', () => {
    const listed = kustomizations.flatMap((k) => k.resources.map((r) => posix.join(k.dir, r)));
    const files = yamlFiles().filter((f) => !f.endsWith('kustomization.yaml'));
    expect([...listed].sort()).toEqual(files);
    for (const k of kustomizations) expect(k.resource).toMatchObject({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization' });
    // kubectl apply -k deploy/kubernetes: the API and its volume; the GPU Job only when asked for.
    expect(kustomizations.find((k) => k.dir === '')!.resources).not.toContain('trainer/trainer-job.yaml');
    expect(existsSync(join(KUBERNETES_DIR, 'kustomization.yaml'))).toBe(true);
  });

  it('name the image of every container they deploy', () => {
    for (const k of kustomizations) {
      const images = manifests
        .filter((m) => k.resources.includes(posix.relative(k.dir, m.file)))
        .flatMap((m) => (m.resource['spec'].template?.spec.containers ?? []).map((c: Resource) => c['image']));
      expect(k.images.map((i) => i.name).sort(), k.dir || '.').toEqual([...new Set(images)].sort());
    }
  });
});

describe('the API Deployment', () => {
  const env = envOf(api);
  const port = api.ports.find((p: Resource) => p['name'] === 'http');

  it('sets only variables `hanmadi serve` reads', async () => {
    const known = await serveEnvNames();
    expect(known).toContain('HANMADI_MODEL');
    for (const e of api.env as Resource[]) expect(known.has(e['name']) || e['name'] === API_KEY_ENV, e['name']).toBe(true);
    // The API key, if the Secret exists, and never in the manifest itself.
    expect(api.env.find((e: Resource) => e['name'] === API_KEY_ENV).valueFrom.secretKeyRef).toMatchObject({ optional: true });
  });

  it('listens where its port, probes and Service point', () => {
    expect(env.get('HANMADI_HOST')).toBe('0.0.0.0');
    expect(Number(env.get('HANMADI_PORT'))).toBe(port.containerPort);
    expect(api.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(api.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(api.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    const service = only('Service').resource['spec'];
    expect(service.ports[0].targetPort).toBe(port.name);
    expect(pod.metadata.labels).toMatchObject(service.selector);
    expect(pod.metadata.labels).toMatchObject(deployment['spec'].selector.matchLabels);
  });

  it("serves the image's base model unless HANMADI_MODEL names a run in the read-only models volume", () => {
    const image = stageEnv(stage(readDockerfile('api.Dockerfile')));
    expect(env.get('HANMADI_MODEL')).toBe(image['HANMADI_MODEL']);
    // docs/deploy.md's overlay patches env/0.
    expect(api.env[0].name).toBe('HANMADI_MODEL');
    const mount = api.volumeMounts.find((m: Resource) => m['mountPath'] === '/models');
    expect(mount.readOnly).toBe(true);
    const volume = pod.spec.volumes.find((v: Resource) => v['name'] === mount.name);
    expect(volume.persistentVolumeClaim).toEqual({ claimName: pvc['metadata'].name, readOnly: true });
    expectMountsDefined(pod.spec);
  });

  it("runs as the image's uid 1000 on a read-only root", () => {
    expectNonRoot(pod.spec, api);
  });

  it('drains: preStop outlasts endpoint removal, and the grace period covers it and the longest request', () => {
    const [sleep, seconds] = api.lifecycle.preStop.exec.command as string[];
    expect(sleep).toBe('/bin/sleep');
    const timeoutMs = Number(env.get('HANMADI_TIMEOUT_MS'));
    expect(timeoutMs).toBeGreaterThan(0);
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(seconds) + timeoutMs / 1000 + 10);
    expect(Number(seconds)).toBeGreaterThanOrEqual(5);
  });

  it('is scaled by the HorizontalPodAutoscaler and guarded by the PodDisruptionBudget', () => {
    // spec.replicas would fight the autoscaler on every apply.
    expect(deployment['spec'].replicas).toBeUndefined();
    const hpa = only('HorizontalPodAutoscaler').resource['spec'];
    expect(hpa.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment['metadata'].name });
    expect(hpa.metrics).toEqual([expect.objectContaining({ type: 'Resource', resource: expect.objectContaining({ name: 'cpu' }) })]);
    // Utilisation is of the request, so there must be one.
    expect(api.resources.requests.cpu).toBeDefined();
    const pdb = only('PodDisruptionBudget').resource['spec'];
    expect(pdb.selector.matchLabels).toEqual(deployment['spec'].selector.matchLabels);
    expect(pdb.minAvailable).toBeLessThan(hpa.minReplicas);
  });
});

describe('the trainer Job', () => {
  it('runs the GPU image on one GPU, writing into the models volume', () => {
    expect(trainer.image).toBe('hanmadi-trainer-gpu');
    expect(trainer.resources.limits['nvidia.com/gpu']).toBe(1);
    const spec = job['spec'].template.spec;
    const mount = trainer.volumeMounts.find((m: Resource) => m['mountPath'] === '/models');
    expect(mount.readOnly).toBeFalsy();
    expect(spec.volumes.find((v: Resource) => v['name'] === mount.name).persistentVolumeClaim).toEqual({ claimName: pvc['metadata'].name });
    expect(pvc['spec'].accessModes).toContain('ReadWriteMany');
    expectMountsDefined(spec);
    expect(spec.restartPolicy).toBe('Never');
  });

  it("runs as the image's uid 1000, which owns the volume, on a read-only root", () => {
    const spec = job['spec'].template.spec;
    expectNonRoot(spec, trainer);
    expect(spec.securityContext.fsGroup).toBe(1000);
    // The image's default command writes under /models, where the volume is.
    const cmd = stage(readDockerfile('trainer-gpu.Dockerfile')).steps.findLast((s) => s.keyword === 'CMD')!;
    const args: string[] = trainer.args ?? execForm(cmd);
    expect(args[args.indexOf('--out') + 1]).toMatch(/^\/models\//u);
  });
});
