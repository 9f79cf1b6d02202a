// Checks a golden fixture produced by the official code (see shared/fixtures/README.md): runs it through our
// model and compares logits, loss, every gradient, the pooling indices and the generation traces, and replays
// the training trajectory where the fixture has one (eval/trajectory.ts).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";
import { loadModelDir, readJsonFile } from "../io/model-dir.js";
import { readSafetensors, type SafetensorsFile } from "../io/safetensors.js";
import { AUNet } from "../model/aunet.js";
import { backward, noGrad, type Tensor } from "../engine/tensor.js";
import { defaultBackend } from "../backends/index.js";
import type { Backend } from "../engine/backend.js";
import { IncrementalSplitter } from "../data/incremental.js";
import type { SplitStrategy } from "../data/splitter.js";
import { checkTrajectory, type TrajectoryReport } from "./trajectory.js";
import { maxAbsDiff, relErr } from "../util/compare.js";

/**
 * Pass thresholds: about 10 times the worst error measured on the three official fixtures with the reference
 * backend and the native one (generic, AVX2 and AVX-512 kernels; 1, 2 and 16 threads):
 * - logits, max abs (the forward and every step of the generation traces): worst 4.9e-6;
 * - loss: worst 1.7e-7 relative;
 * - parameter gradients, error relative to the tensor's largest |value|: worst 2.4e-6;
 * - activations and their gradients, same measure: worst 1.4e-6.
 */
export const TOLERANCE = { logitsAbs: 5e-5, lossRel: 2e-6, gradRel: 2.5e-5, actRel: 1.5e-5 } as const;

export interface GenerateReport {
  trace: string;
  steps: number;
  logitsMaxAbsErr: number;
  /** The trace's incremental level mask equals our incremental splitter's. */
  levelsEqual: boolean;
  /** For greedy traces: our argmax picks the recorded next byte at every step. */
  greedyEqual: boolean | null;
  pass: boolean;
}

export interface FixtureReport {
  fixture: string;
  backend: string;
  logitsMaxAbsErr: number;
  loss: number;
  lossExpected: number;
  lossRelErr: number;
  gradients: number;
  worstGrad: { name: string; relErr: number };
  activations: { worst: string; relErr: number; checked: number };
  integers: Record<string, boolean>;
  generate: GenerateReport[];
  /** The replay of trajectory/, null where the fixture has none (or it was not asked for). */
  trajectory: TrajectoryReport | null;
  tolerance: typeof TOLERANCE;
  pass: boolean;
}

function intsEqual(got: Int32Array, want: Int32Array): boolean {
  return got.length === want.length && got.every((v, i) => v === want[i]);
}

function flat2d(rows: unknown, name: string): { data: Int32Array; B: number; S: number } {
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r)))
    throw new UserError(`inputs.json: ${name} must be a [B][S] list of integers`);
  const B = rows.length;
  const S = (rows[0] as unknown[]).length;
  const data = new Int32Array(B * S);
  rows.forEach((r: unknown[], b) => {
    if (r.length !== S) throw new UserError(`inputs.json: ${name} rows differ in length`);
    r.forEach((v, s) => (data[b * S + s] = Number(v)));
  });
  return { data, B, S };
}

/** Pad per-row data [B, len] into [B, width] with zeros (the fixtures store stage-i masks padded to S). */
function padRows(a: Int32Array, B: number, len: number, width: number): Int32Array {
  const out = new Int32Array(B * width);
  for (let b = 0; b < B; b++) out.set(a.subarray(b * len, (b + 1) * len), b * width);
  return out;
}

function checkGenerate(
  model: AUNet,
  strategy: SplitStrategy,
  dir: string,
  trace: string,
): GenerateReport | null {
  const tdir = join(dir, trace);
  if (!existsSync(join(tdir, "generate.json"))) return null;
  const meta = readJsonFile(join(tdir, "generate.json")) as {
    mode?: string;
    tokens: number[];
    level_mask: number[];
    steps: { pos: number; next: number }[];
  };
  const st = readSafetensors(join(tdir, "generate_logits.safetensors"));
  const want = st.getFloat32("logits");
  const V = model.config.vocab_size;
  const tokens = Int32Array.from(meta.tokens);
  const levels = Int32Array.from(meta.level_mask);

  // The incremental splitter must reproduce the trace's per-byte levels (position 0 is forced by prefill).
  let levelsEqual = true;
  const inc = new IncrementalSplitter(strategy);
  for (let i = 0; i < tokens.length; i++) {
    const lv = inc.push(tokens[i]);
    if (i > 0 && lv !== levels[i]) levelsEqual = false;
  }

  let worst = 0;
  let greedyEqual = (meta.mode === "greedy" ? true : null) as boolean | null;
  noGrad(() => {
    meta.steps.forEach((step, i) => {
      const n = step.pos + 1;
      const { logits } = model.forward(tokens.subarray(0, n), levels.subarray(0, n), 1, n);
      const all = logits.toFloat32();
      const last = all.subarray((n - 1) * V, n * V);
      worst = Math.max(worst, maxAbsDiff(last, want.subarray(i * V, (i + 1) * V)));
      if (greedyEqual !== null) {
        let am = 0;
        for (let j = 1; j < V; j++) if (last[j] > last[am]) am = j;
        if (am !== step.next) greedyEqual = false;
      }
    });
  });
  return {
    trace,
    steps: meta.steps.length,
    logitsMaxAbsErr: worst,
    levelsEqual,
    greedyEqual,
    pass: worst <= TOLERANCE.logitsAbs && levelsEqual && greedyEqual !== false,
  };
}

