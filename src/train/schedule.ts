// Learning-rate schedules with the official semantics (lingua/optim.py, driven by torch's LambdaLR).
//
// LambdaLR evaluates the factor at the number of optimizer steps already taken, so the first update uses
// factor(0) = 0 ("linear warmup from 0"), update number s (1-based) uses factor(s - 1), and the factor reaches 1
// exactly at update warmup + 1. After warmup the cosine goes from 1 down to lr_min_ratio at `steps`.

import type { SchedulerName } from "../io/lingua-args.js";
export { SCHEDULERS, type SchedulerName } from "../io/lingua-args.js";

export interface ScheduleConfig {
  scheduler: SchedulerName;
  warmup: number;
  /** Total number of optimizer steps the schedule spans (lingua's n_steps = args.steps). */
  steps: number;
  lrMinRatio: number;
  /** lingua's cycle_length and cosine_theta (1 and 1 in every official config). */
  cycleLength: number;
  cosineTheta: number;
}

/** lingua's lr_fn(step): the multiplier of the base lr after `step` optimizer steps. */
export function lrFactor(step: number, c: ScheduleConfig): number {
  if (c.scheduler === "constant") return 1;
  if (step < c.warmup) return step / c.warmup;
  if (step > c.steps) return c.lrMinRatio;
  // lingua divides by (n_steps - warmup); guard the degenerate warmup == steps (it would divide 0 by 0).
  const s = (step - c.warmup) / Math.max(1, c.steps - c.warmup);
  if (c.scheduler === "linear") return s * c.lrMinRatio + (1 - s);
  const sign = Math.floor(step / (c.steps * c.cycleLength)) % 2 === 0 ? 1 : -1;
  return (
    c.lrMinRatio +
    0.5 * (1 - c.lrMinRatio) * (sign * Math.cos((Math.PI * Math.pow(s, c.cosineTheta)) / c.cycleLength) + 1)
  );
}

/** The learning rate of optimizer update number `update` (1-based), as LambdaLR applies it. */
export function lrAt(update: number, baseLr: number, c: ScheduleConfig): number {
  return baseLr * lrFactor(update - 1, c);
}
