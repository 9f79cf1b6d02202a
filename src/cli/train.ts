// `aunet train`: train an AU-Net from a preset or config file on text/JSONL data, with checkpoints, metrics,
// validation and exact resume (see src/train/trainer.ts).

import path from "node:path";
import { UserError } from "../util/errors.js";
import { startDashboard } from "./serve.js";
import { duration, list, num, parseFlags, str, type FlagValues } from "./flags.js";
import { countParams } from "../model/config.js";
import { readJsonFile } from "../io/model-dir.js";
import { configMismatch, listCheckpoints } from "../train/checkpoint.js";
import {
  applyOverrides,
  loadRawConfig,
  parseRunConfig,
  presetNames,
  toParamsJson,
  type ConfigOverrides,
  type RunConfig,
} from "../train/run-config.js";
import { SIGNAL_EXIT_CODE } from "../train/signals.js";
import { train, type TrainSummary } from "../train/trainer.js";

export const TRAIN_HELP = `usage: aunet train --config <preset|file.json> --data <paths...> --out <dir> [options]

Trains an AU-Net on plain text (.txt/.md, cut into documents at blank lines), JSONL (.jsonl/.ndjson with a
"text" or "content" field) and their .gz forms; directories are read recursively. Writes <dir>/checkpoints/,
<dir>/metrics.jsonl, <dir>/curve.svg and <dir>/params.json.

options:
  --config C         a preset (${presetNames().join(", ")}) or a config file in the official params.json layout
                     (optional with --resume: the checkpoint's config is used)
  --data P...        training files or directories
  --val P...         validation files or directories (default: a stable hash-chosen fraction of --data)
  --out DIR          run directory
  --resume           continue the run in --out from its latest checkpoint, as it was configured (bit-exact);
                     flags that would change the run are refused, except --steps (the schedule is
                     recomputed over the new length from the next step on), --stop-after, --time-limit,
                     --keep, --ckpt-every, --val-every, --val-bytes, --log-every and --val files
  --init DIR         start a new run from the weights of a model directory (checkpoint, run, fixture;
                     same config); not with --resume
  --steps N          optimizer steps the schedule spans
  --stop-after N     stop (and checkpoint) after N steps in total without changing the schedule
  --time-limit T     stop (and checkpoint) after T of training: seconds, or 90s, 5m, 1.5h
  --batch B          rows per micro-batch          --seq S      bytes per row (rescales the pooled caps)
  --grad-acc K       micro-batches per step        --lr X       peak learning rate
  --warmup N         warmup steps                  --clip X     max gradient norm (0: off)
  --seed N           seeds data order and initialisation
  --val-every N      validate every N steps (0: at start and end only)
  --val-fraction F   held-out fraction without --val       --val-bytes N   validation text budget
  --ckpt-every N     checkpoint every N steps      --keep K     checkpoints to keep (0: all)
  --log-every N      plain progress line every N steps (when not on a terminal)
  --json             print the final summary as JSON on stdout
  --dashboard        serve the live training dashboard (this run and its sibling runs) on a loopback port
  -h, --help         show this text
`;

