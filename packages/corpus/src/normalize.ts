/**
 * Text normalisation shared by the corpus reader, the tokenizer and the chat
 * service, so that training data and user messages meet the model in one form.
 *
 * Korean text arrives both precomposed (NFC: `한`) and decomposed (NFD: `ᄒ`+`ᅡ`+`ᆫ`,
 * as macOS file names and some IMEs produce). The tokenizer's vocabulary is
 * built from NFC syllables, so everything is composed before it is seen.
 */

// Control characters (NUL, escape sequences) carry no meaning for a chatbot and
// SentencePiece refuses NUL inside pieces; those that are line or tab breaks
// separate words, so they become spaces rather than vanish. ZWSP and the BOM
// show up in copy-pasted text as invisible word joiners.
const CONTROL = /[\p{Cc}\u200B\uFEFF]/gu;
// U+2581 is SentencePiece's whitespace marker: typed into text it would come
// back as a space after decoding, so it is one from the start.
const WHITESPACE = /[\s\u2581]+/gu;

/** Control characters dropped, whitespace runs collapsed to one space, NFC, trimmed. */
export function normalizeText(text: string): string {
  return text
    .replace(CONTROL, (c) => (/\s/u.test(c) ? ' ' : ''))
    .replace(WHITESPACE, ' ')
    .normalize('NFC')
    .trim();
}
