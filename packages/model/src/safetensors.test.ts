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
    const bytes = encodeSafetensors(
      new Map([
        ['b', i32([2], [1, -2])],
        ['a', f32([], [1.5])],
      ]),
      { format: 'pt' },
    );
    // The header, names sorted and __metadata__ first:
    //   {"__metadata__":{"format":"pt"},          1 + 14 + 1 + 15 + 1 = 32
    //   "a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},   4 + 47 + 1 = 52
    //   "b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}} 4 + 49 + 1 = 54
    // is 138 bytes, padded with 6 spaces to 144 = 0x90.
    const header = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}';
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
    const file = encodeSafetensors(
      new Map([
        ['w', f32([3], [1, 2, 3])],
        ['ids', i32([2], [4, 5])],
      ]),
    );
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
    expect(() => encodeSafetensors(new Map([['w', { dtype: 'F16' as 'F32', shape: [1], data: Float32Array.of(1) }]]))).toThrow(
      /unknown dtype "F16" \(F32 or I32; pass floats: 'F16'/u,
    );
    expect(() => encodeSafetensors(new Map(), undefined, { floats: 'I32' as 'F32' })).toThrow(/floats must be F32 or F16, got "I32"/u);
  });
});

describe('F16: floats stored as IEEE half, read back as F32', () => {
  const half = (values: number[]): Float32Array =>
    decodeSafetensors(encodeSafetensors(new Map([['w', f32([values.length], values)]]), undefined, { floats: 'F16' }), FILE).tensors.get('w')!
      .data as Float32Array;
  /** The stored bit patterns of `values` written as F16. */
  const bits = (values: number[]): number[] => {
    const bytes = encodeSafetensors(new Map([['w', f32([values.length], values)]]), undefined, { floats: 'F16' });
    const view = new DataView(bytes.buffer, bytes.length - values.length * 2);
    return values.map((_, i) => view.getUint16(i * 2, true));
  };

  it('rounds known values to the nearest half and reads them back as F32', () => {
    const cases: [number, number, number][] = [
      // [value, the half it becomes, its bits]
      [1, 1, 0x3c00],
      [-2, -2, 0xc000],
      [0.1, 0.0999755859375, 0x2e66],
      [65504, 65504, 0x7bff],
      [65519, 65504, 0x7bff], // below the halfway point to 65536, so still the largest half
      [2 ** -14, 2 ** -14, 0x0400], // the smallest normal
      [2 ** -14 - 2 ** -24, 2 ** -14 - 2 ** -24, 0x03ff], // the largest subnormal
      [2 ** -24, 2 ** -24, 0x0001], // the smallest subnormal
      [3 * 2 ** -26, 2 ** -24, 0x0001], // nearer to it than to 0
      [2 ** -25, 0, 0x0000], // a tie between 0 and 2^-24: to even, 0
      [3 * 2 ** -25, 2 ** -23, 0x0002], // a tie between 2^-24 and 2^-23: to even, 2^-23
      [1 + 2 ** -11, 1, 0x3c00], // a tie: to even, 1
      [1 + 3 * 2 ** -11, 1 + 2 ** -9, 0x3c02], // a tie: to even, 1 + 2·2^-10
      [-0, -0, 0x8000],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, 0xfc00],
    ];
    const values = cases.map(([v]) => v);
    const back = half(values);
    cases.forEach(([value, expected], i) => expect(Object.is(back[i], expected), `${value} → ${back[i]}, expected ${expected}`).toBe(true));
    expect(bits(values)).toEqual(cases.map(([, , b]) => b));
    expect(Number.isNaN(half([Number.NaN])[0])).toBe(true);
  });

  it('reads every half exactly: each of the 65,536 bit patterns (but NaNs) is written back as the same bits', () => {
    const patterns = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((b) => (b & 0x7c00) !== 0x7c00 || (b & 0x03ff) === 0);
    const header = { w: { dtype: 'F16', shape: [patterns.length], data_offsets: [0, patterns.length * 2] } };
    const decoded = decodeSafetensors(build(header, new Uint8Array(patterns.buffer)), FILE).tensors.get('w')!;
    expect(decoded.dtype).toBe('F32');
    expect(decoded.data).toBeInstanceOf(Float32Array);
    expect(bits([...decoded.data])).toEqual([...patterns]);
  });

  it('writes the F16 header and bytes, keeps I32 tensors as they are, and halves the data', () => {
    const bytes = encodeSafetensors(
      new Map([
        ['a', f32([2], [1.5, -2])],
        ['b', i32([1], [7])],
      ]),
      undefined,
      { floats: 'F16' },
    );
    const header = '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}';
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + header.length))).toBe(header);
    expect([...bytes.subarray(bytes.length - 8)]).toEqual([0x00, 0x3e, 0x00, 0xc0, 7, 0, 0, 0]); // 1.5 = 0x3e00, -2 = 0xc000
    const { tensors } = decodeSafetensors(bytes, FILE);
    expect(tensors.get('a')).toEqual(f32([2], [1.5, -2]));
    expect(tensors.get('b')).toEqual(i32([1], [7]));
  });

  it('refuses a finite value beyond the half range, naming the tensor and the index, rather than storing infinity', () => {
    const encode = (values: number[]) => () => encodeSafetensors(new Map([['decoder.ffn.w1', f32([values.length], values)]]), undefined, { floats: 'F16' });
    expect(encode([1, 2, 65520])).toThrow(/^tensor "decoder\.ffn\.w1": 65520 at index 2 is beyond the range of F16 \(±65504\)$/u);
    expect(encode([-1e6])).toThrow(/-1000000 at index 0 is beyond the range of F16/u);
    expect(encode([3e38])).toThrow(RangeError);
    expect(half([65519.99, -65519.99])).toEqual(Float32Array.of(65504, -65504));
  });
});

