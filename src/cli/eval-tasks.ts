// `aunet eval --task mcq|cute|translate|bpb`: downstream evaluation of a checkpoint on files the user supplies
// (nothing is downloaded). The work is in src/eval; this module parses flags, loads the model and prints.

import { UserError } from "../util/errors.js";
import { intFlag, list, num, parseFlags, str, type FlagSpec, type FlagValues } from "./flags.js";
import { CHECKPOINT_FORMS_HELP } from "../io/checkpoint-resolver.js";
import { loadModel } from "./load-model.js";
import { DataStats, discoverSources } from "../data/sources.js";
import { Generator } from "../generate/generator.js";
import type { Estimate } from "../eval/bootstrap.js";
import { bitsPerByteByFile } from "../eval/bpb.js";
import { evaluateCute } from "../eval/cute.js";
import {
  CUTE_CASE_INSENSITIVE,
  CUTE_TASKS,
  checkTemplate,
  cuteTaskFromPath,
  parseCuteTsv,
  type CuteQuestion,
} from "../eval/cute-format.js";
import { readTextFile, splitLines } from "../eval/files.js";
import { parseMcqJsonl } from "../eval/mcq-format.js";
import { evaluateMcq } from "../eval/mcq.js";
import {
  DEFAULT_TRANSLATION_TEMPLATE,
  alignLines,
  checkTranslationTemplate,
  evaluateTranslation,
  type TranslationPair,
} from "../eval/translate.js";

export const EVAL_TASKS_HELP = `usage: aunet eval --task mcq|cute|translate|bpb --ckpt PATH [options]

Downstream evaluation on your own files (see docs/evaluation.md for the formats).

  --task mcq --file F.jsonl        multiple choice by log-likelihood (HellaSwag, ARC, PIQA or generic
                                   context/choices/gold items): acc, acc_norm per char and per byte
      --bootstrap N                bootstrap resamples for the 95% interval (default 1000, 0 = none)
      --seed S                     bootstrap seed (default 0)
  --task cute --file F.tsv         CUTE-style task (input1..3 + label columns, or prompt + answer):
                                   few-shot prompt, greedy answer up to the closing quote, exact match
      --shots K                    first K rows are the examples, not scored (default 4)
      --cute-task NAME             CUTE task for the question wording (default: the CUTE task name that
                                   the file name contains, e.g. cute_spell_test.tsv -> spell)
      --template T                 question with {1}, {2}, {3} for the inputs, instead of CUTE's
      --max-bytes N                bytes generated per answer (default: longest label + 16)
      --bootstrap N, --seed S      as for mcq
  --task translate --src A --ref B line-aligned source and reference files: few-shot prompt, greedy
                                   translation up to the newline, sacreBLEU-default BLEU and chrF2
      --shots K                    example pairs in the prompt (default 5), the first K lines unless
      --shot-src A2 --shot-ref B2  examples come from these files (then every line of A/B is scored)
      --src-lang L, --tgt-lang L   language names in the prompt (default Source, Target)
      --template T                 one example; {src_lang} {tgt_lang} {src}, ends with {tgt}
                                   (default ${JSON.stringify(DEFAULT_TRANSLATION_TEMPLATE)})
      --max-bytes N                bytes generated per line (default: 2 x longest source line + 32)
  --task bpb --data P...           bits per byte per file (files or directories), packed as in training
      --doc-bytes N                plain-text document size (default: the checkpoint's, else 8192)

common options:
  --ckpt PATH       the model: ${CHECKPOINT_FORMS_HELP}
  --batch B         rows per forward (mcq, bpb; default 16 / 8) or prompts generated together (default 8)
  --limit N         score only the first N items (bpb: N documents per file)
  --json            print the report, with per-item scores, as JSON
  -h, --help        show this text
`;

type Task = "mcq" | "cute" | "translate" | "bpb";

const COMMON: Record<string, FlagSpec> = {
  task: { kind: "string" },
  ckpt: { kind: "string" },
  batch: intFlag(1),
  limit: intFlag(1),
  json: { kind: "bool" },
  help: { kind: "bool" },
};

