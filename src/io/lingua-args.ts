// lingua's optimiser arguments (`OptimArgs` of lingua/optim.py) and their defaults. They live beside the
// checkpoint formats because a lingua `params.json` carries them; the trainer and the converter both read them.

export type SchedulerName = "cosine" | "linear" | "constant";
export const SCHEDULERS: readonly SchedulerName[] = ["cosine", "linear", "constant"];

export interface OptimArgs {
  lr: number;
  weight_decay: number;
  epsilon: number;
  beta1: number;
  beta2: number;
  clip: number;
  scheduler: SchedulerName;
  warmup: number;
  lr_min_ratio: number;
  cycle_length: number;
  cosine_theta: number;
}

/** lingua's OptimArgs defaults. */
export const OPTIM_DEFAULTS: OptimArgs = {
  lr: 3e-4,
  weight_decay: 0.1,
  epsilon: 1e-8,
  beta1: 0.9,
  beta2: 0.95,
  clip: 1.0,
  scheduler: "cosine",
  warmup: 2000,
  lr_min_ratio: 0.1,
  cycle_length: 1.0,
  cosine_theta: 1.0,
};
