// Interrupts: `aunet train` (and the demo) stop on SIGINT/SIGTERM after the current step, with a checkpoint,
// one line saying where, and exit 130/143; a second signal ends the process at once. Each test spawns the real
// CLI on the `tiny` preset (reference backend, so runs are bit-reproducible), interrupts it, resumes it, and
// compares the final weights and moments with an uninterrupted run's, byte for byte.
//
// Where the signal lands is made certain, not left to timing: either the parent sends it once the child has
// printed its first progress line (the child is then inside a step), or a preloaded probe makes the child send
// itself a real signal at an exact point (renaming a checkpoint into place, logging the step before a
// validation, printing the first signal's acknowledgement).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { listCheckpoints, loadCheckpoint } from "../src/train/checkpoint.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const MAIN = path.join(ROOT, "dist", "src", "cli", "main.js");
const MOBY = path.join(ROOT, "corpus", "moby-dick.txt");
// Every wait is bounded: a child that never reaches the awaited point fails the test instead of hanging it.
const WAIT_MS = 120_000;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-signals-"));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

const text = fs.readFileSync(MOBY, "utf8");
const trainFile = path.join(dir, "train.txt");
const valFile = path.join(dir, "val.txt");
fs.writeFileSync(trainFile, text.slice(0, 24000));
fs.writeFileSync(valFile, text.slice(24000, 25500));

// The probe: PROBE=<where>|<text>|<signal>. "rename": when a path containing <text> is renamed (a checkpoint
// moving into place); "write": when a metrics write contains <text>; "stderr": when the child prints <text>.
const probe = path.join(dir, "probe.mjs");
fs.writeFileSync(
  probe,
  `import fs from "node:fs";
const [where, needle, sig] = (process.env.PROBE ?? "").split("|");
let fired = false;
const fire = (s) => { if (!fired && s.includes(needle)) { fired = true; process.kill(process.pid, sig); } };
if (where === "rename") {
  const orig = fs.renameSync;
  fs.renameSync = (a, b) => { const r = orig(a, b); fire(String(a)); return r; };
} else if (where === "write") {
  const orig = fs.writeSync;
  fs.writeSync = (fd, buf, ...rest) => { const r = orig(fd, buf, ...rest); if (typeof buf !== "string") fire(Buffer.from(buf).toString()); return r; };
} else if (where === "stderr") {
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk, ...rest) => { const r = orig(chunk, ...rest); fire(String(chunk)); return r; };
}
`,
);

const STEPS = 8;
function trainArgs(out: string): string[] {
  return [
    "train",
    "--config",
    "tiny",
    "--data",
    trainFile,
    "--val",
    valFile,
    "--out",
    out,
    "--steps",
    String(STEPS),
    "--ckpt-every",
    "3",
    "--val-every",
    "4",
    "--val-bytes",
    "1000",
    "--log-every",
    "1",
  ];
}