const TASK_FLAGS: Record<Task, Record<string, FlagSpec>> = {
  mcq: { file: { kind: "string" }, bootstrap: intFlag(0), seed: intFlag(0) },
  cute: {
    file: { kind: "string" },
    shots: intFlag(0),
    "cute-task": { kind: "string" },
    template: { kind: "string" },
    "max-bytes": intFlag(1, 1 << 20),
    bootstrap: intFlag(0),
    seed: intFlag(0),
  },
  translate: {
    src: { kind: "string" },
    ref: { kind: "string" },
    shots: intFlag(0),
    "shot-src": { kind: "string" },
    "shot-ref": { kind: "string" },
    "src-lang": { kind: "string" },
    "tgt-lang": { kind: "string" },
    template: { kind: "string" },
    "max-bytes": intFlag(1, 1 << 20),
  },
  bpb: { data: { kind: "list" }, "doc-bytes": intFlag(16) },
};

const ALL_FLAGS: Record<string, FlagSpec> = Object.assign({}, COMMON, ...Object.values(TASK_FLAGS));

const CMD = "aunet eval";

interface Sink {
  write(s: string): unknown;
}

interface Ctx {
  f: FlagValues;
  ckpt: string;
  out: Sink;
  json: boolean;
  limit: number | undefined;
  progress: (done: number, total: number) => void;
}

function required(f: FlagValues, name: string, task: Task, what: string): string {
  const v = str(f, name);
  if (v === undefined) throw new UserError(`${CMD} --task ${task} needs --${name} ${what}`);
  return v;
}

function bootstrapOpts(f: FlagValues) {
  return {
    samples: num(f, "bootstrap", { int: true, min: 0 }) ?? 1000,
    seed: num(f, "seed", { int: true, min: 0 }) ?? 0,
  };
}

function fmt(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "-";
}

function estimateLine(name: string, e: Estimate, samples: number): string {
  const ci = samples > 0 && Number.isFinite(e.low) ? `  [${fmt(e.low)}, ${fmt(e.high)}]` : "";
  return `${name.padEnd(15)} ${fmt(e.value)}${ci}`;
}

/** Progress on a terminal only, so that redirected output stays clean. */
function progressReporter(): (done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => {
    process.stderr.write(`\r${done}/${total}`);
    if (done >= total) process.stderr.write("\r\x1b[K");
  };
}

function modelFor(ctx: Ctx) {
  const loaded = loadModel(ctx.ckpt);
  return { dir: loaded.source.path, ...loaded };
}

async function runMcq(ctx: Ctx): Promise<void> {
  const { f, out } = ctx;
  const file = required(f, "file", "mcq", "<tasks.jsonl>");
  const boot = bootstrapOpts(f);
  let items = parseMcqJsonl(readTextFile(file, "--file"), file);
  if (ctx.limit !== undefined) items = items.slice(0, ctx.limit);
  const { dir, model, config } = modelFor(ctx);
  const t0 = performance.now();
  const report = evaluateMcq(model, config.strategy, items, {
    batch: num(f, "batch", { int: true, min: 1 }) ?? 16,
    bootstrap: boot,
    onProgress: ctx.progress,
  });
  const seconds = (performance.now() - t0) / 1000;
  const layouts = new Map<string, number>();
  for (const it of items) layouts.set(it.layout, (layouts.get(it.layout) ?? 0) + 1);
  if (ctx.json) {
    out.write(
      JSON.stringify({ task: "mcq", file, checkpoint: dir, bootstrap: boot, seconds, ...report }) + "\n",
    );
    return;
  }
  out.write(
    [
      `checkpoint      ${dir}`,
      `task            mcq ${file}: ${report.items} items (${[...layouts].map(([k, v]) => `${k} ${v}`).join(", ")})`,
      estimateLine("acc", report.acc, boot.samples),
      estimateLine("acc_norm_char", report.accNormChar, boot.samples),
      estimateLine("acc_norm_byte", report.accNormByte, boot.samples),
      boot.samples > 0 ? `interval        95% bootstrap, ${boot.samples} resamples, seed ${boot.seed}` : "",
      `time            ${seconds.toFixed(1)}s`,
    ]
      .filter((l) => l !== "")
      .join("\n") + "\n",
  );
}

