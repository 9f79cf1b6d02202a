// Model FLOPs per byte (spec section 9): sum over stages of (6 N_i + 6 d_i L_i S_i) / k_i, where N_i counts the
// weights applied once per stage-i position, L_i the transformer layers at stage i (encoder + decoder, or the
// trunk), S_i the attention context of a stage-i query and k_i the bytes per stage-i position. k_i and S_i come
// from the positions actually measured in the batch, so the figure follows the data rather than the caps.
//
// Attribution of the non-layer weights: the vocabulary head runs at every byte (stage 0; the embedding is a
// lookup and costs nothing); trans_down of transition i runs once per pooled slot (stage i+1); trans_up and one
// slice of indexed_linear run at every stage-i position (stage i). With a sliding window W the context is the
// official effective W (2s - W) / s for a sequence of s (= s without a window).

import { ffnHidden, nKvHeads, numStages, windowOf, type ModelConfig } from "../model/config.js";
import { computePools } from "../model/pooling.js";

/** Per-core peak used for model FLOPs utilisation (a modern x86 core, FP32 FMA). */
export const PEAK_FLOPS_PER_CORE = 169e9;

/** N_i: weights applied once per stage-i position. */
export function weightsPerPosition(m: ModelConfig): number[] {
  const n = numStages(m);
  const N = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    const d = m.dimensions[i];
    const kv = nKvHeads(m, i) * m.head_dims[i];
    const layer = 2 * d * d + 2 * kv * d + 3 * d * ffnHidden(d, m.block) + 2 * d;
    N[i] += layer * layerCount(m, i);
  }
  N[0] += m.vocab_size * m.dimensions[0] + m.dimensions[0];
  for (let i = 0; i < n - 1; i++) {
    const di = m.dimensions[i],
      dn = m.dimensions[i + 1];
    N[i + 1] += di * dn + di; // down_norm + trans_down, per pooled slot
    N[i] += dn + di * dn * (m.pooling_type === "simple_indexed_matmul" ? 2 : 1); // up_norm + trans_up (+ slice)
  }
  return N;
}

/** L_i: transformer layers that run at stage i. */
export function layerCount(m: ModelConfig, stage: number): number {
  return stage < numStages(m) - 1 ? 2 * m.layers[stage] : m.layers[stage];
}

/**
 * Training FLOPs per byte for a batch of B rows of S bytes whose stages had `positions[i]` real positions in
 * total (positions[0] = B * S).
 */
export function flopsPerByte(m: ModelConfig, positions: readonly number[], B: number): number {
  const N = weightsPerPosition(m);
  const bytes = positions[0];
  if (!(bytes > 0)) return 0;
  let total = 0;
  for (let i = 0; i < numStages(m); i++) {
    const p = positions[i] ?? 0;
    if (p === 0) continue;
    const s = p / B;
    const win = windowOf(m, i);
    const w = win > 0 ? Math.min(win, s) : s;
    const ctx = (w * (2 * s - w)) / s;
    total += (6 * N[i] + 6 * m.dimensions[i] * layerCount(m, i) * ctx) * p;
  }
  return total / bytes;
}

/**
 * Training FLOPs per token of a plain token-level transformer (one stage, any vocabulary: the BPE baseline)
 * over rows of S tokens: the same formula with k = 1.
 */
export function flopsPerToken(m: ModelConfig, S: number): number {
  if (numStages(m) !== 1) throw new Error("flopsPerToken: a one-stage model is expected");
  return flopsPerByte(m, [S], 1);
}

/**
 * Real positions per stage over rows of S bytes with the given level masks (one [S] mask per row), pooled
 * exactly as training pools them (caps included), so that k_i = positions[0] / positions[i] is measured.
 */
export function measurePositions(
  m: ModelConfig,
  masks: Iterable<Int32Array>,
  S: number,
): { rows: number; positions: number[] } {
  const n = numStages(m);
  const positions = new Array<number>(n).fill(0);
  let rows = 0;
  for (const mask of masks) {
    if (mask.length !== S) throw new Error(`measurePositions: a mask of ${mask.length} for rows of ${S}`);
    rows++;
    positions[0] += S;
    computePools(mask, 1, S, m.max_seqlens, n - 1, false).forEach((p, i) => (positions[i + 1] += p.nsel[0]));
  }
  return { rows, positions };
}

/** Model FLOPs utilisation: achieved model FLOP/s over the peak of `cores` cores. */
export function mfu(flopsPerByteValue: number, bytesPerSecond: number, cores: number): number {
  return (flopsPerByteValue * bytesPerSecond) / (PEAK_FLOPS_PER_CORE * cores);
}
