// The training loop: data -> AU-Net loss -> backward (with gradient accumulation) -> global-norm clipping ->
// AdamW at the scheduled learning rate, with periodic validation, metrics, atomic checkpoints and exact resume.
//
// Exact resume: a checkpoint holds the weights, both AdamW moments and the step (F32, bit for bit), and the data
// loader's position (which is also its random state, see data/loader.ts). Given the same config, data and
// backend, training N steps straight and N/2 + resume + N/2 produce identical weights; the resume test checks it
// on the reference backend. Everything that does not feed the weights (validation, metrics, checkpoint timing)
// is kept out of that path.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../util/errors.js";
import type { Backend } from "../engine/backend.js";
import { backward, clearTape, scoped } from "../engine/tensor.js";
import * as op from "../engine/ops.js";
import { defaultBackend } from "../backends/index.js";
import { AUNet } from "../model/aunet.js";
import { countParams } from "../model/config.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { DataStats, discoverSources, type SourceFile } from "../data/sources.js";
import { collectDocs, TrainLoader } from "../data/loader.js";
import type { PackedDoc } from "../data/packing.js";
import { AdamW } from "./optimizer.js";
import { lrAt, type ScheduleConfig } from "./schedule.js";
import {
  configMismatch,
  listCheckpoints,
  loadCheckpoint,
  loadLatest,
  resolveCheckpointDir,
  saveCheckpoint,
  type LoaderFingerprint,
  type TrainState,
} from "./checkpoint.js";
import { toParamsJson, type RunConfig } from "./run-config.js";
import { evaluateList, EvalAccumulator, type EvalResult } from "./evaluate.js";
import { flopsPerByte, mfu } from "./flops.js";
import { Progress, formatDuration, formatRate, type ProgressSink } from "./progress.js";
import { renderChart, smooth } from "./plot.js";

export interface TrainOptions {
  config: RunConfig;
  /** Training sources (files or directories). */
  data: string[];
  /** Explicit validation sources; without them a hash-held-out fraction of the training documents is used. */
  val?: string[];
  /** Run directory: checkpoints/, metrics.jsonl, curve.svg, params.json. */
  out: string;
  /** Continue from the latest checkpoint in `out`. */
  resume?: boolean;
  /**
   * Start from the weights of any model directory (a checkpoint, a run, a fixture, a converted model) with a
   * fresh optimizer and schedule; its config must match.
   */
  init?: string;
  /** Stop the loop (and checkpoint) once this many seconds of this session have passed. */
  timeLimitSec?: number;
  /** Stop (and checkpoint) after this many steps in total, leaving the schedule as `config.steps` defines it. */
  stopAfter?: number;
  /**
   * Fit the schedule to the time limit: after a few steps the step time is measured and `steps` is set so that
   * the cosine ends when the time is up (recorded in the checkpoint; a resume keeps it). Not reproducible
   * across machines by nature; for demos.
   */
  autoSteps?: boolean;
  backend?: Backend;
  /** Where progress goes (default stderr); `quiet` silences it. */
  sink?: ProgressSink;
  quiet?: boolean;
  /** Stop gracefully (checkpoint, summary) on SIGINT/SIGTERM. The CLI sets this; tests do not. */
  handleSignals?: boolean;
}

export interface ValPoint {
  step: number;
  bpb: number;
}

export interface TrainSummary {
  step: number;
  steps: number;
  stoppedBy: "steps" | "time" | "stop-after" | "signal";
  /** Bytes (input positions) trained on in this session and in total. */
  sessionBytes: number;
  totalBytes: number;
  trainSeconds: number;
  bytesPerSec: number;
  finalLoss: number;
  finalBpb: number;
  val: ValPoint[];
  checkpoint: string;
  metricsPath: string;
  curvePath: string;
  params: number;
  backend: string;
  finalVal: EvalResult | null;
}

interface MetricRecord {
  kind: "train" | "val";
  step: number;
  [k: string]: unknown;
}

// Steps 2..CALIBRATION_STEPS time the step (step 1 pays for JIT compilation) when autoSteps fits the schedule.
const CALIBRATION_STEPS = 4;
// Periodic validations of an autoSteps run that sets no validation interval.
const AUTO_VALIDATIONS = 4;

