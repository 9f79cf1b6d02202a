// The training loop: `trainStep` (step.ts) over the data stream at the scheduled learning rate, with periodic
// validation, metrics, atomic checkpoints, exact resume and clean interruption. `train()` reads as its parts:
// the run directory and its lock (run-dir.ts), resuming (resume.ts), the validation set, the session loop with
// its metrics and progress, signals (signals.ts), schedule fitting (schedule-fit.ts) and the summary (summary.ts).
//
// Exact resume: a checkpoint holds the weights, both AdamW moments and the step (F32, bit for bit), and the data
// loader's position (which is also its random state, see data/loader.ts). Given the same config, data and
// backend, training N steps straight and N/2 + resume + N/2 produce identical weights; the resume test checks it
// on the reference backend. Everything that does not feed the weights (validation, metrics, checkpoint timing,
// when step values are read) is kept out of that path.

import os from "node:os";
import { checkMemory } from "../model/config.js";
import { loadModel } from "../io/checkpoint-resolver.js";
import path from "node:path";
import { UserError } from "../util/errors.js";
import type { Backend } from "../engine/backend.js";
import { defaultBackend } from "../backends/index.js";
import { AUNet } from "../model/aunet.js";
import { countParams } from "../model/config.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { DataStats, discoverSources } from "../data/sources.js";
import { collectDocs, type TrainLoader } from "../data/loader.js";
import type { PackedDoc } from "../data/packing.js";
import { AdamW } from "./optimizer.js";
import { lrAt } from "./schedule.js";
import { configMismatch, listCheckpoints, saveCheckpoint, type TrainState } from "./checkpoint.js";
import { toParamsJson, type RunConfig } from "./run-config.js";
import { EvalInterrupted, evaluateList, type EvalResult } from "./evaluate.js";
import { flopsPerByte, mfu } from "./flops.js";
import { Progress, type ProgressSink } from "./progress.js";
import { readStepValues, trainStep, type StepOptions, type StepValues } from "./step.js";
import { StopRequest, yieldToEventLoop } from "./signals.js";
import {
  MetricsLog,
  MetricsWriteError,
  METRICS_FILE,
  readMetrics,
  RunDir,
  type MetricRecord,
} from "./run-dir.js";
import { loaderFingerprint, newLoader, resumeLatest, type TrainData } from "./resume.js";
import { AUTO_VALIDATIONS, CALIBRATION_STEPS, ScheduleFitter, ValidationPlan } from "./schedule-fit.js";
import { allFinite, divergenceError } from "./diagnose.js";
import { curveSvg, summaryLines, type TrainSummary, type ValPoint } from "./summary.js";
export { curveSvg, type TrainSummary, type ValPoint } from "./summary.js";

export interface TrainOptions {
  /** The run's configuration (a new run), or what this invocation asks of a resumed one. */
  config: RunConfig;
  /**
   * How this invocation's settings apply to a resumed run's own configuration (the CLI applies its explicit
   * flags to it); without it `config` itself must agree with the checkpoint's (see resume.ts).
   */
  resumeConfig?: (checkpoint: RunConfig) => RunConfig;
  /** Training sources (files or directories). */
  data: string[];
  /** Explicit validation sources; without them a hash-held-out fraction of the training documents is used. */
  val?: string[];
  /** Run directory: checkpoints/, metrics.jsonl, curve.svg, params.json. */
  out: string;
  /** Continue from the latest checkpoint in `out`. */
  resume?: boolean;
  /** Replace the run already in `out` (its checkpoints and records) instead of refusing to touch it. */
  replace?: boolean;
  /**
   * Start from the weights of any model directory (a checkpoint, a run, a fixture, a converted model) with a
   * fresh optimizer and schedule; its config must match.
   */
  init?: string;
  /** Stop the loop (and checkpoint) once this many seconds of this session have passed. */
  timeLimitSec?: number;
  /** Stop (and checkpoint) after this many steps in total, leaving the schedule as `config.steps` defines it. */
  stopAfter?: number;
  /** Fit the schedule to the time limit (schedule-fit.ts); for demos. */
  autoSteps?: boolean;
  backend?: Backend;
  /** Where progress goes (default stderr); `quiet` silences it. */
  sink?: ProgressSink;
  quiet?: boolean;
  /** Stop gracefully (step, checkpoint, one line) when this is requested; `handleSignals` makes one for SIGINT/SIGTERM. */
  stop?: StopRequest;
  handleSignals?: boolean;
  /** Called once `out` is checked, locked (and cleared for `replace`), before anything is trained. */
  onStart?: () => void;
}

