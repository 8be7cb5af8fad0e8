export { ModelConfigSchema, PRESETS, isPresetName, presetConfig, type ModelConfig, type PresetName } from './config.js';
export { MASKED, MultiHeadAttention, paddingMask, scaledDotProductAttention, subsequentMask, type KeyValue, type SequenceShape } from './attention.js';
export { DecoderLayer, EncoderLayer, LayerNorm, PositionwiseFeedForward, SublayerConnection, positionalEncoding } from './layers.js';
export { LabelSmoothing, crossEntropySum } from './loss.js';
export { fineTuneSchedule, noamSchedule } from './schedule.js';
export { Adam, PAPER_ADAM, clipByGlobalNorm, type AdamOptions } from './optimizer.js';
export { disposeBatch, makeBatch, sourceTensor, type Example, type TensorBatch } from './batch.js';
export { Transformer, type ForwardOptions } from './transformer.js';
export { InferenceTransformer, type DecoderMemory, type DecoderStepInput, type DecoderStepOutput } from './inference/transformer.js';
export { type LayerCache } from './inference/layers.js';
export { trainStep, type TrainStepOptions, type TrainStepResult } from './train-step.js';
export { ForwardPass, ParamStore } from './params.js';
export { Rng } from './random.js';
export { customOp, gatherRows, linear, projectOnto, tidy } from './ops.js';
export {
  exportWeights,
  importWeights,
  loadModel,
  parseModelConfig,
  saveModel,
  weightsLayout,
  WEIGHTS_LAYOUT,
  type LoadedModel,
  type SaveModelOptions,
} from './persist.js';
export { COMPANION_FILES, exportModelDir, type ExportReport, type WeightsDtype } from './export.js';
export {
  CONFIG_FILE,
  isModelDir,
  loadModelDir,
  MODEL_FORMAT_VERSION,
  ModelDirError,
  saveModelDir,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  type LoadedModelDir,
  type ModelDirConfig,
  type SaveModelDirOptions,
} from './model-dir.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type EncodeOptions,
  type FloatStorage,
  type NamedTensor,
  type SafetensorsDtype,
} from './safetensors.js';
export { greedyDecode, type GreedyOutput } from './generation/greedy.js';
export {
  initBackend,
  parseBackendChoice,
  parseWasmThreads,
  BackendUnavailableError,
  BACKEND_ENV,
  WASM_THREADS_ENV,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
  type BackendOptions,
} from './backend.js';
export { DataParallelTrainer, splitByTokens, type ParallelStepOptions } from './parallel/data-parallel.js';
export { adamUpdate, createFlatAdamState, type FlatAdamState } from './parallel/flat-adam.js';
export { flatLayout, readParams, writeParams, type FlatLayout } from './parallel/flat.js';
export { generate, generateAsync } from './generation/search.js';
export {
  applyGenerationConfig,
  generationGroup,
  resolveGenerateOptions,
  type GenerateOptions,
  type ResolvedGenerateOptions,
  type SearchStrategy,
} from './generation/options.js';
export { type GenerateOutput } from './generation/output.js';
export {
  DEFAULT_GENERATION_CONFIG,
  GENERATION_CONFIG_FILE,
  GenerationConfigSchema,
  parseGenerationConfig,
  readGenerationConfig,
  writeGenerationConfig,
  type GenerationConfig,
} from './generation/generation-config.js';
export { type GenerationHooks, type TokenCallback } from './generation/hooks.js';
export { DecoderCache } from './generation/decoder-cache.js';
export { BatcherClosedError, DecodeBatcher, QueueFullError, type DecodeBatcherOptions, type DecodeRequest } from './generation/batcher.js';
export {
  FrequencyPenaltyProcessor,
  LogitsProcessorList,
  MinLengthProcessor,
  NoRepeatNgramProcessor,
  PresencePenaltyProcessor,
  RepetitionPenaltyProcessor,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  type LogitsProcessor,
} from './generation/logits-processors.js';
export { logSoftmax } from './generation/math.js';
export { EosCriterion, MaxLengthCriterion, StoppingCriteriaList, type FinishReason, type StoppingCriterion } from './generation/stopping-criteria.js';
