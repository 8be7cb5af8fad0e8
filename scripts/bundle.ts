/**
 * Bundles a CLI entry point and its workspace dependencies into one ESM file
 * that plain `node` runs (no tsx, no node_modules): what `pnpm build` ships and
 * what a machine without pnpm, such as the GPU box, can be handed.
 * Usage: tsx scripts/bundle.ts <entry.ts> <out.mjs>
 */
import { build } from 'esbuild';

const [entry, outfile] = process.argv.slice(2);
if (entry === undefined || outfile === undefined) {
  console.error('usage: tsx scripts/bundle.ts <entry.ts> <out.mjs>');
  process.exit(2);
}

await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
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
});
console.log(`bundled ${entry} -> ${outfile}`);
