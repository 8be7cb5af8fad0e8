/**
 * The safetensors format (https://github.com/huggingface/safetensors), for the
 * dtypes the model stores: an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON describing each tensor, then the tensors' raw little-endian
 * bytes, back to back in the order of their offsets.
 *
 * In memory there are two dtypes, F32 and I32. A file may also store floats
 * as F16 (IEEE 754 half): the reader widens them to F32, which is exact, so
 * the code that uses the tensors never sees a half; the writer narrows F32 to
 * F16 when asked (`floats: 'F16'`), rounding to nearest even.
 *
 * Plain typed arrays in and out: this module knows nothing of TensorFlow.js.
 */
import { Float16Array, getFloat16 } from '@petamoriken/float16';

/** The dtypes of tensors in memory. */
export type SafetensorsDtype = 'F32' | 'I32';

/** How float tensors are stored in a file: F16 halves its size and rounds each value to 11 significant bits. */
export type FloatStorage = 'F32' | 'F16';

export interface EncodeOptions {
  /** The dtype F32 tensors are written as (default F32); F16 refuses finite values beyond the half range (±65504). */
  floats?: FloatStorage;
}

/** A tensor by value: `data` holds the elements in row-major order. */
export interface NamedTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** A safetensors file that is damaged, not safetensors, or uses a dtype this project does not read. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'SafetensorsError';
  }
}

/** The typed array that holds each in-memory dtype. */
const ARRAYS: Record<SafetensorsDtype, Float32ArrayConstructor | Int32ArrayConstructor> = { F32: Float32Array, I32: Int32Array };

/** The dtypes a file may hold: bytes per element, and the in-memory dtype they are read as. */
const STORED: Record<SafetensorsDtype | FloatStorage, { bytes: number; reads: SafetensorsDtype }> = {
  F32: { bytes: 4, reads: 'F32' },
  F16: { bytes: 2, reads: 'F32' },
  I32: { bytes: 4, reads: 'I32' },
};

/** Dtypes other safetensors writers use: named so a file holding one fails with "unsupported", not "unknown". */
const FOREIGN_DTYPES = new Set(['BOOL', 'U8', 'I8', 'F8_E4M3', 'F8_E5M2', 'I16', 'U16', 'BF16', 'U32', 'F64', 'I64', 'U64']);

/** The largest finite half; a value that rounds past it would be stored as infinity. */
const F16_MAX = 65504;

const METADATA_KEY = '__metadata__';
const HEADER_ALIGNMENT = 8;

/** Typed arrays use the host's byte order; on a little-endian host (every one Node runs on in practice) bytes copy as they are. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Writes tensors as a safetensors file. Names are sorted (by UTF-16 code
 * unit) in the header and in the data, and the header is padded with spaces
 * to a multiple of 8 bytes, so the same tensors always give the same bytes
 * and every tensor starts 8-byte aligned in the file.
 *
 * With `floats: 'F16'` every F32 tensor is stored as F16, each value rounded
 * to the nearest half (ties to even); NaN and ±Inf are kept as they are.
 *
 * Throws a RangeError for a tensor whose data does not match its dtype or
 * shape, or that holds a finite value too large for F16.
 */
