// PyTorch checkpoints (`torch.save` since torch 1.6) without Python: a zip archive holding `<name>/data.pkl`, a
// pickle whose tensors point by persistent id at raw storages `<name>/data/<key>`, plus `<name>/version` and, from
// torch 2.0, `<name>/byteorder`.
//
// The pickle is run by the restricted machine in pickle.ts with an allow-list of exactly what a state dict needs:
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter, collections.OrderedDict, the typed storage classes, and
// _codecs.encode in the one form pickle uses for bytes.
// Any other global (os.system, builtins.eval, a custom class) stops the load with a UserError naming it, before
// anything else happens: a checkpoint must never be able to run code, and here nothing is ever executed anyway.
//
// Tensors stay lazy (storage key, offset, shape, strides) until asked for, so reading the model half of a
// checkpoint never touches its optimizer state.

import { UserError } from "../util/errors.js";
import { writeFileAtomic } from "./atomic.js";
import { PickleWriter, isTuple, unpickle, type PyKey, type UnpickleHooks } from "./pickle.js";
import { bf16BitsToF32, f16BitsToF32 } from "./safetensors.js";
import { bufferSource, fileSource, ZipReader, zipChunks, type ByteSource, type ZipRecord } from "./zip.js";

export type TorchDtype = "F32" | "F64" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const STORAGE_CLASSES: Readonly<Record<string, TorchDtype>> = {
  FloatStorage: "F32",
  DoubleStorage: "F64",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

export const TORCH_DTYPE_SIZES: Readonly<Record<TorchDtype, number>> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A `collections.OrderedDict`: read back as this class, and written as one when given. */
export class OrderedDict<V = unknown> extends Map<PyKey, V> {}

export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    /** Elements, not bytes. */
    readonly numel: number,
    readonly location: string,
    private readonly load: (s: TorchStorage) => Uint8Array,
  ) {}

  /** The storage's raw bytes in the checkpoint's byte order. */
  bytes(): Uint8Array {
    return this.load(this);
  }
}