async function runCute(ctx: Ctx): Promise<void> {
  const { f, out } = ctx;
  const file = required(f, "file", "cute", "<task.tsv>");
  const table = parseCuteTsv(readTextFile(file, "--file"), file);
  const shots = num(f, "shots", { int: true, min: 0 }) ?? 4;
  if (table.rows.length <= shots)
    throw new UserError(`${file} has ${table.rows.length} rows; with --shots ${shots} none is left to score`);
  const named = str(f, "cute-task");
  if (named !== undefined && !(named in CUTE_TASKS))
    throw new UserError(`--cute-task ${named} is not a CUTE task (${Object.keys(CUTE_TASKS).join(", ")})`);
  // A prompt/answer file has its own wording; a CUTE name then only decides case-sensitivity, if given.
  const taskName = named ?? (table.layout === "cute" ? cuteTaskFromPath(file) : null);
  const template = str(f, "template");
  let q: CuteQuestion;
  const nInputs = table.rows[0].inputs.length;
  if (template !== undefined)
    q = { template: checkTemplate(template, nInputs, "--template"), instruction: null };
  else if (table.layout === "prompt") q = { template: null, instruction: null };
  else if (taskName !== null) {
    const t = CUTE_TASKS[taskName];
    q = { template: checkTemplate(t.question, nInputs, file), instruction: t.instruction };
  } else
    throw new UserError(
      `${file}: cannot tell which CUTE task this is from its name; pass --cute-task NAME or --template`,
    );
  const boot = bootstrapOpts(f);
  const { dir, model, config } = modelFor(ctx);
  const report = evaluateCute(new Generator(model, config.strategy), table.rows, q, {
    shots,
    caseInsensitive: taskName !== null && CUTE_CASE_INSENSITIVE.has(taskName),
    maxBytes: num(f, "max-bytes", { int: true, min: 1 }),
    batch: num(f, "batch", { int: true, min: 1 }) ?? 8,
    limit: ctx.limit,
    bootstrap: boot,
    onProgress: ctx.progress,
  });
  if (ctx.json) {
    out.write(
      JSON.stringify({
        task: "cute",
        file,
        cuteTask: taskName,
        checkpoint: dir,
        bootstrap: boot,
        ...report,
      }) + "\n",
    );
    return;
  }
  out.write(
    [
      `checkpoint      ${dir}`,
      `task            cute ${file}${taskName ? ` (${taskName})` : ""}: ${report.items} items, ${report.shots}-shot`,
      estimateLine("exact match", report.accuracy, boot.samples),
    ].join("\n") + "\n",
  );
}

async function runTranslate(ctx: Ctx): Promise<void> {
  const { f, out } = ctx;
  const srcPath = required(f, "src", "translate", "<source.txt>");
  const refPath = required(f, "ref", "translate", "<reference.txt>");
  const shots = num(f, "shots", { int: true, min: 0 }) ?? 5;
  const prompt = {
    template: checkTranslationTemplate(str(f, "template") ?? DEFAULT_TRANSLATION_TEMPLATE),
    srcLang: str(f, "src-lang") ?? "Source",
    tgtLang: str(f, "tgt-lang") ?? "Target",
  };
  const shotSrc = str(f, "shot-src");
  const shotRef = str(f, "shot-ref");
  if ((shotSrc === undefined) !== (shotRef === undefined))
    throw new UserError("--shot-src and --shot-ref go together");
  let pairs = alignLines(
    splitLines(readTextFile(srcPath, "--src")),
    splitLines(readTextFile(refPath, "--ref")),
    srcPath,
    refPath,
  );
  let examples: TranslationPair[];
  if (shotSrc !== undefined && shotRef !== undefined) {
    examples = alignLines(
      splitLines(readTextFile(shotSrc, "--shot-src")),
      splitLines(readTextFile(shotRef, "--shot-ref")),
      shotSrc,
      shotRef,
    );
    if (examples.length < shots)
      throw new UserError(`${shotSrc} has ${examples.length} lines, fewer than --shots ${shots}`);
    examples = examples.slice(0, shots);
  } else {
    if (pairs.length <= shots)
      throw new UserError(
        `${srcPath} has ${pairs.length} lines; with --shots ${shots} none is left to score`,
      );
    examples = pairs.slice(0, shots);
    pairs = pairs.slice(shots);
  }
  if (ctx.limit !== undefined) pairs = pairs.slice(0, ctx.limit);
  const { dir, model, config } = modelFor(ctx);
  const report = evaluateTranslation(new Generator(model, config.strategy), examples, pairs, prompt, {
    batch: num(f, "batch", { int: true, min: 1 }) ?? 8,
    maxBytes: num(f, "max-bytes", { int: true, min: 1 }),
    onProgress: ctx.progress,
  });
  if (ctx.json) {
    out.write(
      JSON.stringify({ task: "translate", src: srcPath, ref: refPath, checkpoint: dir, ...report }) + "\n",
    );
    return;
  }
  const b = report.bleu;
  out.write(
    [
      `checkpoint      ${dir}`,
      `task            translate ${srcPath} -> ${refPath}: ${report.items} lines, ${report.shots}-shot`,
      `BLEU            ${fmt(b.score, 2)}  ${b.precisions.map((p) => p.toFixed(1)).join("/")} ` +
        `(BP = ${b.bp.toFixed(3)}, hyp_len = ${b.sysLen}, ref_len = ${b.refLen}; 13a, exp smoothing, mixed case)`,
      `chrF2           ${fmt(report.chrf.score, 2)}`,
    ].join("\n") + "\n",
  );
}

