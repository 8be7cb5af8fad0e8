// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- the ambient types of an untyped dependency must reach every project that compiles this file
/// <reference path="./sentencepiece-js.d.ts" />
import { normalizeText } from '@hanmadi/corpus';
import sentencepiece, { type SentencePieceProcessor } from 'sentencepiece-js';
import { withoutEmscriptenHandlers } from './emscripten.js';
import { ModelFileError, readModelFile } from './model-file.js';
import { PieceType, type ModelProto } from './proto.js';
import { SPECIAL_IDS } from './trainer.js';

/** Ids of the special pieces; -1 where a (foreign) model has none. */
export interface SpecialIds {
  pad: number;
  unk: number;
  bos: number;
  eos: number;
}

/**
 * A SentencePiece model applied by sentencepiece-js (SentencePiece's C++
 * compiled to wasm), so ids are those `spm_encode` gives for the same model.
 * Text is normalised in TypeScript (NFC, whitespace) before it is encoded.
 */
export class Tokenizer {
  private readonly pieceIds: Map<string, number>;

  private constructor(
    readonly path: string,
    readonly model: ModelProto,
    private readonly processor: SentencePieceProcessor,
  ) {
    this.pieceIds = new Map(model.pieces.map((p, id) => [p.piece, id]));
  }

  /**
   * Loads and verifies a `.model` file. sentencepiece-js ignores its own load
   * status, so the file is parsed and checked here first, and the loaded
   * processor's status is read back before it is used.
   */
  static async load(path: string): Promise<Tokenizer> {
    const { model } = await readModelFile(path);
    const processor = await withoutEmscriptenHandlers(async () => {
      const p = new sentencepiece.SentencePieceProcessor();
      await p.load(path);
      return p;
    });
    const status = processor.processor.status();
    const message = status.ToString();
    status.delete();
    if (message !== 'OK' && message !== '') throw new ModelFileError(path, `SentencePiece could not load it: ${message}`);
    return new Tokenizer(path, model, processor);
  }

  get vocabSize(): number {
    return this.model.pieces.length;
  }

  get specialIds(): SpecialIds {
    const spec = this.model.trainerSpec;
    return { pad: spec.padId, unk: spec.unkId, bos: spec.bosId, eos: spec.eosId };
  }

  /** Whether the special ids are the project's fixed ones (pad 0, unk 1, bos 2, eos 3). */
  get hasProjectSpecialIds(): boolean {
    const ids = this.specialIds;
    return ids.pad === SPECIAL_IDS.pad && ids.unk === SPECIAL_IDS.unk && ids.bos === SPECIAL_IDS.bos && ids.eos === SPECIAL_IDS.eos;
  }

  encode(text: string): number[] {
    const normalized = normalizeText(text);
    return normalized === '' ? [] : this.processor.encodeIds(normalized);
  }

  encodePieces(text: string): string[] {
    const normalized = normalizeText(text);
    return normalized === '' ? [] : this.processor.encodePieces(normalized);
  }

  /** Text of a sequence of ids; control pieces (pad, bos, eos) decode to nothing. */
  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    }
    return ids.length === 0 ? '' : this.processor.decodeIds([...ids]);
  }

  idToPiece(id: number): string {
    const piece = this.model.pieces[id];
    if (piece === undefined) throw new RangeError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    return piece.piece;
  }

  /** The id of a piece, or the unknown id when the vocabulary lacks it. */
  pieceToId(piece: string): number {
    return this.pieceIds.get(piece) ?? this.specialIds.unk;
  }

  isControl(id: number): boolean {
    return this.model.pieces[id]?.type === PieceType.CONTROL;
  }
}
