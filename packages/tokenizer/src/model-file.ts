import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileDurably } from '@hanmadi/files';
import { decodeModelProto, encodeModelProto, ModelType, PieceType, type ModelProto } from './proto.js';

/** A `.model` file that is missing, damaged or not a SentencePiece model. */
export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ModelFileError';
  }
}

/**
 * Writes `<path>` (the binary ModelProto) and `<path without .model>.vocab`
 * (one `piece<TAB>score` line per id, as spm_train writes it), each atomically:
 * written to a temporary file, fsynced, then renamed over the target.
 */
export async function writeModelFile(path: string, model: ModelProto): Promise<{ model: string; vocab: string }> {
  const vocab = `${path.replace(/\.model$/u, '')}.vocab`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFileDurably(path, encodeModelProto(model));
    await writeFileDurably(vocab, vocabText(model));
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new ModelFileError(path, `cannot write: ${code ?? message}`);
  }
  return { model: path, vocab };
}

export function vocabText(model: ModelProto): string {
  return model.pieces.map((p) => `${p.piece}\t${Math.round(p.score) === p.score ? p.score.toFixed(0) : p.score}\n`).join('');
}

/** Reads and checks a `.model` file; the error names the file and what is wrong with it. */
export async function readModelFile(path: string): Promise<{ bytes: Uint8Array; model: ModelProto }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read: ${String(error)}`);
  }
  return { bytes, model: parseModel(bytes, path) };
}

/**
 * Decodes and validates a SentencePiece ModelProto. A truncated or foreign file
 * usually still decodes as *some* protobuf, so the checks go past parsing: a
 * vocabulary, a known model type, one unknown piece, special ids in range.
 */
export function parseModel(bytes: Uint8Array, file: string): ModelProto {
  if (bytes.length === 0) throw new ModelFileError(file, 'file is empty');
  let model: ModelProto;
  try {
    model = decodeModelProto(bytes);
  } catch (error) {
    throw new ModelFileError(file, `not a SentencePiece model (truncated or another format: ${(error as Error).message})`);
  }
  const notModel = (why: string): never => {
    throw new ModelFileError(file, `not a SentencePiece model (${why})`);
  };
  if (model.pieces.length === 0) notModel('no vocabulary');
  if (model.trainerSpec === null || model.normalizerSpec === null) notModel('no trainer or normalizer spec');
  if (!Object.values(ModelType).includes(model.trainerSpec.modelType as 1)) notModel(`unknown model type ${model.trainerSpec.modelType}`);
  const unknown = model.pieces.filter((p) => p.type === PieceType.UNKNOWN);
  if (unknown.length !== 1) notModel(`expected one <unk> piece, found ${unknown.length}`);
  const { unkId, bosId, eosId, padId } = model.trainerSpec;
  for (const [name, id] of Object.entries({ unkId, bosId, eosId, padId })) {
    if (id >= model.pieces.length) notModel(`${name} ${id} is outside the vocabulary of ${model.pieces.length}`);
  }
  if (model.pieces[unkId]?.type !== PieceType.UNKNOWN) notModel(`piece ${unkId} (unk_id) is not the unknown piece`);
  return model;
}
