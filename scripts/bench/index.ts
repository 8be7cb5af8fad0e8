/**
 * `pnpm bench <name>`: benchmarks that print figures beside a reference
 * measured in the same run. They are never run as tests.
 */
import { runBench } from './cli.js';

process.exitCode = await runBench(process.argv.slice(2));
