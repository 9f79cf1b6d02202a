// A training run's configuration in the official params.json layout (lingua's TrainArgs: name, seed, steps,
// grad_acc_steps, optim, model, data, checkpoint, logging), plus a `validation` section of our own. Presets live
// in configs/*.json in the same layout, so a preset, a run's params.json and a checkpoint's params.json are
// interchangeable.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../util/errors.js";
import { isObj } from "../util/json.js";
import { parseConfig, toOfficialJson, type AUNetConfig } from "../model/config.js";
import { readJsonFile } from "../io/model-dir.js";
import { SCHEDULERS, OPTIM_DEFAULTS, type OptimArgs, type SchedulerName } from "../io/lingua-args.js";
export { OPTIM_DEFAULTS, type OptimArgs } from "../io/lingua-args.js";

export interface RunConfig {
  name: string;
  /** Seeds data order (the model's init has model.seed). */
  seed: number;
  /** Optimizer steps the schedule spans. */
  steps: number;
  grad_acc_steps: number;
  optim: OptimArgs;
  aunet: AUNetConfig;
  batchSize: number;
  /** Plain-text files are cut into documents of about this many bytes (see data/sources.ts). */
  docBytes: number;
  shuffleWindow: number;
  validation: {
    /** Steps between validations (0: only at the start and the end). */
    every: number;
    /** Validation text budget in bytes (whole documents, in file order). */
    maxBytes: number;
    /** Held-out fraction of the training documents when no --val source is given. */
    fraction: number;
  };
  /** Save every `every` steps; keep the newest `keep` (0: all). */
  checkpoint: { every: number; keep: number };
  logging: { freq: number };
}

type Obj = Record<string, unknown>;

function section(raw: Obj, key: string): Obj {
  const v = raw[key];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new UserError(`config: '${key}' must be an object`);
  return v;
}

function numberIn(
  v: unknown,
  name: string,
  dflt: number,
  check: (x: number) => boolean,
  rule: string,
): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v))
    throw new UserError(`config: ${name} must be ${rule}, got ${JSON.stringify(v)}`);
  return v;
}

const int = (min: number) => (x: number) => Number.isInteger(x) && x >= min;

/** Parse and validate a run config (any section may be missing; defaults are lingua's). */
export function parseRunConfig(raw: unknown): RunConfig {
  if (!isObj(raw))
    throw new UserError("config must be a JSON object in the official layout ({model, data, optim, ...})");
  const aunet = parseConfig(raw);
  const o = section(raw, "optim");
  const d = section(raw, "data");
  const v = section(raw, "validation");
  const ck = section(section(raw, "checkpoint"), "dump");
  const lg = section(raw, "logging");
  const sched = o.scheduler ?? OPTIM_DEFAULTS.scheduler;
  if (typeof sched !== "string" || !SCHEDULERS.includes(sched as SchedulerName))
    throw new UserError(
      `config: optim.scheduler must be one of ${SCHEDULERS.join(", ")}, got ${JSON.stringify(sched)}`,
    );
  const pos = (x: number) => x > 0;
  const nonneg = (x: number) => x >= 0;
  const unit = (x: number) => x >= 0 && x < 1;
  const optim: OptimArgs = {
    lr: numberIn(o.lr, "optim.lr", OPTIM_DEFAULTS.lr, pos, "a positive number"),
    weight_decay: numberIn(o.weight_decay, "optim.weight_decay", OPTIM_DEFAULTS.weight_decay, nonneg, ">= 0"),
    epsilon: numberIn(o.epsilon, "optim.epsilon", OPTIM_DEFAULTS.epsilon, pos, "positive"),
    beta1: numberIn(o.beta1, "optim.beta1", OPTIM_DEFAULTS.beta1, unit, "in [0, 1)"),
    beta2: numberIn(o.beta2, "optim.beta2", OPTIM_DEFAULTS.beta2, unit, "in [0, 1)"),
    clip: numberIn(o.clip, "optim.clip", OPTIM_DEFAULTS.clip, nonneg, ">= 0 (0 disables clipping)"),
    scheduler: sched as SchedulerName,
    warmup: numberIn(o.warmup, "optim.warmup", OPTIM_DEFAULTS.warmup, int(0), "an integer >= 0"),
    lr_min_ratio: numberIn(
      o.lr_min_ratio,
      "optim.lr_min_ratio",
      OPTIM_DEFAULTS.lr_min_ratio,
      (x) => x >= 0 && x <= 1,
      "in [0, 1]",
    ),
    cycle_length: numberIn(o.cycle_length, "optim.cycle_length", 1, pos, "positive"),
    cosine_theta: numberIn(o.cosine_theta, "optim.cosine_theta", 1, pos, "positive"),
  };
  return {
    name: typeof raw.name === "string" ? raw.name : "aunet",
    seed: numberIn(raw.seed, "seed", 42, int(0), "an integer >= 0"),
    steps: numberIn(raw.steps, "steps", 1000, int(1), "an integer >= 1"),
    grad_acc_steps: numberIn(raw.grad_acc_steps, "grad_acc_steps", 1, int(1), "an integer >= 1"),
    optim,
    aunet,
    batchSize: numberIn(d.batch_size, "data.batch_size", 8, int(1), "an integer >= 1"),
    docBytes: numberIn(d.doc_bytes, "data.doc_bytes", 8192, int(16), "an integer >= 16"),
    shuffleWindow: numberIn(d.shuffle_window, "data.shuffle_window", 1024, int(1), "an integer >= 1"),
    validation: {
      every: numberIn(v.every, "validation.every", 0, int(0), "an integer >= 0"),
      maxBytes: numberIn(v.max_bytes, "validation.max_bytes", 1 << 20, int(1), "an integer >= 1"),
      fraction: numberIn(v.fraction, "validation.fraction", 0.01, unit, "in [0, 1)"),
    },
    checkpoint: {
      every: numberIn(ck.every, "checkpoint.dump.every", 1000, int(1), "an integer >= 1"),
      // lingua's convention: keep <= 0 keeps every checkpoint.
      keep: numberIn(ck.keep, "checkpoint.dump.keep", 3, int(0), "an integer >= 0 (0 keeps all)"),
    },
    logging: { freq: numberIn(lg.freq, "logging.freq", 10, int(1), "an integer >= 1") },
  };
}