async function runBpb(ctx: Ctx): Promise<void> {
  const { f, out } = ctx;
  const data = list(f, "data");
  if (!data) throw new UserError(`${CMD} --task bpb needs --data <files or directories>`);
  const stats = new DataStats();
  const files = discoverSources(data, stats, "--data");
  const { dir, model, config, raw: rawConfig } = modelFor(ctx);
  const raw = rawConfig as { data?: { doc_bytes?: unknown } };
  const docBytes =
    num(f, "doc-bytes", { int: true, min: 16 }) ??
    (typeof raw.data?.doc_bytes === "number" ? raw.data.doc_bytes : 8192);
  const report = await bitsPerByteByFile(model, config.strategy, files, {
    batch: num(f, "batch", { int: true, min: 1 }) ?? 8,
    seqLen: config.seqLen,
    docBytes,
    limit: ctx.limit,
    stats,
  });
  if (report.total.bytes === 0) throw new UserError(`${CMD}: no text to evaluate in ${data.join(", ")}`);
  const skipped = stats.describe();
  if (ctx.json) {
    out.write(
      JSON.stringify({ task: "bpb", checkpoint: dir, seqLen: config.seqLen, docBytes, ...report, skipped }) +
        "\n",
    );
    return;
  }
  const width = Math.max(5, ...report.files.map((r) => r.file.length));
  const row = (name: string, docs: string, bytes: number, bpb: number, bpc: number) =>
    `${name.padEnd(width)}  ${docs.padStart(9)}  ${String(bytes).padStart(12)}  ${fmt(bpb).padStart(9)}  ${fmt(bpc).padStart(9)}`;
  out.write(
    [
      `checkpoint ${dir} (rows of ${config.seqLen} bytes)`,
      `${"file".padEnd(width)}  ${"documents".padStart(9)}  ${"bytes".padStart(12)}  ${"bits/byte".padStart(9)}  ${"bits/char".padStart(9)}`,
      ...report.files.map((r) => row(r.file, String(r.documents), r.bytes, r.bitsPerByte, r.bitsPerChar)),
      row("total", "", report.total.bytes, report.total.bitsPerByte, report.total.bitsPerChar),
      ...skipped.map((s) => `note: ${s}`),
    ].join("\n") + "\n",
  );
}

const RUNNERS: Record<Task, (ctx: Ctx) => Promise<void>> = {
  mcq: runMcq,
  cute: runCute,
  translate: runTranslate,
  bpb: runBpb,
};

export async function evalTaskCommand(argv: string[], out: Sink = process.stdout): Promise<number> {
  const f = parseFlags(CMD, argv, ALL_FLAGS);
  if (f.has("help")) {
    out.write(EVAL_TASKS_HELP);
    return 0;
  }
  const taskArg = str(f, "task");
  if (taskArg === undefined) throw new UserError(`${CMD}: --task mcq|cute|translate|bpb is required`);
  if (!(taskArg in TASK_FLAGS))
    throw new UserError(`${CMD}: unknown --task ${taskArg} (mcq, cute, translate or bpb)`);
  const task = taskArg as Task;
  for (const name of f.keys())
    if (!(name in COMMON) && !(name in TASK_FLAGS[task]))
      throw new UserError(`${CMD}: --${name} does not apply to --task ${task} (see '${CMD} --help')`);
  const ckpt = str(f, "ckpt");
  if (ckpt === undefined) throw new UserError(`${CMD}: --ckpt <dir> is required`);
  const ctx: Ctx = {
    f,
    ckpt,
    out,
    json: f.has("json"),
    limit: num(f, "limit", { int: true, min: 1 }),
    progress: progressReporter(),
  };
  await RUNNERS[task](ctx);
  return 0;
}
