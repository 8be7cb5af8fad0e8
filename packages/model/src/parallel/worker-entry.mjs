// Development entry of the training worker, which runs the TypeScript source.
// Loader hooks are per thread, and Node 20 does not apply a worker's
// `--import tsx` to its entry file, so the source is imported through tsx's
// API. A bundled build (pnpm build) starts training-worker.mjs instead.
import { tsImport } from 'tsx/esm/api';

await tsImport('./worker.ts', import.meta.url);
