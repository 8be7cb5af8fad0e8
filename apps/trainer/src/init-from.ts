import { join } from 'node:path';
import { loadModelDir, ModelConfigSchema, TOKENIZER_FILE, WEIGHTS_FILE, type ModelConfig, type NamedTensor } from '@hanmadi/model';
import { Tokenizer } from '@hanmadi/tokenizer';
import { RunDirError } from './run-dir.js';

/** The model a fine-tuning run starts from (--init-from). */
export interface BaseModel {
  dir: string;
  config: ModelConfig;
  tensors: Map<string, NamedTensor>;
  /** Where its weights are, for errors about them. */
  weightsFile: string;
  tokenizerPath: string;
}

/**
 * Loads the base of a fine-tuning run with every check a served model gets
 * (checksums, finite weights), and that its tokenizer is the one its
 * embedding was trained with: a vocabulary of another size is refused here,
 * before any training, rather than as a shape error deep in a step.
 */
export async function loadBase(dir: string): Promise<BaseModel> {
  const loaded = await loadModelDir(dir, (raw) => ModelConfigSchema.parse(raw));
  const tokenizer = await Tokenizer.load(loaded.tokenizerPath);
  const vocab = loaded.modelConfig.vocabSize;
  if (tokenizer.vocabSize !== vocab) {
    throw new RunDirError(
      `${join(dir, TOKENIZER_FILE)}: --init-from: the tokenizer has ${tokenizer.vocabSize} pieces, the model's embedding ${vocab} rows; a base model needs the tokenizer it was trained with`,
    );
  }
  return { dir, config: loaded.modelConfig, tensors: loaded.tensors, weightsFile: join(dir, WEIGHTS_FILE), tokenizerPath: loaded.tokenizerPath };
}
