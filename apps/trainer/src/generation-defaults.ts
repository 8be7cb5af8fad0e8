import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_GENERATION_CONFIG, GENERATION_CONFIG_FILE, ModelDirError, readGenerationConfig, writeGenerationConfig } from '@hanmadi/model';

/**
 * Writes the run directory's generation_config.json unless it already has
 * one: a user's edits survive --resume (the file is left as it is, even if
 * invalid: serving names it). A fine-tuning run inherits its base's file,
 * else it gets the trainer's defaults.
 */
export async function writeDefaultGenerationConfig(dir: string, baseDir?: string): Promise<void> {
  const file = join(dir, GENERATION_CONFIG_FILE);
  try {
    await stat(file);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelDirError(file, `cannot read: ${(error as Error).message}`, { cause: error });
  }
  const inherited = baseDir === undefined ? {} : await readGenerationConfig(baseDir);
  await writeGenerationConfig(dir, Object.keys(inherited).length > 0 ? inherited : DEFAULT_GENERATION_CONFIG);
}
