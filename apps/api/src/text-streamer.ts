/**
 * Turns a stream of token ids into a stream of text pieces whose
 * concatenation is the decoded text of all ids.
 *
 * Ids are not decoded one at a time: SentencePiece drops the space of a
 * leading "▁" and byte-fallback pieces only form a character together, so
 * the whole sequence is decoded each time and only the new suffix is sent.
 * Text ending in U+FFFD (half a character) is held back until it completes.
 */
export class TextStreamer {
  private readonly ids: number[] = [];
  private sent = '';

  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private readonly onText: (delta: string) => void,
  ) {}

  put(id: number): void {
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (!text.endsWith('\uFFFD')) this.flush(text);
  }

  /** Sends whatever the final tokens add to what was sent. */
  end(tokens: readonly number[]): void {
    this.flush(this.decode(tokens));
  }

  private flush(text: string): void {
    // Decoding a longer sequence only appends, except when a held-back partial
    // character resolves; either way the text sent so far is a prefix.
    if (!text.startsWith(this.sent) || text.length === this.sent.length) return;
    const delta = text.slice(this.sent.length);
    this.sent = text;
    this.onText(delta);
  }
}