export function encodeSafetensors(tensors: ReadonlyMap<string, NamedTensor>, metadata?: Record<string, string>, options: EncodeOptions = {}): Uint8Array {
  const floats = options.floats ?? 'F32';
  if (!Object.hasOwn(STORED, floats) || STORED[floats].reads !== 'F32') throw new RangeError(`floats must be F32 or F16, got ${JSON.stringify(floats)}`);
  const storedAs = (tensor: NamedTensor): keyof typeof STORED => (tensor.dtype === 'F32' ? floats : tensor.dtype);
  const names = [...tensors.keys()].sort(compareNames);
  // The header is assembled by hand rather than with JSON.stringify of one
  // object: JavaScript objects put integer-like keys ("0", "10") first, which
  // would break the sorted order.
  const entries: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new RangeError(`safetensors metadata "${key}" must be a string, got ${typeof value}`);
    }
    // First, as the reference implementation writes it.
    entries.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const name of names) {
    const tensor = tensors.get(name)!;
    if (name === METADATA_KEY) throw new RangeError(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const length = checkTensor(name, tensor) * STORED[storedAs(tensor)].bytes;
    const info = { dtype: storedAs(tensor), shape: tensor.shape, data_offsets: [offset, offset + length] };
    entries.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += length;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const headerLength = Math.ceil(json.length / HEADER_ALIGNMENT) * HEADER_ALIGNMENT;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const name of names) {
    const tensor = tensors.get(name)!;
    if (storedAs(tensor) === 'F16') writeHalves(name, tensor.data as Float32Array, out, position);
    else writeLittleEndian(tensor.data, out, position);
    position += tensor.data.length * STORED[storedAs(tensor)].bytes;
  }
  return out;
}

/**
 * Reads a safetensors file of F32, F16 and I32 tensors; F16 tensors come back
 * as F32 (every half is exactly a float32). Everything is checked —
 * the header length, the JSON, every dtype, shape and offset, and that the
 * tensors tile the data exactly — and any fault throws a SafetensorsError
 * naming `file`. The data is copied into fresh typed arrays, so `bytes` may
 * start at any offset and may be reused afterwards.
 */
export function decodeSafetensors(bytes: Uint8Array, file: string): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const fail = (reason: string): never => {
    throw new SafetensorsError(file, reason);
  };
  if (bytes.length < 8) fail(`too short for safetensors: ${bytes.length} bytes, but the header length alone takes 8`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(`header length ${headerLength} reaches past the end of the file (${bytes.length} bytes): truncated, or not safetensors`);
  }
  const dataStart = 8 + Number(headerLength);
  const dataLength = bytes.length - dataStart;

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, dataStart)));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message}): damaged, or not safetensors`);
  }
  if (!isRecord(header)) fail('header is not a JSON object');
  const record = header as Record<string, unknown>;

  let metadata: Record<string, string> = {};
  const layout: { name: string; begin: number; end: number; dtype: keyof typeof STORED; shape: number[] }[] = [];
  for (const [name, info] of Object.entries(record)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(info, fail);
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isRecord(info)) fail(`${where}: expected an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(`${where}: dtype is missing or not a string`);
    if (!Object.hasOwn(STORED, dtype as string)) {
      fail(`${where}: ${FOREIGN_DTYPES.has(dtype as string) ? 'unsupported' : 'unknown'} dtype ${JSON.stringify(dtype)} (only F32, F16 and I32 are read)`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`${where}: data_offsets must be [begin, end] in bytes, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) fail(`${where}: data_offsets [${begin}, ${end}] reach past the end of the data (${dataLength} bytes): truncated?`);
    const elements = (shape as number[]).reduce((n, d) => n * d, 1);
    const expected = elements * STORED[dtype as keyof typeof STORED].bytes;
    if (expected !== end - begin) {
      fail(`${where}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    layout.push({ name, begin, end, dtype: dtype as keyof typeof STORED, shape: shape as number[] });
  }

  // The tensors must tile the data: sorted by offset, each begins where the
  // previous one ended (empty tensors sort first among equals).
  layout.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const { name, begin, end } of layout) {
    const where = `tensor ${JSON.stringify(name)}`;
    if (begin < cursor) fail(`${where}: data_offsets [${begin}, ${end}] overlap tensor ${JSON.stringify(previous)}, which ends at ${cursor}`);
    if (begin > cursor) fail(`${where}: data_offsets [${begin}, ${end}] leave a gap of ${begin - cursor} bytes after ${cursor}`);
    cursor = end;
    previous = name;
  }
  if (cursor !== dataLength) fail(`${dataLength - cursor} trailing bytes after the last tensor (the data is ${dataLength} bytes, the tensors cover ${cursor})`);

  const tensors = new Map<string, NamedTensor>();
  for (const { name, begin, end, dtype, shape } of layout) {
    const { bytes: width, reads } = STORED[dtype];
    const data = new ARRAYS[reads]((end - begin) / width);
    if (dtype === 'F16') readHalves(bytes.subarray(dataStart + begin, dataStart + end), data as Float32Array);
    else readLittleEndian(bytes.subarray(dataStart + begin, dataStart + end), data);
    tensors.set(name, { dtype: reads, shape: [...shape], data });
  }
  return { tensors, metadata };
}

