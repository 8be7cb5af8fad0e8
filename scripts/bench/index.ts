/**
 * `pnpm bench <name>`: benchmarks that print figures beside a reference
 * measured in the same run. They are never run as tests.
 */
import { benchTokenizer } from './tokenizer.js';

const BENCHES: Record<string, () => Promise<void>> = {
  tokenizer: benchTokenizer,
};

const name = process.argv[2];
const bench = name === undefined ? undefined : BENCHES[name];
if (bench === undefined) {
  console.error(`usage: pnpm bench <${Object.keys(BENCHES).join('|')}>`);
  process.exitCode = 2;
} else {
  try {
    await bench();
  } catch (error) {
    console.error(`bench ${name} failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
