/**
 * OpenAI's `stop`: strings on which a reply ends, matched on the decoded
 * text (a stop string may span tokens, or end inside one). The reply is the
 * text before the earliest match.
 * https://platform.openai.com/docs/api-reference/chat/create#chat-create-stop
 */
export class StopSequences {
  constructor(readonly stops: readonly string[]) {}

  /** Where the earliest stop string begins in `text`, or -1. */
  find(text: string): number {
    let at = -1;
    for (const stop of this.stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at;
  }

  /**
   * How much of `text` (which holds no stop string) is safe to send: all but
   * its longest suffix that is the beginning of a stop string, since the next
   * tokens may complete it.
   */
  safeLength(text: string): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > held; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return text.length - held;
  }
}
