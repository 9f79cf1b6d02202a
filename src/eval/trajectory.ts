// Replays a fixture's trajectory/ (see shared/fixtures/README.md): several optimizer steps of the official
// training loop (apps/aunet/train.py: loss / grad_acc_steps, backward per micro-batch, clip_grad_norm_, AdamW,
// LambdaLR schedule) from the fixture's weights, with our optimiser and schedule, and compares every
// micro-batch's loss, every step's learning rate and gradient norm, the final weights and (where the file holds
// them) the AdamW moments.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";
import { readJsonFile } from "../io/model-dir.js";
import { readSafetensors, type SafetensorsFile } from "../io/safetensors.js";
import { SCHEDULERS, type SchedulerName } from "../io/lingua-args.js";
import type { AUNet } from "../model/aunet.js";
import type { Backend } from "../engine/backend.js";
import { AdamW, type AdamWConfig } from "../train/optimizer.js";
import { relErr } from "../util/compare.js";
import { lrAt, type ScheduleConfig } from "../train/schedule.js";
import { readStepValues, trainStep } from "../train/step.js";

/**
 * Pass thresholds of a replay: about 10 times the worst error measured on the three official trajectories
 * with the reference backend and the native one (generic, AVX2 and AVX-512 kernels; 1, 2 and 16 threads):
 * - loss of every micro-batch: worst 1.8e-7 relative (the issue asks for 1e-4 at most);
 * - gradient norm before clipping: worst 9.7e-7 relative;
 * - learning rate: computed in float64 on both sides, measured 0; bound 1e-12;
 * - final weights, error relative to each tensor's largest |value|: worst 1.1e-5 (native, 2stage_sliding_code).
 *   The slips this must catch move them far more: no clipping 5.3e-2, another schedule 8.2e-3, weight decay
 *   off 1.4e-3 (test/model.test.ts);
 * - AdamW moments (full fixture set only), same measure: worst 3.2e-6.
 */
export const TRAJECTORY_TOLERANCE = {
  lossRel: 2e-6,
  gradNormRel: 1e-5,
  lrAbs: 1e-12,
  finalWeightsRel: 1e-4,
  momentsRel: 3e-5,
} as const;

export interface TrajectoryReport {
  /** Optimizer steps replayed. */
  steps: number;
  microBatches: number;
  gradAccSteps: number;
  lossMaxRelErr: number;
  gradNormMaxRelErr: number;
  lrMaxAbsErr: number;
  finalWeightsMaxRelErr: number;
  worstWeight: string;
  /** Null where trajectory.safetensors holds no AdamW moments (the in-repo subset). */
  momentsMaxRelErr: number | null;
  tolerance: typeof TRAJECTORY_TOLERANCE;
  pass: boolean;
}

interface TrajectoryMeta {
  optim: {
    lr: number;
    weight_decay: number;
    epsilon: number;
    beta1: number;
    beta2: number;
    clip: number;
    scheduler: string;
    warmup: number;
    lr_min_ratio: number;
    cycle_length?: number;
    cosine_theta?: number;
  };
  steps: number;
  grad_acc_steps: number;
  batch_size: number;
  seq_len: number;
  micro_batches: { step: number; micro: number; rows: [number, number]; loss: number }[];
  optimizer_steps: { step: number; lr: number; grad_norm_before_clip: number }[];
}

export interface MicroBatch {
  tokens: Int32Array;
  levelMask: Int32Array;
  targets: Int32Array;
}

/**
 * One optimizer step as the official loop takes it, through the project's one training step (trainStep):
 * backward of loss / acc for every micro-batch (so the accumulated gradient is the mean), the global norm,
 * clipping, one AdamW update at `lr`, gradients zeroed; then its values read back for comparison.
 */
export async function replayStep(
  model: AUNet,
  opt: AdamW,
  batches: readonly MicroBatch[],
  B: number,
  S: number,
  lr: number,
): Promise<{ losses: number[]; gradNorm: number }> {
  let next = 0;
  const values = await trainStep<MicroBatch>(
    {
      model: {
        loss: (mb) => model.loss(mb.tokens, mb.levelMask, mb.targets, B, S).loss,
        zeroGrad: () => model.zeroGrad(),
      },
      optimizer: opt,
      gradAcc: batches.length,
      nextBatch: async () => batches[next++],
    },
    lr,
  );
  const r = await readStepValues(values);
  return { losses: r.microLosses, gradNorm: r.gradNorm };
}

function rowsOf(st: SafetensorsFile, name: string, from: number, to: number, S: number): Int32Array {
  const all = st.getInt32(name);
  if (all.length < to * S) throw new UserError(`trajectory.safetensors: ${name} has fewer than ${to} rows`);
  return all.slice(from * S, to * S);
}

