/**
 * generation_config.json: the decoding defaults stored with a model, as
 * Hugging Face's `GenerationConfig` is. A request's own options win; what it
 * leaves out comes from this file (`applyGenerationConfig` in options.ts),
 * then from the built-in defaults of `resolveGenerateOptions`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '@hanmadi/files';
import { z } from 'zod';
import { ModelDirError } from '../model-dir.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** Every option of `generate()` but the seed (a request's business); the ranges are the HTTP API's. */
export const GenerationConfigSchema = z.strictObject({
  strategy: z.enum(['greedy', 'beam', 'sample']).optional().describe('greedy, beam search or seeded sampling (greedy when nothing says)'),
  maxNewTokens: z.int().min(1).max(512).optional().describe("most tokens to generate, EOS included (capped by the model's maximum length)"),
  minNewTokens: z.int().min(0).max(512).optional().describe('EOS is forbidden before this many tokens'),
  noRepeatNgramSize: z.int().min(0).max(16).optional().describe('forbid repeating any n-gram of this size; 0 is off'),
  repetitionPenalty: z.number().min(0.01).max(10).optional().describe('CTRL repetition penalty; 1 is off'),
  temperature: z.number().min(0.01).max(10).optional().describe('sampling only'),
  topK: z.int().min(0).max(100_000).optional().describe('sampling only; 0 is off'),
  topP: z.number().gt(0).max(1).optional().describe('sampling only; 1 is off'),
  numBeams: z.int().min(1).max(16).optional().describe('beam search only'),
  lengthPenalty: z.number().min(-5).max(5).optional().describe('beam search only'),
  earlyStopping: z.boolean().optional().describe('beam search only'),
});
export type GenerationConfig = z.infer<typeof GenerationConfigSchema>;

/**
 * What the trainer writes into a new run directory: guards that cost the
 * shipped model nothing and keep a weaker one from repeating itself to the
 * length limit (a bigram may not recur, so no word comes three times in a
 * row). Chosen on the probe set's tuning half: docs/chatbot-quality.md.
 */
export const DEFAULT_GENERATION_CONFIG: Readonly<GenerationConfig> = Object.freeze({
  noRepeatNgramSize: 2,
  repetitionPenalty: 1.2,
  numBeams: 4,
  lengthPenalty: 0.6,
  topP: 0.7,
  temperature: 0.7,
});

/** The config's problems in one line, each naming its field: "temperature: Too big: …". */
function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const known = Object.keys(GenerationConfigSchema.shape).join(', ');
  const problems = issues
    .slice(0, 3)
    .map((issue) =>
      issue.code === 'unrecognized_keys'
        ? `${issue.keys.join(', ')}: unknown field (known: ${known})`
        : `${issue.path.join('.') || '(top level)'}: ${issue.message}`,
    );
  const more = issues.length - problems.length;
  return `${problems.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
}

/** Validates a parsed generation config; `file` only names the culprit in the ModelDirError. */
export function parseGenerationConfig(raw: unknown, file: string = GENERATION_CONFIG_FILE): GenerationConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelDirError(file, 'not a JSON object');
  const result = GenerationConfigSchema.safeParse(raw);
  if (!result.success) throw new ModelDirError(file, `invalid generation config: ${describeIssues(result.error.issues)}`);
  const { minNewTokens, maxNewTokens } = result.data;
  if (minNewTokens !== undefined && maxNewTokens !== undefined && minNewTokens > maxNewTokens) {
    throw new ModelDirError(file, `invalid generation config: minNewTokens: ${minNewTokens} exceeds maxNewTokens ${maxNewTokens}`);
  }
  return result.data;
}

/** The generation config of a model directory; `{}` when it has none. Any fault throws a ModelDirError naming the file. */
export async function readGenerationConfig(dir: string): Promise<GenerationConfig> {
  const file = join(dir, GENERATION_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The file is optional: models saved before it existed decode with the built-in defaults.
    if (code === 'ENOENT') return {};
    throw new ModelDirError(file, code === 'EISDIR' ? 'is a directory' : `cannot read: ${errorText(error)}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ModelDirError(file, `not valid JSON (${errorText(error)})`, { cause: error });
  }
  return parseGenerationConfig(raw, file);
}

/** Writes a model directory's generation config atomically (temporary file, fsync, rename); refuses one that would not read back. */
export async function writeGenerationConfig(dir: string, config: GenerationConfig): Promise<void> {
  const file = join(dir, GENERATION_CONFIG_FILE);
  const checked = parseGenerationConfig(config, file);
  try {
    await mkdir(dir, { recursive: true });
    await writeFileDurably(file, `${JSON.stringify(checked, null, 2)}\n`);
  } catch (error) {
    throw new ModelDirError(file, `cannot write: ${errorText(error)}`, { cause: error });
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
