// Every command that takes a model, and the library, accept every checkpoint form (src/io/checkpoint-resolver.ts):
// a run directory (its newest complete checkpoint), a checkpoint directory, a model directory, a lingua directory,
// a safetensors file carrying its config and a .pth with a params.json beside it. The forms are made from one
// tiny model, the lingua/safetensors ones by `aunet convert`, so every command must give the same numbers on each.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAIN, makeForms, type Forms } from "./checkpoint-forms.js";
import {
  latestCheckpointDir,
  loadModel,
  loadModelDir,
  resolveCheckpoint,
} from "../src/io/checkpoint-resolver.js";

let forms: Forms;
before(() => {
  forms = makeForms();
});
after(() => rmSync(forms.root, { recursive: true, force: true }));

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[]): string {
  const r = run(args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function oneLineError(args: string[], re: RegExp): void {
  const r = run(args);
  assert.equal(r.code, 1, `${args.join(" ")}: exit ${r.code}, stderr ${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^aunet[ :]/);
  assert.match(r.stderr, re);
}

const FORMS = ["run", "checkpoint", "model-dir", "lingua", "safetensors", "torch"] as const;

test("the resolver names each form, and a run resolves to its newest complete checkpoint", () => {
  for (const form of FORMS) assert.equal(resolveCheckpoint(forms.paths[form]).form, form);
  // step_00000003 has no params.json yet (being written): step 2 is the newest complete one.
  assert.equal(latestCheckpointDir(forms.paths.run), forms.paths.checkpoint);
  assert.equal(resolveCheckpoint(forms.paths.run).path, forms.paths.checkpoint);
  assert.equal(loadModel(forms.paths.run).step, 2);
});

test("the library loads every form to the same weights", () => {
  const ref = loadModelDir(forms.paths["model-dir"]).weights;
  for (const form of FORMS) {
    const { weights } = loadModelDir(forms.paths[form]);
    assert.deepEqual([...weights.keys()].sort(), [...ref.keys()].sort(), form);
    for (const [k, w] of weights) assert.deepEqual(w, ref.get(k), `${form} ${k}`);
  }
});

test("generate, score and eval give the same output on every form", () => {
  const outputs = (form: (typeof FORMS)[number]) => {
    const ckpt = forms.paths[form];
    const gen = ok([
      "generate",
      "--ckpt",
      ckpt,
      "--prompt",
      "Call me",
      "--max-bytes",
      "16",
      "--temperature",
      "0",
    ]);
    const score = ok(["score", "--ckpt", ckpt, "--prompt", "Call me", "--text", " Ishmael"]);
    const ev = JSON.parse(
      ok([
        "eval",
        "--ckpt",
        ckpt,
        "--data",
        "corpus/moby-dick.val.txt",
        "--max-bytes",
        "2000",
        "--doc-bytes",
        "8192",
        "--json",
      ]),
    ) as { bitsPerByte: number; step: number | null };
    return { gen, score, bpb: ev.bitsPerByte, step: ev.step };
  };
  const ref = outputs("model-dir");
  assert.match(ref.score, /^8 bytes: log-likelihood/);
  assert.ok(ref.bpb > 0);
  for (const form of FORMS) {
    const o = outputs(form);
    assert.equal(o.gen, ref.gen, form);
    assert.equal(o.score, ref.score, form);
    assert.equal(o.bpb, ref.bpb, form);
    assert.equal(o.step, form === "run" || form === "checkpoint" ? 2 : null, form);
  }
});

test("convert reads every form, a run directory included", () => {
  for (const form of FORMS) {
    const dst = join(forms.root, `out-${form}.safetensors`);
    assert.match(ok(["convert", forms.paths[form], dst]), /converted .* -> .*\(safetensors\)/);
    const a = loadModelDir(dst).weights;
    const b = loadModelDir(forms.paths["model-dir"]).weights;
    for (const [k, w] of a) assert.deepEqual(w, b.get(k), `${form} ${k}`);
  }
});

test("what is not a model is refused in one line that says what was expected", () => {
  const bad = join(forms.root, "bad");
  mkdirSync(join(bad, "empty"), { recursive: true });
  mkdirSync(join(bad, "run", "checkpoints", "step_00000001"), { recursive: true });
  mkdirSync(join(bad, "lonely"));
  copyFileSync(join(forms.paths.lingua, "consolidated.pth"), join(bad, "lonely", "w.pth"));
  copyFileSync(join(forms.paths["model-dir"], "model.safetensors"), join(bad, "lonely", "model.safetensors"));
  copyFileSync(join(forms.paths["model-dir"], "model.safetensors"), join(bad, "bare.safetensors"));
  writeFileSync(join(bad, "notes.txt"), "hello");
  // Only regular files are read: a weights file that is a link to /dev/zero or a FIFO would never end.
  mkdirSync(join(bad, "zero"));
  copyFileSync(join(forms.paths["model-dir"], "params.json"), join(bad, "zero", "params.json"));
  symlinkSync("/dev/zero", join(bad, "zero", "model.safetensors"));
  spawnSync("mkfifo", [join(bad, "fifo.safetensors")]);
  const cases: [string, RegExp][] = [
    [join(bad, "missing"), /no such checkpoint: .*expected a run directory/],
    [join(bad, "empty"), /holds no model: expected a run directory, a checkpoint or model directory/],
    [join(bad, "run"), /run directory without a complete checkpoint/],
    [join(bad, "lonely"), /has model\.safetensors but no params\.json or config\.json beside it/],
    [join(bad, "lonely", "w.pth"), /needs a params\.json or config\.json beside it/],
    [join(bad, "bare.safetensors"), /carries no config: expected one in its metadata/],
    [join(bad, "notes.txt"), /neither a \.safetensors nor a \.pth\/\.pt file/],
    [join(bad, "zero"), /holds no model/],
    [join(bad, "fifo.safetensors"), /not a regular file or directory/],
  ];
  for (const [ckpt, re] of cases) {
    oneLineError(["generate", "--ckpt", ckpt, "--prompt", "x"], re);
    assert.throws(() => loadModel(ckpt), re);
  }
  // The other commands share the resolver: one case each shows they report it the same way.
  oneLineError(["score", "--ckpt", cases[2][0], "--text", "x"], cases[2][1]);
  oneLineError(["eval", "--ckpt", cases[3][0], "--data", "corpus/moby-dick.val.txt"], cases[3][1]);
  oneLineError(["eval", "--task", "bpb", "--ckpt", join(bad, "empty"), "--data", "corpus"], /holds no model/);
});

test("train --init takes every form: the run starts from those weights", () => {
  const data = join(forms.root, "init-data.txt");
  writeFileSync(data, "words for a first step of training\n".repeat(40));
  for (const form of FORMS) {
    const out = join(forms.root, `init-${form}`);
    const r = run([
      "train",
      "--config",
      "tiny",
      "--data",
      data,
      "--out",
      out,
      "--init",
      forms.paths[form],
      "--steps",
      "1",
      "--backend",
      "ref",
    ]);
    assert.equal(r.code, 0, `${form}: ${r.stderr}`);
    assert.match(r.stderr, /initialised from /, form);
  }
});