interface Run {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  /** Resolves once stderr matches. */
  waitFor: (re: RegExp) => Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[], probeSpec?: string): Run {
  const nodeArgs = probeSpec ? ["--import", pathToFileURL(probe).href, MAIN, ...args] : [MAIN, ...args];
  const child = spawn(process.execPath, nodeArgs, {
    env: { ...process.env, AUNET_BACKEND: "ref", PROBE: probeSpec ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of waiters.splice(0))
      if (w.re.test(err)) w.resolve();
      else waiters.push(w);
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out: aunet ${args.join(" ")}\n${err}`));
    }, WAIT_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  const waitFor = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      if (re.test(err)) return resolve();
      waiters.push({ re, resolve });
      exit.then(() => reject(new Error(`exited before printing ${re}:\n${err}`)), reject);
    });
  return { child, stderr: () => err, stdout: () => out, waitFor, exit };
}

async function finished(args: string[]): Promise<string> {
  const r = start(args);
  const { code } = await r.exit;
  assert.equal(code, 0, r.stderr());
  return r.stderr();
}

function finalFiles(out: string): { model: Buffer; optim: Buffer } {
  const c = path.join(out, "checkpoints", `step_${String(STEPS).padStart(8, "0")}`);
  return {
    model: fs.readFileSync(path.join(c, "model.safetensors")),
    optim: fs.readFileSync(path.join(c, "optim.safetensors")),
  };
}

let straight: { model: Buffer; optim: Buffer } | null = null;
async function reference(): Promise<{ model: Buffer; optim: Buffer }> {
  if (!straight) {
    const out = path.join(dir, "straight");
    await finished(trainArgs(out));
    straight = finalFiles(out);
  }
  return straight;
}

/** Resume an interrupted run to the end and check it equals the uninterrupted one, bit for bit. */
async function resumesExactly(out: string): Promise<void> {
  // Every checkpoint left behind is complete and loads.
  for (const c of listCheckpoints(out)) assert.ok(loadCheckpoint(c.dir).state);
  await finished([...trainArgs(out), "--resume"]);
  const want = await reference();
  const got = finalFiles(out);
  assert.ok(got.model.equals(want.model), "weights differ from the uninterrupted run");
  assert.ok(got.optim.equals(want.optim), "optimizer moments differ from the uninterrupted run");
}

function stoppedLine(stderr: string, sig: string): { step: number; checkpoint: string } {
  const lines = stderr.split("\n").filter((l) => l.startsWith(`stopped by ${sig}`));
  assert.equal(lines.length, 1, stderr);
  const m = /^stopped by \w+ at step (\d+)\/\d+: checkpoint (\S+) \(continue with --resume\)$/.exec(lines[0]);
  assert.ok(m, lines[0]);
  return { step: Number(m[1]), checkpoint: m[2] };
}

test("SIGINT during a step: finishes the step, checkpoints, says where, exits 130; --resume is bit-exact", async () => {
  const out = path.join(dir, "during-step");
  const r = start(trainArgs(out));
  await r.waitFor(/^step 1\/8 /m);
  r.child.kill("SIGINT");
  const { code } = await r.exit;
  assert.equal(code, 130, r.stderr());
  const s = stoppedLine(r.stderr(), "SIGINT");
  assert.ok(s.step >= 1 && s.step < STEPS, r.stderr());
  assert.equal(path.basename(s.checkpoint), `step_${String(s.step).padStart(8, "0")}`);
  assert.equal(loadCheckpoint(s.checkpoint).state?.step, s.step);
  assert.ok(!fs.existsSync(path.join(out, "train.lock")), "the lock is released");
  await resumesExactly(out);
});

test("SIGTERM during a checkpoint write: the save completes, exit 143, --resume is bit-exact", async () => {
  const out = path.join(dir, "during-save");
  const r = start(trainArgs(out), "rename|.tmp-step_00000003|SIGTERM");
  const { code } = await r.exit;
  assert.equal(code, 143, r.stderr());
  const s = stoppedLine(r.stderr(), "SIGTERM");
  assert.equal(s.step, 3);
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [3],
  );
  await resumesExactly(out);
});

test("SIGINT during validation: the validation is abandoned, the step is saved, --resume is bit-exact", async () => {
  const out = path.join(dir, "during-val");
  // The step-4 record is written right before the validation at step 4 starts; the signal lands inside it.
  const r = start(trainArgs(out), 'write|"step":4,|SIGINT');
  const { code } = await r.exit;
  assert.equal(code, 130, r.stderr());
  assert.equal(stoppedLine(r.stderr(), "SIGINT").step, 4);
  const records = fs
    .readFileSync(path.join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.ok(
    !records.some((x) => x.kind === "val" && x.step === 4),
    "the interrupted validation was not logged",
  );
  assert.ok(records.some((x) => x.kind === "val" && x.step === 0));
  await resumesExactly(out);
});

test("a second signal ends the process at once; what it leaves resumes bit-exactly", async () => {
  const out = path.join(dir, "twice");
  // The child sends itself the second SIGINT as it acknowledges the first, which the parent sends mid-step.
  const r = start(trainArgs(out), "stderr|SIGINT: stopping|SIGINT");
  await r.waitFor(/^step 1\/8 /m);
  r.child.kill("SIGINT");
  const { code, signal } = await r.exit;
  assert.equal(signal, "SIGINT", `exit code ${code}: ${r.stderr()}`);
  assert.doesNotMatch(r.stderr(), /stopped by SIGINT/);
  // The lock of the killed process is stale: the resume takes it over.
  assert.ok(fs.existsSync(path.join(out, "train.lock")));
  await resumesExactly(out);
});

test("two runs on one --out: the second is refused while the first trains, which then stops cleanly", async () => {
  const out = path.join(dir, "two");
  // A schedule far longer than the test: the first run is surely still training when the second starts.
  const args = trainArgs(out).map((a) => (a === String(STEPS) ? "100000" : a));
  const first = start(args);
  await first.waitFor(/^step 1\/100000 /m);
  const second = start([...args, "--resume"]);
  const { code } = await second.exit;
  assert.equal(code, 1, second.stderr());
  assert.match(
    second.stderr(),
    new RegExp(`^aunet: --out \\S+ is in use by another training run \\(pid ${first.child.pid}\\);`, "m"),
  );
  first.child.kill("SIGINT");
  assert.equal((await first.exit).code, 130, first.stderr());
  const s = stoppedLine(first.stderr(), "SIGINT");
  assert.equal(loadCheckpoint(s.checkpoint).state?.step, s.step);
});

test("demo: SIGINT stops its training with a checkpoint and exit 130, without sampling", async () => {
  const out = path.join(dir, "demo");
  const r = start(
    ["demo", "--config", "tiny", "--time-limit", "120", "--out", out, "--sample", "5"],
    "stderr|auto steps|SIGINT",
  );
  const { code } = await r.exit;
  assert.equal(code, 130, r.stderr());
  const s = stoppedLine(r.stderr(), "SIGINT");
  assert.equal(loadCheckpoint(s.checkpoint).state?.step, s.step);
  assert.doesNotMatch(r.stdout(), /Sample/);
});

test("compare: SIGINT stops the current run, writes what finished, exit 130", async () => {
  const out = path.join(dir, "compare");
  const args = ["compare", "--budget", "2e9", "--models", "byte", "--data", trainFile, "--val", valFile];
  const r = start([...args, "--out", out, "--seq", "64"], "stderr|== byte|SIGINT");
  const { code } = await r.exit;
  assert.equal(code, 130, r.stderr());
  assert.match(r.stderr(), /compare: stopped by SIGINT during byte/);
  const result = JSON.parse(fs.readFileSync(path.join(out, "compare.json"), "utf8"));
  assert.equal(result.interrupted, "SIGINT");
  assert.deepEqual(result.rows, []);
});
