export { bytePiece, SPECIAL_IDS, SPECIAL_PIECES, trainBpe, VocabSizeError, WHITESPACE_MARK, type BpeOptions } from './trainer.js';
export { ModelFileError, parseModel, readModelFile, vocabText, writeModelFile } from './model-file.js';
export {
  decodeModelProto,
  encodeModelProto,
  ModelType,
  PieceType,
  type ModelProto,
  type NormalizerSpec,
  type SentencePiece,
  type TrainerSpec,
} from './proto.js';
export { Tokenizer, type SpecialIds } from './tokenizer.js';
export { spmAvailable, spmEncodeIds, spmTrain } from './spm.js';
export { withoutEmscriptenHandlers } from './emscripten.js';
export { runTokenizerCli } from './commands.js';
