// The WGSL kernels of the WebGPU backend, one function per kernel. Each returns a `Kernel` (source, uniform
// fields, storage bindings); the backend compiles it once per distinct source and launches it. Semantics are
// those of the reference backend (src/backends/ref.ts) and the Backend interface (src/engine/backend.ts):
// forward kernels write, backward kernels accumulate.
//
// WGSL has no float atomics, so every reduction into a shared destination is owned by one invocation: the
// embedding / scatter-add backward and the per-position weight gradient of the upsampling walk a segment list
// (sources grouped by destination, built on the host from the host-side indices); the attention backward runs
// one pass per query row (dq) and one per key row (dk, dv); column reductions (RMSNorm's dw) loop over rows.

import { kernel, type Kernel } from "./wgsl.js";

// WGSL rejects an infinite constant; -FLT_MAX starts a running max, and -inf itself comes in as a uniform.
const LOWEST = "-0x1.fffffep+127f";

/**
 * WGSL whether float x is infinite or NaN, by its exponent bits: WGSL has no isnan/isinf, and a compiler may
 * assume floats are finite and fold a comparison like x != x away.
 */
const NON_FINITE = (x: string) => `(bitcast<u32>(${x}) & 0x7f800000u) == 0x7f800000u`;

// ---- elementwise ----

export function fillKernel(): Kernel {
  return kernel(
    "fill",
    [
      ["n", "u32"],
      ["value", "f32"],
    ],
    [["out", "read_write", "f32"]],
    `fn main() { let i = FLAT; if (i >= p.n) { return; } out[i] = p.value; }`,
  );
}

export function addKernel(): Kernel {
  return kernel(
    "add",
    [["n", "u32"]],
    [
      ["out", "read_write", "f32"],
      ["a", "read", "f32"],
      ["b", "read", "f32"],
    ],
    `fn main() { let i = FLAT; if (i >= p.n) { return; } out[i] = a[i] + b[i]; }`,
  );
}

