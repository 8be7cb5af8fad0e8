import { readFile } from 'node:fs/promises';
import { normalizeText } from '@hanmadi/corpus';
import { applyGenerationConfig, generate, type GenerateOptions, type GenerationConfig, type SearchStrategy, type Transformer } from '@hanmadi/model';
import type { Tokenizer } from '@hanmadi/tokenizer';
import { InvalidArgumentError } from 'commander';

/** A fixed budget, so that runs to the limit show up and figures compare across models. */
export const PROBE_MAX_NEW_TOKENS = 32;

/** The decodings a probe compares: nothing but the search, or with the model's generation_config.json. */
export type ProbeDecoding = 'none' | 'defaults';

export interface ProbePrompt {
  /** 1-based line in the prompt file. */
  line: number;
  text: string;
}

export interface ProbeReply {
  line: number;
  prompt: string;
  strategy: SearchStrategy;
  decoding: ProbeDecoding;
  reply: string;
  tokens: number;
  finishReason: 'eos' | 'length';
  score: number;
}

/**
 * Reads a prompt file, one prompt a line (blank lines skipped), keeping the
 * lines in `range` ("51-100", 1-based, inclusive) when given.
 */
export async function readProbePrompts(file: string, range?: string): Promise<ProbePrompt[]> {
  const text = await readFile(file, 'utf8');
  let [from, to] = [1, Infinity];
  if (range !== undefined) {
    const m = /^(\d+)-(\d+)$/u.exec(range.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new InvalidArgumentError(`--prompt-lines: "${range}" is not a line range such as 51-100`);
    [from, to] = [Number(m[1]), Number(m[2])];
  }
  const prompts = text
    .split('\n')
    .map((raw, i) => ({ line: i + 1, text: normalizeText(raw) }))
    .filter((p) => p.text !== '' && p.line >= from && p.line <= to);
  if (prompts.length === 0) throw new InvalidArgumentError(`--prompts: ${file} has no prompts${range ? ` in lines ${range}` : ''}`);
  return prompts;
}

/** The options a probe decodes with: the search alone (its built-in defaults), or with the generation config filling in. */
export function probeOptions(strategy: SearchStrategy, decoding: ProbeDecoding, config: GenerationConfig): GenerateOptions {
  const request: GenerateOptions = { strategy, maxNewTokens: PROBE_MAX_NEW_TOKENS, ...(strategy === 'sample' ? { seed: 0 } : {}) };
  if (decoding === 'none') return request;
  // The probe's budget is fixed; everything else the model's defaults decide.
  return applyGenerationConfig(request, { ...config, maxNewTokens: PROBE_MAX_NEW_TOKENS });
}

const BATCH = 32;

/** Replies to every prompt with one strategy and decoding, decoded in batches. */
export function probeReplies(
  model: Transformer,
  tokenizer: Tokenizer,
  prompts: readonly ProbePrompt[],
  strategy: SearchStrategy,
  decoding: ProbeDecoding,
  config: GenerationConfig,
): ProbeReply[] {
  const options = probeOptions(strategy, decoding, config);
  const replies: ProbeReply[] = [];
  for (let i = 0; i < prompts.length; i += BATCH) {
    const group = prompts.slice(i, i + BATCH);
    const outputs = generate(
      model,
      group.map((p) => tokenizer.encode(p.text)),
      options,
    );
    outputs.forEach((out, j) => {
      const p = group[j]!;
      replies.push({
        line: p.line,
        prompt: p.text,
        strategy,
        decoding,
        reply: tokenizer.decode(out.tokens),
        tokens: out.tokens.length,
        finishReason: out.finishReason,
        score: out.score,
      });
    });
  }
  return replies;
}