export async function train(opts: TrainOptions): Promise<TrainSummary> {
  if (opts.resume && opts.init)
    throw new UserError(
      "--resume continues a run from its own checkpoint and --init starts a new one: give one of them",
    );
  const progress = new Progress(opts.sink ?? process.stderr, opts.config.logging.freq, opts.quiet === true);
  const say = (s: string) => progress.line(s);
  const run = RunDir.open(opts.out);
  const own = !opts.stop && opts.handleSignals === true;
  const stop =
    opts.stop ??
    new StopRequest((sig) =>
      say(`${sig}: stopping after this step, with a checkpoint (again to quit at once)`),
    );
  if (own) stop.install();
  let loader: TrainLoader | null = null;
  try {
    if (opts.replace) run.clear();
    opts.onStart?.();
    const data = findData(opts, say);
    const start = await startRun(opts, data, say);
    loader = start.loader;
    const val = await validationSet(start.config, data, say);
    return await new Session(opts, start, data, val, progress, stop).run();
  } finally {
    if (own) stop.uninstall();
    await loader?.close();
    run.release();
  }
}

function findData(opts: TrainOptions, say: (s: string) => void): TrainData {
  const stats = new DataStats();
  const files = discoverSources(opts.data, stats, "--data");
  const valFiles = opts.val && opts.val.length > 0 ? discoverSources(opts.val, stats, "--val") : null;
  const mb = files.reduce((s, f) => s + f.size, 0) / 1e6;
  say(
    `data: ${files.length} file(s), ${mb.toFixed(2)} MB${valFiles ? `; validation: ${valFiles.map((f) => f.path).join(", ")}` : ""}`,
  );
  for (const l of stats.describe()) say(`data: ${l}`);
  return { files, valFiles, stats };
}

interface Start {
  config: RunConfig;
  model: AUNet;
  optimizer: AdamW;
  loader: TrainLoader;
  state: TrainState | null;
  /** The checkpoint resumed from, or "". */
  resumedFrom: string;
  startedFrom: string;
  startFinite: () => boolean;
  backend: Backend;
}

/** A new run, or the newest intact checkpoint of `out` with its optimiser state and data position. */
async function startRun(opts: TrainOptions, data: TrainData, say: (s: string) => void): Promise<Start> {
  const existing = listCheckpoints(opts.out);
  if (!opts.resume && existing.length > 0)
    throw new UserError(
      `${opts.out} already holds checkpoints (latest step ${existing[existing.length - 1].step}); pass --resume to continue it or choose another --out`,
    );
  const resumed = opts.resume
    ? await resumeLatest(opts.out, opts.resumeConfig ?? opts.config, data, say)
    : null;
  if (opts.resume && !resumed) say(`--resume: no checkpoint in ${opts.out} yet, starting from scratch`);
  const config: RunConfig = { ...(resumed?.config ?? opts.config) };
  // A run the machine cannot hold is refused before anything is allocated (the estimate: src/model/config.ts).
  checkMemory(
    config.aunet.model,
    { batch: config.batchSize, seqLen: config.aunet.seqLen, training: true },
    os.totalmem(),
  );
  let weights = resumed?.checkpoint.weights;
  let startedFrom = resumed ? resumed.checkpoint.dir : "initialisation";
  if (opts.init) {
    // Any checkpoint form (src/io/checkpoint-resolver.ts): only the weights and their config are taken.
    const src = loadModel(opts.init);
    const from = src.source.path;
    const diff = configMismatch(src.config, config.aunet);
    if (diff.length > 0)
      throw new UserError(`--init ${from} has a different model config (${diff.slice(0, 3).join("; ")})`);
    weights = src.weights;
    startedFrom = `--init ${from}`;
    say(`initialised from ${from}`);
  }
  const backend = opts.backend ?? defaultBackend();
  const model = new AUNet(config.aunet.model, backend, weights);
  const o = config.optim;
  const optimizer = new AdamW(model.params, backend, {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.epsilon,
    weightDecay: o.weight_decay,
    clip: o.clip,
  });
  if (resumed) {
    optimizer.loadStateDict(resumed.state.step, resumed.checkpoint.optim!.m, resumed.checkpoint.optim!.v);
    say(`resuming from ${resumed.checkpoint.dir} (step ${resumed.state.step})`);
  }
  return {
    config,
    model,
    optimizer,
    loader: resumed?.loader ?? newLoader(config, data),
    state: resumed?.state ?? null,
    resumedFrom: resumed?.checkpoint.dir ?? "",
    startedFrom,
    // Loaded weights were checked finite when read; a fresh initialisation is recomputed only if it is needed.
    startFinite: () =>
      weights !== undefined || allFinite(new AUNet(config.aunet.model, backend).stateDict().values()),
    backend,
  };
}