/** out = alpha * a + (accumulate ? out : 0): axpy and scale. */
export function axpyKernel(accumulate: boolean): Kernel {
  return kernel(
    `axpy${accumulate}`,
    [
      ["n", "u32"],
      ["alpha", "f32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["a", "read", "f32"],
    ],
    `fn main() { let i = FLAT; if (i >= p.n) { return; } out[i] = ${accumulate ? "out[i] + " : ""}p.alpha * a[i]; }`,
  );
}

/** out[i] = alpha * a[0]: a device scalar spread over a storage. */
export function broadcastKernel(): Kernel {
  return kernel(
    "broadcast",
    [
      ["n", "u32"],
      ["alpha", "f32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["a", "read", "f32"],
    ],
    `fn main() { let i = FLAT; if (i >= p.n) { return; } out[i] = p.alpha * a[0]; }`,
  );
}

export function swigluKernel(): Kernel {
  return kernel(
    "swiglu",
    [["n", "u32"]],
    [
      ["out", "read_write", "f32"],
      ["a", "read", "f32"],
      ["b", "read", "f32"],
    ],
    `fn main() {
      let i = FLAT; if (i >= p.n) { return; }
      let x = a[i];
      out[i] = x / (1.0 + exp(-x)) * b[i];
    }`,
  );
}

export function swigluBackwardKernel(): Kernel {
  return kernel(
    "swigluBackward",
    [["n", "u32"]],
    [
      ["da", "read_write", "f32"],
      ["db", "read_write", "f32"],
      ["g", "read", "f32"],
      ["a", "read", "f32"],
      ["b", "read", "f32"],
    ],
    `fn main() {
      let i = FLAT; if (i >= p.n) { return; }
      let x = a[i];
      let sg = 1.0 / (1.0 + exp(-x));
      db[i] += g[i] * x * sg;
      da[i] += g[i] * b[i] * sg * (1.0 + x * (1.0 - sg));
    }`,
  );
}

/** AdamW; the gradient scale (global-norm clipping) is scale[0], a device scalar (clipGradNorm's output). */
export function adamwKernel(): Kernel {
  return kernel(
    "adamw",
    [
      ["n", "u32"],
      ["beta1", "f32"],
      ["beta2", "f32"],
      ["eps", "f32"],
      ["stepSize", "f32"],
      ["bc2sqrt", "f32"],
      ["decay", "f32"],
    ],
    [
      ["param", "read_write", "f32"],
      ["grad", "read", "f32"],
      ["m", "read_write", "f32"],
      ["v", "read_write", "f32"],
      ["scale", "read", "f32"],
    ],
    `fn main() {
      let i = FLAT; if (i >= p.n) { return; }
      // A non-finite scale (a non-finite gradient norm) skips the update. Tested on the bits: WGSL lets a
      // compiler assume floats are finite, so isnan-style comparisons may be folded away.
      if ((bitcast<u32>(scale[0]) & 0x7f800000u) == 0x7f800000u) { return; }
      let g = grad[i] * scale[0];
      let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
      let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * p.decay - p.stepSize * mi / (sqrt(vi) / p.bc2sqrt + p.eps);
    }`,
  );
}

// ---- reductions ----

const RED = 256;

/**
 * First pass of a sum: workgroup w sums a[w*RED + t], striding by the whole grid, of a or of a^2, into
 * partial[w]. The tree in workgroup memory keeps the error at O(log n) ulps.
 */
export function reducePartialKernel(squares: boolean): Kernel {
  return kernel(
    `reducePartial${squares}`,
    [
      ["n", "u32"],
      ["groups", "u32"],
    ],
    [
      ["partial", "read_write", "f32"],
      ["a", "read", "f32"],
    ],
    `var<workgroup> tree: array<f32, ${RED}>;
    fn main() {
      var s = 0.0;
      for (var i = wid.x * ${RED}u + lid; i < p.n; i += p.groups * ${RED}u) {
        let x = a[i];
        s += ${squares ? "x * x" : "x"};
      }
      tree[lid] = s;
      workgroupBarrier();
      for (var w = ${RED / 2}u; w > 0u; w >>= 1u) {
        if (lid < w) { tree[lid] += tree[lid + w]; }
        workgroupBarrier();
      }
      if (lid == 0u) { partial[wid.x] = tree[0]; }
    }`,
    `${RED}`,
  );
}

/** Second pass: out[0] = alpha * sum(partial) (+ out[0] when accumulating), one workgroup. */
export function reduceFinalKernel(accumulate: boolean): Kernel {
  return kernel(
    `reduceFinal${accumulate}`,
    [
      ["groups", "u32"],
      ["alpha", "f32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["partial", "read", "f32"],
    ],
    `var<workgroup> tree: array<f32, ${RED}>;
    fn main() {
      var s = 0.0;
      for (var i = lid; i < p.groups; i += ${RED}u) { s += partial[i]; }
      tree[lid] = s;
      workgroupBarrier();
      for (var w = ${RED / 2}u; w > 0u; w >>= 1u) {
        if (lid < w) { tree[lid] += tree[lid + w]; }
        workgroupBarrier();
      }
      if (lid == 0u) { out[0] = ${accumulate ? "out[0] + " : ""}p.alpha * tree[0]; }
    }`,
    `${RED}`,
  );
}

export const REDUCE_WG = RED;

/**
 * torch's clip_grad_norm_ on device: from a sum of squares ss[0], norm[0] = sqrt(ss) and
 * scale[0] = min(1, maxNorm / (norm + 1e-6)) (maxNorm <= 0: no clipping, scale 1); NaN when the norm is not
 * finite, so that AdamW skips the update.
 */
export function clipScaleKernel(): Kernel {
  return kernel(
    "clipScale",
    [["maxNorm", "f32"]],
    [
      ["scale", "read_write", "f32"],
      ["norm", "read_write", "f32"],
      ["ss", "read", "f32"],
    ],
    `fn main() {
      if (gid.x != 0u) { return; }
      let nrm = sqrt(ss[0]);
      norm[0] = nrm;
      scale[0] = select(1.0, min(1.0, p.maxNorm / (nrm + 1e-6)), p.maxNorm > 0.0);
      // A non-finite norm gives a NaN scale (AdamW then skips the update), tested on the bits as in adamw.
      if ((bitcast<u32>(ss[0]) & 0x7f800000u) == 0x7f800000u) {
        scale[0] = bitcast<f32>(0x7fc00000u | (bitcast<u32>(ss[0]) & 0x80000000u)); // a runtime NaN
      }
    }`,
  );
}

// ---- GEMM ----

export interface GemmShape {
  transA: boolean;
  transB: boolean;
}

function gemmAccessors(s: GemmShape): string {
  return `
    fn loadA(i: u32, kk: u32) -> f32 { return A[${s.transA ? "kk * p.m + i" : "i * p.k + kk"}]; }
    fn loadB(kk: u32, j: u32) -> f32 { return B[${s.transB ? "j * p.k + kk" : "kk * p.n + j"}]; }`;
}

const GEMM_PARAMS = [
  ["m", "u32"],
  ["n", "u32"],
  ["k", "u32"],
  ["accumulate", "u32"],
] as const;
const GEMM_BINDINGS = [
  ["C", "read_write", "f32"],
  ["A", "read", "f32"],
  ["B", "read", "f32"],
] as const;

/**
 * GEMM for software adapters: each invocation owns a 4x4 block of C in registers and streams A and B from
 * storage, with no workgroup memory and no barriers (SwiftShader and lavapipe run an invocation group as SIMD
 * lanes on a CPU core, where barriers are expensive and caches do the tiling). Out-of-range rows and columns
 * read clamped addresses and are not stored, so the inner loop has no branches.
 */
export function gemmRegisterKernel(s: GemmShape): Kernel {
  return kernel(
    `gemmReg${s.transA}${s.transB}`,
    GEMM_PARAMS,
    GEMM_BINDINGS,
    `${gemmAccessors(s)}
    fn main() {
      let i0 = gid.y * 4u;
      let j0 = gid.x * 4u;
      if (i0 >= p.m || j0 >= p.n) { return; }
      let ia = vec4u(i0, min(i0 + 1u, p.m - 1u), min(i0 + 2u, p.m - 1u), min(i0 + 3u, p.m - 1u));
      let jb = vec4u(j0, min(j0 + 1u, p.n - 1u), min(j0 + 2u, p.n - 1u), min(j0 + 3u, p.n - 1u));
      var c0 = vec4f(0.0); var c1 = vec4f(0.0); var c2 = vec4f(0.0); var c3 = vec4f(0.0);
      for (var kk = 0u; kk < p.k; kk++) {
        let b = vec4f(loadB(kk, jb.x), loadB(kk, jb.y), loadB(kk, jb.z), loadB(kk, jb.w));
        c0 += loadA(ia.x, kk) * b;
        c1 += loadA(ia.y, kk) * b;
        c2 += loadA(ia.z, kk) * b;
        c3 += loadA(ia.w, kk) * b;
      }
      var rows = array<vec4f, 4>(c0, c1, c2, c3);
      for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i >= p.m) { break; }
        for (var c = 0u; c < 4u; c++) {
          let j = j0 + c;
          if (j >= p.n) { break; }
          let o = i * p.n + j;
          C[o] = select(0.0, C[o], p.accumulate != 0u) + rows[r][c];
        }
      }
    }`,
    "8, 8",
  );
}

/** Whether gemmVec4Kernel serves this layout and these sizes (its vec4 loads need aligned rows). */
export function gemmVec4Fits(s: GemmShape, m: number, n: number, k: number): boolean {
  if (!s.transA && s.transB) return k % 4 === 0;
  if (!s.transA && !s.transB) return k % 4 === 0 && n % 4 === 0;
  if (s.transA && !s.transB) return m % 4 === 0 && n % 4 === 0;
  return false;
}

/**
 * The register-blocked GEMM with vec4 loads along each operand's contiguous dimension: a quarter of the
 * loads per multiply-add of gemmRegisterKernel. A and B are bound as vec4 arrays (every buffer is a whole
 * number of vec4s). Layouts: NT and NN step k by 4 (A's rows as vec4s along k; B's rows along k for NT, four
 * B rows along n for NN); TN takes one k at a time as an outer product of a vec4 of A and a vec4 of B.
 */
export function gemmVec4Kernel(s: GemmShape): Kernel {
  const nt = !s.transA && s.transB,
    nn = !s.transA && !s.transB;
  const step = nt
    ? `for (var c = 0u; c < 4u; c++) { b[c] = B[jb[c] * k4 + kq]; }
        for (var r = 0u; r < 4u; r++) {
          let a = A[ia[r] * k4 + kq];
          acc[r] += vec4f(dot(a, b[0]), dot(a, b[1]), dot(a, b[2]), dot(a, b[3]));
        }`
    : nn
      ? `for (var t = 0u; t < 4u; t++) { b[t] = B[((kq * 4u + t) * p.n + j0) / 4u]; }
        for (var r = 0u; r < 4u; r++) {
          let a = A[ia[r] * k4 + kq];
          acc[r] += a.x * b[0] + a.y * b[1] + a.z * b[2] + a.w * b[3];
        }`
      : `let a = A[(kq * p.m + i0) / 4u];
        let bv = B[(kq * p.n + j0) / 4u];
        acc[0] += a.x * bv; acc[1] += a.y * bv; acc[2] += a.z * bv; acc[3] += a.w * bv;`;
  return kernel(
    `gemmVec4${s.transA}${s.transB}`,
    GEMM_PARAMS,
    [
      ["C", "read_write", "f32"],
      ["A", "read", "vec4f"],
      ["B", "read", "vec4f"],
    ],
    `fn main() {
      let i0 = gid.y * 4u;
      let j0 = gid.x * 4u;
      if (i0 >= p.m || j0 >= p.n) { return; }
      let ia = vec4u(i0, min(i0 + 1u, p.m - 1u), min(i0 + 2u, p.m - 1u), min(i0 + 3u, p.m - 1u));
      let jb = vec4u(j0, min(j0 + 1u, p.n - 1u), min(j0 + 2u, p.n - 1u), min(j0 + 3u, p.n - 1u));
      let k4 = p.k / 4u;
      var acc: array<vec4f, 4>;
      var b: array<vec4f, 4>;
      for (var kq = 0u; kq < ${nt || nn ? "k4" : "p.k"}; kq++) {
        ${step}
      }
      for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i >= p.m) { break; }
        for (var c = 0u; c < 4u; c++) {
          let j = j0 + c;
          if (j >= p.n) { break; }
          let o = i * p.n + j;
          C[o] = select(0.0, C[o], p.accumulate != 0u) + acc[r][c];
        }
      }
    }`,
    "8, 8",
  );
}

/** Tile of the workgroup-memory GEMM: 64x64 of C per workgroup of 16x16 invocations, 4x4 each, K step 16. */
export const GEMM_TILE = 64;

/**
 * GEMM for real GPUs: tiles of A and B staged in workgroup memory, each invocation a 4x4 block. The
 * transposes are uniforms (a uniform branch costs a GPU nothing), so one pipeline serves all four layouts.
 */
export function gemmTiledKernel(): Kernel {
  return kernel(
    "gemmTiled",
    [...GEMM_PARAMS, ["transA", "u32"], ["transB", "u32"]],
    GEMM_BINDINGS,
    `
    fn loadA(i: u32, kk: u32) -> f32 { return A[select(i * p.k + kk, kk * p.m + i, p.transA != 0u)]; }
    fn loadB(kk: u32, j: u32) -> f32 { return B[select(kk * p.n + j, j * p.k + kk, p.transB != 0u)]; }
    var<workgroup> As: array<f32, 1024>; // [16][64]: As[kk * 64 + i]
    var<workgroup> Bs: array<f32, 1024>; // [16][64]: Bs[kk * 64 + j]
    fn main() {
      let tx = lid % 16u;
      let ty = lid / 16u;
      let row0 = wid.y * 64u;
      let col0 = wid.x * 64u;
      var acc: array<vec4f, 4>;
      for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        for (var e = lid; e < 1024u; e += 256u) {
          let kk = e / 64u;
          let x = e % 64u;
          let gk = k0 + kk;
          let gi = row0 + x;
          let gj = col0 + x;
          As[e] = select(0.0, loadA(min(gi, p.m - 1u), min(gk, p.k - 1u)), gi < p.m && gk < p.k);
          Bs[e] = select(0.0, loadB(min(gk, p.k - 1u), min(gj, p.n - 1u)), gj < p.n && gk < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
          let b = vec4f(Bs[kk * 64u + tx * 4u], Bs[kk * 64u + tx * 4u + 1u], Bs[kk * 64u + tx * 4u + 2u],
                        Bs[kk * 64u + tx * 4u + 3u]);
          for (var r = 0u; r < 4u; r++) { acc[r] += As[kk * 64u + ty * 4u + r] * b; }
        }
        workgroupBarrier();
      }
      for (var r = 0u; r < 4u; r++) {
        let i = row0 + ty * 4u + r;
        if (i >= p.m) { break; }
        for (var c = 0u; c < 4u; c++) {
          let j = col0 + tx * 4u + c;
          if (j >= p.n) { break; }
          let o = i * p.n + j;
          C[o] = select(0.0, C[o], p.accumulate != 0u) + acc[r][c];
        }
      }
    }`,
    "256",
  );
}

// ---- rows: embedding, gather, scatter-add ----

/** out[i, c] = src[idx[i], c]. */
export function gatherRowsKernel(): Kernel {
  return kernel(
    "gatherRows",
    [
      ["n", "u32"],
      ["dim", "u32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["src", "read", "f32"],
      ["idx", "read", "i32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let i = e / p.dim;
      out[e] = src[u32(idx[i]) * p.dim + e % p.dim];
    }`,
  );
}

/**
 * dst[dest[u], c] += sum of src[order[t], c] for t in [start[u], start[u+1]): segments of the sources that
 * share a destination row, so each destination element has exactly one writer. `seg` packs
 * [dest (U), start (U + 1), order (N)].
 */
export function scatterAddRowsKernel(): Kernel {
  return kernel(
    "scatterAddRows",
    [
      ["n", "u32"],
      ["dim", "u32"],
      ["segments", "u32"],
    ],
    [
      ["dst", "read_write", "f32"],
      ["src", "read", "f32"],
      ["seg", "read", "u32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let u = e / p.dim;
      let c = e % p.dim;
      let order0 = 2u * p.segments + 1u;
      var s = 0.0;
      for (var t = seg[p.segments + u]; t < seg[p.segments + u + 1u]; t++) {
        s += src[seg[order0 + t] * p.dim + c];
      }
      let o = seg[u] * p.dim + c;
      dst[o] = dst[o] + s;
    }`,
  );
}

// ---- normalisation ----

export function rmsnormKernel(): Kernel {
  return kernel(
    "rmsnorm",
    [
      ["rows", "u32"],
      ["dim", "u32"],
      ["eps", "f32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["rstd", "read_write", "f32"],
      ["x", "read", "f32"],
      ["w", "read", "f32"],
    ],
    `fn main() {
      let r = FLAT; if (r >= p.rows) { return; }
      let o = r * p.dim;
      var ss = 0.0;
      for (var j = 0u; j < p.dim; j++) { ss += x[o + j] * x[o + j]; }
      let rs = inverseSqrt(ss / f32(p.dim) + p.eps);
      rstd[r] = rs;
      for (var j = 0u; j < p.dim; j++) { out[o + j] = x[o + j] * rs * w[j]; }
    }`,
  );
}

/** dx[r] += rs * (g * w) - x * rs^3 * mean(g * w * x), one invocation per row. */
export function rmsnormBackwardDxKernel(): Kernel {
  return kernel(
    "rmsnormBackwardDx",
    [
      ["rows", "u32"],
      ["dim", "u32"],
    ],
    [
      ["dx", "read_write", "f32"],
      ["g", "read", "f32"],
      ["x", "read", "f32"],
      ["w", "read", "f32"],
      ["rstd", "read", "f32"],
    ],
    `fn main() {
      let r = FLAT; if (r >= p.rows) { return; }
      let o = r * p.dim;
      let rs = rstd[r];
      var dot = 0.0;
      for (var j = 0u; j < p.dim; j++) { dot += g[o + j] * w[j] * x[o + j]; }
      let c = dot / f32(p.dim) * rs * rs * rs;
      for (var j = 0u; j < p.dim; j++) { dx[o + j] += g[o + j] * w[j] * rs - x[o + j] * c; }
    }`,
  );
}

/** dw[j] += sum over rows of g * x * rs, one invocation per column. */
export function rmsnormBackwardDwKernel(): Kernel {
  return kernel(
    "rmsnormBackwardDw",
    [
      ["rows", "u32"],
      ["dim", "u32"],
    ],
    [
      ["dw", "read_write", "f32"],
      ["g", "read", "f32"],
      ["x", "read", "f32"],
      ["rstd", "read", "f32"],
    ],
    `fn main() {
      let j = FLAT; if (j >= p.dim) { return; }
      var s = 0.0;
      for (var r = 0u; r < p.rows; r++) { s += g[r * p.dim + j] * x[r * p.dim + j] * rstd[r]; }
      dw[j] += s;
    }`,
  );
}

// ---- RoPE ----

/** One invocation per (row, head, pair); sign -1 with accumulate is the backward (rotation by -angle). */
export function ropeKernel(backward: boolean): Kernel {
  return kernel(
    `rope${backward}`,
    [
      ["n", "u32"],
      ["seq", "u32"],
      ["nHeads", "u32"],
      ["half", "u32"],
      ["hasPositions", "u32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["x", "read", "f32"],
      ["cosT", "read", "f32"],
      ["sinT", "read", "f32"],
      ["positions", "read", "i32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let j = e % p.half;
      let rh = e / p.half;
      let r = rh / p.nHeads;
      let pos = select(r % p.seq, u32(positions[r]), p.hasPositions != 0u);
      let c = cosT[pos * p.half + j];
      let s = ${backward ? "-" : ""}sinT[pos * p.half + j];
      let b = rh * 2u * p.half + 2u * j;
      let x0 = x[b];
      let x1 = x[b + 1u];
      out[b] = ${backward ? "out[b] + " : ""}x0 * c - x1 * s;
      out[b + 1u] = ${backward ? "out[b + 1u] + " : ""}x0 * s + x1 * c;
    }`,
  );
}

// ---- attention ----

const ATT_PARAMS = [
  ["batch", "u32"],
  ["sq", "u32"],
  ["sk", "u32"],
  ["nHeads", "u32"],
  ["nKvHeads", "u32"],
  ["qOffset", "i32"],
  ["window", "i32"],
  ["scale", "f32"],
  ["negInf", "f32"],
] as const;

/** Keys lo..hi (inclusive, as i32) visible to query i: causal, optionally within the sliding window. */
const KEY_RANGE = `
    fn keyLo(i: u32) -> i32 {
      let qpos = p.qOffset + i32(i);
      return select(0, max(0, qpos - p.window + 1), p.window > 0);
    }
    fn keyHi(i: u32) -> i32 { return min(p.qOffset + i32(i), i32(p.sk) - 1); }`;

/**
 * How a head vector is held: as hd/4 vec4s when hd is a multiple of 4 (four lanes per operation, a quarter of
 * the loop trips), else as hd scalars. `dot4` is the dot product of two such pieces.
 */
function headVector(hd: number): { V: string; N: number; prelude: string } {
  const vec = hd % 4 === 0;
  const V = vec ? "vec4f" : "f32";
  return {
    V,
    N: vec ? hd / 4 : hd,
    prelude: `const N = ${vec ? hd / 4 : hd}u;
    fn dot4(a: ${V}, b: ${V}) -> f32 { return ${vec ? "dot(a, b)" : "a * b"}; }`,
  };
}

/**
 * Fused attention forward, one invocation per (batch, head, query): a single pass over the visible keys with
 * the online softmax (running max and denominator, the accumulator rescaled when the max grows), so no score
 * matrix exists anywhere. Writes out and the log-sum-exp for the backward. hd is a compile-time constant
 * (private arrays need one).
 */
export function attentionKernel(hd: number): Kernel {
  const { V, prelude } = headVector(hd);
  return kernel(
    `attention${hd}`,
    ATT_PARAMS,
    [
      ["out", "read_write", V],
      ["lse", "read_write", "f32"],
      ["q", "read", V],
      ["k", "read", V],
      ["v", "read", V],
    ],
    `${prelude}
    ${KEY_RANGE}
    fn main() {
      let e = FLAT;
      if (e >= p.batch * p.nHeads * p.sq) { return; }
      let i = e % p.sq;
      let h = (e / p.sq) % p.nHeads;
      let b = e / (p.sq * p.nHeads);
      let kh = h / (p.nHeads / p.nKvHeads);
      let qo = ((b * p.sq + i) * p.nHeads + h) * N;
      var qv: array<${V}, N>;
      var acc: array<${V}, N>;
      for (var t = 0u; t < N; t++) { qv[t] = q[qo + t] * p.scale; }
      var mx = ${LOWEST};
      var den = 0.0;
      let lo = keyLo(i);
      let hi = keyHi(i);
      for (var j = lo; j <= hi; j++) {
        let ko = ((b * p.sk + u32(j)) * p.nKvHeads + kh) * N;
        var s = 0.0;
        for (var t = 0u; t < N; t++) { s += dot4(qv[t], k[ko + t]); }
        let mNew = max(mx, s);
        let corr = exp(mx - mNew);
        let pj = exp(s - mNew);
        den = den * corr + pj;
        for (var t = 0u; t < N; t++) { acc[t] = acc[t] * corr + pj * v[ko + t]; }
        mx = mNew;
      }
      let empty = hi < lo;
      for (var t = 0u; t < N; t++) { out[qo + t] = select(acc[t] / den, ${V}(0.0), empty); }
      lse[(b * p.nHeads + h) * p.sq + i] = select(mx + log(den), p.negInf, empty);
    }`,
  );
}

/**
 * Attention backward, pass 1, one invocation per (batch, head, query): D = dout . out (the softmax Jacobian's
 * correction, kept in `dsum` for pass 2) and dq += sum_j ds_j k_j with ds_j = p_j (dout . v_j - D) scale,
 * p_j recomputed from the saved log-sum-exp.
 */
export function attentionBackwardDqKernel(hd: number): Kernel {
  const { V, prelude } = headVector(hd);
  return kernel(
    `attentionBackwardDq${hd}`,
    ATT_PARAMS,
    [
      ["dq", "read_write", V],
      ["dsum", "read_write", "f32"],
      ["dout", "read", V],
      ["q", "read", V],
      ["k", "read", V],
      ["v", "read", V],
      ["o", "read", V],
      ["lse", "read", "f32"],
    ],
    `${prelude}
    ${KEY_RANGE}
    fn main() {
      let e = FLAT;
      if (e >= p.batch * p.nHeads * p.sq) { return; }
      let i = e % p.sq;
      let h = (e / p.sq) % p.nHeads;
      let b = e / (p.sq * p.nHeads);
      let kh = h / (p.nHeads / p.nKvHeads);
      let qo = ((b * p.sq + i) * p.nHeads + h) * N;
      let row = (b * p.nHeads + h) * p.sq + i;
      var qv: array<${V}, N>;
      var go: array<${V}, N>;
      var acc: array<${V}, N>;
      var D = 0.0;
      for (var t = 0u; t < N; t++) {
        qv[t] = q[qo + t];
        go[t] = dout[qo + t];
        D += dot4(go[t], o[qo + t]);
      }
      dsum[row] = D;
      let l = lse[row];
      let lo = keyLo(i);
      let hi = keyHi(i);
      for (var j = lo; j <= hi; j++) {
        let ko = ((b * p.sk + u32(j)) * p.nKvHeads + kh) * N;
        var s = 0.0;
        var dp = 0.0;
        for (var t = 0u; t < N; t++) { s += dot4(qv[t], k[ko + t]); dp += dot4(go[t], v[ko + t]); }
        let ds = exp(s * p.scale - l) * (dp - D) * p.scale;
        for (var t = 0u; t < N; t++) { acc[t] += ds * k[ko + t]; }
      }
      for (var t = 0u; t < N; t++) { dq[qo + t] += acc[t]; }
    }`,
  );
}

/**
 * Attention backward, pass 2, one invocation per (batch, kv head, key): loops over the query heads of its
 * group and the queries that see this key, accumulating dk and dv in registers (each written by one owner).
 */
export function attentionBackwardDkvKernel(hd: number): Kernel {
  const { V, prelude } = headVector(hd);
  return kernel(
    `attentionBackwardDkv${hd}`,
    ATT_PARAMS,
    [
      ["dk", "read_write", V],
      ["dv", "read_write", V],
      ["dout", "read", V],
      ["q", "read", V],
      ["k", "read", V],
      ["v", "read", V],
      ["dsum", "read", "f32"],
      ["lse", "read", "f32"],
    ],
    `${prelude}
    fn main() {
      let e = FLAT;
      if (e >= p.batch * p.nKvHeads * p.sk) { return; }
      let j = e % p.sk;
      let kh = (e / p.sk) % p.nKvHeads;
      let b = e / (p.sk * p.nKvHeads);
      let group = p.nHeads / p.nKvHeads;
      let ko = ((b * p.sk + j) * p.nKvHeads + kh) * N;
      var kv: array<${V}, N>;
      var vv: array<${V}, N>;
      var dka: array<${V}, N>;
      var dva: array<${V}, N>;
      for (var t = 0u; t < N; t++) { kv[t] = k[ko + t]; vv[t] = v[ko + t]; }
      // Queries that see key j: qpos >= j, and qpos - j < window when windowed.
      let iLo = max(0, i32(j) - p.qOffset);
      let iHi = select(i32(p.sq) - 1, min(i32(p.sq) - 1, i32(j) - p.qOffset + p.window - 1), p.window > 0);
      for (var g = 0u; g < group; g++) {
        let h = kh * group + g;
        for (var ii = iLo; ii <= iHi; ii++) {
          let i = u32(ii);
          let qo = ((b * p.sq + i) * p.nHeads + h) * N;
          let row = (b * p.nHeads + h) * p.sq + i;
          var s = 0.0;
          var dp = 0.0;
          for (var t = 0u; t < N; t++) { s += dot4(q[qo + t], kv[t]); dp += dot4(dout[qo + t], vv[t]); }
          let pr = exp(s * p.scale - lse[row]);
          let ds = pr * (dp - dsum[row]) * p.scale;
          for (var t = 0u; t < N; t++) { dva[t] += pr * dout[qo + t]; dka[t] += ds * q[qo + t]; }
        }
      }
      for (var t = 0u; t < N; t++) { dk[ko + t] += dka[t]; dv[ko + t] += dva[t]; }
    }`,
  );
}

// ---- upsampling: the indexed linear ----

/** out[r, o] = sum_i W[pos[r], o, i] x[r, i]. */
export function indexedLinearKernel(): Kernel {
  return kernel(
    "indexedLinear",
    [
      ["n", "u32"],
      ["dIn", "u32"],
      ["dOut", "u32"],
    ],
    [
      ["out", "read_write", "f32"],
      ["x", "read", "f32"],
      ["w", "read", "f32"],
      ["pos", "read", "i32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let r = e / p.dOut;
      let o = e % p.dOut;
      let wo = (u32(pos[r]) * p.dOut + o) * p.dIn;
      var s = 0.0;
      for (var i = 0u; i < p.dIn; i++) { s += w[wo + i] * x[r * p.dIn + i]; }
      out[e] = s;
    }`,
  );
}

/** dx[r, i] += sum_o W[pos[r], o, i] dout[r, o]. */
export function indexedLinearBackwardDxKernel(): Kernel {
  return kernel(
    "indexedLinearBackwardDx",
    [
      ["n", "u32"],
      ["dIn", "u32"],
      ["dOut", "u32"],
    ],
    [
      ["dx", "read_write", "f32"],
      ["g", "read", "f32"],
      ["w", "read", "f32"],
      ["pos", "read", "i32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let r = e / p.dIn;
      let i = e % p.dIn;
      let wo = u32(pos[r]) * p.dOut * p.dIn + i;
      var s = 0.0;
      for (var o = 0u; o < p.dOut; o++) { s += w[wo + o * p.dIn] * g[r * p.dOut + o]; }
      dx[e] += s;
    }`,
  );
}

/**
 * dW[pos, o, i] += sum over the rows r at that position of dout[r, o] x[r, i]; the rows are grouped by
 * position on the host into segments (`seg` as in scatterAddRowsKernel), one invocation per (segment, o, i).
 */
export function indexedLinearBackwardDwKernel(): Kernel {
  return kernel(
    "indexedLinearBackwardDw",
    [
      ["n", "u32"],
      ["dIn", "u32"],
      ["dOut", "u32"],
      ["segments", "u32"],
    ],
    [
      ["dw", "read_write", "f32"],
      ["g", "read", "f32"],
      ["x", "read", "f32"],
      ["seg", "read", "u32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let per = p.dOut * p.dIn;
      let u = e / per;
      let o = (e % per) / p.dIn;
      let i = e % p.dIn;
      let order0 = 2u * p.segments + 1u;
      var s = 0.0;
      for (var t = seg[p.segments + u]; t < seg[p.segments + u + 1u]; t++) {
        let r = seg[order0 + t];
        s += g[r * p.dOut + o] * x[r * p.dIn + i];
      }
      let d = seg[u] * per + o * p.dIn + i;
      dw[d] = dw[d] + s;
    }`,
  );
}

// ---- loss ----

/** Per row: lse = log sum exp(logits), loss = lse - logits[target]; one invocation per row. */
export function crossEntropyKernel(): Kernel {
  return kernel(
    "crossEntropy",
    [
      ["rows", "u32"],
      ["vocab", "u32"],
    ],
    [
      ["loss", "read_write", "f32"],
      ["lse", "read_write", "f32"],
      ["logits", "read", "f32"],
      ["targets", "read", "i32"],
    ],
    `fn main() {
      let r = FLAT; if (r >= p.rows) { return; }
      let o = r * p.vocab;
      var mx = ${LOWEST};
      for (var j = 0u; j < p.vocab; j++) { mx = max(mx, logits[o + j]); }
      var s = 0.0;
      for (var j = 0u; j < p.vocab; j++) { s += exp(logits[o + j] - mx); }
      let l = mx + log(s);
      lse[r] = l;
      loss[r] = l - logits[o + u32(targets[r])];
    }`,
  );
}

/** dlogits[r, j] += dloss[r] (exp(logits[r, j] - lse[r]) - [j == target[r]]). */
export function crossEntropyBackwardKernel(): Kernel {
  return kernel(
    "crossEntropyBackward",
    [
      ["n", "u32"],
      ["vocab", "u32"],
    ],
    [
      ["dlogits", "read_write", "f32"],
      ["dloss", "read", "f32"],
      ["logits", "read", "f32"],
      ["lse", "read", "f32"],
      ["targets", "read", "i32"],
    ],
    `fn main() {
      let e = FLAT; if (e >= p.n) { return; }
      let r = e / p.vocab;
      let j = e % p.vocab;
      let g = dloss[r];
      dlogits[e] += g * exp(logits[e] - lse[r]) - select(0.0, g, j == u32(targets[r]));
    }`,
  );
}
