import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type NamedTensor } from './safetensors.js';

const FILE = '/models/demo/model.safetensors';

const f32 = (shape: number[], values: number[]): NamedTensor => ({ dtype: 'F32', shape, data: Float32Array.from(values) });
const i32 = (shape: number[], values: number[]): NamedTensor => ({ dtype: 'I32', shape, data: Int32Array.from(values) });

/** The bytes of a typed array, so -0 and NaN payloads compare exactly. */
const bytesOf = (data: Float32Array | Int32Array): number[] => [...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];

/** A safetensors file from a header given as a JavaScript value, for corrupt ones the encoder would never write. */
function build(header: unknown, data: ArrayLike<number> = [], headerText = JSON.stringify(header)): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function decodeError(bytes: Uint8Array): SafetensorsError {
  try {
    decodeSafetensors(bytes, FILE);
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).file).toBe(FILE);
    expect((error as Error).message.startsWith(`${FILE}: `)).toBe(true);
    return error as SafetensorsError;
  }
  throw new Error('decodeSafetensors accepted a corrupt file');
}

describe('encodeSafetensors / decodeSafetensors', () => {
  it('round-trips float and int tensors of every rank, with metadata', () => {
    const tensors = new Map<string, NamedTensor>([
      ['encoder.layers.0.attention.wq', f32([2, 3], [0.1, -0.2, 3e38, -0, Number.NaN, Number.POSITIVE_INFINITY])],
      ['scalar', f32([], [1.5])],
      ['empty', f32([0, 4], [])],
      ['positions', i32([4], [0, -1, 2 ** 31 - 1, -(2 ** 31)])],
      ['임베딩 ▁', f32([1, 1, 2], [7, 8])],
    ]);
    const metadata = { format: 'hanmadi', note: '한국어 "quoted"' };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata), FILE);
    expect(decoded.metadata).toEqual(metadata);
    expect([...decoded.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, tensor] of tensors) {
      const back = decoded.tensors.get(name)!;
      expect(back.dtype, name).toBe(tensor.dtype);
      expect(back.shape, name).toEqual(tensor.shape);
      expect(back.data.constructor, name).toBe(tensor.data.constructor);
      expect(bytesOf(back.data), name).toEqual(bytesOf(tensor.data));
    }
  });

  it('writes the exact bytes of a tiny file by hand', () => {
    const bytes = encodeSafetensors(new Map([['b', i32([2], [1, -2])], ['a', f32([], [1.5])]]), { format: 'pt' });
    // The header, names sorted and __metadata__ first:
    //   {"__metadata__":{"format":"pt"},          1 + 14 + 1 + 15 + 1 = 32
    //   "a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},   4 + 47 + 1 = 52
    //   "b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}} 4 + 49 + 1 = 54
    // is 138 bytes, padded with 6 spaces to 144 = 0x90.
    const header =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}';
    const expected = [
      ...[0x90, 0, 0, 0, 0, 0, 0, 0],
      ...[...header].map((c) => c.charCodeAt(0)),
      ...[0x20, 0x20, 0x20, 0x20, 0x20, 0x20],
      ...[0x00, 0x00, 0xc0, 0x3f], // 1.5f = 0x3fc00000
      ...[0x01, 0x00, 0x00, 0x00], // 1
      ...[0xfe, 0xff, 0xff, 0xff], // -2
    ];
    expect(expected).toHaveLength(8 + 144 + 12);
    expect([...bytes]).toEqual(expected);
  });

  it('gives the same bytes whatever the insertion order, sorting integer-like names as strings', () => {
    const entries: [string, NamedTensor][] = [
      ['9', f32([1], [9])],
      ['10', f32([1], [10])],
      ['b', i32([1], [2])],
      ['a', f32([1], [1])],
    ];
    const bytes = encodeSafetensors(new Map(entries));
    expect(encodeSafetensors(new Map([...entries].reverse()))).toEqual(bytes);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(headerLength % 8).toBe(0);
    expect(header.indexOf('"10"')).toBeLessThan(header.indexOf('"9"'));
    expect(header.indexOf('"9"')).toBeLessThan(header.indexOf('"a"'));
    expect(header).not.toContain('__metadata__');
    expect([...decodeSafetensors(bytes, FILE).tensors.keys()]).toEqual(['10', '9', 'a', 'b']);
  });

  it('decodes from an unaligned offset into fresh arrays that do not share the input', () => {
    const file = encodeSafetensors(new Map([['w', f32([3], [1, 2, 3])], ['ids', i32([2], [4, 5])]]));
    const buffer = new Uint8Array(file.length + 3);
    buffer.set(file, 3);
    const input = buffer.subarray(3);
    const { tensors } = decodeSafetensors(input, FILE);
    input.fill(0);
    expect([...tensors.get('w')!.data]).toEqual([1, 2, 3]);
    expect([...tensors.get('ids')!.data]).toEqual([4, 5]);
    expect(tensors.get('w')!.data.byteOffset).toBe(0);
  });

  it('refuses to encode a tensor whose data does not match its dtype or shape', () => {
    expect(() => encodeSafetensors(new Map([['w', f32([2, 2], [1, 2, 3])]]))).toThrow(/tensor "w": shape \[2, 2\] has 4 elements, but the data has 3/u);
    expect(() => encodeSafetensors(new Map([['w', { dtype: 'I32', shape: [1], data: Float32Array.of(1) }]]))).toThrow(/needs a Int32Array, got Float32Array/u);
    expect(() => encodeSafetensors(new Map([['w', f32([-1], [])]]))).toThrow(/must hold non-negative integers/u);
    expect(() => encodeSafetensors(new Map([['__metadata__', f32([1], [1])]]))).toThrow(/reserved/u);
    expect(() => encodeSafetensors(new Map([['w', { dtype: 'F16' as 'F32', shape: [1], data: Float32Array.of(1) }]]))).toThrow(/unknown dtype "F16"/u);
  });
});

