// The family of model shapes a compute budget gets in `aunet compare`. One width d and depth L per budget, shared
// by every model so that they differ only in what the paper compares (how bytes reach the trunk):
//
//   target size  N = sqrt(C / 120)          (Chinchilla's C = 6 N D with D = 20 N)
//   width        d = N / 0.375 cube-rooted, rounded to a multiple of 32, within [32, 1024]
//   depth        L = max(1, d / 32)          (a layer holds about 12 d^2 weights, so N ~ 0.375 d^3)
//   head dim     32 (16 for widths that are not multiples of 32)
//
//   byte    one stage [d], L layers: a byte-level transformer
//   aunet2  dims [d/2, d], layers [1, L]: byte encoder/decoder of 1 layer each, trunk over words (word1)
//   aunet3  dims [d/2, d, d], layers [1, 1, L]: + a word stage, trunk over pairs of words (word1, word2)
//   bpe     one stage [d], L layers over BPE tokens (rows of about the same bytes as the byte models')
//
// Pooled caps are S/2 and S/4, loose enough never to bind on English text. Equal compute then comes from the
// number of steps, not from the shapes: see compare.ts.

import type { BaselineKind } from "./compare.js";

export interface FamilyShape {
  dim: number;
  layers: number;
}

export function familyShape(flops: number): FamilyShape {
  const target = Math.sqrt(flops / 120);
  const dim = Math.min(1024, Math.max(32, 32 * Math.round(Math.cbrt(target / 0.375) / 32)));
  return { dim, layers: Math.max(1, Math.round(dim / 32)) };
}

export function headDimFor(dim: number): number {
  return dim % 32 === 0 ? 32 : 16;
}

type Obj = Record<string, unknown>;

/** The model and splitter sections (official layout) of a byte-level model of the family. */
export function byteFamilyModel(
  kind: Exclude<BaselineKind, "bpe">,
  shape: FamilyShape,
  seqLen: number,
  seed: number,
): { model: Obj; strategy: Record<string, string> } {
  const { dim: d, layers: L } = shape;
  const half = Math.max(16, d / 2);
  const stages =
    kind === "byte"
      ? { dims: [d], layers: [L] }
      : kind === "aunet2"
        ? { dims: [half, d], layers: [1, L] }
        : { dims: [half, d, d], layers: [1, 1, L] };
  const caps = stages.dims.map((_, i) => (i === 0 ? -1 : Math.max(1, Math.ceil(seqLen / 2 ** i))));
  const strategy: Record<string, string> =
    kind === "aunet3" ? { word1: "1@1", word2: "2@1" } : { word1: "1@1" };
  return {
    model: {
      dimensions: stages.dims,
      layers: stages.layers,
      head_dims: stages.dims.map(headDimFor),
      residuals: stages.dims.slice(1).map(() => true),
      sliding_windows: null,
      max_seqlens: caps,
      block: { rope_theta: 10000, multiple_of: 32 },
      pooling_type: "simple_indexed_matmul",
      lambda_level: 0,
      seed,
    },
    strategy,
  };
}