function readMeta(dir: string): TrajectoryMeta {
  const meta = readJsonFile(join(dir, "trajectory.json")) as TrajectoryMeta;
  const o = meta?.optim;
  if (!o || !Array.isArray(meta.micro_batches) || !Array.isArray(meta.optimizer_steps))
    throw new UserError(`${dir}/trajectory.json: optim, micro_batches and optimizer_steps are required`);
  if (!SCHEDULERS.includes(o.scheduler as SchedulerName))
    throw new UserError(`${dir}/trajectory.json: unknown scheduler ${JSON.stringify(o.scheduler)}`);
  for (const k of ["steps", "grad_acc_steps", "batch_size", "seq_len"] as const)
    if (!Number.isSafeInteger(meta[k]) || meta[k] < 1)
      throw new UserError(`${dir}/trajectory.json: ${k} must be a positive integer`);
  if (meta.micro_batches.length !== meta.optimizer_steps.length * meta.grad_acc_steps)
    throw new UserError(`${dir}/trajectory.json: micro_batches must be optimizer_steps x grad_acc_steps`);
  return meta;
}

/** Replays `dir` (a fixture's trajectory/ folder) on `model`, whose weights must be the fixture's. */
export async function checkTrajectory(
  model: AUNet,
  backend: Backend,
  dir: string,
): Promise<TrajectoryReport> {
  if (!existsSync(join(dir, "trajectory.safetensors")))
    throw new UserError(`${dir}: trajectory.safetensors is missing`);
  const meta = readMeta(dir);
  const st = readSafetensors(join(dir, "trajectory.safetensors"));
  const o = meta.optim;
  const adamw: AdamWConfig = {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.epsilon,
    weightDecay: o.weight_decay,
    clip: o.clip,
  };
  const schedule: ScheduleConfig = {
    scheduler: o.scheduler as SchedulerName,
    warmup: o.warmup,
    steps: meta.steps,
    lrMinRatio: o.lr_min_ratio,
    cycleLength: o.cycle_length ?? 1,
    cosineTheta: o.cosine_theta ?? 1,
  };
  const B = meta.batch_size,
    S = meta.seq_len,
    acc = meta.grad_acc_steps;
  const opt = new AdamW(model.params, backend, adamw);
  model.zeroGrad();

  let lossMaxRelErr = 0,
    gradNormMaxRelErr = 0,
    lrMaxAbsErr = 0;
  const worse = (m: number, e: number) => (e <= m ? m : Number.isNaN(e) ? Infinity : e);
  for (const [s, want] of meta.optimizer_steps.entries()) {
    const micro = meta.micro_batches.slice(s * acc, (s + 1) * acc);
    const batches = micro.map(({ rows: [from, to] }) => {
      if (to - from !== B) throw new UserError(`${dir}/trajectory.json: a micro-batch of ${to - from} rows`);
      return {
        tokens: rowsOf(st, "input_ids", from, to, S),
        levelMask: rowsOf(st, "level_mask", from, to, S),
        targets: rowsOf(st, "labels", from, to, S),
      };
    });
    const lr = lrAt(s + 1, o.lr, schedule);
    lrMaxAbsErr = worse(lrMaxAbsErr, Math.abs(lr - want.lr));
    const r = await replayStep(model, opt, batches, B, S, lr);
    r.losses.forEach((l, i) => {
      lossMaxRelErr = worse(lossMaxRelErr, Math.abs(l - micro[i].loss) / Math.abs(micro[i].loss));
    });
    const gn = want.grad_norm_before_clip;
    gradNormMaxRelErr = worse(gradNormMaxRelErr, Math.abs(r.gradNorm - gn) / gn);
  }

  let finalWeightsMaxRelErr = 0,
    worstWeight = "";
  for (const [name, p] of model.params) {
    if (!st.has(`final.${name}`)) throw new UserError(`${dir}/trajectory.safetensors has no final.${name}`);
    const e = relErr(p.toFloat32(), st.getFloat32(`final.${name}`));
    if (!(e <= finalWeightsMaxRelErr)) {
      finalWeightsMaxRelErr = Number.isNaN(e) ? Infinity : e;
      worstWeight = name;
    }
  }
  let momentsMaxRelErr: number | null = null;
  const { m, v } = opt.stateDict();
  for (const [prefix, moments] of [
    ["exp_avg", m],
    ["exp_avg_sq", v],
  ] as const)
    for (const [name, got] of moments) {
      if (!st.has(`${prefix}.${name}`)) continue;
      momentsMaxRelErr = worse(momentsMaxRelErr ?? 0, relErr(got, st.getFloat32(`${prefix}.${name}`)));
    }

  const T = TRAJECTORY_TOLERANCE;
  return {
    steps: meta.optimizer_steps.length,
    microBatches: meta.micro_batches.length,
    gradAccSteps: acc,
    lossMaxRelErr,
    gradNormMaxRelErr,
    lrMaxAbsErr,
    finalWeightsMaxRelErr,
    worstWeight,
    momentsMaxRelErr,
    tolerance: T,
    pass:
      lossMaxRelErr <= T.lossRel &&
      gradNormMaxRelErr <= T.gradNormRel &&
      lrMaxAbsErr <= T.lrAbs &&
      finalWeightsMaxRelErr <= T.finalWeightsRel &&
      (momentsMaxRelErr === null || momentsMaxRelErr <= T.momentsRel),
  };
}
