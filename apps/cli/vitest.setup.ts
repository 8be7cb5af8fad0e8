import { buildCli } from './build.js';

/** vitest's global setup: the tests that run `hanmadi` as a process run today's sources. */
export default async function setup(): Promise<void> {
  await buildCli();
}