interface ValidationSet {
  docs: PackedDoc[];
  bytes: number;
}

/** The validation documents: the --val sources, or the hash-held-out fraction of the training files. */
async function validationSet(
  cfg: RunConfig,
  data: TrainData,
  say: (s: string) => void,
): Promise<ValidationSet> {
  if (!data.valFiles && cfg.validation.fraction === 0) return { docs: [], bytes: 0 };
  const v = await collectDocs(data.valFiles ?? data.files, cfg.aunet.strategy, {
    docBytes: cfg.docBytes,
    // Held out of the training files: their bad lines are already counted by the training stream.
    stats: data.valFiles ? data.stats : new DataStats(),
    heldOut: data.valFiles ? null : cfg.validation.fraction,
    maxBytes: cfg.validation.maxBytes,
  });
  if (v.docs.length === 0) say("validation: no held-out documents found; validation is skipped");
  else
    say(
      `validation: ${v.docs.length} document(s), ${v.bytes} bytes${data.valFiles ? "" : ` (held out by hash, fraction ${cfg.validation.fraction})`}`,
    );
  return v;
}

/** A step whose values have not been read yet, with what the host knows of it already. */
interface PendingStep {
  step: number;
  lr: number;
  values: StepValues;
  positions: number[];
  predictedBytes: number;
  seconds: number;
  bytesSeen: number;
}

type Batch = { tokens: Int32Array; mask: Int32Array; targets: Int32Array };

/** How often step values are read when the logging interval is long and steps are slow. */
const READ_EVERY_MS = 1000;

/** One training session over a started run: the loop and everything it records. */
class Session {
  private readonly cfg: RunConfig;
  private readonly B: number;
  private readonly S: number;
  private readonly out: string;
  private readonly metrics: MetricsLog;
  private readonly metricsPath: string;
  private readonly stepOptions: StepOptions<Batch>;
  private readonly plan: ValidationPlan;
  private readonly fitter: ScheduleFitter | null;
  private readonly nParams: number;
  private readonly cores = os.availableParallelism();
  private readonly startStep: number;
  private step: number;
  private totalBytes: number;
  private sessionBytes = 0;
  private trainSeconds = 0;
  private readonly sessionStart = performance.now();
  private pending: PendingStep[] = [];
  private lastRead = performance.now();
  private batchStats = { positions: [] as number[], predictedBytes: 0 };
  private lastLoss = NaN;
  private lastBpb = NaN;
  private emaBpb = NaN;
  private readonly valHistory: ValPoint[];
  private valSeconds = 0;
  private lastValStep = -1;
  private lastValResult: EvalResult | null = null;
  private lastSaved: string;
  private lastSavedStep: number;
  private stoppedBy: TrainSummary["stoppedBy"] = "steps";

