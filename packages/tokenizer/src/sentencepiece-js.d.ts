// sentencepiece-js ships JavaScript only; these are the parts this package uses.
declare module 'sentencepiece-js' {
  interface EmbindObject {
    delete(): void;
  }
  interface Status extends EmbindObject {
    ToString(): string;
  }
  interface NativeProcessor {
    status(): Status;
  }
  export class SentencePieceProcessor {
    processor: NativeProcessor;
    load(path: string): Promise<void>;
    encodeIds(text: string): number[];
    encodePieces(text: string): string[];
    decodeIds(ids: number[]): string;
  }
  const sentencepiece: { SentencePieceProcessor: typeof SentencePieceProcessor };
  export default sentencepiece;
}
