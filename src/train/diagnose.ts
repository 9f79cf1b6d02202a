// What to tell the user when a step's loss or gradient norm is not finite. "Lower the learning rate" is right
// only for a run that was training and then diverged; a loss that is already non-finite on the session's first
// step comes from the starting point (weights that are not finite) or from a model config whose arithmetic
// overflows (a rope_theta that makes the rotary angles infinite, a norm_eps of 0 on a zero vector), and no
// learning rate will fix those.

import { UserError } from "../util/errors.js";
import type { ModelConfig } from "../model/config.js";

export interface NonFinite {
  step: number;
  loss: number;
  gradNorm: number;
}

export interface DivergenceContext {
  /** The first step of this session (the first update after the starting weights). */
  firstStep: number;
  /** Whether every starting weight was finite (checked when the session began). */
  startFinite: boolean;
  /** Where the weights came from: "initialisation", a checkpoint directory, an --init directory. */
  startedFrom: string;
  model: ModelConfig;
  lastCheckpoint: string;
}

export function divergenceError(at: NonFinite, c: DivergenceContext): UserError {
  const what = `step ${at.step}: loss ${at.loss}, gradient norm ${at.gradNorm}`;
  const last = `the last checkpoint is ${c.lastCheckpoint || "none"}`;
  if (!c.startFinite)
    return new UserError(
      `non-finite values at ${what}: the starting weights (${c.startedFrom}) are not finite; ${last}`,
    );
  if (at.step === c.firstStep) {
    const b = c.model.block;
    return new UserError(
      `non-finite values at ${what}, from finite weights (${c.startedFrom}) before any update of this run could matter: the model config's arithmetic overflows, not the learning rate (check model.block.rope_theta ${b.rope_theta}, model.block.norm_eps ${b.norm_eps}, model.norm_eps ${c.model.norm_eps}, lambda_level ${c.model.lambda_level})`,
    );
  }
  return new UserError(`training diverged at ${what}; ${last}; try a lower --lr (or a smaller --clip)`);
}

/** True when every value of every array is finite. */
export function allFinite(arrays: Iterable<Float32Array>): boolean {
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}
