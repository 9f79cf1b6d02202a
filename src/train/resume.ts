// Resuming a run: pick the newest checkpoint that is intact (falling back past damaged ones with a note), make
// sure this invocation continues the run its checkpoint describes, and put the data stream back where it was.
//
// A resumed run is the same run: the checkpoint's params.json is its configuration, and a setting that would
// change what the weights become (model, sequence length, batch, gradient accumulation, optimiser, schedule
// shape, seed, data, document cutting, held-out fraction) is refused with the differences named. What may
// change is listed in RESUME_MAY_CHANGE: how long the schedule is (`steps`), and bookkeeping that never touches
// the weights (checkpoint interval and count, validation interval and budget, logging interval).

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import type { SourceFile } from "../data/sources.js";
import { TrainLoader } from "../data/loader.js";
import type { DataStats } from "../data/sources.js";
import {
  configMismatch,
  diffPaths,
  listCheckpoints,
  loadCheckpoint,
  type LoadedCheckpoint,
  type LoaderFingerprint,
  type TrainState,
} from "./checkpoint.js";
import { parseRunConfig, toParamsJson, type RunConfig } from "./run-config.js";

/** params.json paths a resumed run may change (model.seed only seeded the initialisation, long done). */
export const RESUME_MAY_CHANGE = [
  "steps",
  "name",
  "model.seed",
  "checkpoint.dump.every",
  "checkpoint.dump.keep",
  "validation.every",
  "validation.max_bytes",
  "logging.freq",
];

/** What the run asks for, given the checkpoint's config (the CLI applies its flags to it). */
export type ConfigRequest = RunConfig | ((checkpoint: RunConfig) => RunConfig);

export interface TrainData {
  files: SourceFile[];
  /** Explicit validation sources, or null for the hash-held-out fraction. */
  valFiles: SourceFile[] | null;
  stats: DataStats;
}

export interface Resumed {
  checkpoint: LoadedCheckpoint;
  state: TrainState;
  /** The configuration the run continues with (the checkpoint's, with the allowed changes). */
  config: RunConfig;
  loader: TrainLoader;
}

export function loaderFingerprint(cfg: RunConfig, data: TrainData): LoaderFingerprint {
  return {
    seed: cfg.seed,
    docBytes: cfg.docBytes,
    shuffleWindow: cfg.shuffleWindow,
    valFraction: data.valFiles ? 0 : cfg.validation.fraction,
  };
}

export function newLoader(cfg: RunConfig, data: TrainData): TrainLoader {
  return new TrainLoader(data.files, cfg.aunet.seqLen, {
    ...loaderFingerprint(cfg, data),
    strategy: cfg.aunet.strategy,
    stats: data.stats,
  });
}

/** The changes from the checkpoint's config to the asked one that a resume refuses, as "path: a -> b". */
export function refusedChanges(ck: RunConfig, asked: RunConfig): string[] {
  const diffs: string[] = [];
  diffPaths(toParamsJson(ck), toParamsJson(asked), "", diffs);
  return diffs.filter((d) => !RESUME_MAY_CHANGE.includes(d.slice(0, d.indexOf(":"))));
}

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

/** Refuse (one line, differences named) a resume that would not continue the checkpoint's run. */
function checkContinues(c: LoadedCheckpoint, ckRun: RunConfig, asked: RunConfig, data: TrainData): void {
  const state = c.state!;
  const model = configMismatch(c.config, asked.aunet);
  if (model.length > 0)
    throw new UserError(
      `the checkpoint ${c.dir} was trained with a different model config; refusing to resume (${model.slice(0, 3).join("; ")}${model.length > 3 ? "; ..." : ""})`,
    );
  const refused = refusedChanges(ckRun, asked);
  if (refused.length > 0)
    throw new UserError(
      `--resume continues ${c.dir} as it was configured; refusing to change ${refused.join("; ")} (drop those flags, or start a new --out)`,
    );
  if (asked.steps < state.step)
    throw new UserError(
      `--steps ${asked.steps} is behind the checkpoint's step ${state.step}; nothing to resume`,
    );
  const src = sameSources(state.sources, data.files);
  if (src)
    throw new UserError(
      `cannot resume ${c.dir}: the training data differs (${src}); resume with the same --data`,
    );
  if (state.loader) {
    const now = loaderFingerprint(asked, data);
    const was = state.loader;
    const changed = (Object.keys(now) as (keyof LoaderFingerprint)[]).filter((k) => now[k] !== was[k]);
    if (changed.length > 0)
      throw new UserError(
        `cannot resume ${c.dir}: the data stream differs (${changed.map((k) => `${k} ${was[k]} -> ${now[k]}`).join(", ")}), so its saved position would point elsewhere; resume with the same settings`,
      );
  }
}

/**
 * Rename damaged checkpoints out of the step_N namespace (nothing is deleted), so that readers resolving the run
 * (eval --ckpt RUN) and later resumes do not meet them again.
 */
function moveAside(dirs: readonly string[], note: (s: string) => void): void {
  for (const d of dirs) {
    let to = path.join(path.dirname(d), `damaged-${path.basename(d)}`);
    for (let i = 2; fs.existsSync(to); i++)
      to = path.join(path.dirname(d), `damaged-${path.basename(d)}-${i}`);
    try {
      fs.renameSync(d, to);
      note(`moved the damaged checkpoint aside to ${to}`);
    } catch (e) {
      note(`could not move the damaged checkpoint ${d} aside: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/**
 * The newest intact checkpoint of `out`, checked against this invocation and with its data position restored;
 * null when the run has no checkpoint yet. Damaged checkpoints (unreadable, inconsistent content, a data position
 * that does not exist) are skipped with a note; a run with only damaged ones is refused.
 */
export async function resumeLatest(
  out: string,
  request: ConfigRequest,
  data: TrainData,
  note: (s: string) => void,
): Promise<Resumed | null> {
  const all = listCheckpoints(out);
  const skipped: string[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const dir = all[i].dir;
    let c: LoadedCheckpoint, ckRun: RunConfig;
    try {
      c = loadCheckpoint(dir);
      if (!c.state || !c.optim) throw new UserError("it has no training state");
      ckRun = parseRunConfig(c.raw);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      note(`skipping damaged checkpoint ${dir}: ${e.message}`);
      skipped.push(dir);
      continue;
    }
    const asked = typeof request === "function" ? request(ckRun) : request;
    checkContinues(c, ckRun, asked, data);
    const loader = newLoader(asked, data);
    try {
      if (c.state!.data) await loader.restore(c.state!.data);
    } catch (e) {
      // The position passed the shape checks but does not exist in these (unchanged) files: the state is bad.
      await loader.close();
      note(
        `skipping damaged checkpoint ${dir}: its data position is invalid (${e instanceof Error ? e.message : String(e)})`,
      );
      skipped.push(dir);
      continue;
    }
    moveAside(skipped, note);
    if (asked.steps !== ckRun.steps)
      note(
        `note: the schedule now spans ${asked.steps} steps (the checkpoint's: ${ckRun.steps}); from step ${c.state!.step + 1} on the learning rate follows the ${asked.steps}-step schedule`,
      );
    return { checkpoint: c, state: c.state!, config: asked, loader };
  }
  if (skipped.length > 0)
    throw new UserError(
      `${out} has no intact checkpoint to resume (all ${skipped.length} are damaged, see above)`,
    );
  return null;
}