function sameSources(a: readonly { path: string; size: number }[], b: readonly SourceFile[]): string | null {
  if (a.length !== b.length)
    return `the checkpoint was trained on ${a.length} file(s), this run has ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (path.resolve(a[i].path) !== path.resolve(b[i].path))
      return `file ${i + 1} was ${a[i].path}, now ${b[i].path}`;
    if (a[i].size !== b[i].size) return `${b[i].path} changed size (${a[i].size} -> ${b[i].size} bytes)`;
  }
  return null;
}

function readMetrics(file: string): MetricRecord[] {
  if (!fs.existsSync(file)) return [];
  const out: MetricRecord[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as MetricRecord;
      if (typeof r.step === "number") out.push(r);
    } catch {
      // a line torn by a kill: ignore it
    }
  }
  return out;
}

/** The loss/bpb curve of a run directory's metrics.jsonl as an SVG chart. */
export function curveSvg(records: readonly MetricRecord[], title: string): string {
  const train = records
    .filter((r) => r.kind === "train" && typeof r.bpb === "number")
    .map((r) => [r.step, r.bpb as number] as const);
  const val = records
    .filter((r) => r.kind === "val" && typeof r.bpb === "number")
    .map((r) => [r.step, r.bpb as number] as const);
  const last = val.length ? val[val.length - 1][1] : train.length ? train[train.length - 1][1] : NaN;
  return renderChart(
    [
      { name: "train bpb (per step)", points: train, color: "#9ecae1", width: 1 },
      { name: "train bpb (smoothed)", points: smooth(train, 0.1), color: "#08519c", width: 2 },
      { name: "validation bpb", points: val, color: "#d94801", dots: true, width: 2 },
    ],
    {
      title,
      subtitle: `bits per byte (8 = uniform over 256 bytes); latest ${val.length ? "validation" : "train"} ${last.toFixed(3)}`,
      xLabel: "optimizer step",
      yLabel: "bits per byte",
      yMin: 0,
    },
  );
}

export async function train(opts: TrainOptions): Promise<TrainSummary> {
  const cfg = opts.config;
  const m = cfg.aunet.model;
  const S = cfg.aunet.seqLen;
  const B = cfg.batchSize;
  const acc = cfg.grad_acc_steps;
  const backend = opts.backend ?? defaultBackend();
  const progress = new Progress(opts.sink ?? process.stderr, cfg.logging.freq, opts.quiet === true);
  const say = (s: string) => progress.line(s);

  fs.mkdirSync(opts.out, { recursive: true });
  const stats = new DataStats();
  const files = discoverSources(opts.data, stats, "--data");
  const valFiles = opts.val && opts.val.length > 0 ? discoverSources(opts.val, stats, "--val") : null;
  const totalSize = files.reduce((s, f) => s + f.size, 0);
  say(
    `data: ${files.length} file(s), ${(totalSize / 1e6).toFixed(2)} MB${valFiles ? `; validation: ${valFiles.map((f) => f.path).join(", ")}` : ""}`,
  );
  for (const l of stats.describe()) say(`data: ${l}`);

  const loaderFingerprint: LoaderFingerprint = {
    seed: cfg.seed,
    docBytes: cfg.docBytes,
    shuffleWindow: cfg.shuffleWindow,
    valFraction: valFiles ? 0 : cfg.validation.fraction,
  };

  // ---- resume or start fresh ----
  const existing = listCheckpoints(opts.out);
  if (!opts.resume && existing.length > 0)
    throw new UserError(
      `${opts.out} already holds checkpoints (latest step ${existing[existing.length - 1].step}); pass --resume to continue it or choose another --out`,
    );
  const ck = opts.resume ? loadLatest(opts.out, say) : null;
  if (opts.resume && !ck) say(`--resume: no checkpoint in ${opts.out} yet, starting from scratch`);
  let steps = cfg.steps;
  let state: TrainState | null = null;
  if (ck) {
    const diff = configMismatch(ck.config, cfg.aunet);
    if (diff.length > 0)
      throw new UserError(
        `the checkpoint ${ck.dir} was trained with a different model config; refusing to resume (${diff.slice(0, 3).join("; ")}${diff.length > 3 ? "; ..." : ""})`,
      );
    state = ck.state!;
    const srcDiff = sameSources(state.sources, files);
    if (srcDiff)
      throw new UserError(
        `cannot resume ${ck.dir}: the training data differs (${srcDiff}); resume with the same --data`,
      );
    if (state.loader) {
      const now = loaderFingerprint;
      const was = state.loader;
      const changed = (Object.keys(now) as (keyof LoaderFingerprint)[]).filter((k) => now[k] !== was[k]);
      if (changed.length > 0)
        throw new UserError(
          `cannot resume ${ck.dir}: the data stream differs (${changed.map((k) => `${k} ${was[k]} -> ${now[k]}`).join(", ")}), so its saved position would point elsewhere; resume with the same settings`,
        );
    }
    const ckSteps = typeof ck.raw.steps === "number" ? ck.raw.steps : steps;
    if (opts.autoSteps) steps = ckSteps;
    else if (ckSteps !== steps)
      say(
        `note: the checkpoint's schedule spans ${ckSteps} steps, this run ${steps}: the learning rate follows ${steps}`,
      );
    say(`resuming from ${ck.dir} (step ${state.step})`);
  }
  const effective: RunConfig = { ...cfg, steps };

  let initWeights = ck?.weights;
  if (opts.init && !ck) {
    const src = loadCheckpoint(resolveCheckpointDir(opts.init));
    const diff = configMismatch(src.config, cfg.aunet);
    if (diff.length > 0)
      throw new UserError(`--init ${src.dir} has a different model config (${diff.slice(0, 3).join("; ")})`);
    initWeights = src.weights;
    say(`initialised from ${src.dir}`);
  }
  const model = new AUNet(m, backend, initWeights);
  const opt = new AdamW(model.params, backend, {
    beta1: cfg.optim.beta1,
    beta2: cfg.optim.beta2,
    eps: cfg.optim.epsilon,
    weightDecay: cfg.optim.weight_decay,
    clip: cfg.optim.clip,
  });
  if (ck && state) opt.loadStateDict(state.step, ck.optim!.m, ck.optim!.v);
  const shapes = new Map<string, readonly number[]>();
  for (const [k, t] of model.params) shapes.set(k, t.shape);
  const nParams = countParams(m).total;

  const loader = new TrainLoader(files, S, { ...loaderFingerprint, strategy: cfg.aunet.strategy, stats });
  if (state?.data) await loader.restore(state.data);

  // ---- validation set ----
  let valDocs: PackedDoc[] = [];
  let valBytes = 0;
  if (valFiles || cfg.validation.fraction > 0) {
    const v = await collectDocs(valFiles ?? files, cfg.aunet.strategy, {
      docBytes: cfg.docBytes,
      // Held out of the training files: their bad lines are already counted by the training stream.
      stats: valFiles ? stats : new DataStats(),
      heldOut: valFiles ? null : cfg.validation.fraction,
      maxBytes: cfg.validation.maxBytes,
    });
    valDocs = v.docs;
    valBytes = v.bytes;
    if (valDocs.length === 0) say("validation: no held-out documents found; validation is skipped");
    else
      say(
        `validation: ${valDocs.length} document(s), ${valBytes} bytes${valFiles ? "" : ` (held out by hash, fraction ${cfg.validation.fraction})`}`,
      );
  }

  // ---- run records ----
  const metricsPath = path.join(opts.out, "metrics.jsonl");
  const curvePath = path.join(opts.out, "curve.svg");
  const startStep = state?.step ?? 0;
  const kept = ck ? readMetrics(metricsPath).filter((r) => r.step <= startStep) : [];
  // A resumed run rewrites history past the checkpoint (a crash may have logged steps that are now redone).
  writeFileAtomic(metricsPath, kept.map((r) => JSON.stringify(r) + "\n").join(""));
  writeJsonAtomic(path.join(opts.out, "params.json"), toParamsJson(effective));
  const valHistory: ValPoint[] = kept
    .filter((r) => r.kind === "val")
    .map((r) => ({ step: r.step, bpb: r.bpb as number }));
  const logRecord = (r: MetricRecord) => fs.appendFileSync(metricsPath, JSON.stringify(r) + "\n");

  say(
    `model: ${m.dimensions.length} stage(s), dims [${m.dimensions}], layers [${m.layers}], ${(nParams / 1e6).toFixed(2)}M parameters; batch ${B}x${S} bytes${acc > 1 ? ` x${acc} accumulation` : ""}; backend ${backend.name}`,
  );

  let step = startStep;
  let totalBytes = typeof state?.metrics.bytes_seen === "number" ? state.metrics.bytes_seen : 0;
  const sessionStart = performance.now();
  const elapsed = () => (performance.now() - sessionStart) / 1000;
  let trainSeconds = 0;
  let sessionBytes = 0;
  let lastLoss = NaN,
    lastBpb = NaN;
  let emaBpb = NaN;
  let lastVal: number | null = valHistory.length ? valHistory[valHistory.length - 1].bpb : null;
  let valEvery = cfg.validation.every;
  let valSeconds = 0;
  let lastValStep = -1;
  let lastValResult: EvalResult | null = null;
  let lastSaved = ck ? ck.dir : "";
  let lastSavedStep = ck ? startStep : -1;
  const cores = os.availableParallelism();

  const validate = async (): Promise<EvalResult | null> => {
    if (valDocs.length === 0) return null;
    const t0 = performance.now();
    const r = await evaluateList(model, valDocs, B, S);
    valSeconds = (performance.now() - t0) / 1000;
    lastVal = r.bitsPerByte;
    lastValStep = step;
    lastValResult = r;
    valHistory.push({ step, bpb: r.bitsPerByte });
    logRecord({
      kind: "val",
      step,
      loss: r.loss,
      bpb: r.bitsPerByte,
      bits_per_char: r.bitsPerChar,
      bytes: r.bytes,
      seconds: valSeconds,
    });
    say(
      `validation @ step ${step}: ${r.bitsPerByte.toFixed(4)} bits/byte (${r.bytes} bytes, ${valSeconds.toFixed(1)}s)`,
    );
    return r;
  };

  const save = (): string => {
    const { m: mm, v: vv } = opt.stateDict();
    const dir = saveCheckpoint(
      opts.out,
      {
        step,
        shapes,
        weights: model.stateDict(),
        m: mm,
        v: vv,
        params: toParamsJson(effective),
        state: {
          version: 1,
          step,
          data: loader.state(),
          sources: files.map((f) => ({ path: f.path, size: f.size })),
          loader: loaderFingerprint,
          rng: {
            seed: cfg.seed,
            derivation: "counter-based: (seed, epoch, file, window) -> shuffles; see data/loader.ts",
          },
          metrics: {
            loss: lastLoss,
            bpb: lastBpb,
            val_bpb: lastVal,
            bytes_seen: totalBytes,
            steps: effective.steps,
          },
        },
      },
      cfg.checkpoint.keep,
    );
    lastSaved = dir;
    lastSavedStep = step;
    return dir;
  };

  let stopSignal = false;
  const onSignal = () => {
    if (stopSignal) process.exit(130);
    stopSignal = true;
    say("stopping after this step (again to abort without saving)...");
  };
  if (opts.handleSignals) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }

  const sched = (): ScheduleConfig => ({
    scheduler: cfg.optim.scheduler,
    warmup: cfg.optim.warmup,
    steps: effective.steps,
    lrMinRatio: cfg.optim.lr_min_ratio,
    cycleLength: cfg.optim.cycle_length,
    cosineTheta: cfg.optim.cosine_theta,
  });

  let stoppedBy: TrainSummary["stoppedBy"] = "steps";
  let calibStart = 0;
  let nextFitAt = Infinity;
  // The validation interval follows the fitted schedule when the config left it to autoSteps.
  let autoVal = false;
  try {
    if (!ck) await validate();
    while (step < effective.steps) {
      if (opts.stopAfter !== undefined && step >= opts.stopAfter) {
        stoppedBy = "stop-after";
        break;
      }
      if (opts.timeLimitSec !== undefined && elapsed() >= opts.timeLimitSec) {
        stoppedBy = "time";
        break;
      }
      if (stopSignal) {
        stoppedBy = "signal";
        break;
      }
      const t0 = performance.now();
      if (step - startStep === 1) calibStart = t0;
      const evalAcc = new EvalAccumulator();
      let lossSum = 0;
      const positions = new Array<number>(m.dimensions.length).fill(0);
      for (let a = 0; a < acc; a++) {
        const batch = await loader.batch(B);
        // Everything the step allocates (activations, scratch) is released at the end of the scope, so a
        // backend with a memory pool reuses the same buffers every step; parameter gradients persist.
        const r = scoped(() => {
          try {
            const out = model.loss(batch.tokens, batch.mask, batch.targets, B, S);
            // lingua scales the loss so that the accumulated gradient is the mean over all micro-batches.
            backward(acc > 1 ? op.scale(out.loss, 1 / acc) : out.loss);
            return { loss: out.loss.item(), rowLoss: out.rowLoss.toFloat32(), pools: out.pools };
          } catch (e) {
            clearTape();
            throw e;
          }
        });
        lossSum += r.loss;
        evalAcc.add(r.rowLoss, batch.targets);
        positions[0] += B * S;
        r.pools.forEach((p, i) => {
          for (let b = 0; b < B; b++) positions[i + 1] += p.nsel[b];
        });
      }
      const loss = lossSum / acc;
      const lr = lrAt(step + 1, cfg.optim.lr, sched());
      const update = opt.update(lr);
      const gradNorm = update.gradNorm.item();
      const scale = update.clipScale.item();
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm))
        throw new UserError(
          `training diverged at step ${step + 1} (loss ${loss}, gradient norm ${gradNorm}); the last checkpoint is ${lastSaved || "none"}; try a lower --lr`,
        );
      model.zeroGrad();
      step++;

      const dt = (performance.now() - t0) / 1000;
      trainSeconds += dt;
      const bytes = B * S * acc;
      sessionBytes += bytes;
      totalBytes += bytes;
      const ev = evalAcc.result();
      lastLoss = loss;
      lastBpb = ev.bitsPerByte;
      emaBpb = Number.isNaN(emaBpb) ? lastBpb : 0.9 * emaBpb + 0.1 * lastBpb;
      const bps = bytes / dt;
      const fpb = flopsPerByte(m, positions, B * acc);
      logRecord({
        kind: "train",
        step,
        loss,
        bpb: ev.bitsPerByte,
        lr,
        grad_norm: gradNorm,
        clip_scale: scale,
        bytes_per_s: bps,
        flops_per_byte: fpb,
        mfu: mfu(fpb, bps, cores),
        positions,
        bytes_seen: totalBytes,
        seconds: dt,
      });

      if (opts.autoSteps && !ck && opts.timeLimitSec !== undefined) {
        const limit = opts.timeLimitSec;
        const done = step - startStep;
        const first = done === CALIBRATION_STEPS;
        if (first || (done > CALIBRATION_STEPS && elapsed() >= nextFitAt && elapsed() < 0.8 * limit)) {
          // Fit the schedule into the time left. Wall time per step since step 2 began covers everything the
          // loop does (validations included once they have happened); the first fit, before any periodic
          // validation, reserves room for them explicitly. Refitting while the run is young absorbs drifting
          // step times (other processes, allocator warm-up) with only small changes of the cosine.
          const perStep = (performance.now() - calibStart) / 1000 / (done - 1);
          const nVal = first && valEvery === 0 ? AUTO_VALIDATIONS : 0;
          const left = limit - elapsed() - (nVal + 1) * valSeconds - 2;
          effective.steps = Math.max(step + 1, step + Math.floor((0.97 * left) / perStep));
          if (autoVal || (first && valEvery === 0)) {
            autoVal = true;
            valEvery = Math.max(1, Math.ceil(effective.steps / AUTO_VALIDATIONS));
          }
          nextFitAt = elapsed() + 0.1 * limit;
          if (first)
            say(
              `auto steps: ${(perStep * 1000).toFixed(0)} ms/step -> about ${effective.steps} steps fill ${limit}s`,
            );
        }
      }

      const avgStep = trainSeconds / Math.max(1, step - startStep);
      let eta = (effective.steps - step) * avgStep;
      if (opts.timeLimitSec !== undefined) eta = Math.min(eta, Math.max(0, opts.timeLimitSec - elapsed()));
      progress.update({
        step,
        total: effective.steps,
        loss,
        bpb: lastBpb,
        bytesPerSec: sessionBytes / trainSeconds,
        etaSec: eta,
        valBpb: lastVal,
      });

      if (valEvery > 0 && step % valEvery === 0 && step < effective.steps) await validate();
      if (step % cfg.checkpoint.every === 0 && step < effective.steps) save();
    }
    progress.done();
    const finalVal = lastValStep === step ? lastValResult : await validate();
    if (lastSavedStep !== step) save();
    writeFileAtomic(
      curvePath,
      curveSvg(readMetrics(metricsPath), `AU-Net ${cfg.name}: ${(nParams / 1e6).toFixed(2)}M parameters`),
    );
    for (const l of stats.describe()) say(`data: ${l}`);
    const summary: TrainSummary = {
      step,
      steps: effective.steps,
      stoppedBy,
      sessionBytes,
      totalBytes,
      trainSeconds,
      bytesPerSec: trainSeconds > 0 ? sessionBytes / trainSeconds : 0,
      finalLoss: lastLoss,
      finalBpb: lastBpb,
      val: valHistory,
      checkpoint: lastSaved,
      metricsPath,
      curvePath,
      params: nParams,
      backend: backend.name,
      finalVal,
    };
    const valLine =
      valHistory.length > 0
        ? `; validation ${valHistory[0].bpb.toFixed(3)} -> ${valHistory[valHistory.length - 1].bpb.toFixed(3)} bits/byte`
        : "";
    say(
      `done: step ${step}/${effective.steps} (${stoppedBy === "steps" ? "finished" : `stopped: ${stoppedBy}`}), ${totalBytes} bytes seen, ${formatDuration(elapsed())} this session, ${formatRate(summary.bytesPerSec)}; train ${Number.isNaN(emaBpb) ? "-" : emaBpb.toFixed(3)} bits/byte${valLine}`,
    );
    say(`checkpoint: ${lastSaved}\nmetrics: ${metricsPath}\ncurve: ${curvePath}`);
    return summary;
  } finally {
    if (opts.handleSignals) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    await loader.close();
  }
}