describe('decodeSafetensors on damaged files', () => {
  const good = encodeSafetensors(
    new Map([
      ['a', f32([2], [1, 2])],
      ['b', i32([1], [3])],
    ]),
    { k: 'v' },
  );
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
    expect(decodeError(build({ a: { ...a, dtype: 'Q8' } }, eight)).message).toMatch(/tensor "a": unknown dtype "Q8" \(only F32, F16 and I32 are read\)/u);
    expect(decodeError(build({ a: { ...a, dtype: 'toString' } }, eight)).message).toMatch(/unknown dtype "toString"/u);
    expect(decodeError(build({ a: { ...a, dtype: 'BF16', shape: [4] } }, eight)).message).toMatch(/tensor "a": unsupported dtype "BF16"/u);
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
    expect(decodeError(build({ a: { ...a, shape: [3] } }, eight)).message).toMatch(
      /tensor "a": shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/u,
    );
    expect(decodeError(build({ a: { ...a, shape: [2, 0] } }, eight)).message).toMatch(/needs 0 bytes/u);
    expect(decodeError(build({ a: { ...a, dtype: 'F16' } }, eight)).message).toMatch(
      /tensor "a": shape \[2\] of F16 needs 4 bytes, but data_offsets \[0, 8\] hold 8/u,
    );
  });

  it('offsets past the end of the data (a truncated file)', () => {
    expect(decodeError(build({ a }, [0, 0, 0, 0])).message).toMatch(
      /tensor "a": data_offsets \[0, 8\] reach past the end of the data \(4 bytes\): truncated\?/u,
    );
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
    const header = {
      b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] },
      e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      a,
      __metadata__: { m: 'n' },
    };
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
    writeFileSync(
      ours,
      encodeSafetensors(
        new Map([
          ['w', f32([2, 3], [0.5, -1, 2, 3.25, 1e-8, -7])],
          ['ids', i32([3], [1, -2, 2 ** 31 - 1])],
        ]),
        { format: 'pt' },
      ),
    );
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

  it("rounds to F16 as numpy's astype(float16) does, and widens numpy's halves as it does", () => {
    // Random floats over the whole half range, subnormals and ties included.
    const rng = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const next = rng(7);
    const values = Float32Array.from({ length: 20000 }, (_, i) => (next() - 0.5) * 2 ** (Math.floor(next() * 42) - 26) * (i % 3 === 0 ? 1 : 1.5));
    const f32File = join(dir, 'values.safetensors');
    const f16File = join(dir, 'halves.safetensors');
    const theirs = join(dir, 'numpy-halves.safetensors');
    writeFileSync(f32File, encodeSafetensors(new Map([['v', { dtype: 'F32', shape: [values.length], data: values }]])));
    writeFileSync(f16File, encodeSafetensors(new Map([['v', { dtype: 'F32', shape: [values.length], data: values }]]), undefined, { floats: 'F16' }));
    const script = String.raw`
import json, struct, sys
import numpy as np
def read(path):
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    info = json.loads(raw[8:8 + n])['v']
    return info['dtype'], raw[8 + n:]
dtype32, data32 = read(sys.argv[1])
dtype16, data16 = read(sys.argv[2])
ours = np.frombuffer(data16, dtype='<u2')
want = np.frombuffer(data32, dtype='<f4').astype('<f2').view('<u2')
h = np.arange(0, 65536, dtype='<u2')
h = h[~np.isnan(h.view('<f2'))]
head = json.dumps({'h': {'dtype': 'F16', 'shape': [len(h)], 'data_offsets': [0, 2 * len(h)]}}).encode()
open(sys.argv[3], 'wb').write(struct.pack('<Q', len(head)) + head + h.tobytes())
print(json.dumps({'dtype': dtype16, 'differ': int((ours != want).sum()), 'widened': h.view('<f2').astype('<f4').tobytes().hex()}))
`;
    const result = spawnSync('python3', ['-c', script, f32File, f16File, theirs], { encoding: 'utf8', maxBuffer: 2 ** 24 });
    expect(result.stderr).toBe('');
    const { dtype, differ, widened } = JSON.parse(result.stdout) as { dtype: string; differ: number; widened: string };
    expect(dtype).toBe('F16');
    expect(differ).toBe(0);
    const decoded = decodeSafetensors(readFileSync(theirs), theirs).tensors.get('h')!.data;
    expect(Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength).toString('hex')).toBe(widened);
  });
});
