import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { UserError } from "../src/util/errors.js";
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  f32ToF16Bits,
  f32ToBf16Bits,
  f16BitsToF32,
  bf16BitsToF32,
  type NamedTensorData,
  type TensorData,
  type WritableDtype,
} from "../src/io/safetensors.js";
import { writeFileAtomic, writeJsonAtomic } from "../src/io/atomic.js";
import { FIXTURES, needFixtures, rng } from "./helpers.js";

const FIXTURES_SKIP = needFixtures("2stage_word_english/model.safetensors");
const FIXTURE_NAMES = ["2stage_word_english", "2stage_sliding_code", "3stage_word_2words_mixed"];

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-safetensors-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function freshDir(): string {
  const d = path.join(tmpRoot, `case${tmpCount++}`);
  fs.mkdirSync(d);
  return d;
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}
function bitsF32(b: number): number {
  return new Float32Array(new Uint32Array([b]).buffer)[0];
}

function expectUserError(fn: () => unknown, pattern?: RegExp, source?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(
      err instanceof UserError,
      `expected UserError, got ${err instanceof Error ? err.stack : String(err)}`,
    );
    assert.ok(!err.message.includes("\n"), `message must be one line: ${JSON.stringify(err.message)}`);
    if (source !== undefined)
      assert.ok(err.message.includes(source), `message should name ${source}: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

// A file with an arbitrary header and data section, for layouts the writer never produces.
function buildFile(header: unknown, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  if (pad) {
    const padded = new Uint8Array((json.length + 7) & ~7).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("half-precision conversions", () => {
  test("f16 known bit patterns", () => {
    const cases: [number, number][] = [
      [1.0, 0x3c00],
      [-2.5, 0xc100],
      [65504, 0x7bff],
      [65519, 0x7bff], // just below the midpoint to inf
      [65520, 0x7c00], // midpoint between max and 2^16 ties to even = inf
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it ties to even (zero)
      [bitsF32(f32Bits(2 ** -25) + 1), 0x0001], // just above the tie rounds up
      [3 * 2 ** -25, 0x0002], // 1.5 ulp ties to even (2)
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // ties from the largest subnormal carry into the smallest normal
      [1 + 2 ** -11, 0x3c00], // tie, even is down
      [1 + 3 * 2 ** -11, 0x3c02], // tie, even is up
      [1 + 2 ** -11 + 2 ** -23, 0x3c01], // above the tie
      [0, 0x0000],
      [-0, 0x8000],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1e-30, 0x0000],
      [-1e10, 0xfc00],
      [3.4028234663852886e38, 0x7c00],
    ];
    for (const [x, h] of cases) {
      assert.equal(
        f32ToF16Bits(x),
        h,
        `f16(${x}) = 0x${f32ToF16Bits(x).toString(16)}, want 0x${h.toString(16)}`,
      );
    }
    const nan = f32ToF16Bits(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
    // A NaN whose payload is only in the bits that get dropped must stay NaN, not become inf.
    const lowNan = f32ToF16Bits(bitsF32(0x7f800001));
    assert.equal(lowNan & 0x7c00, 0x7c00);
    assert.notEqual(lowNan & 0x3ff, 0);

    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
    assert.equal(f16BitsToF32(0x8001), -(2 ** -24));
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x3c00), 1);
    assert.equal(f16BitsToF32(0xc100), -2.5);
    assert.equal(f16BitsToF32(0x7c00), Infinity);
    assert.equal(f16BitsToF32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
    assert.ok(Number.isNaN(f16BitsToF32(0x7c01)));
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  });

  test("f16: every half round-trips through f32", () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) {
        assert.ok((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0);
        assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(x))));
      } else {
        assert.equal(f32ToF16Bits(x), h, `half 0x${h.toString(16)}`);
      }
    }
  });

  test("f16 rounding matches a nearest-even reference on random floats", () => {
    const r = rng(1);
    // Positive halves are monotonic in their bits; 0x7c00 (inf) acts as the next value above 65504 (= 2^16),
    // which is how IEEE overflow rounding works.
    const value = (h: number) => (h === 0x7c00 ? 65536 : f16BitsToF32(h));
    for (let k = 0; k < 20000; k++) {
      // Exponents from 2^-40 to 2^17 keep the reference's subtractions exact.
      const exp = Math.floor(r() * 58) + 87;
      const bits = ((r() < 0.5 ? 0x80000000 : 0) | (exp << 23) | Math.floor(r() * 0x800000)) >>> 0;
      const x = bitsF32(bits);
      const ax = Math.abs(x);
      let lo = 0;
      let hi = 0x7c00;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (value(mid) <= ax) lo = mid;
        else hi = mid;
      }
      let want: number;
      if (ax >= 65536) want = 0x7c00;
      else {
        const dlo = ax - value(lo);
        const dhi = value(hi) - ax;
        want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1) === 0 ? lo : hi;
      }
      if (x < 0) want |= 0x8000;
      assert.equal(f32ToF16Bits(x), want, `x=${x} bits=0x${bits.toString(16)}`);
    }
  });

  test("bf16 known bit patterns", () => {
    const cases: [number, number][] = [
      [1.0, 0x3f80],
      [-2.5, 0xc020],
      [65504, 0x4780], // rounds up to 65536
      [bitsF32(0x3f808000), 0x3f80], // tie, even is down
      [bitsF32(0x3f818000), 0x3f82], // tie, even is up
      [bitsF32(0x3f808001), 0x3f81],
      [2 ** -133, 0x0001], // smallest bf16 subnormal
      [2 ** -149, 0x0000], // smallest f32 subnormal: below the bf16 tie
      [3.4028234663852886e38, 0x7f80], // f32 max rounds to inf
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [-0, 0x8000],
    ];
    for (const [x, h] of cases) {
      assert.equal(
        f32ToBf16Bits(x),
        h,
        `bf16(${x}) = 0x${f32ToBf16Bits(x).toString(16)}, want 0x${h.toString(16)}`,
      );
    }
    for (const b of [0x7fc00000, 0x7f800001, 0xffffffff]) {
      const h = f32ToBf16Bits(bitsF32(b));
      assert.ok(Number.isNaN(bf16BitsToF32(h)), `NaN 0x${b.toString(16)} -> 0x${h.toString(16)}`);
    }
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.equal(bf16BitsToF32(0xc020), -2.5);
    assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
    for (let h = 0; h < 65536; h++) {
      const x = bf16BitsToF32(h);
      if (!Number.isNaN(x)) assert.equal(f32ToBf16Bits(x), h);
    }
  });
});

function randomTensor(r: () => number, dtype: WritableDtype, shape: number[]): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === "I32") {
    const data = new Int32Array(n);
    for (let i = 0; i < n; i++) data[i] = Math.floor(r() * 4294967296) - 2147483648;
    data[0] = n > 0 ? -2147483648 : 0;
    return { dtype, shape, data };
  }
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() - 0.5) * 10 ** Math.floor(r() * 8 - 4);
  return { dtype, shape, data };
}

function expectedAfterWrite(t: TensorData): Float32Array | Int32Array {
  if (t.dtype === "F16") return Float32Array.from(t.data, (x) => f16BitsToF32(f32ToF16Bits(x)));
  if (t.dtype === "BF16") return Float32Array.from(t.data, (x) => bf16BitsToF32(f32ToBf16Bits(x)));
  return t.data;
}

describe("round trips", () => {
  const shapes = [[], [0], [1], [7], [3, 0, 2], [2, 3], [2, 3, 5], [1, 1, 1, 1], [4, 0]];
  for (const dtype of ["F32", "I32", "F16", "BF16"] as const) {
    test(`${dtype}: random shapes incl. scalars and empty tensors`, () => {
      const r = rng(dtype.charCodeAt(0) * 31 + dtype.length);
      const tensors: NamedTensorData[] = shapes.map((shape, i) => ({
        name: `t${i}.${shape.join("x")}`,
        ...randomTensor(r, dtype, shape),
      }));
      const bytes = serializeSafetensors(tensors, { format: "test", note: "unicode é ✓" });
      const f = parseSafetensors(bytes, "mem");
      assert.deepEqual(f.metadata, { format: "test", note: "unicode é ✓" });
      assert.equal(f.headerSize % 8, 0);
      assert.equal(f.tensors.size, tensors.length);
      for (const t of tensors) {
        const e = f.entry(t.name);
        assert.equal(e.dtype, dtype);
        assert.deepEqual([...e.shape], t.shape);
        // Data is aligned to the element size, as the reference writer guarantees.
        assert.equal((e.data.byteOffset - 8) % (dtype === "F16" || dtype === "BF16" ? 2 : 4), 0);
        const got = dtype === "I32" ? f.getInt32(t.name) : f.getFloat32(t.name);
        assert.deepEqual(got, expectedAfterWrite(t), t.name);
      }
    });
  }

  test("mixed dtypes via a Map, written to disk and read back", () => {
    const r = rng(7);
    const m = new Map<string, TensorData>([
      ["w", randomTensor(r, "F32", [3, 4])],
      ["h", randomTensor(r, "F16", [5])],
      ["b", randomTensor(r, "BF16", [2, 2])],
      ["i", randomTensor(r, "I32", [6])],
      ["s", { dtype: "F32", shape: [], data: new Float32Array([Math.PI]) }],
    ]);
    const dir = freshDir();
    const p = path.join(dir, "m.safetensors");
    writeSafetensors(p, m);
    assert.deepEqual(fs.readdirSync(dir), ["m.safetensors"]);
    const f = readSafetensors(p);
    assert.equal(f.metadata, undefined);
    for (const [name, t] of m) {
      const got = t.dtype === "I32" ? f.getInt32(name) : f.getFloat32(name);
      assert.deepEqual(got, expectedAfterWrite(t));
    }
    assert.equal(f.getFloat32("s")[0], Math.fround(Math.PI));
    assert.deepEqual(fs.readFileSync(p), Buffer.from(serializeSafetensors(m)));
  });

  test("NaN payloads, infinities and signed zeros survive F32 exactly", () => {
    const bits = new Uint32Array([0x7fc00001, 0xffa00000, 0x7f800000, 0xff800000, 0x80000000, 0x00000001]);
    const data = new Float32Array(bits.buffer);
    const f = parseSafetensors(serializeSafetensors([{ name: "x", dtype: "F32", shape: [6], data }]));
    assert.deepEqual(new Uint32Array(f.getFloat32("x").buffer), bits);
  });

  test("returned arrays are copies the caller owns", () => {
    const bytes = serializeSafetensors([
      { name: "x", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
    ]);
    const f = parseSafetensors(bytes);
    f.getFloat32("x")[0] = 99;
    assert.deepEqual(f.getFloat32("x"), new Float32Array([1, 2]));
    // A Node Buffer (as readFileSync returns) must not leak its shared pool or alias the file bytes.
    const buf = Buffer.from(bytes);
    const g = parseSafetensors(buf);
    const x = g.getFloat32("x");
    assert.equal(x.buffer.byteLength, 8);
    x[1] = 99;
    assert.deepEqual(g.getFloat32("x"), new Float32Array([1, 2]));
    const i = parseSafetensors(
      Buffer.from(serializeSafetensors([{ name: "i", dtype: "I32", shape: [1], data: new Int32Array([5]) }])),
    ).getInt32("i");
    assert.deepEqual(i, new Int32Array([5]));
    assert.equal(i.buffer.byteLength, 4);
  });
});

describe("serialization matches the reference implementation", () => {
  // Byte-for-byte expectations from the Rust safetensors crate's own tests.
  test("single F32 tensor", () => {
    const out = serializeSafetensors([
      { name: "attn.0", dtype: "F32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    ]);
    assert.deepEqual(
      [...out],
      [
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
        34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44,
        34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125,
        0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
      ],
    );
  });

  test("forced alignment padding with spaces", () => {
    const out = serializeSafetensors([
      { name: "attn0", dtype: "F32", shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    ]);
    assert.deepEqual(
      [...out],
      [
        72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34,
        58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 49, 44, 50, 44, 51, 93,
        44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125,
        125, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64,
        0, 0, 160, 64,
      ],
    );
  });

  test("empty file, with and without metadata", () => {
    assert.deepEqual(
      [...serializeSafetensors([])],
      [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32],
    );
    assert.deepEqual(
      [...serializeSafetensors(new Map(), { framework: "pt" })],
      [
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123,
        34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32,
        32,
      ],
    );
    const f = parseSafetensors(serializeSafetensors([]));
    assert.equal(f.tensors.size, 0);
  });

  test("tensors sorted by descending dtype alignment, then name (as UTF-8 bytes)", () => {
    const f32 = (name: string): NamedTensorData => ({
      name,
      dtype: "F32",
      shape: [1],
      data: new Float32Array(1),
    });
    const tensors: NamedTensorData[] = [
      { name: "b", dtype: "F16", shape: [1], data: new Float32Array(1) },
      f32("a"),
      { name: "c", dtype: "I32", shape: [1], data: new Int32Array(1) },
      { name: "d", dtype: "BF16", shape: [1], data: new Float32Array(1) },
      f32("9"),
      f32("10"),
      f32("\u{1F600}"), // UTF-16 sorts this before U+FF5E; UTF-8 after it
      f32("\uFF5E"),
    ];
    const bytes = serializeSafetensors(tensors);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const order = ["10", "9", "a", "\uFF5E", "\u{1F600}", "c", "d", "b"];
    // Key order in the JSON text itself, which integer-like names must not disturb.
    const positions = order.map((k) => headerText.indexOf(JSON.stringify(k) + ":"));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
    assert.deepEqual(parseSafetensors(bytes).names(), order);
    // Same input in another order gives the same bytes.
    assert.deepEqual(serializeSafetensors([...tensors].reverse()), bytes);
  });

  test("writer rejects programming errors with ordinary errors", () => {
    const ok = { dtype: "F32" as const, shape: [2], data: new Float32Array(2) };
    assert.throws(() => serializeSafetensors([{ name: "a", ...ok, shape: [3] }]), /holds 3 elements/);
    assert.throws(
      () => serializeSafetensors([{ name: "a", dtype: "I32", shape: [2], data: new Float32Array(2) }]),
      /Int32Array/,
    );
    assert.throws(
      () => serializeSafetensors([{ name: "a", dtype: "F16", shape: [2], data: new Int32Array(2) }]),
      /Float32Array/,
    );
    assert.throws(() => serializeSafetensors([{ name: "a", ...ok, shape: [-1, -2] }]), /non-negative/);
    assert.throws(() => serializeSafetensors([{ name: "__metadata__", ...ok }]), /reserved/);
    assert.throws(
      () =>
        serializeSafetensors([
          { name: "a", ...ok },
          { name: "a", ...ok },
        ]),
      /duplicate/,
    );
    assert.throws(
      () => serializeSafetensors([], { a: 1 } as unknown as Record<string, string>),
      /metadata value .* not a string/,
    );
  });
});

describe("reading unaligned and non-writable dtypes", () => {
  test("every readable dtype at odd offsets in an odd-offset buffer", () => {
    const parts: { name: string; dtype: string; shape: number[]; bytes: number[] }[] = [
      { name: "u8", dtype: "U8", shape: [3], bytes: [0, 200, 255] },
      {
        name: "f32",
        dtype: "F32",
        shape: [2],
        bytes: [...new Uint8Array(new Float32Array([1.5, -3]).buffer)],
      },
      { name: "f16", dtype: "F16", shape: [3], bytes: [0x00, 0x3c, 0x01, 0x00, 0x00, 0xfc] },
      { name: "bool", dtype: "BOOL", shape: [3], bytes: [1, 0, 1] },
      { name: "bf16", dtype: "BF16", shape: [2], bytes: [0x80, 0x3f, 0x20, 0xc0] },
      {
        name: "i64",
        dtype: "I64",
        shape: [3],
        bytes: [...new Uint8Array(new BigInt64Array([-5n, 2147483647n, -2147483648n]).buffer)],
      },
      {
        name: "i32",
        dtype: "I32",
        shape: [2],
        bytes: [...new Uint8Array(new Int32Array([-7, 123456]).buffer)],
      },
      { name: "i8", dtype: "I8", shape: [2], bytes: [0xff, 0x7f] },
      { name: "i16", dtype: "I16", shape: [2], bytes: [0xff, 0xff, 0x00, 0x80] },
      { name: "u16", dtype: "U16", shape: [1], bytes: [0xff, 0xff] },
      { name: "u32", dtype: "U32", shape: [1], bytes: [0xff, 0xff, 0xff, 0x7f] },
      { name: "u64", dtype: "U64", shape: [1], bytes: [9, 0, 0, 0, 0, 0, 0, 0] },
      {
        name: "f64",
        dtype: "F64",
        shape: [2],
        bytes: [...new Uint8Array(new Float64Array([0.1, 1e300]).buffer)],
      },
      { name: "big64", dtype: "I64", shape: [1], bytes: [0, 0, 0, 0, 1, 0, 0, 0] },
      { name: "bigu32", dtype: "U32", shape: [1], bytes: [0, 0, 0, 0x80] },
    ];
    const header: Record<string, unknown> = {};
    const data: number[] = [];
    for (const p of parts) {
      header[p.name] = {
        dtype: p.dtype,
        shape: p.shape,
        data_offsets: [data.length, data.length + p.bytes.length],
      };
      data.push(...p.bytes);
    }
    // Unpadded header of odd length, then the whole file placed at byte 1 of a larger buffer.
    const file = buildFile(header, new Uint8Array(data), false);
    const holder = new Uint8Array(file.length + 1);
    holder.set(file, 1);
    const f = parseSafetensors(holder.subarray(1), "odd.safetensors");
    assert.ok(f.entry("f32").data.byteOffset % 4 !== 0, "test should exercise an unaligned F32");
    assert.deepEqual(f.getInt32("u8"), new Int32Array([0, 200, 255]));
    assert.deepEqual(f.getFloat32("f32"), new Float32Array([1.5, -3]));
    assert.deepEqual(f.getFloat32("f16"), new Float32Array([1, 2 ** -24, -Infinity]));
    assert.deepEqual(f.getInt32("bool"), new Int32Array([1, 0, 1]));
    assert.deepEqual(f.getFloat32("bf16"), new Float32Array([1, -2.5]));
    assert.deepEqual(f.getInt32("i64"), new Int32Array([-5, 2147483647, -2147483648]));
    assert.deepEqual(f.getInt32("i32"), new Int32Array([-7, 123456]));
    assert.deepEqual(f.getInt32("i8"), new Int32Array([-1, 127]));
    assert.deepEqual(f.getInt32("i16"), new Int32Array([-1, -32768]));
    assert.deepEqual(f.getInt32("u16"), new Int32Array([65535]));
    assert.deepEqual(f.getInt32("u32"), new Int32Array([2147483647]));
    assert.deepEqual(f.getInt32("u64"), new Int32Array([9]));
    assert.deepEqual(f.getFloat32("f64"), new Float32Array([0.1, Infinity]));
    expectUserError(
      () => f.getInt32("big64"),
      /4294967296 at flat index 0, outside the int32 range/,
      "odd.safetensors",
    );
    expectUserError(() => f.getInt32("bigu32"), /2147483648/);
    expectUserError(() => f.getFloat32("i32"), /not a floating-point tensor/);
    expectUserError(() => f.getInt32("f32"), /not an integer tensor/);
    expectUserError(() => f.entry("nope"), /no tensor named "nope"/, "odd.safetensors");
    expectUserError(() => f.getFloat32("nope"), /no tensor named/);
  });

  test("zero-size tensors may share an offset", () => {
    const header = {
      a: { dtype: "F32", shape: [0], data_offsets: [0, 0] },
      b: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      c: { dtype: "I64", shape: [2, 0], data_offsets: [4, 4] },
      d: { dtype: "F16", shape: [0, 3], data_offsets: [4, 4] },
    };
    const f = parseSafetensors(buildFile(header, new Uint8Array(4)));
    assert.equal(f.getFloat32("a").length, 0);
    assert.equal(f.getInt32("c").length, 0);
    assert.equal(f.getFloat32("d").length, 0);
    assert.deepEqual(f.getFloat32("b"), new Float32Array([0]));
  });
});

describe("corrupt files are UserErrors", () => {
  const good = serializeSafetensors(
    [
      { name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      { name: "i", dtype: "I32", shape: [3], data: new Int32Array([1, 2, 3]) },
    ],
    { k: "v" },
  );
  const goodHeader = () =>
    JSON.parse(
      new TextDecoder().decode(good.subarray(8, 8 + Number(new DataView(good.buffer).getBigUint64(0, true)))),
    ) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const goodData = good.subarray(8 + Number(new DataView(good.buffer).getBigUint64(0, true)));

  const withLength = (n: bigint, rest: Uint8Array) => {
    const out = new Uint8Array(8 + rest.length);
    new DataView(out.buffer).setBigUint64(0, n, true);
    out.set(rest, 8);
    return out;
  };

  const cases: [string, Uint8Array, RegExp][] = [
    ["empty file", new Uint8Array(0), /truncated: 0 bytes/],
    ["shorter than the length field", new Uint8Array([1, 2, 3]), /truncated/],
    [
      "header length beyond file",
      withLength(100n, new Uint8Array(10)),
      /header length 100 runs past the end/,
    ],
    ["huge header length", withLength(2n ** 64n - 1n, new Uint8Array(10)), /runs past the end/],
    ["invalid UTF-8", withLength(4n, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/],
    ["header not an object", buildFile("[1,2]"), /does not start with/],
    ["header all padding", buildFile("        ", undefined, false), /does not start with/],
    ["invalid JSON", buildFile('{"a": {'), /not valid JSON/],
    ["invalid JSON with newlines", buildFile('{\n"a":\n\n}'), /not valid JSON/],
    ["metadata not an object", buildFile({ __metadata__: [1] }), /__metadata__/],
    ["metadata value not a string", buildFile({ __metadata__: { a: 1 } }), /"a" is not a string/],
    ["entry not an object", buildFile({ a: 3 }), /tensor "a": entry is not an object/],
    ["missing dtype", buildFile({ a: { shape: [], data_offsets: [0, 0] } }), /missing or non-string "dtype"/],
    [
      "unknown dtype",
      buildFile({ a: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /unknown dtype "F128"/,
    ],
    [
      "shape not an array",
      buildFile({ a: { dtype: "F32", shape: 4, data_offsets: [0, 16] } }, new Uint8Array(16)),
      /"shape"/,
    ],
    [
      "negative dim",
      buildFile({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }),
      /"shape" is not an array of non-negative/,
    ],
    [
      "fractional dim",
      buildFile({ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 6] } }, new Uint8Array(6)),
      /"shape"/,
    ],
    [
      "absurd shape",
      buildFile({ a: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 0] } }),
      /too large/,
    ],
    [
      "offsets wrong arity",
      buildFile({ a: { dtype: "U8", shape: [1], data_offsets: [0] } }),
      /"data_offsets"/,
    ],
    [
      "offsets not numbers",
      buildFile({ a: { dtype: "U8", shape: [1], data_offsets: ["0", "1"] } }, new Uint8Array(1)),
      /"data_offsets"/,
    ],
    [
      "offsets reversed",
      buildFile({ a: { dtype: "U8", shape: [0], data_offsets: [1, 0] } }, new Uint8Array(1)),
      /end before they begin/,
    ],
    [
      "dtype/shape size mismatch",
      buildFile({ a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)),
      /dtype F32 with shape \[2, 2\] needs 16 bytes but data_offsets \[0, 12\] span 12/,
    ],
    [
      "offsets out of range",
      buildFile({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      /ends at byte 16 but the file holds only 8 bytes/,
    ],
    [
      "overlapping tensors",
      buildFile(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /tensor "b" overlaps tensor "a"/,
    ],
    [
      "gap between tensors",
      buildFile(
        {
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
        },
        new Uint8Array(12),
      ),
      /data bytes 4\.\.8 are not covered/,
    ],
    [
      "data does not start at 0",
      buildFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /data bytes 0\.\.4 are not covered/,
    ],
    [
      "trailing bytes",
      buildFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(7)),
      /3 trailing data bytes/,
    ],
    ["empty header with trailing bytes", buildFile({}, new Uint8Array(1)), /1 trailing data bytes/],
    ["truncated valid file", good.subarray(0, good.length - 1), /truncated/],
  ];
  for (const [what, bytes, pattern] of cases) {
    test(what, () =>
      expectUserError(() => parseSafetensors(bytes, "bad.safetensors"), pattern, "bad.safetensors"),
    );
  }

  test("the shared helpers produce a valid baseline", () => {
    assert.ok(parseSafetensors(buildFile(goodHeader(), goodData)).has("w"));
  });

  test("every truncation of a valid file", () => {
    for (let len = 0; len < good.length; len++) {
      expectUserError(
        () => parseSafetensors(good.subarray(0, len), "t.safetensors"),
        undefined,
        "t.safetensors",
      );
    }
    assert.equal(parseSafetensors(good).tensors.size, 2);
  });

  test("random byte corruption never escapes as another exception", () => {
    const r = rng(42);
    let rejected = 0;
    for (let k = 0; k < 3000; k++) {
      const bytes = good.slice();
      const flips = 1 + Math.floor(r() * 3);
      for (let j = 0; j < flips; j++) {
        // Mostly the length field and header, where corruption changes the structure.
        const at = Math.floor(r() * (r() < 0.9 ? Math.min(bytes.length, 8 + 120) : bytes.length));
        bytes[at] = Math.floor(r() * 256);
      }
      try {
        const f = parseSafetensors(bytes, "fuzz");
        for (const name of f.names()) {
          const e = f.entry(name);
          try {
            if (["F32", "F16", "BF16", "F64"].includes(e.dtype)) f.getFloat32(name);
            else f.getInt32(name);
          } catch (err) {
            assert.ok(err instanceof UserError, String(err));
          }
        }
      } catch (err) {
        assert.ok(
          err instanceof UserError,
          `non-UserError: ${err instanceof Error ? err.stack : String(err)}`,
        );
        assert.ok(!err.message.includes("\n"));
        rejected++;
      }
    }
    assert.ok(rejected > 1000);
  });

  test("unreadable file", () => {
    const p = path.join(tmpRoot, "does-not-exist.safetensors");
    expectUserError(() => readSafetensors(p), /cannot read/, p);
    expectUserError(() => readSafetensors(tmpRoot), /cannot read/, tmpRoot);
  });
});

describe("shared fixtures", { skip: FIXTURES_SKIP }, () => {
  test("2stage_word_english model.safetensors", () => {
    const p = path.join(FIXTURES, "2stage_word_english", "model.safetensors");
    const f = readSafetensors(p);
    assert.equal(f.metadata?.format, "aunet-oracle");
    const e = f.entry("tok_embeddings.weight");
    assert.equal(e.dtype, "F32");
    assert.deepEqual(e.shape, [258, 64]);
    const w = f.getFloat32("tok_embeddings.weight");
    assert.equal(w.length, 258 * 64);
    assert.ok(w.every(Number.isFinite));
    assert.ok(w.some((x) => x !== 0));
    const config = JSON.parse(
      fs.readFileSync(path.join(FIXTURES, "2stage_word_english", "config.json"), "utf8"),
    );
    const keys: unknown = config?.oracle?.state_dict_keys;
    if (Array.isArray(keys)) assert.deepEqual(new Set(f.names()), new Set(keys));
  });

  test("expected.safetensors: int tensors, loss bits, logits hash", () => {
    const dir = path.join(FIXTURES, "2stage_word_english");
    const f = readSafetensors(path.join(dir, "expected.safetensors"));
    const expected = JSON.parse(fs.readFileSync(path.join(dir, "expected.json"), "utf8"));
    const idx = f.getInt32("pool.0.idx");
    assert.ok(idx instanceof Int32Array);
    assert.deepEqual(f.entry("pool.0.idx").shape, [2, 64]);
    assert.equal(idx.length, 128);
    assert.equal(idx[0], 0);
    // Gather indices are sorted within the real boundaries and stay inside the sequence.
    assert.ok(idx.every((v) => v >= 0 && v < 256));
    const mask = f.getInt32("pool.0.mask");
    assert.equal(mask.length, 2 * 256);
    const loss = f.getFloat32("loss");
    assert.equal(Buffer.from(loss.buffer).toString("hex"), expected.loss_f32_hex);
    const logits = f.getFloat32("logits");
    assert.deepEqual(f.entry("logits").shape, expected.logits_shape);
    assert.equal(createHash("sha256").update(logits).digest("hex"), expected.logits_sha256_f32le);
  });

  for (const name of FIXTURE_NAMES) {
    test(`${name}: every tensor reads, and F32/I32 re-serialise losslessly`, () => {
      for (const file of ["model.safetensors", "expected.safetensors"]) {
        const f = readSafetensors(path.join(FIXTURES, name, file));
        assert.ok(f.tensors.size > 0);
        const out: NamedTensorData[] = [];
        for (const e of f.tensors.values()) {
          if (e.dtype === "F32")
            out.push({ name: e.name, dtype: "F32", shape: e.shape, data: f.getFloat32(e.name) });
          else out.push({ name: e.name, dtype: "I32", shape: e.shape, data: f.getInt32(e.name) });
        }
        const g = parseSafetensors(serializeSafetensors(out, f.metadata));
        assert.deepEqual(g.metadata, f.metadata);
        for (const e of f.tensors.values()) {
          const a = e.dtype === "F32" ? f.getFloat32(e.name) : f.getInt32(e.name);
          const b = e.dtype === "F32" ? g.getFloat32(e.name) : g.getInt32(e.name);
          assert.deepEqual(b, a, `${file} ${e.name}`);
        }
      }
    });
  }
});

describe("writeFileAtomic", () => {
  test("creates and replaces files, leaving no temp files", () => {
    const dir = freshDir();
    const p = path.join(dir, "out.bin");
    writeFileAtomic(p, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...fs.readFileSync(p)], [1, 2, 3]);
    writeFileAtomic(p, "héllo");
    assert.equal(fs.readFileSync(p, "utf8"), "héllo");
    writeFileAtomic(p, [new Uint8Array([9]), new Uint8Array(0), new Uint8Array([8, 7])]);
    assert.deepEqual([...fs.readFileSync(p)], [9, 8, 7]);
    assert.deepEqual(fs.readdirSync(dir), ["out.bin"]);
  });

  test("keeps the mode of the file it replaces", { skip: process.platform === "win32" }, () => {
    const dir = freshDir();
    const p = path.join(dir, "secret.json");
    fs.writeFileSync(p, "{}");
    fs.chmodSync(p, 0o600);
    writeJsonAtomic(p, { a: 1 });
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(p, "utf8"), '{\n  "a": 1\n}\n');
  });

  test("a directory as the target fails cleanly and stays intact", () => {
    const dir = freshDir();
    const target = path.join(dir, "model.safetensors");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "keep.txt"), "old");
    expectUserError(() => writeFileAtomic(target, "new"), /cannot write/, target);
    expectUserError(
      () => writeSafetensors(target, [{ name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) }]),
      /cannot write/,
    );
    assert.deepEqual(fs.readdirSync(dir), ["model.safetensors"]);
    assert.equal(fs.readFileSync(path.join(target, "keep.txt"), "utf8"), "old");
  });

  test("a write failing mid-way leaves the old file and no temp file", (t) => {
    const dir = freshDir();
    const p = path.join(dir, "ckpt.safetensors");
    fs.writeFileSync(p, "old contents");
    const realWrite = fs.writeSync;
    let calls = 0;
    t.mock.method(fs, "writeSync", (fd: number, buf: Uint8Array, offset: number, length: number) => {
      if (++calls > 1)
        throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      // Part of the data really reaches the temp file before the failure.
      return realWrite(fd, buf, offset, Math.max(1, Math.floor(length / 2)));
    });
    expectUserError(() => writeFileAtomic(p, new Uint8Array(1000)), /ENOSPC/, p);
    t.mock.restoreAll();
    assert.ok(calls >= 2);
    assert.equal(fs.readFileSync(p, "utf8"), "old contents");
    assert.deepEqual(fs.readdirSync(dir), ["ckpt.safetensors"]);
  });

  test("an fsync failure also cleans up", (t) => {
    const dir = freshDir();
    const p = path.join(dir, "a.json");
    writeJsonAtomic(p, [1]);
    t.mock.method(fs, "fsyncSync", () => {
      throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
    });
    expectUserError(() => writeJsonAtomic(p, [2]), /EIO/);
    t.mock.restoreAll();
    assert.deepEqual(JSON.parse(fs.readFileSync(p, "utf8")), [1]);
    assert.deepEqual(fs.readdirSync(dir), ["a.json"]);
  });

  test("a missing directory is a UserError", () => {
    const p = path.join(tmpRoot, "no", "such", "dir", "x.json");
    expectUserError(() => writeJsonAtomic(p, {}), /cannot write .*ENOENT/, p);
  });

  test("values JSON cannot represent are a TypeError", () => {
    assert.throws(() => writeJsonAtomic(path.join(tmpRoot, "u.json"), undefined), TypeError);
    assert.equal(fs.existsSync(path.join(tmpRoot, "u.json")), false);
  });
});
