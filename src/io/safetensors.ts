// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, space-padded][data section]
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data
// section) plus an optional "__metadata__" map of string to string.
//
// Files come from outside (downloads, other tools, half-written checkpoints), so the reader validates as strictly
// as the reference implementation and reports every defect as a one-line UserError naming the file: a corrupt
// checkpoint is the user's problem to fix, not a crash to debug.
import { UserError } from "../util/errors.js";
import { readRegularFile } from "../util/files.js";
import { writeFileAtomic } from "./atomic.js";

// In the reference implementation's enum order, which is also its sort order when writing (see `dtypeRank`).
// F4/F6 pack several values per byte and are left out: nothing here produces them.
const DTYPES = [
  "BOOL",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
] as const;

export type Dtype = (typeof DTYPES)[number];
export type WritableDtype = "F32" | "I32" | "F16" | "BF16";

export const DTYPE_SIZES: Readonly<Record<Dtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  C64: 8,
  F64: 8,
  I64: 8,
  U64: 8,
};

const DTYPE_RANK: ReadonlyMap<string, number> = new Map(DTYPES.map((d, i) => [d, i]));

function isDtype(s: string): s is Dtype {
  return DTYPE_RANK.has(s);
}

// Same cap as the reference reader: a larger header is certainly garbage, and refusing it early avoids decoding
// hundreds of megabytes of random bytes as JSON.
export const MAX_HEADER_SIZE = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface TensorEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** [begin, end) relative to the data section, as in the header. */
  readonly dataOffsets: readonly [number, number];
  /** The raw little-endian bytes: a view into the file's buffer, not a copy. */
  readonly data: Uint8Array;
}

export interface TensorData {
  dtype: WritableDtype;
  shape: readonly number[];
  data: Float32Array | Int32Array;
}

export interface NamedTensorData extends TensorData {
  name: string;
}

export type TensorsToWrite = readonly NamedTensorData[] | ReadonlyMap<string, TensorData>;

// ---------------------------------------------------------------------------------------------------------------
// Half-precision conversions. Node 20 has no Float16Array / Math.f16round, so these work on bit patterns.

let f16Table: Uint32Array | undefined;

// All 65536 halves map to exact float32 bit patterns; a table is both the simplest exact conversion and the
// fastest one for whole tensors. Working in bits keeps NaN payloads and signed zeros intact.
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0) {
      if (mant === 0) {
        t[h] = sign;
      } else {
        // Subnormal half: renormalise, since every half subnormal is a normal float32.
        let e = 1;
        while ((mant & 0x400) === 0) {
          mant <<= 1;
          e--;
        }
        t[h] = sign | ((e + 112) << 23) | ((mant & 0x3ff) << 13);
      }
    } else if (exp === 31) {
      t[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      t[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  f16Table = t;
  return t;
}

/** float32 bit pattern -> float16 bit pattern, round to nearest, ties to even; overflow gives ±inf. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Keep NaNs NaN (and quiet) even when the payload lives only in the low mantissa bits that get dropped.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): below 2^-25 everything rounds to zero, exactly 2^-25 ties to even (zero).
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h; // a carry out of the subnormal range lands exactly on the smallest normal encoding
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent may reach inf: correct
  return sign | h;
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest, ties to even. */
export function f32BitsToBf16Bits(x: number): number {
  x >>>= 0;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    // Rounding could carry a NaN's payload into inf; force the quiet bit instead.
    return (x >>> 16) | 0x40;
  }
  return ((x + 0x7fff + ((x >>> 16) & 1)) / 65536) >>> 0;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Rounds `x` to float32 first, then to float16. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]);
}

