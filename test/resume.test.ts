// Resume never silently changes a run, damaged checkpoints are refused with a fallback, and run directories are
// guarded: the flags a resume accepts and refuses, a checkpoint whose files parse but hold the wrong thing, the
// run lock, unusable --out paths, a disk that fills while metrics are appended, and a non-finite loss
// diagnosed for what it is.
import { test, mock } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { RefBackend } from "../src/backends/ref.js";
import { UserError } from "../src/util/errors.js";
import { applyOverrides, loadRawConfig, parseRunConfig } from "../src/train/run-config.js";
import { listCheckpoints, loadCheckpoint, stepDirName } from "../src/train/checkpoint.js";
import { loadModel, readResolved } from "../src/io/checkpoint-resolver.js";
import { train, type TrainOptions, type TrainSummary } from "../src/train/trainer.js";
import { trainCommand } from "../src/cli/train.js";
import { readSafetensors, writeSafetensors, type TensorData } from "../src/io/safetensors.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const MOBY = path.join(ROOT, "corpus", "moby-dick.txt");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-resume-"));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
const trainFile = path.join(dir, "train.txt");
fs.writeFileSync(trainFile, fs.readFileSync(MOBY, "utf8").slice(0, 20000));

const quiet = { quiet: true } as const;

/** The tiny preset, 3 steps between checkpoints, validation off (these tests are about the weights' path). */
function tiny(over: Record<string, number> = {}) {
  return parseRunConfig(
    applyOverrides(loadRawConfig("tiny"), { steps: 8, ckptEvery: 3, keep: 0, valFraction: 0, ...over }),
  );
}

function opts(out: string, over: Partial<TrainOptions> = {}): TrainOptions {
  return { config: tiny(), data: [trainFile], out, backend: new RefBackend(), ...quiet, ...over };
}

/** A run stopped at step 6 with checkpoints at 3 and 6, copied fresh for each test that damages it. */
let base: string | null = null;
async function runAt6(name: string): Promise<string> {
  if (!base) {
    base = path.join(dir, "base");
    await train(opts(base, { stopAfter: 6 }));
  }
  const out = path.join(dir, name);
  fs.cpSync(base, out, { recursive: true });
  return out;
}

const cli = (out: string, ...args: string[]) =>
  trainCommand(["--data", trainFile, "--out", out, ...args], quiet);

test("resume keeps the run's configuration: the README flow continues with batch 3 and 7 steps", async () => {
  const out = path.join(dir, "readme");
  let s: TrainSummary | undefined;
  await trainCommand(
    [
      "--config",
      "tiny",
      "--data",
      trainFile,
      "--out",
      out,
      "--steps",
      "7",
      "--batch",
      "3",
      "--stop-after",
      "2",
    ],
    quiet,
  );
  // As the README: the same command with --resume and without the flags that set the run up.
  await trainCommand(["--config", "tiny", "--data", trainFile, "--out", out, "--resume"], {
    ...quiet,
    onSummary: (x) => (s = x),
  });
  assert.equal(s?.step, 7);
  assert.equal(s?.steps, 7);
  const params = JSON.parse(
    fs.readFileSync(path.join(out, "checkpoints", stepDirName(7), "params.json"), "utf8"),
  );
  assert.equal(params.data.batch_size, 3);
  assert.equal(params.steps, 7);
  // The bytes seen prove batch 3 throughout: 7 steps x 3 rows x 64 bytes.
  assert.equal(s?.totalBytes, 7 * 3 * 64);
});