const SPEC = {
  config: { kind: "string" },
  data: { kind: "list" },
  val: { kind: "list" },
  out: { kind: "string" },
  resume: { kind: "bool" },
  init: { kind: "string" },
  steps: { kind: "string" },
  "stop-after": { kind: "string" },
  "time-limit": { kind: "string" },
  batch: { kind: "string" },
  seq: { kind: "string" },
  "grad-acc": { kind: "string" },
  lr: { kind: "string" },
  warmup: { kind: "string" },
  clip: { kind: "string" },
  seed: { kind: "string" },
  "val-every": { kind: "string" },
  "val-fraction": { kind: "string" },
  "val-bytes": { kind: "string" },
  "ckpt-every": { kind: "string" },
  keep: { kind: "string" },
  "log-every": { kind: "string" },
  json: { kind: "bool" },
  dashboard: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export function overridesFrom(f: FlagValues): ConfigOverrides {
  return {
    steps: num(f, "steps", { int: true, min: 1 }),
    batch: num(f, "batch", { int: true, min: 1 }),
    seq: num(f, "seq", { int: true, min: 2 }),
    lr: num(f, "lr", { min: 0, exclusiveMin: true }),
    warmup: num(f, "warmup", { int: true, min: 0 }),
    seed: num(f, "seed", { int: true, min: 0 }),
    gradAcc: num(f, "grad-acc", { int: true, min: 1 }),
    clip: num(f, "clip", { min: 0 }),
    keep: num(f, "keep", { int: true, min: 0 }),
    ckptEvery: num(f, "ckpt-every", { int: true, min: 1 }),
    valEvery: num(f, "val-every", { int: true, min: 0 }),
    valFraction: num(f, "val-fraction", { min: 0 }),
    valBytes: num(f, "val-bytes", { int: true, min: 1 }),
    logEvery: num(f, "log-every", { int: true, min: 1 }),
  };
}

/** Extra knobs for callers in-process (the demo, tests). */
export interface TrainCommandHooks {
  autoSteps?: boolean;
  onSummary?: (s: TrainSummary) => void;
  quiet?: boolean;
}

export async function trainCommand(argv: string[], hooks: TrainCommandHooks = {}): Promise<number> {
  const f = parseFlags("aunet train", argv, SPEC);
  if (f.has("help")) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  const out = str(f, "out");
  const data = list(f, "data");
  if (!out) throw new UserError("aunet train: --out <dir> is required");
  if (!data) throw new UserError("aunet train: --data <paths...> is required");
  const resume = f.has("resume");
  if (resume && f.has("init"))
    throw new UserError(
      "aunet train: --resume continues the run in --out from its checkpoint and --init starts a new one: give one of them",
    );
  const overrides = overridesFrom(f);
  const preset = str(f, "config");
  let config: RunConfig;
  if (preset) config = parseRunConfig(applyOverrides(loadRawConfig(preset), overrides));
  else if (resume && listCheckpoints(out).length > 0) config = newestRunConfig(out, overrides);
  else
    throw new UserError(
      "aunet train: --config <preset|file.json> is required (presets: " + presetNames().join(", ") + ")",
    );
  // A resumed run keeps its checkpoint's configuration; --config only has to name the same model, and the
  // explicit flags are applied to the checkpoint's settings (the trainer refuses those that would change the run).
  const resumeConfig = (ck: RunConfig): RunConfig => {
    const diff = preset ? configMismatch(ck.aunet, config.aunet) : [];
    if (diff.length > 0)
      throw new UserError(
        `--config ${preset} is not the model of the run in ${out}; refusing to resume (${diff.slice(0, 3).join("; ")}${diff.length > 3 ? "; ..." : ""})`,
      );
    return parseRunConfig(applyOverrides(toParamsJson(ck), overrides));
  };
  const dashboard = f.has("dashboard") ? await startDashboard(path.dirname(path.resolve(out))) : null;
  if (dashboard) process.stderr.write(`dashboard: ${dashboard.url}\n`);
  const summary = await train({
    config,
    resumeConfig,
    data,
    val: list(f, "val"),
    out,
    resume,
    init: str(f, "init"),
    timeLimitSec: duration(f, "time-limit"),
    stopAfter: num(f, "stop-after", { int: true, min: 0 }),
    autoSteps: hooks.autoSteps,
    quiet: hooks.quiet,
    handleSignals: true,
  }).finally(() => dashboard?.stop());
  hooks.onSummary?.(summary);
  if (f.has("json"))
    process.stdout.write(
      JSON.stringify(
        { ...summary, nonEmbeddingParams: countParams(config.aunet.model).nonEmbedding },
        null,
        2,
      ) + "\n",
    );
  return summary.signal ? SIGNAL_EXIT_CODE[summary.signal] : 0;
}

/** The configuration of the newest checkpoint of a run whose params.json parses (damaged ones are skipped). */
function newestRunConfig(out: string, overrides: ConfigOverrides): RunConfig {
  const all = listCheckpoints(out);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      return parseRunConfig(
        applyOverrides(readJsonFile(`${all[i].dir}/params.json`) as Record<string, unknown>, overrides),
      );
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
    }
  }
  throw new UserError(`aunet train: no checkpoint of ${out} has a readable params.json; give --config`);
}