export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    /** In elements of the storage. */
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
    private readonly littleEndian: boolean,
  ) {}

  get dtype(): TorchDtype {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /**
   * The values in row-major order as a new Float32Array: F16 and BF16 convert exactly, F64 rounds to nearest.
   * Strided views (transposes, slices, shared storages) are gathered element by element.
   */
  toFloat32(): Float32Array {
    const dtype = this.dtype;
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16" && dtype !== "F64")
      throw new UserError(
        `a tensor of storage ${JSON.stringify(this.storage.key)} holds ${dtype}, not floating-point values`,
      );
    const n = this.numel;
    const out = new Float32Array(n);
    if (n === 0) return out;
    const raw = this.storage.bytes();
    const size = TORCH_DTYPE_SIZES[dtype];
    const le = this.littleEndian;
    const contiguous = isContiguous(this.shape, this.stride);
    if (contiguous && dtype === "F32" && le === LITTLE_ENDIAN_HOST) {
      const start = raw.byteOffset + this.offset * 4;
      return new Float32Array(raw.buffer.slice(start, start + n * 4));
    }
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const get: (i: number) => number =
      dtype === "F32"
        ? (i) => dv.getFloat32(i * size, le)
        : dtype === "F64"
          ? (i) => dv.getFloat64(i * size, le)
          : dtype === "F16"
            ? (i) => f16BitsToF32(dv.getUint16(i * size, le))
            : (i) => bf16BitsToF32(dv.getUint16(i * size, le));
    if (contiguous) {
      for (let i = 0; i < n; i++) out[i] = get(this.offset + i);
      return out;
    }
    // Odometer over the multi-index; `src` follows the strides.
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let src = this.offset;
    for (let i = 0; i < n; i++) {
      out[i] = get(src);
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        src += this.stride[d];
        if (idx[d] < this.shape[d]) break;
        src -= this.stride[d] * this.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    // A dimension of size 1 is never stepped through, so its stride is irrelevant (torch leaves odd values).
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

// Inert markers standing for the allowed globals; only the hooks below know what to do with them.
class AllowedGlobal {
  constructor(readonly qualname: string) {}
}
class StorageClass extends AllowedGlobal {
  constructor(
    qualname: string,
    readonly dtype: TorchDtype,
  ) {
    super(qualname);
  }
}
const REBUILD_TENSOR_V2 = new AllowedGlobal("torch._utils._rebuild_tensor_v2");
const REBUILD_PARAMETER = new AllowedGlobal("torch._utils._rebuild_parameter");
const ORDERED_DICT = new AllowedGlobal("collections.OrderedDict");
// Protocol 2 has no bytes opcode for Python 3: pickle spells b"..." as _codecs.encode("...", "latin1").
const CODECS_ENCODE = new AllowedGlobal("_codecs.encode");
const CALLABLE = new Map<string, AllowedGlobal>(
  [REBUILD_TENSOR_V2, REBUILD_PARAMETER, ORDERED_DICT, CODECS_ENCODE].map((g) => [g.qualname, g]),
);

// torch 1.x wrote the legacy format as a pickled magic number (LONG1 0x1950a86a20f9469cfc6c) first.
const LEGACY_MAGIC = Uint8Array.from([
  0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
]);

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  return b.length >= prefix.length && prefix.every((v, i) => b[i] === v);
}

function safeCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The largest `data.pkl` read (the tensors' data lives beside it, not in it). */
export const MAX_PICKLE_BYTES = 256 << 20;

export class TorchCheckpoint {
  /** The unpickled object: Maps, arrays, primitives and TorchTensors. */
  readonly root: unknown;
  readonly byteorder: "little" | "big";
  /** The archive's top-level directory (torch names it after the file, or "archive"). */
  readonly prefix: string;
  private cached: { key: string; bytes: Uint8Array } | undefined;
  private closed = false;

  constructor(
    private readonly zip: ZipReader,
    readonly source: string,
  ) {
    const pkls = zip.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (pkls.length !== 1)
      throw new UserError(
        `${source}: not a PyTorch checkpoint: expected one <name>/data.pkl in the zip, found ${pkls.length}`,
      );
    this.prefix = pkls[0].name.slice(0, -"/data.pkl".length);
    const order = zip.get(`${this.prefix}/byteorder`);
    const bo = order ? new TextDecoder().decode(zip.read(order)).trim() : "little";
    if (bo !== "little" && bo !== "big")
      throw new UserError(`${source}: unknown byteorder record ${JSON.stringify(bo)}`);
    this.byteorder = bo;
    // The pickle only describes the tensors (a few MB for the largest models); a bigger one is not a checkpoint.
    if (pkls[0].size > MAX_PICKLE_BYTES)
      throw new UserError(
        `${source}: ${pkls[0].name} is ${pkls[0].size} bytes, more than the ${MAX_PICKLE_BYTES} a checkpoint's pickle may be`,
      );
    this.root = unpickle(zip.read(pkls[0]), this.hooks(), `${source}: ${pkls[0].name}`);
  }

  close(): void {
    this.closed = true;
    this.cached = undefined;
    this.zip.close();
  }

  private fail(why: string): never {
    throw new UserError(`${this.source}: ${why}`);
  }

  // Views of one storage usually come one after another, so keeping the last storage read avoids re-reading
  // it per view without holding the whole checkpoint in memory.
  private loadStorage(s: TorchStorage): Uint8Array {
    if (this.closed) throw new Error(`${this.source}: tensor read after close()`);
    if (this.cached?.key === s.key) return this.cached.bytes;
    const name = `${this.prefix}/data/${s.key}`;
    const entry = this.zip.get(name);
    if (!entry) this.fail(`storage ${JSON.stringify(s.key)} is missing (no ${name} in the zip)`);
    const need = s.numel * TORCH_DTYPE_SIZES[s.dtype];
    if (entry.size < need)
      this.fail(
        `storage ${JSON.stringify(s.key)} holds ${entry.size} bytes, its ${s.numel} ${s.dtype} need ${need}`,
      );
    const bytes = this.zip.read(entry);
    this.cached = { key: s.key, bytes };
    return bytes;
  }

  private hooks(): UnpickleHooks {
    const storages = new Map<string, TorchStorage>();
    const little = this.byteorder === "little";
    const fail = (why: string): never => this.fail(why);
    return {
      findGlobal: (module, name) => {
        const qualname = `${module}.${name}`;
        const g = CALLABLE.get(qualname);
        if (g) return g;
        if (module === "torch" && Object.hasOwn(STORAGE_CLASSES, name))
          return new StorageClass(qualname, STORAGE_CLASSES[name]);
        return fail(
          `the checkpoint references the global '${qualname}', which is not allowed: only tensors, storages, ` +
            "OrderedDict and plain values are read (a checkpoint must never run code)",
        );
      },
      persistentLoad: (pid) => {
        if (!isTuple(pid) || pid[0] !== "storage" || pid.length !== 5)
          return fail(
            `unsupported persistent id ${describe(pid)} (expected ('storage', type, key, location, numel))`,
          );
        const [, cls, key, location, numel] = pid;
        if (!(cls instanceof StorageClass))
          return fail(`persistent id names no storage class: ${describe(cls)}`);
        if (typeof key !== "string" || typeof location !== "string" || !safeCount(numel))
          return fail(`malformed storage reference ${describe(pid)}`);
        const known = storages.get(key);
        if (known) {
          if (known.dtype !== cls.dtype || known.numel !== numel)
            fail(`storage ${JSON.stringify(key)} is referenced as both ${known.dtype} and ${cls.dtype}`);
          return known;
        }
        const s = new TorchStorage(key, cls.dtype, numel, location, (st) => this.loadStorage(st));
        storages.set(key, s);
        return s;
      },
      call: (fn, args) => {
        if (fn === ORDERED_DICT) {
          if (args.length !== 0)
            fail("OrderedDict built from arguments (expected an empty call then SETITEMS)");
          return new OrderedDict();
        }
        if (fn === REBUILD_TENSOR_V2) return rebuildTensor(args, little, fail);
        if (fn === CODECS_ENCODE) {
          const [text, encoding] = args;
          if (
            args.length !== 2 ||
            typeof text !== "string" ||
            (encoding !== "latin1" && encoding !== "latin-1")
          )
            return fail("_codecs.encode is only accepted as pickle uses it: (str, 'latin1')");
          const out = new Uint8Array(text.length);
          for (let i = 0; i < text.length; i++) {
            const c = text.charCodeAt(i);
            if (c > 0xff) fail("_codecs.encode: a character outside latin-1");
            out[i] = c;
          }
          return out;
        }
        if (fn === REBUILD_PARAMETER) {
          // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
          const [data, requiresGrad] = args;
          if (!(data instanceof TorchTensor) || typeof requiresGrad !== "boolean")
            return fail("malformed _rebuild_parameter call");
          return data;
        }
        if (fn instanceof AllowedGlobal) return fail(`'${fn.qualname}' cannot be called`);
        return fail("the pickle calls something that is not an allowed function");
      },
      build: (obj, state) => {
        // An OrderedDict's instance attributes (a state dict's `_metadata` with module versions) carry no
        // tensors; dropping them loses nothing this project reads.
        if (obj instanceof Map && (state instanceof Map || state === null)) return obj;
        if (obj instanceof TorchTensor && (state === null || (state instanceof Map && state.size === 0)))
          return obj;
        return fail("the pickle sets state (BUILD) on something other than a dict or tensor");
      },
    };
  }
}

// A value from the pickle for an error message. Pickled values can be nested a thousand deep, contain themselves
// (a list appended to itself through the memo) or be huge: only the first levels and items are shown.
function describe(v: unknown, depth = 0): string {
  if (v instanceof AllowedGlobal) return v.qualname;
  if (Array.isArray(v)) {
    if (depth >= 3) return "(...)";
    const items = v.slice(0, 6).map((x) => describe(x, depth + 1));
    if (v.length > 6) items.push(`... ${v.length - 6} more`);
    return `(${items.join(", ")})`;
  }
  if (typeof v === "string") return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}...` : v);
  // Decimal printing is quadratic in the length; a hostile LONG4 may hold a million bytes.
  if (typeof v === "bigint" && v.toString(16).length > 32)
    return `<an integer of ${v.toString(16).length * 4} bits>`;
  if (v instanceof Map) return `{dict of ${v.size}}`;
  if (v instanceof Uint8Array) return `b<${v.length} bytes>`;
  return typeof v === "object" && v !== null ? Object.prototype.toString.call(v) : String(v);
}

function rebuildTensor(args: readonly unknown[], little: boolean, fail: (why: string) => never): TorchTensor {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length !== 6 && args.length !== 7) fail(`_rebuild_tensor_v2 with ${args.length} arguments`);
  const [storage, offset, shape, stride, requiresGrad, hooks] = args;
  if (!(storage instanceof TorchStorage)) return fail("_rebuild_tensor_v2 without a storage");
  if (!safeCount(offset)) return fail("_rebuild_tensor_v2: bad storage offset");
  if (!isTuple(shape) || !shape.every(safeCount)) return fail("_rebuild_tensor_v2: bad size");
  if (!isTuple(stride) || !stride.every(safeCount) || stride.length !== shape.length)
    return fail("_rebuild_tensor_v2: bad stride");
  if (typeof requiresGrad !== "boolean") return fail("_rebuild_tensor_v2: bad requires_grad");
  // Backward hooks would be functions, i.e. more globals: only an empty OrderedDict is acceptable.
  if (!(hooks instanceof Map) || hooks.size !== 0)
    return fail("_rebuild_tensor_v2: tensor has backward hooks");
  const dims = shape as readonly number[];
  const steps = stride as readonly number[];
  if (dims.every((d) => d > 0)) {
    const last = dims.reduce((acc, d, i) => acc + (d - 1) * steps[i], offset);
    if (last >= storage.numel)
      fail(
        `a [${dims.join(", ")}] view at offset ${offset} runs past storage ${JSON.stringify(storage.key)} ` +
          `(${storage.numel} elements)`,
      );
  }
  return new TorchTensor(storage, offset, dims, steps, requiresGrad, little);
}

function openSource(src: ByteSource, label: string): TorchCheckpoint {
  const head = src.read(0, Math.min(src.size, 512));
  if (startsWith(head, LEGACY_MAGIC))
    throw new UserError(
      `${label} is a legacy (pre-1.6, non-zip) PyTorch file, which is not supported: re-save it with ` +
        "a current torch (torch.save(torch.load(path), path))",
    );
  if (head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar")
    throw new UserError(`${label} is a tar-format PyTorch file (torch < 0.4), which is not supported`);
  if (!(head[0] === 0x50 && head[1] === 0x4b))
    throw new UserError(`${label} is not a PyTorch checkpoint (no zip signature at the start)`);
  const zip = new ZipReader(src, label);
  return new TorchCheckpoint(zip, label);
}

/** Opens a checkpoint file; tensors are read on demand until close(). */
export function openTorchCheckpoint(path: string): TorchCheckpoint {
  const src = fileSource(path);
  try {
    return openSource(src, path);
  } catch (e) {
    src.close();
    throw e;
  }
}

/** The same, for a checkpoint already in memory. */
export function parseTorchCheckpoint(bytes: Uint8Array, label: string = "<buffer>"): TorchCheckpoint {
  return openSource(bufferSource(bytes), label);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

export interface TensorToSave {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** What can be saved: maps become dicts (OrderedDict instances OrderedDicts), arrays lists, tensors F32. */
export type SaveValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | TensorToSave
  | readonly SaveValue[]
  | ReadonlyMap<PyKey, SaveValue>;

function isTensorToSave(v: unknown): v is TensorToSave {
  return typeof v === "object" && v !== null && "data" in v && v.data instanceof Float32Array && "shape" in v;
}

export interface TorchSaveOptions {
  /** The archive's top-level directory; torch 2.x writes "archive". */
  archiveName?: string;
  zip64?: "auto" | "always";
}

// Python's pickler batches SETITEMS/APPENDS by this much, which bounds the reader's stack.
const BATCH = 1000;

function leBytes(a: Float32Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return view;
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(4 * i, a[i], true);
  return out;
}

/**
 * The bytes of `torch.save(root)` as torch >= 1.6 writes them (protocol-2 pickle, one FloatStorage per tensor,
 * 64-byte aligned records), in chunks so tensor data is not copied.
 */
export function serializeTorchSave(root: SaveValue, opts: TorchSaveOptions = {}): Uint8Array[] {
  const prefix = opts.archiveName ?? "archive";
  const w = new PickleWriter();
  const storages: Uint8Array[] = [];
  const seen = new Set<object>();

  const emit = (v: SaveValue): void => {
    if (v === null) w.none();
    else if (typeof v === "boolean") w.bool(v);
    else if (typeof v === "bigint") w.int(v);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v)) w.int(v);
      else w.float(v);
    } else if (typeof v === "string") w.str(v);
    else if (isTensorToSave(v)) emitTensor(v);
    else if (Array.isArray(v)) {
      guard(v);
      w.op("EMPTY_LIST");
      for (let i = 0; i < v.length; i += BATCH) {
        w.mark();
        for (const x of v.slice(i, i + BATCH)) emit(x);
        w.op("APPENDS");
      }
      seen.delete(v);
    } else if (v instanceof Map) {
      guard(v);
      if (v instanceof OrderedDict) w.global("collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE");
      else w.op("EMPTY_DICT");
      const items = [...(v as ReadonlyMap<PyKey, SaveValue>).entries()];
      for (let i = 0; i < items.length; i += BATCH) {
        w.mark();
        for (const [k, x] of items.slice(i, i + BATCH)) {
          emit(k);
          emit(x);
        }
        w.op("SETITEMS");
      }
      seen.delete(v);
    } else throw new TypeError(`torch save: cannot pickle ${Object.prototype.toString.call(v)}`);
  };
  // Without memoisation a cycle would recurse forever; state dicts never have one.
  const guard = (o: object): void => {
    if (seen.has(o)) throw new TypeError("torch save: the value contains a cycle");
    seen.add(o);
  };
  const emitTensor = (t: TensorToSave): void => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every(safeCount) || numel !== t.data.length)
      throw new Error(`torch save: shape [${t.shape.join(", ")}] does not hold ${t.data.length} elements`);
    const stride: number[] = new Array<number>(t.shape.length);
    for (let d = t.shape.length - 1, s = 1; d >= 0; d--) {
      stride[d] = s;
      s *= t.shape[d];
    }
    const key = String(storages.length);
    storages.push(leBytes(t.data));
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.mark();
    w.mark().str("storage").global("torch", "FloatStorage").str(key).str("cpu").int(numel).op("TUPLE");
    w.op("BINPERSID");
    w.int(0).tuple(t.shape).tuple(stride).bool(false);
    w.global("collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE");
    w.op("TUPLE").op("REDUCE");
  };

  emit(root);
  const records: ZipRecord[] = [
    { name: `${prefix}/data.pkl`, chunks: w.finish() },
    { name: `${prefix}/byteorder`, chunks: [new TextEncoder().encode("little")] },
    ...storages.map((b, i) => ({ name: `${prefix}/data/${i}`, chunks: [b] })),
    { name: `${prefix}/version`, chunks: [new TextEncoder().encode("3\n")] },
  ];
  return zipChunks(records, { align: 64, zip64: opts.zip64 });
}

/** Writes `torch.save(root)` atomically. */
export function writeTorchSave(path: string, root: SaveValue, opts: TorchSaveOptions = {}): void {
  writeFileAtomic(path, serializeTorchSave(root, opts));
}
