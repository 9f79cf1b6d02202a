// Pooling bookkeeping (spec section 7, steps 2, 3 and 5): which positions of stage i are pooled into stage i+1,
// in which order, and, on the way back up, which coarse slot and which offset each fine position reads.
// Pure integer work on host arrays, shared by training and generation.

/** Upsampling offsets are taken modulo this (the official `max_pos`). */
export const MAX_POS = 16;

export interface PoolLevel {
  /** Stage-i sequence length (per batch row). */
  lenIn: number;
  /** Stage-(i+1) sequence length: real slots first, then filler. */
  lenOut: number;
  /** [B, lenIn]: 1 where the stage-i position is pooled into stage i+1 (left-aligned stage-i coordinates). */
  compact: Int32Array;
  /** [B, lenOut]: the stage-i position gathered into each stage-(i+1) slot (selected first, then filler). */
  idx: Int32Array;
  /** [B]: number of real (selected) slots per row. */
  nsel: Int32Array;
  /** [B, lenIn]: the most recent slot at or before each stage-i position. */
  rep: Int32Array;
  /** [B, lenIn]: offset of each stage-i position from its slot's boundary, modulo MAX_POS. */
  pos: Int32Array;
}

/**
 * Compute every pooling level for a batch of level masks [B, S].
 *
 * caps = max_seqlens; padToCap pads each pooled sequence to exactly its cap (the official fixed shapes);
 * otherwise to the longest real sequence in the batch, which gives identical results at every real position
 * because filler slots only ever come after the real ones and attention is causal.
 */
export function computePools(
  levelMask: Int32Array,
  B: number,
  S: number,
  caps: readonly number[],
  nLevels: number,
  padToCap: boolean,
): PoolLevel[] {
  const lm = Int32Array.from(levelMask);
  for (let b = 0; b < B; b++) lm[b * S] = nLevels; // force_first: every row starts at a top-level boundary
  const remaining = new Uint8Array(B * S).fill(1);
  const levels: PoolLevel[] = [];
  let lenIn = S;
  for (let i = 0; i < nLevels; i++) {
    const cap = caps[i + 1];
    const compact = new Int32Array(B * lenIn);
    const nsel = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      // The cap counts boundaries in byte coordinates, including those an earlier cap already dropped.
      let seen = 0;
      let slot = 0;
      for (let s = 0; s < S; s++) {
        let sel = lm[b * S + s] > i;
        if (sel) {
          seen++;
          if (seen > cap) sel = false;
        }
        if (remaining[b * S + s]) {
          if (slot < lenIn && sel) {
            compact[b * lenIn + slot] = 1;
            nsel[b]++;
          }
          slot++;
        }
        if (!sel) remaining[b * S + s] = 0;
      }
    }
    let lenOut: number;
    if (padToCap) lenOut = Math.min(cap, lenIn);
    else {
      lenOut = 1;
      for (let b = 0; b < B; b++) lenOut = Math.max(lenOut, nsel[b]);
    }
    const idx = new Int32Array(B * lenOut);
    const rep = new Int32Array(B * lenIn);
    const pos = new Int32Array(B * lenIn);
    for (let b = 0; b < B; b++) {
      let k = 0;
      for (let t = 0; t < lenIn && k < lenOut; t++) if (compact[b * lenIn + t]) idx[b * lenOut + k++] = t;
      for (let t = 0; t < lenIn && k < lenOut; t++) if (!compact[b * lenIn + t]) idx[b * lenOut + k++] = t;
      // Official: repeat_idx = cumsum(compact) - cumsum(compact)[0].
      let c = 0;
      const c0 = compact[b * lenIn];
      for (let t = 0; t < lenIn; t++) {
        c += compact[b * lenIn + t];
        const r = c - c0;
        rep[b * lenIn + t] = r;
        const off = t - idx[b * lenOut + r];
        pos[b * lenIn + t] = ((off % MAX_POS) + MAX_POS) % MAX_POS;
      }
    }
    levels.push({ lenIn, lenOut, compact, idx, nsel, rep, pos });
    lenIn = lenOut;
  }
  return levels;
}

/** Row indices into a [B * lenIn] flattening for per-row indices [B, k] in [0, lenIn). */
export function flattenRows(ix: Int32Array, B: number, lenIn: number): Int32Array {
  const k = ix.length / B;
  const out = new Int32Array(ix.length);
  for (let b = 0; b < B; b++) for (let j = 0; j < k; j++) out[b * k + j] = b * lenIn + ix[b * k + j];
  return out;
}
