// `aunet eval`: bits per byte (and nats per byte / per character) of a checkpoint on some text, streamed, so
// the data can be as large as the disk. Any model directory works as a checkpoint: a run's checkpoint, a run
// directory (its latest checkpoint), or model.safetensors + params.json/config.json such as the shared fixtures.

import { UserError } from "../util/errors.js";
import { intFlag, list, num, parseFlags, str } from "./flags.js";
import { loadModel } from "./load-model.js";
import { SIGNAL_EXIT_CODE, StopRequest, yieldToEventLoop } from "../train/signals.js";
import { CHECKPOINT_FORMS_HELP } from "../io/checkpoint-resolver.js";
import { DataStats, discoverSources } from "../data/sources.js";
import { orderedDocs } from "../data/loader.js";
import { packDocument } from "../data/packing.js";
import { evaluateDocs, type EvalResult } from "../train/evaluate.js";
import { formatRate } from "../train/progress.js";

export const EVAL_HELP = `usage: aunet eval --ckpt <path> --data <paths...> [options]

Evaluates a checkpoint on text/JSONL files or directories (same formats as 'aunet train'), packed as in
training, and prints bits per byte, nats per byte and per character. Ctrl-C or SIGTERM stops it after the
current batch with one line (exit 130 or 143).

options:
  --ckpt PATH       the model: ${CHECKPOINT_FORMS_HELP}
  --data P...       files or directories to evaluate on
  --batch B         rows per forward pass (default 8)
  --max-bytes N     stop after N bytes of text (whole documents)
  --doc-bytes N     plain-text document size (default: the checkpoint's, else 8192)
  --json            print the result as JSON
  -h, --help        show this text

Downstream tasks: aunet eval --task mcq|cute|translate|bpb --ckpt DIR ... (see 'aunet eval --task mcq --help'
and docs/evaluation.md).
`;

const SPEC = {
  ckpt: { kind: "string" },
  data: { kind: "list" },
  batch: intFlag(1),
  "max-bytes": intFlag(1),
  "doc-bytes": intFlag(16),
  json: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export interface EvalReport extends EvalResult {
  checkpoint: string;
  step: number | null;
  seqLen: number;
  backend: string;
  seconds: number;
  skipped: string[];
}

export async function evalCommand(
  argv: string[],
  sink: { write(s: string): unknown } = process.stdout,
): Promise<number> {
  // Downstream tasks (multiple choice, CUTE, translation, per-file bpb) have their own flags and module.
  if (argv.some((a) => a === "--task" || a.startsWith("--task="))) {
    const { evalTaskCommand } = await import("./eval-tasks.js");
    return evalTaskCommand(argv, sink);
  }
  const f = parseFlags("aunet eval", argv, SPEC);
  if (f.has("help")) {
    sink.write(EVAL_HELP);
    return 0;
  }
  const ckptArg = str(f, "ckpt");
  const data = list(f, "data");
  if (!ckptArg) throw new UserError("aunet eval: --ckpt <path> is required");
  if (!data) throw new UserError("aunet eval: --data <paths...> is required");
  const B = num(f, "batch", { int: true, min: 1 }) ?? 8;
  const maxBytes = num(f, "max-bytes", { int: true, min: 1 }) ?? 0;
  const docBytesFlag = num(f, "doc-bytes", { int: true, min: 16 });
  const stats = new DataStats();
  const files = discoverSources(data, stats, "--data");
  const ck = loadModel(ckptArg);
  const rawData = ck.raw.data as Record<string, unknown> | undefined;
  const docBytes = docBytesFlag ?? (typeof rawData?.doc_bytes === "number" ? rawData.doc_bytes : 8192);
  const { model } = ck;
  const S = ck.config.seqLen;
  const docs = orderedDocs(files, { docBytes, stats, heldOut: null, maxBytes });
  const stop = new StopRequest().install();
  const t0 = performance.now();
  let r: EvalResult;
  try {
    r = await evaluateDocs(
      model,
      async () => {
        await yieldToEventLoop(); // lets a signal in between batches
        if (stop.requested) return null;
        const d = await docs.next();
        return d.done ? null : packDocument(d.value, ck.config.strategy);
      },
      B,
      S,
    );
  } finally {
    stop.uninstall();
  }
  if (stop.received !== null) {
    process.stderr.write(
      `aunet eval: stopped by ${stop.received} after ${r.bytes} bytes` +
        (r.bytes > 0 ? ` (bits per byte so far ${r.bitsPerByte.toFixed(4)})\n` : "\n"),
    );
    return SIGNAL_EXIT_CODE[stop.received];
  }
  const seconds = (performance.now() - t0) / 1000;
  if (r.bytes === 0) throw new UserError(`aunet eval: no text to evaluate in ${data.join(", ")}`);
  if (!Number.isFinite(r.bitsPerByte))
    throw new UserError(
      `aunet eval: the loss is not finite (NaN or infinity): the model's weights overflow float32 arithmetic (too large or corrupt)`,
    );
  const report: EvalReport = {
    ...r,
    checkpoint: ck.source.path,
    step: ck.step,
    seqLen: S,
    backend: model.backend.name,
    seconds,
    skipped: stats.describe(),
  };
  if (f.has("json")) sink.write(JSON.stringify(report, null, 2) + "\n");
  else {
    sink.write(
      [
        `checkpoint      ${ck.source.path}${report.step !== null ? ` (step ${report.step})` : ""}`,
        `text            ${r.bytes} bytes, ${r.chars} characters, ${r.positions} predicted ids (incl. document ends)`,
        `bits per byte   ${r.bitsPerByte.toFixed(4)}`,
        `nats per byte   ${r.natsPerByte.toFixed(4)}`,
        `bits per char   ${r.bitsPerChar.toFixed(4)}`,
        `nats per char   ${r.natsPerChar.toFixed(4)}`,
        `speed           ${formatRate(r.positions / seconds)} (${model.backend.name} backend, ${seconds.toFixed(1)}s)`,
        ...report.skipped.map((s) => `note            ${s}`),
      ].join("\n") + "\n",
    );
  }
  return 0;
}