test("resume refuses flags that would change the run, naming them on one line; --steps may change", async () => {
  const out = await runAt6("flags");
  const refused: [string[], RegExp][] = [
    [["--batch", "4"], /data\.batch_size: checkpoint has 2, this run asks for 4/],
    [["--lr", "0.01"], /optim\.lr: checkpoint has 0\.003, this run asks for 0\.01/],
    [["--grad-acc", "2"], /grad_acc_steps: checkpoint has 1, this run asks for 2/],
    [["--seed", "9"], /seed: checkpoint has 7, this run asks for 9/],
    [["--warmup", "1"], /optim\.warmup/],
    [["--clip", "0.5"], /optim\.clip/],
    [["--seq", "32"], /different model config.*seq_len/],
    [["--val-fraction", "0.2"], /validation\.fraction/],
  ];
  for (const [flags, re] of refused)
    await assert.rejects(
      () => cli(out, "--resume", ...flags),
      (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n"),
      flags.join(" "),
    );
  const wider = path.join(dir, "wider.json");
  const raw = loadRawConfig("tiny");
  (raw.model as Record<string, unknown>).dimensions = [32, 96];
  fs.writeFileSync(wider, JSON.stringify(raw));
  await assert.rejects(
    () => cli(out, "--config", wider, "--resume"),
    /--config .* is not the model of the run/,
  );
  await assert.rejects(() => cli(out, "--resume", "--init", out), /--resume .* --init .*give one of them/);
  await assert.rejects(
    () => cli(out, "--resume", "--steps", "5"),
    /--steps 5 is behind the checkpoint's step 6/,
  );
  // Nothing was written by the refused attempts.
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [3, 6],
  );
  // Allowed: a longer schedule (with a note), and bookkeeping that never touches the weights.
  let s: TrainSummary | undefined;
  await cli(out, "--resume", "--steps", "9", "--keep", "1", "--log-every", "2", "--stop-after", "7");
  await trainCommand(["--data", trainFile, "--out", out, "--resume"], {
    ...quiet,
    onSummary: (x) => (s = x),
  });
  assert.equal(s?.steps, 9);
  assert.equal(s?.step, 9);
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [9],
  );
});

