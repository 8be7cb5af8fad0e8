/**
 * Builds dist/: hanmadi.mjs (src/bin.ts and every workspace package it
 * imports, as one ES module that node runs), training-worker.mjs (the
 * data-parallel trainer's worker, which data-parallel.ts starts from beside
 * the bundle) and web/ (the chat page, read by the API at run time). Run by
 * the root `prepare` script, so `pnpm install` leaves a working `hanmadi`,
 * and before the tests (vitest's global setup), so they run today's sources.
 */
import { cp, rm } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions } from 'esbuild';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const DIST = here('./dist/');

/**
 * Left to node_modules at run time: TensorFlow.js (its backends must share one
 * tfjs-core, and the wasm backend loads .wasm files from its package), Dawn
 * (a native addon), Swagger UI (serves files from its package), and tsx (only
 * the unbundled sources use it). These are this package's dependencies.
 */
const EXTERNAL = ['@tensorflow/*', 'webgpu', '@fastify/swagger-ui', 'tsx', 'tsx/*'];

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL,
  logLevel: 'warning',
  // CommonJS dependencies (sentencepiece-js's emscripten glue among them) expect
  // require, __filename and __dirname, which ES modules do not define.
  banner: {
    js: [
      "import { createRequire as __hanmadiCreateRequire } from 'node:module';",
      "import { fileURLToPath as __hanmadiFileURLToPath } from 'node:url';",
      "import { dirname as __hanmadiDirname } from 'node:path';",
      'const require = __hanmadiCreateRequire(import.meta.url);',
      'const __filename = __hanmadiFileURLToPath(import.meta.url);',
      'const __dirname = __hanmadiDirname(__filename);',
    ].join('\n'),
  },
};

export async function buildCli(): Promise<void> {
  await rm(DIST, { recursive: true, force: true });
  await Promise.all([
    build({ ...common, entryPoints: [here('./src/bin.ts')], outfile: `${DIST}hanmadi.mjs`, banner: { js: `#!/usr/bin/env node\n${common.banner!['js']!}` } }),
    build({ ...common, entryPoints: [here('../../packages/model/src/parallel/worker.ts')], outfile: `${DIST}training-worker.mjs` }),
    cp(here('../api/src/web/'), `${DIST}web/`, { recursive: true }),
  ]);
}

/** Where the built command is. */
export const HANMADI_BIN = `${DIST}hanmadi.mjs`;

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await buildCli();
