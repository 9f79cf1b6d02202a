// The demo: flags checked before any work, another run's directory never replaced without --force, and the
// fitted schedule as the README describes it (4 validations during the run, params.json with the steps planned).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RefBackend } from "../src/backends/ref.js";
import { demoCommand } from "../src/cli/demo.js";
import { applyOverrides, loadRawConfig, parseRunConfig } from "../src/train/run-config.js";
import { listCheckpoints } from "../src/train/checkpoint.js";
import { train } from "../src/train/trainer.js";
import { AUTO_VALIDATIONS, ValidationPlan } from "../src/train/schedule-fit.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const MOBY = path.join(ROOT, "corpus", "moby-dick.txt");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-demo-"));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("demo: every flag is checked before any work", async () => {
  const out = path.join(dir, "never");
  for (const [flags, re] of [
    [["--sample", "abc"], /--sample/],
    [["--seed", "-1"], /--seed/],
    [["--time-limit", "soon"], /--time-limit/],
    [["--config", "no-such-preset"], /unknown preset/],
  ] as [string[], RegExp][])
    await assert.rejects(() => demoCommand(["--out", out, ...flags]), re, flags.join(" "));
  assert.ok(!fs.existsSync(out), "nothing was created");
});

test("demo: --out holding another run is refused without --force, and left intact", async () => {
  const out = path.join(dir, "a-run");
  fs.writeFileSync(path.join(dir, "train.txt"), fs.readFileSync(MOBY, "utf8").slice(0, 8000));
  const cfg = parseRunConfig(applyOverrides(loadRawConfig("tiny"), { steps: 2, valFraction: 0 }));
  await train({
    config: cfg,
    data: [path.join(dir, "train.txt")],
    out,
    backend: new RefBackend(),
    quiet: true,
  });
  const before = fs.readFileSync(path.join(out, "metrics.jsonl"));
  await assert.rejects(
    () => demoCommand(["--out", out, "--time-limit", "1"]),
    /aunet demo: \S+a-run already holds a training run \(checkpoints, metrics\.jsonl, params\.json, curve\.svg\); pass --force/,
  );
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [2],
  );
  assert.ok(fs.readFileSync(path.join(out, "metrics.jsonl")).equals(before));
});

test("validation plan: a fitted run validates 4 times, evenly, whatever the refits", () => {
  const at = (plan: ValidationPlan, steps: (step: number) => number, last: number) => {
    const out: number[] = [];
    for (let step = 1; step <= last; step++) if (plan.due(step, steps(step))) out.push(step);
    return out;
  };
  assert.deepEqual(
    at(ValidationPlan.evenly(AUTO_VALIDATIONS), () => 1000, 1000),
    [200, 400, 600, 800],
  );
  // Refitted from 1000 to 1200 steps at step 300, then to 1100 at step 700: only the validations still to come
  // move, each an equal share of the way from the last one to the planned end.
  const refits = (s: number) => (s < 300 ? 1000 : s < 700 ? 1200 : 1100);
  assert.deepEqual(at(ValidationPlan.evenly(AUTO_VALIDATIONS), refits, 1100), [200, 450, 700, 900]);
  // A plan that collapses below the next point: the rest follow one by one, never two at the same step.
  const shrink = (s: number) => (s < 50 ? 1000 : 60);
  assert.deepEqual(at(ValidationPlan.evenly(AUTO_VALIDATIONS), shrink, 60), [50, 53, 56, 58]);
  // A fixed interval: every N steps, never at the last step (the final validation follows the loop).
  assert.deepEqual(
    at(new ValidationPlan(4), () => 12, 12),
    [4, 8],
  );
});

test("fitted schedule: params.json records the steps planned; validations at the start, during, at the end", async () => {
  const trainFile = path.join(dir, "fit.txt");
  const text = fs.readFileSync(MOBY, "utf8");
  fs.writeFileSync(trainFile, text.slice(0, 30000));
  fs.writeFileSync(path.join(dir, "fit-val.txt"), text.slice(30000, 30600));
  const out = path.join(dir, "fitted");
  // The preset's steps (20) are only a starting point: the fit replaces them.
  const cfg = parseRunConfig(applyOverrides(loadRawConfig("tiny"), { valEvery: 0 }));
  const s = await train({
    config: cfg,
    data: [trainFile],
    val: [path.join(dir, "fit-val.txt")],
    out,
    timeLimitSec: 6,
    autoSteps: true,
    backend: new RefBackend(),
    quiet: true,
  });
  const params = JSON.parse(fs.readFileSync(path.join(out, "params.json"), "utf8"));
  assert.equal(params.steps, s.steps, "the run's params.json holds the steps planned");
  const last = JSON.parse(fs.readFileSync(path.join(s.checkpoint, "params.json"), "utf8"));
  assert.equal(last.steps, s.steps);
  assert.equal(s.val[0].step, 0);
  assert.equal(s.val[s.val.length - 1].step, s.step);
  const during = s.val.filter((v) => v.step > 0 && v.step < s.step);
  assert.ok(during.length <= AUTO_VALIDATIONS, JSON.stringify(s.val));
});