  constructor(
    private readonly opts: TrainOptions,
    private readonly start: Start,
    private readonly data: TrainData,
    private readonly val: ValidationSet,
    private readonly progress: Progress,
    private readonly stop: StopRequest,
  ) {
    const cfg = (this.cfg = start.config);
    this.B = cfg.batchSize;
    this.S = cfg.aunet.seqLen;
    this.out = opts.out;
    this.nParams = countParams(cfg.aunet.model).total;
    this.startStep = this.step = start.state?.step ?? 0;
    const bytesSeen = start.state?.metrics.bytes_seen;
    this.totalBytes = typeof bytesSeen === "number" ? bytesSeen : 0;
    this.lastSaved = start.resumedFrom;
    this.lastSavedStep = start.resumedFrom ? this.startStep : -1;
    // A resumed run rewrites history past its checkpoint (a crash may have logged steps that are now redone).
    this.metricsPath = path.join(this.out, METRICS_FILE);
    const kept = start.resumedFrom
      ? readMetrics(this.metricsPath).filter((r) => r.step <= this.startStep)
      : [];
    this.metrics = new MetricsLog(this.metricsPath, kept);
    this.valHistory = kept
      .filter((r) => r.kind === "val")
      .map((r) => ({ step: r.step, bpb: r.bpb as number }));
    this.writeParams();
    const fitted = opts.autoSteps === true && !start.resumedFrom && opts.timeLimitSec !== undefined;
    const every = cfg.validation.every;
    this.plan = fitted && every === 0 ? ValidationPlan.evenly(AUTO_VALIDATIONS) : new ValidationPlan(every);
    this.fitter = fitted ? new ScheduleFitter(opts.timeLimitSec!, every === 0 ? AUTO_VALIDATIONS : 0) : null;
    const model = start.model;
    this.stepOptions = {
      model: {
        loss: (b: Batch) => {
          const r = model.loss(b.tokens, b.mask, b.targets, this.B, this.S);
          this.countBatch(r.pools, b.targets);
          return r.loss;
        },
        zeroGrad: () => model.zeroGrad(),
      },
      optimizer: start.optimizer,
      gradAcc: cfg.grad_acc_steps,
      nextBatch: () => start.loader.batch(this.B),
    };
    const m = cfg.aunet.model;
    const acc = cfg.grad_acc_steps;
    this.say(
      `model: ${m.dimensions.length} stage(s), dims [${m.dimensions}], layers [${m.layers}], ${(this.nParams / 1e6).toFixed(2)}M parameters; batch ${this.B}x${this.S} bytes${acc > 1 ? ` x${acc} accumulation` : ""}; backend ${start.backend.name}`,
    );
  }

  private say(s: string): void {
    this.progress.line(s);
  }

  private get lastVal(): number | null {
    return this.valHistory.length ? this.valHistory[this.valHistory.length - 1].bpb : null;
  }

  /** params.json at the run's root: the configuration as planned now (a fitted schedule rewrites it). */
  private writeParams(): void {
    writeJsonAtomic(path.join(this.out, "params.json"), toParamsJson(this.cfg));
  }

  async run(): Promise<TrainSummary> {
    try {
      if (!this.start.resumedFrom) await this.validate();
      while (this.step < this.cfg.steps && !this.stopReason()) {
        await this.trainOneStep();
        if (this.plan.due(this.step, this.cfg.steps)) await this.validate();
        if (this.step % this.cfg.checkpoint.every === 0 && this.step < this.cfg.steps) await this.save();
        // Signals are delivered here: the step, the validation and the save above are never cut short.
        await yieldToEventLoop();
      }
      return await this.finish();
    } catch (e) {
      if (!(e instanceof MetricsWriteError)) throw e;
      // The disk is full or failing: keep the training done so far if a checkpoint still fits.
      throw new UserError(`${e.message}; ${this.saveAfterFailure()}`);
    } finally {
      this.metrics.close();
    }
  }

  private stopReason(): boolean {
    const o = this.opts;
    if (o.stopAfter !== undefined && this.step >= o.stopAfter) this.stoppedBy = "stop-after";
    else if (o.timeLimitSec !== undefined && this.elapsed() >= o.timeLimitSec) this.stoppedBy = "time";
    else if (this.stop.requested) this.stoppedBy = "signal";
    else return false;
    return true;
  }

  private elapsed(): number {
    return (performance.now() - this.sessionStart) / 1000;
  }

  private countBatch(pools: readonly { nsel: ArrayLike<number> }[], targets: Int32Array): void {
    const st = this.batchStats;
    st.positions[0] += this.B * this.S;
    pools.forEach((p, i) => {
      for (let b = 0; b < this.B; b++) st.positions[i + 1] += p.nsel[b];
    });
    for (let i = 0; i < targets.length; i++) if (targets[i] < 256) st.predictedBytes++;
  }

