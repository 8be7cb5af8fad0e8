import { StopSequences } from './stop-sequences.js';

/**
 * Turns a stream of token ids into a stream of text pieces whose
 * concatenation is the decoded text of all ids, cut before the first stop
 * string when there are any.
 *
 * Ids are not decoded one at a time: SentencePiece drops the space of a
 * leading "▁" and byte-fallback pieces only form a character together, so
 * the whole sequence is decoded each time and only the new suffix is sent.
 * Text ending in U+FFFD (half a character) is held back until it completes,
 * and so is text that could be the beginning of a stop string.
 */
export class TextStreamer {
  private readonly ids: number[] = [];
  private sent = '';
  /** The reply up to a stop string, once one has appeared: its text (without the stop string) and the tokens it took. */
  stopped: { text: string; tokens: number[] } | undefined;

  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private readonly onText: (delta: string) => void,
    private readonly stops = new StopSequences([]),
  ) {}

  /** Takes the next token; → true once a stop string has appeared (later tokens are ignored). */
  put(id: number): boolean {
    if (this.stopped) return true;
    this.ids.push(id);
    const text = this.decode(this.ids);
    const at = this.stops.find(text);
    if (at >= 0) {
      this.stopped = { text: text.slice(0, at), tokens: [...this.ids] };
      this.flush(this.stopped.text);
      return true;
    }
    if (!text.endsWith('\uFFFD')) this.flush(text.slice(0, this.stops.safeLength(text)));
    return false;
  }

  /** Sends whatever the final tokens add to what was sent (the reply ended without a stop string). */
  end(tokens: readonly number[]): void {
    if (!this.stopped) this.flush(this.decode(tokens));
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
