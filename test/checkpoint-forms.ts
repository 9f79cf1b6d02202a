// A tiny model in every checkpoint form the --ckpt resolver accepts, made in a temp directory: a model
// directory (random weights of the `tiny` preset), a run directory whose newest checkpoint is incomplete, and
// the lingua directory, safetensors file and .pth file that `aunet convert` writes from it.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { paramSpecs, parseConfig } from "../src/model/config.js";
import { loadRawConfig } from "../src/train/run-config.js";
import { writeModel } from "../src/io/convert.js";
import { Rng } from "../src/util/rng.js";
import { randn } from "./helpers.js";

export const MAIN = join(process.cwd(), "dist/src/cli/main.js");

export interface Forms {
  root: string;
  /** Each form by name, as a path for --ckpt. */
  paths: Record<"run" | "checkpoint" | "model-dir" | "lingua" | "safetensors" | "torch", string>;
}

/** Writes the tiny model with weights scaled by `scale` (huge weights make the logits overflow). */
export function makeModelDir(dir: string, scale = 0.02): void {
  const raw = loadRawConfig("tiny");
  const config = parseConfig(raw);
  const rng = new Rng(7);
  const weights = new Map<string, Float32Array>();
  for (const s of paramSpecs(config.model))
    weights.set(
      s.name,
      randn(
        rng,
        s.shape.reduce((a, b) => a * b, 1),
        scale,
      ),
    );
  writeModel(dir, "aunet", { config, raw, weights });
}

export function convert(src: string, dst: string, ...extra: string[]): void {
  const r = spawnSync(process.execPath, [MAIN, "convert", src, dst, ...extra], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`convert ${src} ${dst}: ${r.stderr}`);
}

export function makeForms(): Forms {
  const root = mkdtempSync(join(tmpdir(), "aunet-forms-"));
  const model = join(root, "model");
  makeModelDir(model);
  // A run: step 2 complete (with a state.json), step 3 still being written (no params.json yet).
  const run = join(root, "run");
  const step2 = join(run, "checkpoints", "step_00000002");
  mkdirSync(step2, { recursive: true });
  for (const f of ["model.safetensors", "params.json"]) copyFileSync(join(model, f), join(step2, f));
  writeFileSync(join(step2, "state.json"), JSON.stringify({ version: 1, step: 2 }));
  const step3 = join(run, "checkpoints", "step_00000003");
  mkdirSync(step3);
  copyFileSync(join(model, "model.safetensors"), join(step3, "model.safetensors"));
  const lingua = join(root, "lingua");
  convert(model, lingua, "--to", "lingua");
  const st = join(root, "model-file.safetensors");
  convert(model, st, "--to", "safetensors");
  const pthDir = join(root, "pth");
  mkdirSync(pthDir);
  copyFileSync(join(lingua, "consolidated.pth"), join(pthDir, "weights.pth"));
  copyFileSync(join(lingua, "params.json"), join(pthDir, "params.json"));
  return {
    root,
    paths: {
      run,
      checkpoint: step2,
      "model-dir": model,
      lingua,
      safetensors: st,
      torch: join(pthDir, "weights.pth"),
    },
  };
}
