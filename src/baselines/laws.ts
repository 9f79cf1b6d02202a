// The paper's hyper-parameter laws (spec section 9), as functions of the training compute C in FLOPs:
//   AU-Net (bytes): LR = 6.6 C^-0.176,  batch = 0.66 C^0.321 bytes
//   BPE (tokens):   LR = 19.3 C^-0.177, batch = 29.9 C^0.231 tokens
// They were fitted on runs of roughly 1e19 FLOPs and more. Extrapolated to the 1e11..1e14 FLOPs a CPU can
// spend, they ask for learning rates of 0.03..0.3, where AdamW on these small models diverges, and (for BPE)
// for batches so large that a run would take only a few dozen steps. So the defaults clamp them: the learning
// rate to [LR_MIN, LR_MAX], and the batch to at most 1/MIN_STEPS of the run's data, so that every run takes at
// least MIN_STEPS optimizer steps. Both the raw law and the clamped value are reported, never silently mixed.

export type LawFamily = "aunet" | "bpe";

export const LAWS: Record<LawFamily, { lr: [number, number]; batch: [number, number]; unit: string }> = {
  aunet: { lr: [6.6, -0.176], batch: [0.66, 0.321], unit: "bytes" },
  bpe: { lr: [19.3, -0.177], batch: [29.9, 0.231], unit: "tokens" },
};

export const LR_MIN = 1e-4;
export const LR_MAX = 1e-2;
export const MIN_STEPS = 200;

export function lawLr(family: LawFamily, flops: number): number {
  const [a, e] = LAWS[family].lr;
  return a * Math.pow(flops, e);
}

/** Batch per optimizer step, in bytes (AU-Net) or tokens (BPE). */
export function lawBatch(family: LawFamily, flops: number): number {
  const [a, e] = LAWS[family].batch;
  return a * Math.pow(flops, e);
}

export interface LawDefaults {
  lr: number;
  /** Batch in the family's unit (bytes or tokens) after clamping. */
  batch: number;
  rawLr: number;
  rawBatch: number;
  lrClamped: boolean;
  batchClamped: boolean;
}

/**
 * Learning rate and batch for a run of `flops` FLOPs whose model costs `flopsPerUnit` per byte (AU-Net family)
 * or per token (BPE family).
 */
export function lawDefaults(family: LawFamily, flops: number, flopsPerUnit: number): LawDefaults {
  if (!(flops > 0) || !(flopsPerUnit > 0)) throw new Error("lawDefaults: positive FLOPs expected");
  const rawLr = lawLr(family, flops);
  const rawBatch = lawBatch(family, flops);
  const lr = Math.min(LR_MAX, Math.max(LR_MIN, rawLr));
  const batch = Math.min(rawBatch, flops / flopsPerUnit / MIN_STEPS);
  return { lr, batch, rawLr, rawBatch, lrClamped: lr !== rawLr, batchClamped: batch !== rawBatch };
}