test("a longer --steps on resume: the schedule is the longer one from the next step on", async () => {
  const out = await runAt6("longer");
  const notes: string[] = [];
  const sink = { write: (s: string) => notes.push(s) };
  await train(opts(out, { resume: true, config: tiny({ steps: 12 }), stopAfter: 7, quiet: false, sink }));
  assert.ok(
    notes.some((n) => /the schedule now spans 12 steps \(the checkpoint's: 8\)/.test(n)),
    notes.join(""),
  );
  const rec = fs
    .readFileSync(path.join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .find((r) => r.step === 7);
  // tiny: lr 3e-3, warmup 4, cosine to 0.1 over 12 steps; update 7 uses factor(6).
  const s = (6 - 4) / (12 - 4);
  const want = 3e-3 * (0.1 + 0.45 * (Math.cos(Math.PI * s) + 1));
  assert.ok(Math.abs(rec.lr - want) < 1e-12, `lr ${rec.lr} vs ${want}`);
});

/** Damage the step-6 checkpoint of a copy of the base run, resume, and check the fallback to step 3. */
async function fallsBack(name: string, damage: (ck: string) => void, why: RegExp): Promise<void> {
  const out = await runAt6(name);
  const ck = path.join(out, "checkpoints", stepDirName(6));
  damage(ck);
  const lines: string[] = [];
  const r = await train(
    opts(out, { resume: true, stopAfter: 4, quiet: false, sink: { write: (s: string) => lines.push(s) } }),
  );
  assert.equal(r.step, 4, name);
  const text = lines.join("");
  assert.match(text, new RegExp(`skipping damaged checkpoint \\S*step_00000006: .*${why.source}`), name);
  assert.match(text, /resuming from \S*step_00000003 \(step 3\)/, name);
  // Moved aside, not deleted, so that it is neither the run's latest nor met again.
  assert.ok(fs.existsSync(path.join(out, "checkpoints", "damaged-step_00000006")), name);
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [3, 4],
  );
}

const state = (ck: string) => JSON.parse(fs.readFileSync(path.join(ck, "state.json"), "utf8"));
const setState = (ck: string, s: unknown) => fs.writeFileSync(path.join(ck, "state.json"), JSON.stringify(s));

test("damaged newest checkpoint (valid syntax, bad content): refused with a note, the previous one resumes", async () => {
  await fallsBack("bare-step", (ck) => setState(ck, { step: 6 }), /unknown version/);
  await fallsBack("null", (ck) => setState(ck, null), /not a training state object/);
  await fallsBack(
    "offset-string",
    (ck) => setState(ck, { ...state(ck), data: { ...state(ck).data, offset: "x" } }),
    /data position is malformed/,
  );
  await fallsBack(
    "offset-huge",
    (ck) => setState(ck, { ...state(ck), data: { ...state(ck).data, offset: 1e9 } }),
    /data position is invalid/,
  );
  await fallsBack(
    "negative-step",
    (ck) => setState(ck, { ...state(ck), step: -1 }),
    /step -1 is not a whole number/,
  );
  await fallsBack(
    "fractional-step",
    (ck) => setState(ck, { ...state(ck), step: 6.5 }),
    /step 6\.5 is not a whole/,
  );
  await fallsBack(
    "other-step",
    (ck) => setState(ck, { ...state(ck), step: 600 }),
    /not its directory's step 6/,
  );
  await fallsBack(
    "moment-size",
    (ck) => {
      const f = readSafetensors(path.join(ck, "optim.safetensors"));
      const out = new Map<string, TensorData>();
      for (const n of f.names()) {
        const a = f.getFloat32(n);
        const cut = n === "m.tok_embeddings.weight" ? a.subarray(0, a.length - 1) : a;
        out.set(n, { dtype: "F32", shape: [cut.length], data: cut });
      }
      writeSafetensors(path.join(ck, "optim.safetensors"), out);
    },
    /moments of tok_embeddings\.weight do not have its/,
  );
  // Nothing intact at all: refused, not silently restarted from scratch.
  const out = await runAt6("all-damaged");
  for (const c of listCheckpoints(out)) setState(c.dir, null);
  await assert.rejects(() => train(opts(out, { resume: true })), /has no intact checkpoint to resume/);
});

test("step numbers that are negative, fractional or unsafe never become directory names", () => {
  for (const bad of [-1, 2.5, NaN, Infinity, 2 ** 60])
    assert.throws(() => stepDirName(bad), /invalid checkpoint step/);
  assert.equal(stepDirName(12), "step_00000012");
});

test("run directory: one run at a time (a lock with the pid, stale locks taken over)", async () => {
  const out = path.join(dir, "locked");
  fs.mkdirSync(out);
  const lock = path.join(out, "train.lock");
  // A live process (this one) holds it: refused, naming the pid.
  fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname() }));
  await assert.rejects(
    () => train(opts(out, { stopAfter: 1 })),
    new RegExp(`in use by another training run \\(pid ${process.pid}\\)`),
  );
  assert.deepEqual(listCheckpoints(out), []);
  // A process that has exited held it: stale, taken over, and released at the end.
  const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  fs.writeFileSync(lock, JSON.stringify({ pid: Number(gone.stdout.toString()), host: os.hostname() }));
  const r = await train(opts(out, { stopAfter: 1 }));
  assert.equal(r.step, 1);
  assert.ok(!fs.existsSync(lock));
});

test("run directory: --out that is a file, under a file, or not writable is a one-line error", async () => {
  const file = path.join(dir, "a-file");
  fs.writeFileSync(file, "x");
  await assert.rejects(() => train(opts(file)), /--out \S+a-file is a file, not a directory/);
  await assert.rejects(() => train(opts(path.join(file, "run"))), /a parent of it is a file/);
  // Read-only: a read-only file system answers EROFS to the first file the run creates (its lock). Injected,
  // so that the test means the same as root, whom chmod does not stop.
  const ro = path.join(dir, "read-only");
  fs.mkdirSync(ro);
  const orig = fs.openSync;
  const m = mock.method(fs, "openSync", (p: fs.PathLike, ...rest: unknown[]) => {
    if (String(p).startsWith(ro))
      throw Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" });
    return (orig as (...a: unknown[]) => number)(p, ...rest);
  });
  try {
    await assert.rejects(() => train(opts(ro)), /--out \S+read-only is not writable \(EROFS\)/);
  } finally {
    m.mock.restore();
  }
  if (process.getuid?.() !== 0) {
    fs.chmodSync(ro, 0o555);
    try {
      await assert.rejects(() => train(opts(ro)), /is not writable \(EACCES\)/);
    } finally {
      fs.chmodSync(ro, 0o755);
    }
  }
});

