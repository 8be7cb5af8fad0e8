import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_GENERATION_CONFIG, GENERATION_CONFIG_FILE, ModelDirError, writeGenerationConfig } from '@hanmadi/model';

/**
 * Writes the trainer's decoding defaults as the run directory's
 * generation_config.json, unless it already has one: a user's edits survive
 * --resume (the file is left as it is, even if invalid: serving names it).
 */
export async function writeDefaultGenerationConfig(dir: string): Promise<void> {
  const file = join(dir, GENERATION_CONFIG_FILE);
  try {
    await stat(file);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelDirError(file, `cannot read: ${(error as Error).message}`, { cause: error });
  }
  await writeGenerationConfig(dir, DEFAULT_GENERATION_CONFIG);
}
