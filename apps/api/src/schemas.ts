import { GenerationConfigSchema } from '@hanmadi/model';
import { z } from 'zod';

/**
 * Request and response schemas of the HTTP edge. Routes validate with them
 * (fastify-type-provider-zod) and /docs is generated from them, so the
 * documentation cannot drift from what the service accepts. Objects are
 * strict: an unknown field is a client bug worth a 400, not something to
 * ignore silently.
 */

/**
 * Decoding options of /v1/chat, in the names of the model's `generate()`:
 * the fields of generation_config.json (so names and ranges cannot drift)
 * plus the sampling seed.
 */
export const DecodingSchema = GenerationConfigSchema.extend({
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional()
    .describe('sampling only'),
}).describe(
  "Decoding options; what a request leaves out comes from the model's generation_config.json, then the built-in defaults (greedy, at most 32 tokens)",
);
export type Decoding = z.infer<typeof DecodingSchema>;

const TurnSchema = z.strictObject({
  role: z.enum(['user', 'assistant']),
  content: z.string(),
});

export const ChatRequestSchema = z.strictObject({
  message: z.string().describe('the user message (normalised to NFC; not empty; at most the configured length)'),
  history: z
    .array(TurnSchema)
    .max(100)
    .optional()
    .describe('earlier turns; accepted for clients that keep a conversation, but the model answers the message alone (it was trained on single-turn pairs)'),
  decoding: DecodingSchema.optional(),
  stop: z
    .array(z.string().min(1))
    .max(4)
    .optional()
    .describe('up to 4 strings on which the reply ends; the reply is the text before the first, finishReason "stop"'),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const FinishReasonSchema = z.enum(['eos', 'length', 'stop']);

export const ChatResponseSchema = z.object({
  reply: z.string(),
  finishReason: FinishReasonSchema,
  tokens: z.int().describe('number of tokens generated, EOS not counted'),
  tokenIds: z.array(z.int()),
  score: z.number().nullable().describe('sum of log-probabilities (beam search: divided by length^lengthPenalty); null when a stop string ended the reply'),
  latencyMs: z.number(),
});
export type ChatResponse = z.infer<typeof ChatResponseSchema>;

export const ErrorSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable().describe('the offending field, e.g. "decoding.temperature", when there is one'),
    code: z.string().nullable(),
  }),
});

// --- OpenAI-compatible chat completions -------------------------------------

const ContentPartSchema = z.strictObject({ type: z.literal('text'), text: z.string() });

const CompletionMessageSchema = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(ContentPartSchema)]),
  name: z.string().optional(),
});

/** OpenAI's `stop`: one string or up to 4. */
const StopSchema = z
  .union([z.string().min(1), z.array(z.string().min(1)).max(4)])
  .nullable()
  .optional()
  .describe('up to 4 strings on which the reply ends (matched on the decoded text; the content excludes them; finish_reason "stop")');

/** A field accepted only at the value that changes nothing; any other is refused with this reason. */
const only = <T extends z.ZodType>(schema: T, why: string) => schema.nullable().optional().describe(why);

/**
 * The subset of OpenAI's chat completions request the model can honour, as
 * vLLM and TGI accept it. Fields that would change the answer but cannot
 * (tools, logprobs, JSON mode, n > 1) are refused by name rather than
 * ignored, so a client never believes they took effect; an unknown field is
 * refused likewise. Fields at their no-op values (`logprobs: false`,
 * `tools: []`) are accepted, since real clients send them.
 */
export const CompletionRequestSchema = z.strictObject({
  model: z.string().describe('the served model id (see GET /v1/models)'),
  messages: z.array(CompletionMessageSchema).min(1).max(100),
  max_tokens: z.int().min(1).max(512).nullable().optional(),
  max_completion_tokens: z.int().min(1).max(512).nullable().optional(),
  temperature: z
    .number()
    .min(0)
    .max(2)
    .nullable()
    .optional()
    .describe("0: greedy; above 0: sampling at this temperature; absent: the strategy of the model's generation_config.json (greedy if it names none)"),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .nullable()
    .optional(),
  n: z.literal(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  stop: StopSchema,
  frequency_penalty: z.number().min(-2).max(2).nullable().optional().describe('logit[t] -= count[t] · frequency_penalty over the tokens generated so far'),
  presence_penalty: z.number().min(-2).max(2).nullable().optional().describe('logit[t] -= presence_penalty for every token generated so far'),
  logprobs: only(z.literal(false, { error: 'log-probabilities are not supported; send false or leave it out' }), 'only false'),
  response_format: only(z.strictObject({ type: z.literal('text', { error: 'only "text" is supported (no JSON mode)' }) }), 'only {"type": "text"}'),
  tools: only(z.array(z.unknown()).max(0, { error: 'tools are not supported; send [] or leave it out' }), 'only []'),
  tool_choice: only(z.literal('none', { error: 'tools are not supported; only "none"' }), 'only "none"'),
  user: z.string().optional().describe('accepted and ignored (never logged)'),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

const UsageSchema = z.object({ prompt_tokens: z.int(), completion_tokens: z.int(), total_tokens: z.int() });

export const CompletionResponseSchema = z.object({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.int(),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.int(),
      message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
      logprobs: z.null(),
      finish_reason: z.enum(['stop', 'length']),
    }),
  ),
  usage: UsageSchema,
});

export const ModelListSchema = z.object({
  object: z.literal('list'),
  data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.int(), owned_by: z.string() })),
});

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({ status: z.enum(['ready', 'loading', 'closing']), model: z.string().nullable() });
