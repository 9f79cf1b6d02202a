// Training checkpoints: one directory per saved step under <run>/checkpoints/step_<N>/ holding
//   model.safetensors   the weights under their official names (F32)
//   params.json         the run config in the official layout (model + data sections as toOfficialJson writes)
//   optim.safetensors   AdamW moments m.<name> and v.<name> (F32)
//   state.json          step, data-loader position, random state, data fingerprint, metrics summary
//
// Saving is atomic at the directory level: everything is written and fsynced into a hidden temp directory,
// which is then renamed to step_<N>. A crash or kill -9 at any moment leaves either no new checkpoint or a
// complete one, and the previous checkpoints are untouched; leftover temp directories are never mistaken for
// checkpoints and are removed by the next save. Only directories named step_<N> count, and the latest is the
// highest N that loads.

import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { UserError } from "../util/errors.js";
import { resolveCheckpoint } from "../io/checkpoint-resolver.js";
import { syncDirectory, writeJsonAtomic } from "../io/atomic.js";
import { readJsonFile, loadModelDir } from "../io/model-dir.js";
import { readSafetensors, writeSafetensors, type TensorData } from "../io/safetensors.js";
import { parseConfig, toOfficialJson, type AUNetConfig } from "../model/config.js";
import type { DataLoaderState } from "../data/loader.js";

export const CHECKPOINTS = "checkpoints";
const STEP_DIR = /^step_(\d+)$/;
const TEMP_PREFIX = ".tmp-";

export interface SourceFingerprint {
  path: string;
  size: number;
}

export interface LoaderFingerprint {
  seed: number;
  docBytes: number;
  shuffleWindow: number;
  valFraction: number;
}

export interface TrainState {
  version: 1;
  step: number;
  /** Null before the first batch was drawn. */
  data: DataLoaderState | null;
  /** The training files the position refers to, in discovery order. */
  sources: SourceFingerprint[];
  /** What else the position depends on: it only means something under the same document stream. */
  loader?: LoaderFingerprint;
  /**
   * Every random choice of a run is derived from (seed, counters) and the counters are in the data position, so
   * the seed is the whole random state; model.seed in params.json seeded the initialisation.
   */
  rng: { seed: number; derivation: string };
  metrics: Record<string, number | null>;
}

export interface CheckpointPayload {
  step: number;
  /** Parameter shapes, by official name (the weights and moments are flat). */
  shapes: ReadonlyMap<string, readonly number[]>;
  weights: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  params: Record<string, unknown>;
  state: TrainState;
}

