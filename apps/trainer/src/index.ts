export { batchTokens, epochBatches, paddedTokens } from './batching.js';
export { InProcessEngine, ParallelEngine, type Engine, type EngineState } from './engine.js';
export { corpusBleu, tokenize13a, type BleuResult } from './metrics/bleu.js';
export { corpusChrf, type ChrfResult } from './metrics/chrf.js';
export { RECIPES, parseTrainArgs, type TrainRequest, type TrainSettings } from './settings.js';
export { runTrainCli, type TrainIo } from './train-command.js';
export { train, type StopSignal, type TrainSummary } from './train.js';
export { replyAll, validate, SAMPLE_PROMPTS, type ValidationResult } from './validation.js';