export interface CheckOptions {
  /** Replay trajectory/ when the fixture has one (default true). */
  trajectory?: boolean;
}

export async function checkFixture(
  dir: string,
  backend: Backend = defaultBackend(),
  opts: CheckOptions = {},
): Promise<FixtureReport> {
  if (!existsSync(dir)) throw new UserError(`no such fixture directory: ${dir}`);
  for (const f of ["inputs.json", "expected.safetensors", "model.safetensors"])
    if (!existsSync(join(dir, f))) throw new UserError(`${dir} is not a fixture directory: ${f} is missing`);
  const { config, weights } = loadModelDir(dir);
  const model = new AUNet(config.model, backend, weights);
  const inputs = readJsonFile(join(dir, "inputs.json")) as Record<string, unknown>;
  const tok = flat2d(inputs.tokens, "tokens");
  const tgt = flat2d(inputs.targets, "targets");
  const lvl = flat2d(inputs.level_mask, "level_mask");
  const { B, S } = tok;
  if (tgt.B !== B || tgt.S !== S || lvl.B !== B || lvl.S !== S)
    throw new UserError(`inputs.json: tokens, targets and level_mask shapes differ`);
  const expected: SafetensorsFile = readSafetensors(join(dir, "expected.safetensors"));

  const r = model.loss(tok.data, lvl.data, tgt.data, B, S, { padToCap: true, keepActivations: true });
  for (const t of r.acts.values()) t.retainGrad = true;
  model.zeroGrad();
  backward(r.loss);

  const logitsErr = maxAbsDiff(r.logits.toFloat32(), expected.getFloat32("logits"));
  const loss = r.loss.item();
  const lossExpected = expected.getFloat32("loss")[0];
  const lossRelErr = Math.abs(loss - lossExpected) / Math.abs(lossExpected);

  let worstGrad = { name: "", relErr: 0 };
  let gradients = 0;
  for (const [name, p] of model.params) {
    const key = `grad.${name}`;
    if (!expected.has(key)) throw new UserError(`${dir}/expected.safetensors has no ${key}`);
    const e = relErr(p.grad ? p.grad.toFloat32() : new Float32Array(p.size), expected.getFloat32(key));
    gradients++;
    if (!(e <= worstGrad.relErr)) worstGrad = { name, relErr: Number.isNaN(e) ? Infinity : e };
  }

  const activations = { worst: "", relErr: 0, checked: 0 };
  const actCheck = (name: string, t: Tensor | null | undefined) => {
    if (!t || !expected.has(name)) return;
    const e = relErr(t.toFloat32(), expected.getFloat32(name));
    activations.checked++;
    if (!(e <= activations.relErr)) {
      activations.relErr = Number.isNaN(e) ? Infinity : e;
      activations.worst = name;
    }
  };
  for (const [name, t] of r.acts) {
    actCheck(name, t);
    actCheck(name.replace(/^act\./, "grad_act."), t.grad);
  }

  const integers: Record<string, boolean> = {};
  r.pools.forEach((pl, i) => {
    const has = (k: string) => expected.has(`pool.${i}.${k}`);
    const get = (k: string) => expected.getInt32(`pool.${i}.${k}`);
    if (has("mask")) integers[`pool.${i}.mask`] = intsEqual(padRows(pl.compact, B, pl.lenIn, S), get("mask"));
    if (has("idx")) integers[`pool.${i}.idx`] = intsEqual(pl.idx, get("idx"));
    if (has("repeat_idx")) integers[`pool.${i}.repeat_idx`] = intsEqual(pl.rep, get("repeat_idx"));
    if (has("position")) integers[`pool.${i}.position`] = intsEqual(pl.pos, get("position"));
  });

  const generate: GenerateReport[] = [];
  for (const trace of ["generate_teacher", "generate"]) {
    const g = checkGenerate(model, config.strategy, dir, trace);
    if (g) generate.push(g);
  }

  // The replay trains, so it starts from a fresh copy of the fixture's weights.
  const tdir = join(dir, "trajectory");
  const trajectory =
    opts.trajectory !== false && existsSync(join(tdir, "trajectory.json"))
      ? await checkTrajectory(new AUNet(config.model, backend, weights), backend, tdir)
      : null;

  const pass =
    logitsErr <= TOLERANCE.logitsAbs &&
    lossRelErr <= TOLERANCE.lossRel &&
    worstGrad.relErr <= TOLERANCE.gradRel &&
    activations.relErr <= TOLERANCE.actRel &&
    Object.values(integers).every((v) => v) &&
    generate.every((g) => g.pass) &&
    (trajectory === null || trajectory.pass);
  return {
    fixture: dir,
    backend: backend.name,
    logitsMaxAbsErr: logitsErr,
    loss,
    lossExpected,
    lossRelErr,
    gradients,
    worstGrad,
    activations,
    integers,
    generate,
    trajectory,
    tolerance: TOLERANCE,
    pass,
  };
}