describe('decodeSafetensors on damaged files', () => {
  const good = encodeSafetensors(new Map([['a', f32([2], [1, 2])], ['b', i32([1], [3])]]), { k: 'v' });
  const a = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = [0, 0, 0, 0, 0, 0, 0, 0];

  it('too short to hold the header length', () => {
    expect(decodeError(new Uint8Array(0)).message).toMatch(/too short for safetensors: 0 bytes/u);
    expect(decodeError(good.subarray(0, 7)).message).toMatch(/too short for safetensors: 7 bytes/u);
  });

  it('a header length beyond the end of the file (truncated, or another format)', () => {
    expect(decodeError(good.subarray(0, 40)).message).toMatch(/header length 136 reaches past the end of the file \(40 bytes\)/u);
    const huge = new Uint8Array(16).fill(0xff);
    expect(decodeError(huge).message).toMatch(/header length 18446744073709551615 reaches past/u);
    // A text file read as safetensors: its first 8 bytes make an absurd length.
    expect(decodeError(new TextEncoder().encode('question,answer\n안녕,반가워\n')).message).toMatch(/reaches past the end of the file/u);
  });

  it('a header that is not JSON, not UTF-8 or not an object', () => {
    expect(decodeError(build(null, [], '{"a": ')).message).toMatch(/header is not valid UTF-8 JSON/u);
    const badUtf8 = build({});
    badUtf8[9] = 0xff;
    expect(decodeError(badUtf8).message).toMatch(/header is not valid UTF-8 JSON/u);
    expect(decodeError(build([a])).message).toMatch(/header is not a JSON object/u);
    expect(decodeError(build(null)).message).toMatch(/header is not a JSON object/u);
  });

  it('an unknown or unsupported dtype', () => {
    expect(decodeError(build({ a: { ...a, dtype: 'Q8' } }, eight)).message).toMatch(/tensor "a": unknown dtype "Q8" \(only F32 and I32 are read\)/u);
    expect(decodeError(build({ a: { ...a, dtype: 'toString' } }, eight)).message).toMatch(/unknown dtype "toString"/u);
    expect(decodeError(build({ a: { ...a, dtype: 'F16', shape: [4] } }, eight)).message).toMatch(/tensor "a": unsupported dtype "F16"/u);
    expect(decodeError(build({ a: { shape: [2], data_offsets: [0, 8] } }, eight)).message).toMatch(/tensor "a": dtype is missing/u);
  });

  it('a malformed tensor entry, shape or data_offsets', () => {
    expect(decodeError(build({ a: 'F32' }, eight)).message).toMatch(/tensor "a": expected an object/u);
    expect(decodeError(build({ a: { ...a, shape: [-2] } }, eight)).message).toMatch(/tensor "a": shape must be an array of non-negative integers, got \[-2\]/u);
    expect(decodeError(build({ a: { ...a, shape: [1.5] } }, eight)).message).toMatch(/shape must be an array/u);
    expect(decodeError(build({ a: { ...a, shape: undefined } }, eight)).message).toMatch(/shape must be an array/u);
    expect(decodeError(build({ a: { ...a, data_offsets: [0, 4, 8] } }, eight)).message).toMatch(/data_offsets must be \[begin, end\] in bytes, got \[0,4,8\]/u);
    expect(decodeError(build({ a: { ...a, data_offsets: [-8, 0] } }, eight)).message).toMatch(/data_offsets must be \[begin, end\]/u);
    expect(decodeError(build({ a: { ...a, data_offsets: [8, 0] } }, eight)).message).toMatch(/data_offsets \[8, 0\] end before they begin/u);
  });

  it('a shape that does not match the size its offsets give', () => {
    expect(decodeError(build({ a: { ...a, shape: [3] } }, eight)).message).toMatch(/tensor "a": shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/u);
    expect(decodeError(build({ a: { ...a, shape: [2, 0] } }, eight)).message).toMatch(/needs 0 bytes/u);
  });

  it('offsets past the end of the data (a truncated file)', () => {
    expect(decodeError(build({ a }, [0, 0, 0, 0])).message).toMatch(/tensor "a": data_offsets \[0, 8\] reach past the end of the data \(4 bytes\): truncated\?/u);
    expect(decodeError(good.subarray(0, good.length - 1)).message).toMatch(/tensor "b": data_offsets \[8, 12\] reach past the end of the data \(11 bytes\)/u);
  });

  it('overlapping tensors, and gaps between them', () => {
    const overlap = { a, b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] } };
    expect(decodeError(build(overlap, eight)).message).toMatch(/tensor "b": data_offsets \[4, 8\] overlap tensor "a", which ends at 8/u);
    const gap = { b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] } };
    expect(decodeError(build(gap, eight)).message).toMatch(/tensor "b": data_offsets \[4, 8\] leave a gap of 4 bytes after 0/u);
    // A tensor missing from the header (or dropped as a duplicate key) shows as a gap too.
    const hole = { a: { ...a, shape: [1], data_offsets: [0, 4] }, c: { ...a, shape: [1], data_offsets: [8, 12] } };
    expect(decodeError(build(hole, [...eight, 0, 0, 0, 0])).message).toMatch(/tensor "c": .* leave a gap of 4 bytes after 4/u);
  });

  it('trailing bytes after the last tensor', () => {
    expect(decodeError(build({ a }, [...eight, 0])).message).toMatch(/1 trailing bytes after the last tensor \(the data is 9 bytes, the tensors cover 8\)/u);
    const padded = new Uint8Array(good.length + 4);
    padded.set(good);
    expect(decodeError(padded).message).toMatch(/4 trailing bytes/u);
  });

  it('metadata that is not an object of strings', () => {
    expect(decodeError(build({ __metadata__: { epochs: 3 }, a }, eight)).message).toMatch(/__metadata__\.epochs must be a string, got 3/u);
    expect(decodeError(build({ __metadata__: ['x'], a }, eight)).message).toMatch(/__metadata__ must be an object of strings/u);
  });

  it('accepts what other writers may do: unpadded headers, any key order, metadata last, empty tensors anywhere', () => {
    const header = { b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] }, e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] }, a, __metadata__: { m: 'n' } };
    const { tensors, metadata } = decodeSafetensors(build(header, [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 7, 0, 0, 0]), FILE);
    expect(metadata).toEqual({ m: 'n' });
    expect([...tensors.get('a')!.data]).toEqual([1, 2]);
    expect([...tensors.get('b')!.data]).toEqual([7]);
    expect(tensors.get('e')).toEqual({ dtype: 'F32', shape: [0], data: new Float32Array(0) });
    expect(decodeSafetensors(build({}), FILE)).toEqual({ tensors: new Map(), metadata: {} });
  });
});

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

