// `aunet compare`: AU-Net against a byte-level and a BPE transformer at equal training FLOPs (see
// src/baselines/compare.ts).

import { UserError } from "../util/errors.js";
import { list, num, parseFlags, str } from "./flags.js";
import { BASELINE_KINDS, compare, type BaselineKind } from "../baselines/compare.js";
import { FIRST_MERGE_ID } from "../baselines/bpe.js";
import { compareMarkdown } from "../baselines/compare-report.js";
import { SIGNAL_EXIT_CODE, StopRequest } from "../train/signals.js";

export const COMPARE_HELP = `usage: aunet compare --budget <FLOPs[,FLOPs...]> --data <paths...> [options]

Trains each model for the same training FLOPs (the paper's formula) per budget and evaluates validation bits per
byte. Writes <out>/compare.md, <out>/compare.json, <out>/compare.svg, <out>/tokenizer.json and <out>/runs/.

options:
  --budget C[,C...]   training FLOPs per model, e.g. 2e12 or 1e12,3e12,1e13
  --data P...         training files or directories
  --val P...          validation files or directories (default: a hash-chosen 1% of --data)
  --models M[,M...]   any of ${BASELINE_KINDS.join(", ")} (default: all)
  --out DIR           output directory (default: runs/compare)
  --seq N             bytes per training row (default 256; BPE rows hold about as many bytes)
  --vocab V           BPE vocabulary size, bytes and BOS/EOS included (default 4096)
  --val-bytes N       validation text budget in bytes (default 1000000)
  --seed N            data order and initialisation (default 1)
  --quiet             no progress output
  --json              print the result as JSON on stdout
  -h, --help          show this text
`;

const SPEC = {
  budget: { kind: "string" },
  data: { kind: "list" },
  val: { kind: "list" },
  models: { kind: "string" },
  out: { kind: "string" },
  seq: { kind: "string" },
  vocab: { kind: "string" },
  "val-bytes": { kind: "string" },
  seed: { kind: "string" },
  quiet: { kind: "bool" },
  json: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export function parseBudgets(s: string): number[] {
  const out = s.split(",").map((x) => {
    const v = Number(x.trim());
    if (x.trim() === "" || !Number.isFinite(v) || v <= 0)
      throw new UserError(`--budget must be positive FLOPs such as 2e12 or 1e12,3e12; got '${x}'`);
    return v;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

export function parseModels(s: string): BaselineKind[] {
  const out = s.split(",").map((x) => x.trim());
  for (const m of out)
    if (!BASELINE_KINDS.includes(m as BaselineKind))
      throw new UserError(`--models: unknown model '${m}' (choose from ${BASELINE_KINDS.join(", ")})`);
  return [...new Set(out)] as BaselineKind[];
}

export async function compareCommand(argv: string[]): Promise<number> {
  const f = parseFlags("aunet compare", argv, SPEC);
  if (f.has("help")) {
    process.stdout.write(COMPARE_HELP);
    return 0;
  }
  const budget = str(f, "budget");
  const data = list(f, "data");
  if (!budget) throw new UserError("aunet compare: --budget <FLOPs[,FLOPs...]> is required");
  if (!data) throw new UserError("aunet compare: --data <paths...> is required");
  // Ctrl-C / SIGTERM: the current run stops after its step, the finished runs are written, exit 130 / 143.
  const stop = new StopRequest((sig) =>
    process.stderr.write(`${sig}: stopping after this step (again to quit at once)\n`),
  ).install();
  let r;
  try {
    r = await compare(
      {
        budgets: parseBudgets(budget),
        data,
        val: list(f, "val"),
        models: parseModels(str(f, "models") ?? BASELINE_KINDS.join(",")),
        out: str(f, "out") ?? "runs/compare",
        seqLen: num(f, "seq", { int: true, min: 8 }) ?? 256,
        vocabSize: num(f, "vocab", { int: true, min: FIRST_MERGE_ID }) ?? 4096,
        valBytes: num(f, "val-bytes", { int: true, min: 1 }) ?? 1_000_000,
        seed: num(f, "seed", { int: true, min: 0 }) ?? 1,
        quiet: f.has("quiet"),
        stop,
      },
      ["aunet", "compare", ...argv].join(" "),
    );
  } finally {
    stop.uninstall();
  }
  if (r.interrupted) return SIGNAL_EXIT_CODE[r.interrupted];
  if (f.has("json")) process.stdout.write(JSON.stringify(r, null, 2) + "\n");
  else process.stdout.write(`\n${compareMarkdown(r)}\nwritten: ${Object.values(r.files).join(", ")}\n`);
  return 0;
}