/** The params.json of a run: the official layout, model and data sections exactly as toOfficialJson writes them. */
export function toParamsJson(c: RunConfig): Obj {
  const official = toOfficialJson(c.aunet);
  return {
    name: c.name,
    seed: c.seed,
    steps: c.steps,
    grad_acc_steps: c.grad_acc_steps,
    data: {
      ...official.data,
      batch_size: c.batchSize,
      seed: c.seed,
      doc_bytes: c.docBytes,
      shuffle_window: c.shuffleWindow,
    },
    optim: { ...c.optim },
    model: official.model,
    checkpoint: { dump: { every: c.checkpoint.every, keep: c.checkpoint.keep } },
    logging: { freq: c.logging.freq },
    validation: {
      every: c.validation.every,
      max_bytes: c.validation.maxBytes,
      fraction: c.validation.fraction,
    },
  };
}

/** The package root (the folder with package.json, configs/ and corpus/), from src/train or dist/src/train. */
export function packageRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = here, i = 0; i < 5; i++, dir = path.dirname(dir))
    if (fs.existsSync(path.join(dir, "configs")) && fs.existsSync(path.join(dir, "package.json"))) return dir;
  return path.resolve(here, "../../..");
}

export function configsDir(): string {
  return path.join(packageRoot(), "configs");
}

export function presetNames(): string[] {
  try {
    return fs
      .readdirSync(configsDir())
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/** The raw JSON of a preset name (configs/<name>.json) or of a config file path. */
export function loadRawConfig(nameOrFile: string): Obj {
  const looksLikePath = nameOrFile.includes("/") || nameOrFile.includes("\\") || nameOrFile.endsWith(".json");
  const file = looksLikePath ? nameOrFile : path.join(configsDir(), `${nameOrFile}.json`);
  if (!fs.existsSync(file)) {
    if (looksLikePath) throw new UserError(`--config: no such file ${nameOrFile}`);
    throw new UserError(
      `--config: unknown preset '${nameOrFile}' (presets: ${presetNames().join(", ")}; or give a .json file)`,
    );
  }
  const raw = readJsonFile(file);
  if (!isObj(raw)) throw new UserError(`${file}: a config must be a JSON object`);
  return raw;
}

/** Command-line overrides, applied to the raw config before validation. */
export interface ConfigOverrides {
  steps?: number;
  batch?: number;
  seq?: number;
  lr?: number;
  warmup?: number;
  seed?: number;
  gradAcc?: number;
  clip?: number;
  keep?: number;
  ckptEvery?: number;
  valEvery?: number;
  valFraction?: number;
  valBytes?: number;
  logEvery?: number;
}

export function applyOverrides(raw: Obj, ov: ConfigOverrides): Obj {
  const r = structuredClone(raw);
  const sec = (k: string): Obj => {
    if (!isObj(r[k])) r[k] = {};
    return r[k] as Obj;
  };
  if (ov.steps !== undefined) r.steps = ov.steps;
  if (ov.seed !== undefined) {
    // One --seed seeds everything: the data order and the model's initialisation.
    r.seed = ov.seed;
    sec("model").seed = ov.seed;
  }
  if (ov.gradAcc !== undefined) r.grad_acc_steps = ov.gradAcc;
  if (ov.batch !== undefined) sec("data").batch_size = ov.batch;
  if (ov.lr !== undefined) sec("optim").lr = ov.lr;
  if (ov.warmup !== undefined) sec("optim").warmup = ov.warmup;
  if (ov.clip !== undefined) sec("optim").clip = ov.clip;
  if (ov.keep !== undefined || ov.ckptEvery !== undefined) {
    const ck = sec("checkpoint");
    if (!isObj(ck.dump)) ck.dump = {};
    const dump = ck.dump as Obj;
    if (ov.keep !== undefined) dump.keep = ov.keep;
    if (ov.ckptEvery !== undefined) dump.every = ov.ckptEvery;
  }
  if (ov.valEvery !== undefined) sec("validation").every = ov.valEvery;
  if (ov.valFraction !== undefined) sec("validation").fraction = ov.valFraction;
  if (ov.valBytes !== undefined) sec("validation").max_bytes = ov.valBytes;
  if (ov.logEvery !== undefined) sec("logging").freq = ov.logEvery;
  if (ov.seq !== undefined) {
    // A new byte length rescales the pooled caps in proportion, so that they bind as often as they did.
    const model = sec("model");
    const data = sec("data");
    const oldSeq =
      Array.isArray(model.max_seqlens) && typeof model.max_seqlens[0] === "number" && model.max_seqlens[0] > 0
        ? (model.max_seqlens[0] as number)
        : typeof data.seq_len === "number"
          ? data.seq_len
          : ov.seq;
    data.seq_len = ov.seq;
    if (Array.isArray(model.max_seqlens)) {
      const caps = model.max_seqlens as unknown[];
      model.max_seqlens = caps.map((c, i) =>
        i === 0 ? -1 : typeof c === "number" ? Math.max(1, Math.ceil((c * ov.seq!) / oldSeq)) : c,
      );
    }
  }
  return r;
}