  private async trainOneStep(): Promise<void> {
    const t0 = performance.now();
    const done = this.step - this.startStep;
    this.fitter?.stepStarts(done, t0);
    this.batchStats = {
      positions: new Array<number>(this.cfg.aunet.model.dimensions.length).fill(0),
      predictedBytes: 0,
    };
    const lr = lrAt(this.step + 1, this.cfg.optim.lr, {
      scheduler: this.cfg.optim.scheduler,
      warmup: this.cfg.optim.warmup,
      steps: this.cfg.steps,
      lrMinRatio: this.cfg.optim.lr_min_ratio,
      cycleLength: this.cfg.optim.cycle_length,
      cosineTheta: this.cfg.optim.cosine_theta,
    });
    const values = await trainStep(this.stepOptions, lr);
    this.step++;
    const seconds = (performance.now() - t0) / 1000;
    const bytes = this.B * this.S * this.cfg.grad_acc_steps;
    this.trainSeconds += seconds;
    this.sessionBytes += bytes;
    this.totalBytes += bytes;
    const { positions, predictedBytes } = this.batchStats;
    this.pending.push({
      step: this.step,
      lr,
      values,
      positions,
      predictedBytes,
      seconds,
      bytesSeen: this.totalBytes,
    });
    this.fitSchedule(done + 1);
    if (this.pending.length >= this.cfg.logging.freq || performance.now() - this.lastRead >= READ_EVERY_MS)
      await this.readPending();
  }

  private fitSchedule(done: number): void {
    const fit = this.fitter?.fit(done, this.step, this.elapsed(), this.valSeconds);
    if (!fit) return;
    this.cfg.steps = fit.steps;
    this.writeParams();
    if (done === CALIBRATION_STEPS)
      this.say(
        `auto steps: ${fit.msPerStep.toFixed(0)} ms/step -> about ${fit.steps} steps fill ${this.fitter!.limitSec}s`,
      );
  }

  /**
   * Read the pending steps' values (the only host read of them), refuse non-finite ones, and log them. Runs at
   * least once per logging interval and always before a validation or a save, so nothing diverged is validated
   * or saved.
   */
  private async readPending(): Promise<void> {
    const records: MetricRecord[] = [];
    const rows = this.B * this.S;
    for (const p of this.pending.splice(0)) {
      const v = await readStepValues(p.values);
      if (!Number.isFinite(v.loss) || !Number.isFinite(v.gradNorm))
        throw divergenceError(
          { step: p.step, loss: v.loss, gradNorm: v.gradNorm },
          {
            firstStep: this.startStep + 1,
            startFinite: this.start.startFinite(),
            startedFrom: this.start.startedFrom,
            model: this.cfg.aunet.model,
            lastCheckpoint: this.lastSaved,
          },
        );
      const nats = v.microLosses.reduce((s, x) => s + x * rows, 0);
      this.lastLoss = v.loss;
      this.lastBpb = nats / p.predictedBytes / Math.LN2;
      this.emaBpb = Number.isNaN(this.emaBpb) ? this.lastBpb : 0.9 * this.emaBpb + 0.1 * this.lastBpb;
      const bps = (rows * this.cfg.grad_acc_steps) / p.seconds;
      const fpb = flopsPerByte(this.cfg.aunet.model, p.positions, this.B * this.cfg.grad_acc_steps);
      records.push({
        kind: "train",
        step: p.step,
        loss: v.loss,
        bpb: this.lastBpb,
        lr: p.lr,
        grad_norm: v.gradNorm,
        clip_scale: v.clipScale,
        bytes_per_s: bps,
        flops_per_byte: fpb,
        mfu: mfu(fpb, bps, this.cores),
        positions: p.positions,
        bytes_seen: p.bytesSeen,
        seconds: p.seconds,
      });
    }
    this.lastRead = performance.now();
    if (records.length === 0) return;
    this.metrics.append(records);
    const avgStep = this.trainSeconds / Math.max(1, this.step - this.startStep);
    let eta = (this.cfg.steps - this.step) * avgStep;
    const limit = this.opts.timeLimitSec;
    if (limit !== undefined) eta = Math.min(eta, Math.max(0, limit - this.elapsed()));
    this.progress.update({
      step: this.step,
      total: this.cfg.steps,
      loss: this.lastLoss,
      bpb: this.lastBpb,
      bytesPerSec: this.sessionBytes / this.trainSeconds,
      etaSec: eta,
      valBpb: this.lastVal,
    });
  }