/** Rounds `x` to float32 first, then to bfloat16. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16Bits(scratchU32[0]);
}

export function f16BitsToF32(h: number): number {
  scratchU32[0] = f16ToF32Table()[h & 0xffff];
  return scratchF32[0];
}

export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

function oneLine(s: string, max = 200): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? flat.slice(0, max) + "..." : flat;
}

function fmtName(name: string): string {
  return oneLine(JSON.stringify(name), 120);
}

// Copies `bytes` into a fresh, aligned buffer in host byte order, ready to be viewed as elements of `size` bytes.
function nativeCopy(bytes: Uint8Array, size: number): ArrayBuffer {
  // Not bytes.slice(): on a Node Buffer (what readFileSync returns) slice() is a view, not a copy.
  const copy = new Uint8Array(bytes);
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return copy.buffer;
}

export class SafetensorsFile {
  /** Tensors in data-section order. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;

  constructor(
    /** The path (or label) used in error messages. */
    readonly source: string,
    readonly metadata: Record<string, string> | undefined,
    tensors: ReadonlyMap<string, TensorEntry>,
    readonly headerSize: number,
  ) {
    this.tensors = tensors;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The entry for `name`; a missing tensor is a UserError (wrong checkpoint for this model). */
  entry(name: string): TensorEntry {
    const e = this.tensors.get(name);
    if (!e) throw new UserError(`${this.source}: no tensor named ${fmtName(name)}`);
    return e;
  }

  private fail(e: TensorEntry, what: string): never {
    throw new UserError(`${this.source}: tensor ${fmtName(e.name)} (${e.dtype}) ${what}`);
  }

  /**
   * The tensor as a new Float32Array (the caller owns it). F16, BF16 convert exactly; F64 rounds to nearest.
   */
  getFloat32(name: string): Float32Array {
    const e = this.entry(name);
    const n = e.data.byteLength / DTYPE_SIZES[e.dtype];
    const bytes = e.data;
    switch (e.dtype) {
      case "F32":
        return new Float32Array(nativeCopy(bytes, 4), 0, n);
      case "F64": {
        const out = new Float32Array(n);
        out.set(new Float64Array(nativeCopy(bytes, 8), 0, n));
        return out;
      }
      case "F16": {
        const table = f16ToF32Table();
        const out = new Float32Array(n);
        const bits = new Uint32Array(out.buffer);
        const src = new Uint16Array(nativeCopy(bytes, 2), 0, n);
        for (let i = 0; i < n; i++) bits[i] = table[src[i]];
        return out;
      }
      case "BF16": {
        const out = new Float32Array(n);
        const bits = new Uint32Array(out.buffer);
        const src = new Uint16Array(nativeCopy(bytes, 2), 0, n);
        for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
        return out;
      }
      default:
        return this.fail(e, "is not a floating-point tensor (expected F32, F16, BF16 or F64)");
    }
  }

  /**
   * The tensor as a new Int32Array (the caller owns it). Integer and BOOL dtypes convert; a 64- or 32-bit unsigned
   * value outside the int32 range is a UserError rather than a silent wrap.
   */
  getInt32(name: string): Int32Array {
    const e = this.entry(name);
    const n = e.data.byteLength / DTYPE_SIZES[e.dtype];
    const bytes = e.data;
    // DataView reads any alignment in little-endian regardless of the host, so the narrow and wide integer paths
    // need no copy-and-swap.
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Int32Array(n);
    const outOfRange = (i: number, value: bigint | number): never =>
      this.fail(e, `holds ${value} at flat index ${i}, outside the int32 range`);
    switch (e.dtype) {
      case "I32":
        return new Int32Array(nativeCopy(bytes, 4), 0, n);
      case "I64":
        for (let i = 0; i < n; i++) {
          const lo = dv.getUint32(8 * i, true);
          const hi = dv.getInt32(8 * i + 4, true);
          if (!((hi === 0 && lo < 0x80000000) || (hi === -1 && lo >= 0x80000000))) {
            outOfRange(i, dv.getBigInt64(8 * i, true));
          }
          out[i] = lo | 0;
        }
        return out;
      case "U64":
        for (let i = 0; i < n; i++) {
          const lo = dv.getUint32(8 * i, true);
          const hi = dv.getUint32(8 * i + 4, true);
          if (hi !== 0 || lo >= 0x80000000) outOfRange(i, dv.getBigUint64(8 * i, true));
          out[i] = lo;
        }
        return out;
      case "U32":
        for (let i = 0; i < n; i++) {
          const v = dv.getUint32(4 * i, true);
          if (v >= 0x80000000) outOfRange(i, v);
          out[i] = v;
        }
        return out;
      case "I16":
        for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
        return out;
      case "U16":
        for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
        return out;
      case "I8":
        for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
        return out;
      case "U8":
        out.set(bytes);
        return out;
      case "BOOL":
        for (let i = 0; i < n; i++) out[i] = bytes[i] !== 0 ? 1 : 0;
        return out;
      default:
        return this.fail(
          e,
          "is not an integer tensor (expected I32, I64, I16, I8, U8, U16, U32, U64 or BOOL)",
        );
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses a whole safetensors file held in memory. Tensor data stays in `buf` (entries are views); `source` names
 * the file in error messages.
 */
export function parseSafetensors(buf: Uint8Array, source: string = "<buffer>"): SafetensorsFile {
  const bad = (why: string): never => {
    throw new UserError(`${source}: not a valid safetensors file: ${why}`);
  };
  if (buf.byteLength < 8) {
    bad(`truncated: ${buf.byteLength} bytes, too short to hold the 8-byte header length`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(buf.byteLength - 8)) {
    bad(`header length ${n64} runs past the end of the ${buf.byteLength}-byte file (truncated?)`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER_SIZE) bad(`header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit`);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf.subarray(8, 8 + n));
  } catch {
    return bad("header is not valid UTF-8");
  }
  // The reference reader requires this too; it also rejects a header that is all padding.
  if (!text.startsWith("{")) bad(`header does not start with "{"`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return bad(`header is not valid JSON (${oneLine(err instanceof Error ? err.message : String(err))})`);
  }
  if (!isPlainObject(header)) return bad("header is not a JSON object");

  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  let metadata: Record<string, string> | undefined;
  const infos: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];

  for (const name of Object.keys(header)) {
    const value = header[name];
    if (name === "__metadata__") {
      if (!isPlainObject(value)) bad(`"__metadata__" is not an object of strings`);
      const md: Record<string, string> = {};
      for (const k of Object.keys(value as Record<string, unknown>)) {
        const v = (value as Record<string, unknown>)[k];
        if (typeof v !== "string") bad(`"__metadata__" entry ${fmtName(k)} is not a string`);
        // defineProperty, because assigning a "__proto__" key would replace the prototype instead.
        Object.defineProperty(md, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      metadata = md;
      continue;
    }
    const t = `tensor ${fmtName(name)}`;
    if (!isPlainObject(value)) return bad(`${t}: entry is not an object`);
    const dtype = value.dtype;
    if (typeof dtype !== "string") return bad(`${t}: missing or non-string "dtype"`);
    if (!isDtype(dtype)) return bad(`${t}: unknown dtype ${oneLine(JSON.stringify(dtype), 40)}`);
    const shape = value.shape;
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      return bad(`${t}: "shape" is not an array of non-negative integers`);
    }
    const offsets = value.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      return bad(`${t}: "data_offsets" is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as number[];
    if (end < begin) bad(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (numel > Number.MAX_SAFE_INTEGER) bad(`${t}: shape [${shape.join(", ")}] is too large`);
    }
    const nbytes = numel * DTYPE_SIZES[dtype];
    if (nbytes !== end - begin) {
      bad(
        `${t}: dtype ${dtype} with shape [${shape.join(", ")}] needs ${nbytes} bytes ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataLen) {
      bad(`${t}: data ends at byte ${end} but the file holds only ${dataLen} bytes of data (truncated?)`);
    }
    infos.push({ name, dtype, shape: shape as number[], begin, end });
  }

  // Like the reference reader: the tensors, in offset order, must tile the data section exactly. Overlaps would
  // alias two tensors, and gaps or trailing bytes mean the header doesn't describe the file.
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: string | undefined;
  const tensors = new Map<string, TensorEntry>();
  for (const info of infos) {
    if (info.begin < pos) {
      bad(
        `tensor ${fmtName(info.name)} overlaps tensor ${fmtName(prev!)} (data_offsets begin at ${info.begin})`,
      );
    }
    if (info.begin > pos) bad(`data bytes ${pos}..${info.begin} are not covered by any tensor`);
    pos = info.end;
    prev = info.name;
    tensors.set(info.name, {
      name: info.name,
      dtype: info.dtype,
      shape: info.shape,
      dataOffsets: [info.begin, info.end],
      data: buf.subarray(dataStart + info.begin, dataStart + info.end),
    });
  }
  if (pos !== dataLen) bad(`${dataLen - pos} trailing data bytes are not covered by any tensor`);
  return new SafetensorsFile(source, metadata, tensors, n);
}

/**
 * Reads and parses a file; an unreadable file is a UserError too, and so is anything but a regular file (a
 * symlink to /dev/zero would read without end, a FIFO would block).
 */
export function readSafetensors(path: string): SafetensorsFile {
  return parseSafetensors(readRegularFile(path, Infinity, "a safetensors file"), path);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

const utf8 = new TextEncoder();

// Little-endian bytes of a typed array; on little-endian hosts a view, so large F32 tensors are never copied.
function leBytes(a: Float32Array | Int32Array | Uint16Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return view;
  return new Uint8Array(nativeCopy(view, a.BYTES_PER_ELEMENT));
}

function encodeTensor(t: TensorData): Uint8Array {
  if (t.dtype === "F32" || t.dtype === "I32") return leBytes(t.data);
  const src = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
  const out = new Uint16Array(src.length);
  if (t.dtype === "F16") {
    for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(src[i]);
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(src[i]);
  }
  return leBytes(out);
}

// Rust's String ordering (the reference sorts names with it) compares UTF-8 bytes, which differs from JS string
// comparison (UTF-16 code units) for characters above U+FFFF.
function compareUtf8(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function checkTensor(name: string, t: TensorData): void {
  const where = `safetensors: tensor ${fmtName(name)}`;
  if (name === "__metadata__") throw new Error(`${where}: the name is reserved for the metadata`);
  if (t.dtype !== "F32" && t.dtype !== "I32" && t.dtype !== "F16" && t.dtype !== "BF16") {
    throw new Error(`${where}: cannot write dtype ${String(t.dtype)} (only F32, I32, F16, BF16)`);
  }
  const wantInt = t.dtype === "I32";
  if (wantInt ? !(t.data instanceof Int32Array) : !(t.data instanceof Float32Array)) {
    throw new TypeError(`${where}: dtype ${t.dtype} needs ${wantInt ? "an Int32Array" : "a Float32Array"}`);
  }
  if (!Array.isArray(t.shape) || !t.shape.every(isCount)) {
    throw new Error(`${where}: shape must be an array of non-negative integers`);
  }
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (numel !== t.data.length) {
    throw new Error(
      `${where}: shape [${t.shape.join(", ")}] holds ${numel} elements but data has ${t.data.length}`,
    );
  }
}

// Header and data chunks in file order, so writeSafetensors can stream them without concatenating.
function prepare(tensors: TensorsToWrite, metadata?: Readonly<Record<string, string>>): Uint8Array[] {
  const list: [string, TensorData][] =
    tensors instanceof Map
      ? [...(tensors as ReadonlyMap<string, TensorData>).entries()]
      : (tensors as readonly NamedTensorData[]).map((t) => [t.name, t]);
  const seen = new Set<string>();
  for (const [name, t] of list) {
    if (seen.has(name)) throw new Error(`safetensors: duplicate tensor name ${fmtName(name)}`);
    seen.add(name);
    checkTensor(name, t);
  }
  // As the reference writer does: descending dtype alignment, then name, so the same tensors always produce
  // the same bytes and every tensor lands aligned to its element size.
  const items = list.map(([name, t]) => ({
    name,
    key: utf8.encode(name),
    t,
    rank: DTYPE_RANK.get(t.dtype)!,
  }));
  items.sort((a, b) => b.rank - a.rank || compareUtf8(a.key, b.key));

  // Built by hand rather than with JSON.stringify(object): JS objects put integer-like keys ("0", "12") first,
  // which would break the order above.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort((a, b) => compareUtf8(utf8.encode(a), utf8.encode(b)));
    const md: string[] = [];
    for (const k of keys) {
      const v = metadata[k];
      if (typeof v !== "string")
        throw new TypeError(`safetensors: metadata value for ${fmtName(k)} is not a string`);
      md.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${md.join(",")}}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const { name, t } of items) {
    const bytes = encodeTensor(t);
    const end = offset + bytes.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    chunks.push(bytes);
    offset = end;
  }
  const json = utf8.encode(`{${parts.join(",")}}`);
  // Padding with spaces to a multiple of 8 keeps the data section 8-byte aligned for memory-mapping readers.
  const padded = (json.byteLength + 7) & ~7;
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.byteLength);
  return [head, ...chunks];
}

/** The complete file as bytes. */
export function serializeSafetensors(
  tensors: TensorsToWrite,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const chunks = prepare(tensors, metadata);
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}

/** Writes the file atomically: readers see the old file or the complete new one. */
export function writeSafetensors(
  path: string,
  tensors: TensorsToWrite,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeFileAtomic(path, prepare(tensors, metadata));
}