export function stepDirName(step: number): string {
  // A step read from a damaged state.json (negative, fractional, huge) must never become a directory name.
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`invalid checkpoint step ${step}`);
  return `step_${String(step).padStart(8, "0")}`;
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = path.join(runDir, CHECKPOINTS);
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  const out: { step: number; dir: string }[] = [];
  for (const n of names) {
    const m = STEP_DIR.exec(n);
    if (m && Number.isSafeInteger(Number(m[1]))) out.push({ step: Number(m[1]), dir: path.join(root, n) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * Write a checkpoint atomically, then drop all but the newest `keep` (0 keeps all) and any stale temp
 * directories.
 */
export function saveCheckpoint(runDir: string, p: CheckpointPayload, keep: number): string {
  const root = path.join(runDir, CHECKPOINTS);
  fs.mkdirSync(root, { recursive: true });
  const final = path.join(root, stepDirName(p.step));
  const tmp = path.join(
    root,
    `${TEMP_PREFIX}${stepDirName(p.step)}-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  try {
    fs.mkdirSync(tmp);
    const shaped = (name: string, data: Float32Array): TensorData => {
      const shape = p.shapes.get(name);
      if (!shape) throw new Error(`no shape for ${name}`);
      return { dtype: "F32", shape, data };
    };
    const model = new Map<string, TensorData>();
    for (const [k, a] of p.weights) model.set(k, shaped(k, a));
    writeSafetensors(path.join(tmp, "model.safetensors"), model, { format: "pt" });
    const optim = new Map<string, TensorData>();
    for (const [k, a] of p.m) optim.set(`m.${k}`, shaped(k, a));
    for (const [k, a] of p.v) optim.set(`v.${k}`, shaped(k, a));
    writeSafetensors(path.join(tmp, "optim.safetensors"), optim, { step: String(p.step) });
    writeJsonAtomic(path.join(tmp, "params.json"), p.params);
    // state.json last: its presence marks the content complete even before the rename makes it visible.
    writeJsonAtomic(path.join(tmp, "state.json"), p.state);
    syncDirectory(tmp);
    if (fs.existsSync(final)) {
      // Saving the same step again (a resumed run that stopped where it started): swap the old one out first,
      // because rename() will not replace a non-empty directory.
      const old = path.join(
        root,
        `${TEMP_PREFIX}old-${stepDirName(p.step)}-${randomBytes(4).toString("hex")}`,
      );
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      fs.rmSync(old, { recursive: true, force: true });
    } else fs.renameSync(tmp, final);
    syncDirectory(root);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot save a checkpoint in ${root}: ${e instanceof Error ? e.message : String(e)}`);
  }
  prune(root, keep, final);
  return final;
}

function prune(root: string, keep: number, justWritten: string): void {
  for (const name of fs.readdirSync(root)) {
    // Temp directories of this process are all finished here; others belong to killed runs (one run per
    // directory is the contract), so both can go.
    if (name.startsWith(TEMP_PREFIX)) fs.rmSync(path.join(root, name), { recursive: true, force: true });
  }
  const all = listCheckpoints(path.dirname(root));
  for (const c of keep > 0 ? all.slice(0, Math.max(0, all.length - keep)) : []) {
    if (c.dir === justWritten) continue;
    // Hide it first (one atomic rename), so a kill during the slow recursive delete never leaves a
    // half-deleted directory that still looks like a checkpoint.
    const doomed = path.join(
      root,
      `${TEMP_PREFIX}del-${path.basename(c.dir)}-${randomBytes(4).toString("hex")}`,
    );
    fs.renameSync(c.dir, doomed);
    fs.rmSync(doomed, { recursive: true, force: true });
  }
}

export interface LoadedCheckpoint {
  dir: string;
  config: AUNetConfig;
  raw: Record<string, unknown>;
  weights: Map<string, Float32Array>;
  /** Present for training checkpoints; absent for plain model directories (fixtures, converted models). */
  optim: { m: Map<string, Float32Array>; v: Map<string, Float32Array> } | null;
  state: TrainState | null;
}

/**
 * A directory holding model.safetensors and a config in the official layout; a training run directory resolves
 * to its latest checkpoint.
 */
export function resolveCheckpointDir(p: string): string {
  // One rule for every command (src/io/checkpoint-resolver.ts); training state lives in aunet's own layout.
  const r = resolveCheckpoint(p);
  if (r.format !== "aunet")
    throw new UserError(
      `${p} is a ${r.form} checkpoint: training needs an aunet run, checkpoint or model directory (convert it with 'aunet convert --to aunet')`,
    );
  return r.path;
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const { config, weights } = loadModelDir(dir);
  const cfgFile = fs.existsSync(path.join(dir, "params.json")) ? "params.json" : "config.json";
  const raw = readJsonFile(path.join(dir, cfgFile)) as Record<string, unknown>;
  let optim: LoadedCheckpoint["optim"] = null;
  let state: TrainState | null = null;
  const statePath = path.join(dir, "state.json");
  if (fs.existsSync(statePath)) {
    const m = STEP_DIR.exec(path.basename(dir));
    state = checkTrainState(readJsonFile(statePath), m ? Number(m[1]) : null, statePath);
  }
  const optPath = path.join(dir, "optim.safetensors");
  if (fs.existsSync(optPath)) {
    const f = readSafetensors(optPath);
    const m = new Map<string, Float32Array>(),
      v = new Map<string, Float32Array>();
    for (const [name, w] of weights) {
      if (!f.has(`m.${name}`) || !f.has(`v.${name}`))
        throw new UserError(`${optPath} lacks the moments of ${name}`);
      const mm = f.getFloat32(`m.${name}`),
        vv = f.getFloat32(`v.${name}`);
      if (mm.length !== w.length || vv.length !== w.length)
        throw new UserError(`${optPath}: the moments of ${name} do not have its ${w.length} values`);
      // v is a running mean of squares: negative or non-finite values mean the file is not what was saved.
      for (let i = 0; i < w.length; i++)
        if (!Number.isFinite(mm[i]) || !(vv[i] >= 0 && vv[i] < Infinity))
          throw new UserError(`${optPath}: the moments of ${name} hold invalid values`);
      m.set(name, mm);
      v.set(name, vv);
    }
    optim = { m, v };
  }
  return { dir, config, raw, weights, optim, state };
}

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * A state.json's content, checked field by field: a file that parses but holds the wrong thing (`null`, a bare
 * `{"step": 6}`, a string offset, a step that is not its directory's) is refused here, before any of it
 * positions a data stream or names a directory.
 */
export function checkTrainState(s: unknown, dirStep: number | null, file: string): TrainState {
  const bad = (what: string) => new UserError(`${file}: ${what}`);
  if (!isRecord(s)) throw bad("not a training state object");
  if (s.version !== 1) throw bad(`unknown version ${JSON.stringify(s.version)}`);
  if (!isCount(s.step)) throw bad(`step ${JSON.stringify(s.step)} is not a whole number >= 0`);
  if (dirStep !== null && s.step !== dirStep)
    throw bad(`step ${s.step} is not its directory's step ${dirStep}`);
  if (s.data !== null) {
    const d = s.data;
    if (!isRecord(d) || !isRecord(d.position) || !isCount(d.offset)) throw bad("data position is malformed");
    for (const k of ["epoch", "fileCursor", "windowOffset", "windowOrdinal", "index"])
      if (!isCount(d.position[k])) throw bad(`data position field ${k} is not a whole number >= 0`);
  }
  if (
    !Array.isArray(s.sources) ||
    !s.sources.every((f) => isRecord(f) && typeof f.path === "string" && isCount(f.size))
  )
    throw bad("the list of training sources is malformed");
  if (s.loader !== undefined) {
    const l = s.loader;
    if (
      !isRecord(l) ||
      !isCount(l.seed) ||
      !isCount(l.docBytes) ||
      !isCount(l.shuffleWindow) ||
      typeof l.valFraction !== "number"
    )
      throw bad("the data-stream fingerprint is malformed");
  }
  if (!isRecord(s.metrics) || !Object.values(s.metrics).every((x) => x === null || typeof x === "number"))
    throw bad("metrics are malformed");
  return s as unknown as TrainState;
}

/** The latest checkpoint of a run that loads, falling back to older ones (with a note) if the newest is damaged. */
export function loadLatest(runDir: string, note: (msg: string) => void): LoadedCheckpoint | null {
  const all = listCheckpoints(runDir);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      const c = loadCheckpoint(all[i].dir);
      if (!c.state || !c.optim) throw new UserError(`${all[i].dir} has no training state`);
      return c;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      note(`skipping damaged checkpoint ${all[i].dir}: ${e.message}`);
    }
  }
  return null;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object" && v !== null)
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}

export function diffPaths(a: unknown, b: unknown, at: string, out: string[]): void {
  if (canonical(a) === canonical(b)) return;
  const isO = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (isO(a) && isO(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
      diffPaths(a[k], b[k], at ? `${at}.${k}` : k, out);
    return;
  }
  out.push(`${at}: checkpoint has ${JSON.stringify(a)}, this run asks for ${JSON.stringify(b)}`);
}

/**
 * Everything that shapes the weights or what they mean (model section, sequence length, splitter) must match
 * between a checkpoint and the run that resumes it. model.seed only seeded the initialisation, so it may differ.
 */
export function configMismatch(ckpt: AUNetConfig, run: AUNetConfig): string[] {
  const norm = (c: AUNetConfig) => {
    const o = toOfficialJson(c);
    return { model: { ...o.model, seed: 0 }, data: { seq_len: o.data.seq_len, regex: o.data.regex } };
  };
  const out: string[] = [];
  diffPaths(norm(ckpt), norm(run), "", out);
  return out;
}

/** Parse a checkpoint's raw config (for callers holding only params.json). */
export function configOf(raw: unknown, source: string): AUNetConfig {
  try {
    return parseConfig(raw);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${source}: ${e.message}`);
    throw e;
  }
}
