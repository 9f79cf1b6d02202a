// `aunet generate`: continue prompts with the incremental (KV-cached) AU-Net, streaming the text to stdout.

import { UserError } from "../util/errors.js";
import { list, num, parseFlags, showHelp, str } from "./flags.js";
import { loadModel } from "./load-model.js";
import { Generator, type Generation } from "../generate/generator.js";
import { checkSampling } from "../generate/sampling.js";

const HELP = `usage: aunet generate --ckpt DIR --prompt TEXT [options]

Continues the prompt byte by byte (each stage runs only at its own positions, with its own KV cache) and
streams the text to stdout as whole UTF-8 characters.

  --ckpt DIR         model directory: model.safetensors + params.json or config.json (a fixture dir works)
  --prompt TEXT      the prompt (a BOS is put in front; may be empty); repeat it to generate several prompts
                     as one batch
  --max-bytes N      most bytes to generate per prompt (default 256)
  --temperature T    0 for greedy decoding (default 1)
  --top-k K          sample among the K most likely bytes only (default 0: all)
  --top-p P          sample from the smallest set of bytes with probability >= P (default 1: all)
  --seed S           random seed (default 0); prompt i uses S + i
  --stop STR         stop when the output ends with STR, which is not printed; repeatable
                     (a newline: --stop $'\\n')
  --json             one JSON object per prompt: text, stop reason and every byte's id, level, log-probability
  --stats            print bytes/s and how often each stage ran to stderr`;

const SPEC = {
  ckpt: { kind: "string" },
  prompt: { kind: "list" },
  "max-bytes": { kind: "string" },
  temperature: { kind: "string" },
  "top-k": { kind: "string" },
  "top-p": { kind: "string" },
  seed: { kind: "string" },
  stop: { kind: "list" },
  json: { kind: "bool" },
  stats: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export async function generateCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const f = parseFlags("aunet generate", argv, SPEC);
  if (showHelp(f, HELP, out)) return 0;
  const ckpt = str(f, "ckpt");
  const prompts = list(f, "prompt");
  const stops = list(f, "stop") ?? [];
  if (!ckpt) throw new UserError("generate needs --ckpt DIR (see 'aunet generate --help')");
  if (!prompts) throw new UserError("generate needs --prompt TEXT (see 'aunet generate --help')");
  const maxBytes = num(f, "max-bytes", { int: true, min: 0 }) ?? 256;
  const sampling = {
    temperature: num(f, "temperature") ?? 1,
    topK: num(f, "top-k", { int: true }) ?? 0,
    topP: num(f, "top-p") ?? 1,
  };
  try {
    checkSampling(sampling);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const seed = num(f, "seed", { int: true }) ?? 0;
  if (stops.some((s) => s.length === 0)) throw new UserError("--stop needs a non-empty string");

  // A closed pipe (`aunet generate ... | head`) ends the output, not the program with a trace.
  if (out === process.stdout)
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  const { model, config } = loadModel(ckpt);
  const generator = new Generator(model, config.strategy);
  const json = f.has("json");
  const stream = !json && prompts.length === 1;
  const t0 = performance.now();
  let tFirst = 0;
  const results: Generation[] = generator.generate(prompts, {
    ...sampling,
    maxBytes,
    seed,
    stop: stops,
    onToken: () => {
      if (tFirst === 0) tFirst = performance.now();
    },
    onText: stream ? (_, text) => out.write(text) : undefined,
  });
  const t1 = performance.now();

  if (json)
    results.forEach((r, i) =>
      out.write(
        JSON.stringify({
          prompt: prompts[i],
          text: r.text,
          stop_reason: r.stopReason,
          bytes: r.tokens.map((t) => ({ id: t.id, level: t.level, logprob: t.logProb })),
        }) + "\n",
      ),
    );
  else if (stream) out.write("\n");
  else results.forEach((r, i) => out.write(`--- prompt ${i + 1} (${r.stopReason}) ---\n${r.text}\n`));

  if (f.has("stats")) {
    const n = results.reduce((a, r) => a + r.tokens.length, 0);
    const inc = generator.incremental;
    const secs = (t1 - (tFirst || t1)) / 1000;
    err.write(
      `prefill ${((tFirst || t1) - t0).toFixed(0)} ms (${inc.prefillRuns.join("/")} positions per stage); ` +
        `${n} bytes in ${secs.toFixed(2)} s, ${(n / Math.max(secs, 1e-9)).toFixed(1)} bytes/s; ` +
        `stage runs ${inc.stageRuns.join("/")}\n`,
    );
  }
  return 0;
}
