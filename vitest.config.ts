import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{apps,packages,scripts}/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // The interop and training tests do real work on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Builds apps/cli/dist, which the process tests run as users do.
    globalSetup: ['apps/cli/vitest.setup.ts'],
    // CI also writes a JSON report, from which .ci/run prints a plain
    // "N passed, N failed" closing line.
    reporters: process.env['CI'] === 'true' ? ['default', ['json', { outputFile: '.ci/vitest-report.json' }]] : ['default'],
  },
});