  /** Validation bits per byte now; null without a validation set or when a signal cut it short. */
  private async validate(): Promise<EvalResult | null> {
    await this.readPending();
    if (this.val.docs.length === 0) return null;
    const t0 = performance.now();
    let r: EvalResult;
    try {
      r = await evaluateList(this.start.model, this.val.docs, this.B, this.S, async () => {
        await yieldToEventLoop();
        return this.stop.requested;
      });
    } catch (e) {
      if (e instanceof EvalInterrupted) return null;
      throw e;
    }
    this.valSeconds = (performance.now() - t0) / 1000;
    this.lastValStep = this.step;
    this.lastValResult = r;
    this.valHistory.push({ step: this.step, bpb: r.bitsPerByte });
    this.metrics.append([
      {
        kind: "val",
        step: this.step,
        loss: r.loss,
        bpb: r.bitsPerByte,
        bits_per_char: r.bitsPerChar,
        bytes: r.bytes,
        seconds: this.valSeconds,
      },
    ]);
    this.say(
      `validation @ step ${this.step}: ${r.bitsPerByte.toFixed(4)} bits/byte (${r.bytes} bytes, ${this.valSeconds.toFixed(1)}s)`,
    );
    return r;
  }

  private async save(): Promise<string> {
    await this.readPending();
    return this.saveNow();
  }

  /** Write the checkpoint of the current step (the step values must have been read and found finite). */
  private saveNow(): string {
    const { m, v } = this.start.optimizer.stateDict();
    const shapes = new Map<string, readonly number[]>();
    for (const [k, t] of this.start.model.params) shapes.set(k, t.shape);
    const cfg = this.cfg;
    const state: TrainState = {
      version: 1,
      step: this.step,
      data: this.start.loader.state(),
      sources: this.data.files.map((f) => ({ path: f.path, size: f.size })),
      loader: loaderFingerprint(cfg, this.data),
      rng: {
        seed: cfg.seed,
        derivation: "counter-based: (seed, epoch, file, window) -> shuffles; see data/loader.ts",
      },
      metrics: {
        loss: this.lastLoss,
        bpb: this.lastBpb,
        val_bpb: this.lastVal,
        bytes_seen: this.totalBytes,
        steps: cfg.steps,
      },
    };
    const params = toParamsJson(cfg);
    const weights = this.start.model.stateDict();
    this.lastSaved = saveCheckpoint(
      this.out,
      { step: this.step, shapes, weights, m, v, params, state },
      cfg.checkpoint.keep,
    );
    this.lastSavedStep = this.step;
    return this.lastSaved;
  }

  private saveAfterFailure(): string {
    try {
      if (this.lastSavedStep !== this.step) this.saveNow();
      return `stopped at step ${this.step} with a checkpoint in ${this.lastSaved}`;
    } catch (e) {
      return `the checkpoint could not be saved either (${e instanceof Error ? e.message : String(e)}); the last one is ${this.lastSaved || "none"}`;
    }
  }

  private async finish(): Promise<TrainSummary> {
    await this.readPending();
    this.progress.done();
    const interrupted = this.stoppedBy === "signal";
    // Stopped by a signal: the user wants out, so no final validation, only the checkpoint.
    const finalVal =
      interrupted || this.lastValStep === this.step
        ? interrupted
          ? null
          : this.lastValResult
        : await this.validate();
    if (this.lastSavedStep !== this.step) await this.save();
    const title = `AU-Net ${this.cfg.name}: ${(this.nParams / 1e6).toFixed(2)}M parameters`;
    const curvePath = path.join(this.out, "curve.svg");
    writeFileAtomic(curvePath, curveSvg(readMetrics(this.metricsPath), title));
    if (!interrupted) for (const l of this.data.stats.describe()) this.say(`data: ${l}`);
    const summary: TrainSummary = {
      step: this.step,
      steps: this.cfg.steps,
      stoppedBy: this.stoppedBy,
      signal: interrupted ? this.stop.received : null,
      sessionBytes: this.sessionBytes,
      totalBytes: this.totalBytes,
      trainSeconds: this.trainSeconds,
      bytesPerSec: this.trainSeconds > 0 ? this.sessionBytes / this.trainSeconds : 0,
      finalLoss: this.lastLoss,
      finalBpb: this.lastBpb,
      val: this.valHistory,
      checkpoint: this.lastSaved,
      metricsPath: this.metricsPath,
      curvePath,
      params: this.nParams,
      backend: this.start.backend.name,
      finalVal,
    };
    for (const l of summaryLines(summary, this.elapsed(), this.emaBpb)) this.say(l);
    return summary;
  }
}
