// The one answer to "which model does this path name?", for every command that takes a --ckpt and for the
// library's loadModel / loadModelDir. A path may be
//   a run directory              <run>/checkpoints/step_N/ ...: its newest complete checkpoint
//   a checkpoint / model dir     model.safetensors + params.json (or config.json): training checkpoints, the
//                                shared fixtures, `aunet convert --to aunet`
//   a lingua consolidated dir    consolidated.pth + params.json (lingua's consolidate, `convert --to lingua`)
//   a safetensors file           its config in its metadata (`convert --to safetensors`) or beside it
//   a .pth / .pt file            torch.save of a state dict, with params.json or config.json beside it
// Anything else is a one-line UserError that says what was expected.

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import type { AUNetConfig } from "../model/config.js";
import { readJsonFile } from "./model-dir.js";
import { CONSOLIDATED_NAME } from "./lingua.js";
import { readModel, type SourceFormat } from "./convert.js";

/** Where a run keeps its checkpoints, and how they are named (src/train/checkpoint.ts writes them). */
const CHECKPOINTS = "checkpoints";
const STEP_DIR = /^step_(\d+)$/;

export type CheckpointForm = "run" | "checkpoint" | "model-dir" | "lingua" | "safetensors" | "torch";

export interface ResolvedCheckpoint {
  /** What the given path turned out to be. */
  form: CheckpointForm;
  /** The model itself: a directory (checkpoint, model or lingua dir) or a weights file. */
  path: string;
  /** How convert's reader should read `path`. */
  format: SourceFormat;
}

export const CHECKPOINT_FORMS_HELP =
  "a run directory, a checkpoint or model directory (model.safetensors + params.json or config.json), " +
  "a lingua directory (consolidated.pth + params.json), a .safetensors file with its config, " +
  "or a .pth/.pt file with params.json beside it";

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function hasConfig(dir: string): boolean {
  return isFile(path.join(dir, "params.json")) || isFile(path.join(dir, "config.json"));
}

/**
 * The newest complete checkpoint of a run directory: the highest step_N under <run>/checkpoints that holds
 * model.safetensors and params.json as regular files (a checkpoint being written, or half deleted, is skipped).
 * Undefined when the run has none.
 */
export function latestCheckpointDir(runDir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(runDir, CHECKPOINTS));
  } catch {
    return undefined;
  }
  const steps = names
    .map((n) => ({ n, m: STEP_DIR.exec(n) }))
    .filter((x) => x.m !== null)
    .map((x) => ({ dir: path.join(runDir, CHECKPOINTS, x.n), step: Number(x.m![1]) }))
    .sort((a, b) => b.step - a.step);
  return steps.find(
    (s) => isFile(path.join(s.dir, "model.safetensors")) && isFile(path.join(s.dir, "params.json")),
  )?.dir;
}

/** What `p` is, without reading any weights. */
export function resolveCheckpoint(p: string): ResolvedCheckpoint {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new UserError(`no such checkpoint: ${p} (expected ${CHECKPOINT_FORMS_HELP})`);
  }
  if (st.isDirectory()) {
    const hasSt = isFile(path.join(p, "model.safetensors"));
    const hasPth = isFile(path.join(p, CONSOLIDATED_NAME));
    if (hasSt && hasConfig(p))
      return {
        form: isFile(path.join(p, "state.json")) ? "checkpoint" : "model-dir",
        path: p,
        format: "aunet",
      };
    if (hasPth && isFile(path.join(p, "params.json"))) return { form: "lingua", path: p, format: "lingua" };
    if (fs.existsSync(path.join(p, CHECKPOINTS))) {
      const latest = latestCheckpointDir(p);
      if (latest === undefined)
        throw new UserError(
          `${p} is a run directory without a complete checkpoint (checkpoints/step_N/ with model.safetensors and params.json)`,
        );
      return { form: "run", path: latest, format: "aunet" };
    }
    if (hasSt || hasPth)
      throw new UserError(
        `${p} has ${hasSt ? "model.safetensors" : CONSOLIDATED_NAME} but no ${hasSt ? "params.json or config.json" : "params.json"} beside it`,
      );
    throw new UserError(`${p} holds no model: expected ${CHECKPOINT_FORMS_HELP}`);
  }
  if (!st.isFile())
    throw new UserError(`${p} is not a regular file or directory (expected ${CHECKPOINT_FORMS_HELP})`);
  if (/\.safetensors$/i.test(p)) return { form: "safetensors", path: p, format: "safetensors" };
  if (/\.(pth|pt)$/i.test(p)) {
    if (!hasConfig(path.dirname(p)))
      throw new UserError(`${p} needs a params.json or config.json beside it (its model config)`);
    return { form: "torch", path: p, format: "torch" };
  }
  throw new UserError(
    `${p} is neither a .safetensors nor a .pth/.pt file (expected ${CHECKPOINT_FORMS_HELP})`,
  );
}

export interface LoadedModel {
  /** What the given path resolved to. */
  source: ResolvedCheckpoint;
  config: AUNetConfig;
  /** The config as written (params.json, config.json or the safetensors metadata). */
  raw: Record<string, unknown>;
  weights: Map<string, Float32Array>;
  /** The training step, when the model is a training checkpoint (its state.json). */
  step: number | null;
}

/** Config and weights (checked against the config's parameter list) of any checkpoint form. */
export function loadModel(
  p: string,
  read: (p: string, source: ResolvedCheckpoint) => LoadedModel = readResolved,
): LoadedModel {
  // A run still training may prune the checkpoint chosen here while it is read (a small --keep): take the
  // run's next latest then.
  for (let attempt = 1; ; attempt++) {
    const source = resolveCheckpoint(p);
    try {
      return read(p, source);
    } catch (e) {
      if (fs.existsSync(source.path)) throw e;
      if (source.form === "run" && attempt < 5) continue;
      throw new UserError(
        `${source.path} was removed while it was being read (is a run still training there with a small --keep?); try again`,
      );
    }
  }
}

/** Reads what resolveCheckpoint found (`p` is the path as given, for messages). */
export function readResolved(p: string, source: ResolvedCheckpoint): LoadedModel {
  let m: ReturnType<typeof readModel>;
  try {
    m = readModel(source.path, { from: source.format });
  } catch (e) {
    // convert's reader asks for its --config flag, which the other commands do not have.
    if (e instanceof UserError && source.form === "safetensors" && /bare weights file/.test(e.message))
      throw new UserError(
        `${p} carries no config: expected one in its metadata (as 'aunet convert --to safetensors' writes) or a params.json/config.json beside it`,
      );
    throw e;
  }
  let step: number | null = null;
  const statePath = path.join(source.path, "state.json");
  if (source.format === "aunet" && isFile(statePath)) {
    const s = readJsonFile(statePath) as { step?: unknown } | null;
    if (s !== null && typeof s === "object" && Number.isSafeInteger(s.step)) step = s.step as number;
  }
  const raw = m.raw !== null && typeof m.raw === "object" ? (m.raw as Record<string, unknown>) : {};
  return { source, config: m.config, raw, weights: m.weights, step };
}

/** The library's historical name: config and weights of any checkpoint form (see loadModel). */
export function loadModelDir(p: string): { config: AUNetConfig; weights: Map<string, Float32Array> } {
  const { config, weights } = loadModel(p);
  return { config, weights };
}
