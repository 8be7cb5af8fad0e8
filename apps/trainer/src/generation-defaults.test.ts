import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_GENERATION_CONFIG, GENERATION_CONFIG_FILE, readGenerationConfig } from '@hanmadi/model';
import { afterEach, describe, expect, it } from 'vitest';
import { writeDefaultGenerationConfig } from './generation-defaults.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeDefaultGenerationConfig', () => {
  it('writes the trainer defaults into a run directory that has none', async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanmadi-gendefaults-'));
    await writeDefaultGenerationConfig(dir);
    expect(readdirSync(dir)).toEqual([GENERATION_CONFIG_FILE]);
    expect(await readGenerationConfig(dir)).toEqual(DEFAULT_GENERATION_CONFIG);
  });

  it("keeps a user's file byte for byte, as on --resume", async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanmadi-gendefaults-'));
    const edited = '{ "strategy": "beam", "numBeams": 2 }\n';
    writeFileSync(join(dir, GENERATION_CONFIG_FILE), edited);
    await writeDefaultGenerationConfig(dir);
    expect(readFileSync(join(dir, GENERATION_CONFIG_FILE), 'utf8')).toBe(edited);
  });

  it('creates the run directory when it does not exist yet', async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanmadi-gendefaults-'));
    const run = join(dir, 'run');
    await writeDefaultGenerationConfig(run);
    expect(await readGenerationConfig(run)).toEqual(DEFAULT_GENERATION_CONFIG);
  });
});
