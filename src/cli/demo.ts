// `aunet demo` (what `npm start` runs): train the `small` preset on the shipped Moby-Dick corpus for a few
// minutes, report validation bits per byte, keep the checkpoint and the curve under runs/demo/, and print a
// sample from the trained model. The schedule is fitted to the time limit (autoSteps), so the learning rate
// has decayed when the time is up, whatever the machine's speed.

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { duration, num, parseFlags, str } from "./flags.js";
import { defaultBackend } from "../backends/index.js";
import { encodeText } from "../data/bytes.js";
import { AUNet } from "../model/aunet.js";
import { Generator } from "../generate/generator.js";
import { CHECKPOINTS, loadCheckpoint } from "../train/checkpoint.js";
import { METRICS_FILE } from "../train/run-dir.js";
import { SIGNAL_EXIT_CODE } from "../train/signals.js";
import { writeFileAtomic } from "../io/atomic.js";
import { loadRawConfig, packageRoot, parseRunConfig, applyOverrides } from "../train/run-config.js";
import { train } from "../train/trainer.js";
import { formatDuration, formatRate } from "../train/progress.js";

export const DEMO_HELP = `usage: aunet demo [options]

Trains the 'small' AU-Net preset on corpus/moby-dick.txt for a few minutes, validates on
corpus/moby-dick.val.txt (the last chapters), saves a checkpoint and a loss curve under runs/demo/ and
prints a generated sample. Each demo starts afresh: it replaces the previous demo's run in its directory,
and refuses to touch any other run there unless --force is given.

options:
  --time-limit T   training time: seconds or 90s, 5m (default 3.5m)
  --out DIR        run directory (default runs/demo)
  --force          replace whatever run DIR holds (its checkpoints, metrics.jsonl, curve.svg, params.json)
  --config C       preset or config file (default small; mini on the reference and wasm backends)
  --prompt TEXT    text to continue (default "The whale")
  --sample N       bytes to generate (default 300)
  --seed N         seed for data order, initialisation and sampling (default: the preset's)
  -h, --help       show this text
`;

const SPEC = {
  "time-limit": { kind: "string" },
  out: { kind: "string" },
  force: { kind: "bool" },
  config: { kind: "string" },
  prompt: { kind: "string" },
  sample: { kind: "string" },
  seed: { kind: "string" },
  help: { kind: "bool" },
} as const;

/** A run directory the demo wrote holds this file: the next demo may replace it without --force. */
const DEMO_MARK = ".aunet-demo";

/** Refuse (one line) to replace a run the demo did not make, unless --force. */
function claimOutDir(out: string, force: boolean): void {
  const holds = [CHECKPOINTS, METRICS_FILE, "params.json", "curve.svg"].filter((n) =>
    fs.existsSync(path.join(out, n)),
  );
  if (holds.length === 0 || force || fs.existsSync(path.join(out, DEMO_MARK))) return;
  throw new UserError(
    `aunet demo: ${out} already holds a training run (${holds.join(", ")}); pass --force to replace it, or choose another --out`,
  );
}

export async function demoCommand(argv: string[]): Promise<number> {
  const f = parseFlags("aunet demo", argv, SPEC);
  if (f.has("help")) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  // Every flag is read and checked before any work: a typo must not cost minutes of training.
  const out = str(f, "out") ?? path.join("runs", "demo");
  const timeLimit = duration(f, "time-limit") ?? 210;
  const seed = num(f, "seed", { int: true, min: 0 });
  const prompt = str(f, "prompt") ?? "The whale";
  const sampleBytes = num(f, "sample", { int: true, min: 1 }) ?? 300;
  const root = packageRoot();
  const trainFile = path.join(root, "corpus", "moby-dick.txt");
  const valFile = path.join(root, "corpus", "moby-dick.val.txt");
  for (const p of [trainFile, valFile])
    if (!fs.existsSync(p)) throw new UserError(`the demo corpus is missing: ${p}`);
  const backend = defaultBackend();
  // The reference and wasm backends are about 30x and 6x slower than the native one: give them a model they
  // can train in minutes.
  const preset = str(f, "config") ?? (backend.name === "ref" || backend.name === "wasm" ? "mini" : "small");
  const config = parseRunConfig(applyOverrides(loadRawConfig(preset), { seed }));
  claimOutDir(out, f.has("force"));
  const log = (s: string) => process.stderr.write(s + "\n");

  log(
    `AU-Net demo: training the '${config.name}' preset on Moby-Dick for ${formatDuration(timeLimit)} on the ${backend.name} backend.\n` +
      `Bits per byte start near 8 (a uniform guess over 256 bytes) and should fall steadily.\n`,
  );
  const t0 = performance.now();
  const s = await train({
    config,
    data: [trainFile],
    val: [valFile],
    out,
    replace: true,
    timeLimitSec: timeLimit,
    autoSteps: true,
    backend,
    handleSignals: true,
    onStart: () =>
      writeFileAtomic(path.join(out, DEMO_MARK), "written by aunet demo: the next demo replaces this run\n"),
  });
  // Interrupted: the trainer has said where the checkpoint is; no sample.
  if (s.signal) return SIGNAL_EXIT_CODE[s.signal];

  const ck = loadCheckpoint(s.checkpoint);
  const model = new AUNet(ck.config.model, backend, ck.weights);
  const val = s.finalVal;
  process.stdout.write(
    [
      "",
      `Trained ${s.step} steps (${s.totalBytes.toLocaleString("en-US")} bytes) at ${formatRate(s.bytesPerSec)}.`,
      val
        ? `Validation (last chapters, ${val.bytes.toLocaleString("en-US")} bytes): ${val.bitsPerByte.toFixed(3)} bits per byte (${val.bitsPerChar.toFixed(3)} bits per character); uniform is 8.`
        : "No validation result.",
      `Checkpoint: ${s.checkpoint}`,
      `Curve:      ${s.curvePath}`,
      "",
      `Sample (temperature 0.8, top-k 40), continuing "${prompt}":`,
      "",
    ].join("\n") + "\n",
  );
  process.stdout.write(prompt);
  new Generator(model, ck.config.strategy).generate([encodeText(prompt)], {
    maxBytes: sampleBytes,
    temperature: 0.8,
    topK: 40,
    seed: seed ?? config.seed,
    onText: (_, t) => process.stdout.write(t),
  });
  process.stdout.write(`\n\n(total ${formatDuration((performance.now() - t0) / 1000)})\n`);
  return 0;
}