test("a full disk while appending metrics: no torn line, a checkpoint of the step reached, then resume", async () => {
  const out = path.join(dir, "full-disk");
  const orig = fs.writeSync;
  let failed = false;
  // Whichever metrics write carries step 5's record gets half-way, then the disk is full.
  const m = mock.method(fs, "writeSync", (fd: number, buf: unknown, ...rest: unknown[]) => {
    if (!failed && buf instanceof Uint8Array && Buffer.from(buf).includes('"kind":"train","step":5,')) {
      failed = true;
      (orig as (...a: unknown[]) => number)(fd, buf, 0, Math.floor(buf.length / 2), rest[2]);
      throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    }
    return (orig as (...a: unknown[]) => number)(fd, buf, ...rest);
  });
  let stoppedAt = -1;
  try {
    await assert.rejects(
      () => train(opts(out)),
      (e: unknown) => {
        const r =
          /cannot append to \S+metrics\.jsonl: ENOSPC; stopped at step (\d+) with a checkpoint in \S+step_0*(\d+)$/.exec(
            (e as Error).message,
          );
        if (!(e instanceof UserError) || !r || r[1] !== r[2]) return false;
        stoppedAt = Number(r[1]);
        return true;
      },
    );
  } finally {
    m.mock.restore();
  }
  assert.ok(failed && stoppedAt >= 5);
  const text = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8");
  assert.ok(text === "" || text.endsWith("\n"), "no torn last line");
  for (const l of text.split("\n").filter(Boolean)) JSON.parse(l);
  assert.equal(loadCheckpoint(path.join(out, "checkpoints", stepDirName(stoppedAt))).state?.step, stoppedAt);
  assert.ok(!fs.existsSync(path.join(out, "train.lock")));
  const r = await train(opts(out, { resume: true }));
  assert.equal(r.step, 8);
});

test("non-finite loss: a bad rope_theta is blamed on the config, a too-high lr on the lr", async () => {
  const raw = applyOverrides(loadRawConfig("tiny"), { steps: 6, valFraction: 0, warmup: 0 });
  ((raw.model as Record<string, unknown>).block as Record<string, unknown>).rope_theta = 1e-300;
  await assert.rejects(
    () => train(opts(path.join(dir, "rope"), { config: parseRunConfig(raw) })),
    (e: unknown) =>
      e instanceof UserError &&
      /non-finite values at step 1: .*config's arithmetic overflows, not the learning rate.*rope_theta 1e-300/.test(
        e.message,
      ) &&
      !/lower --lr/.test(e.message),
  );
  await assert.rejects(
    () => train(opts(path.join(dir, "hot"), { config: tiny({ lr: 1e30, warmup: 0, clip: 0 }) })),
    (e: unknown) =>
      e instanceof UserError && /training diverged at step [2-9].*try a lower --lr/.test(e.message),
  );
  // Nothing diverged was saved.
  assert.deepEqual(listCheckpoints(path.join(dir, "hot")), []);
});

test("eval --ckpt RUN while the run prunes its latest (--keep 1): the next latest is read", async () => {
  const out = await runAt6("pruned");
  const six = path.join(out, "checkpoints", stepDirName(6));
  let calls = 0;
  // The run saves step 7 and prunes step 6 between resolving and reading it.
  const c = loadModel(out, (p, src) => {
    if (calls++ === 0) {
      fs.cpSync(six, path.join(out, "checkpoints", stepDirName(7)), { recursive: true });
      const s = state(path.join(out, "checkpoints", stepDirName(7)));
      setState(path.join(out, "checkpoints", stepDirName(7)), { ...s, step: 7 });
      fs.rmSync(src.path, { recursive: true });
    }
    return readResolved(p, src);
  });
  assert.equal(c.step, 7);
  // A named checkpoint that vanished is reported as such.
  assert.throws(
    () =>
      loadModel(path.join(out, "checkpoints", stepDirName(3)), (p, src) => {
        fs.rmSync(src.path, { recursive: true });
        return readResolved(p, src);
      }),
    /was removed while it was being read/,
  );
});
