import { z } from 'zod';

/**
 * Hyper-parameters of the encoder-decoder (Vaswani et al. 2017, §3 and Table 3).
 * The vocabulary size comes from the tokenizer; special ids are the project's
 * fixed ones (pad 0, bos 2, eos 3) unless a foreign tokenizer says otherwise.
 */
export const ModelConfigSchema = z
  .object({
    vocabSize: z.number().int().min(8),
    dModel: z.number().int().positive(),
    numHeads: z.number().int().positive(),
    dFF: z.number().int().positive(),
    encoderLayers: z.number().int().positive(),
    decoderLayers: z.number().int().positive(),
    /** P_drop of §5.4: applied to embeddings, sublayer outputs and attention weights. */
    dropout: z.number().min(0).max(0.9),
    /** Longest sequence in tokens (BOS/EOS included); positional encodings are built up to it. */
    maxLength: z.number().int().min(2).max(4096),
    /** 'post' = LayerNorm(x + Sublayer(x)) as in §3.1; 'pre' = x + Sublayer(LayerNorm(x)) with final norms. */
    norm: z.enum(['post', 'pre']),
    padId: z.number().int().min(0),
    bosId: z.number().int().min(0),
    eosId: z.number().int().min(0),
  })
  .strict()
  .refine((c) => c.dModel % c.numHeads === 0, { message: 'dModel must be divisible by numHeads', path: ['numHeads'] })
  .refine((c) => c.dModel % 2 === 0, { message: 'dModel must be even (sinusoidal encodings pair sin and cos)', path: ['dModel'] })
  .refine((c) => Math.max(c.padId, c.bosId, c.eosId) < c.vocabSize, { message: 'special ids must be inside the vocabulary', path: ['vocabSize'] });

export type ModelConfig = z.infer<typeof ModelConfigSchema>;

export type PresetName = 'tiny' | 'tutorial' | 'base';

type PresetShape = Omit<ModelConfig, 'vocabSize' | 'padId' | 'bosId' | 'eosId'>;

export const PRESETS: Record<PresetName, PresetShape> = {
  /** For tests and the quickstart: trains in minutes on two CPU cores. */
  tiny: { dModel: 64, numHeads: 4, dFF: 128, encoderLayers: 1, decoderLayers: 1, dropout: 0.1, maxLength: 40, norm: 'post' },
  /** The classic Korean chatbot tutorial's model, and the PyTorch reference's. */
  tutorial: { dModel: 256, numHeads: 8, dFF: 512, encoderLayers: 2, decoderLayers: 2, dropout: 0.1, maxLength: 40, norm: 'post' },
  /** The paper's base model (Table 3). */
  base: { dModel: 512, numHeads: 8, dFF: 2048, encoderLayers: 6, decoderLayers: 6, dropout: 0.1, maxLength: 128, norm: 'post' },
};

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

/** A full config from a preset, the tokenizer's vocabulary and any overrides. */
export function presetConfig(
  name: PresetName,
  vocab: { vocabSize: number; padId?: number; bosId?: number; eosId?: number },
  overrides: Partial<PresetShape> = {},
): ModelConfig {
  return ModelConfigSchema.parse({
    ...PRESETS[name],
    ...overrides,
    vocabSize: vocab.vocabSize,
    padId: vocab.padId ?? 0,
    bosId: vocab.bosId ?? 2,
    eosId: vocab.eosId ?? 3,
  });
}

/** Throws the RangeError of a sequence of `tokens` tokens that the model's maxLength cannot hold. */
export function checkSequenceLength(tokens: number, maxLength: number): void {
  if (tokens > maxLength) throw new RangeError(`sequence of ${tokens} tokens is longer than the model's maxLength ${maxLength}`);
}