// The format is read here with nothing but json, struct and numpy, as any
// other language would, so the test does not lean on this module's own reader.
describe.skipIf(!hasNumpy)('interop with numpy (python3 with numpy found)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hanmadi-safetensors-'));

  it('numpy reads what we write, and we read what it writes', () => {
    const ours = join(dir, 'ours.safetensors');
    const theirs = join(dir, 'theirs.safetensors');
    writeFileSync(ours, encodeSafetensors(new Map([['w', f32([2, 3], [0.5, -1, 2, 3.25, 1e-8, -7])], ['ids', i32([3], [1, -2, 2 ** 31 - 1])]]), { format: 'pt' }));
    const script = String.raw`
import json, struct, sys
import numpy as np
ours, theirs = sys.argv[1], sys.argv[2]
raw = open(ours, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out = {'metadata': header.pop('__metadata__')}
for name, info in header.items():
    b, e = info['data_offsets']
    dt = {'F32': '<f4', 'I32': '<i4'}[info['dtype']]
    out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(info['shape']).tolist()
print(json.dumps(out))
a = np.arange(6, dtype='<f4').reshape(2, 3) / 4
t = np.array([[5, -6]], dtype='<i4')
blob = a.tobytes() + t.tobytes()
h = json.dumps({'t': {'dtype': 'I32', 'shape': [1, 2], 'data_offsets': [24, 32]}, 'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, '__metadata__': {'by': 'numpy'}}).encode()
open(theirs, 'wb').write(struct.pack('<Q', len(h)) + h + blob)
`;
    const result = spawnSync('python3', ['-c', script, ours, theirs], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({
      metadata: { format: 'pt' },
      w: [Array.from(Float32Array.of(0.5, -1, 2)), Array.from(Float32Array.of(3.25, 1e-8, -7))],
      ids: [1, -2, 2 ** 31 - 1],
    });
    const { tensors, metadata } = decodeSafetensors(readFileSync(theirs), theirs);
    expect(metadata).toEqual({ by: 'numpy' });
    expect(tensors.get('a')).toEqual({ dtype: 'F32', shape: [2, 3], data: Float32Array.of(0, 0.25, 0.5, 0.75, 1, 1.25) });
    expect(tensors.get('t')).toEqual({ dtype: 'I32', shape: [1, 2], data: Int32Array.of(5, -6) });
  });
});