/** Checks a tensor before it is written and returns its element count. */
function checkTensor(name: string, tensor: NamedTensor): number {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!Object.hasOwn(ARRAYS, tensor.dtype))
    throw new RangeError(`${where}: unknown dtype ${JSON.stringify(tensor.dtype)} (F32 or I32; pass floats: 'F16' to store halves)`);
  const array = ARRAYS[tensor.dtype];
  if (!(tensor.data instanceof array)) throw new RangeError(`${where}: dtype ${tensor.dtype} needs a ${array.name}, got ${tensor.data.constructor.name}`);
  if (!tensor.shape.every(isCount)) throw new RangeError(`${where}: shape [${tensor.shape.join(', ')}] must hold non-negative integers`);
  const elements = tensor.shape.reduce((n, d) => n * d, 1);
  if (elements !== tensor.data.length)
    throw new RangeError(`${where}: shape [${tensor.shape.join(', ')}] has ${elements} elements, but the data has ${tensor.data.length}`);
  return elements;
}

function parseMetadata(value: unknown, fail: (reason: string) => never): Record<string, string> {
  if (!isRecord(value)) fail(`${METADATA_KEY} must be an object of strings`);
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [key, v] of entries) {
    if (typeof v !== 'string') fail(`${METADATA_KEY}.${key} must be a string, got ${JSON.stringify(v)}`);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays data.
  return Object.fromEntries(entries) as Record<string, string>;
}

function writeLittleEndian(data: Float32Array | Int32Array, out: Uint8Array, position: number): void {
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + position, data.byteLength);
  const float = data instanceof Float32Array;
  for (let i = 0; i < data.length; i++) {
    if (float) view.setFloat32(i * 4, data[i]!, true);
    else view.setInt32(i * 4, data[i]!, true);
  }
}

/** Rounds each float to the nearest half (ties to even); a finite value that would become ±Inf is an error naming the tensor. */
function writeHalves(name: string, data: Float32Array, out: Uint8Array, position: number): void {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    // Half of the last step above 65504 still rounds down to it; from 65520 on, the nearest half is infinity.
    if (Math.abs(x) >= F16_MAX + 16 && Number.isFinite(x)) {
      throw new RangeError(`tensor ${JSON.stringify(name)}: ${x} at index ${i} is beyond the range of F16 (±${F16_MAX})`);
    }
  }
  // The library's constructor converts a whole typed array in one loop; its per-element setters cost 50 times more.
  const halves = new Uint16Array(new Float16Array(data).buffer);
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(halves.buffer), position);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + position, halves.byteLength);
  for (let i = 0; i < halves.length; i++) view.setUint16(i * 2, halves[i]!, true);
}

/** Every half's float32 value, by bit pattern: widening is then one lookup per element. */
let halfTable: Float32Array | undefined;

function readHalves(bytes: Uint8Array, out: Float32Array): void {
  if (halfTable === undefined) {
    const patterns = new DataView(Uint16Array.from({ length: 65536 }, (_, bits) => bits).buffer);
    halfTable = Float32Array.from({ length: 65536 }, (_, bits) => getFloat16(patterns, bits * 2, LITTLE_ENDIAN_HOST));
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = halfTable[view.getUint16(i * 2, true)]!;
}

function readLittleEndian(bytes: Uint8Array, out: Float32Array | Int32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(bytes);
    return;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const float = out instanceof Float32Array;
  for (let i = 0; i < out.length; i++) out[i] = float ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isRecord(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
