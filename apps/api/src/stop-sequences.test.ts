import { describe, expect, it } from 'vitest';
import { StopSequences } from './stop-sequences.js';
import { TextStreamer } from './text-streamer.js';

/** A streamer over one-character tokens: token i is `vocab[i]`. */
function streamer(stops: string[]) {
  const vocab = [...'abcdefgh', '!', ' '];
  const sent: string[] = [];
  const s = new TextStreamer(
    (ids) => ids.map((id) => vocab[id]).join(''),
    (delta) => sent.push(delta),
    new StopSequences(stops),
  );
  const put = (text: string) => [...text].map((c) => s.put(vocab.indexOf(c)));
  return { s, sent, put };
}

describe('StopSequences', () => {
  it('finds the earliest stop string, whichever of the list it is', () => {
    const stops = new StopSequences(['cd', 'b']);
    expect(stops.find('abcd')).toBe(1);
    expect(stops.find('xxcd')).toBe(2);
    expect(stops.find('xyz')).toBe(-1);
  });

  it('holds back the longest suffix that could begin a stop string', () => {
    const stops = new StopSequences(['\n\nUser:', '###']);
    expect(stops.safeLength('안녕하세요\n\nUs')).toBe('안녕하세요'.length);
    expect(stops.safeLength('안녕하세요#')).toBe('안녕하세요'.length);
    expect(stops.safeLength('안녕하세요')).toBe('안녕하세요'.length);
    expect(new StopSequences([]).safeLength('abc')).toBe(3);
  });
});

describe('TextStreamer with stop strings', () => {
  it('never sends text that could still be the start of a stop string, and releases it once it cannot', () => {
    const { s, sent, put } = streamer(['cde']);
    put('abc');
    expect(sent.join('')).toBe('ab');
    put('d');
    expect(sent.join('')).toBe('ab');
    expect(put('f')).toEqual([false]);
    expect(sent.join('')).toBe('abcdf');
    s.end([0, 1, 2, 3, 5]);
    expect(sent.join('')).toBe('abcdf');
  });

  it('stops at the token that completes a stop string: the text before it is sent, the stop string and later tokens never', () => {
    const { s, sent, put } = streamer(['d!', 'gh']);
    expect(put('abcd!')).toEqual([false, false, false, false, true]);
    expect(sent.join('')).toBe('abc');
    expect(s.stopped).toEqual({ text: 'abc', tokens: [0, 1, 2, 3, 8] });
    expect(put('e')).toEqual([true]);
    s.end([0, 1, 2, 3, 8, 4]);
    expect(sent.join('')).toBe('abc');
  });

  it('sends held-back text when the reply ends without a stop string', () => {
    const { s, sent, put } = streamer(['h!']);
    put('agh');
    expect(sent.join('')).toBe('ag');
    s.end([0, 6, 7]);
    expect(sent.join('')).toBe('agh');
    expect(s.stopped).toBeUndefined();
  });
});
