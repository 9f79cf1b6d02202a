// `aunet generate`: continue prompts with the incremental (KV-cached) AU-Net, streaming the text to stdout.

import { parseArgs } from "node:util";
import { UserError } from "./errors.js";
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

function parseNumber(flag: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const v = Number(value);
  if (value.trim() === "" || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
    throw new UserError(`--${flag} must be ${integer ? "an integer" : "a number"}, got '${value}'`);
  return v;
}

export async function generateCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ckpt: { type: "string" },
        prompt: { type: "string", multiple: true },
        "max-bytes": { type: "string" },
        temperature: { type: "string" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        seed: { type: "string" },
        stop: { type: "string", multiple: true },
        json: { type: "boolean" },
        stats: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n${HELP}`);
  }
  const o = parsed.values;
  if (o.help) {
    out.write(HELP + "\n");
    return 0;
  }
  if (!o.ckpt) throw new UserError(`generate needs --ckpt DIR\n${HELP}`);
  if (!o.prompt || o.prompt.length === 0) throw new UserError(`generate needs --prompt TEXT\n${HELP}`);
  const prompts = o.prompt;
  const maxBytes = parseNumber("max-bytes", o["max-bytes"], true) ?? 256;
  if (maxBytes < 0) throw new UserError(`--max-bytes must be >= 0, got ${maxBytes}`);
  const sampling = {
    temperature: parseNumber("temperature", o.temperature, false) ?? 1,
    topK: parseNumber("top-k", o["top-k"], true) ?? 0,
    topP: parseNumber("top-p", o["top-p"], false) ?? 1,
  };
  try {
    checkSampling(sampling);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const seed = parseNumber("seed", o.seed, true) ?? 0;
  if (o.stop?.some((s) => s.length === 0)) throw new UserError("--stop needs a non-empty string");

  // A closed pipe (`aunet generate ... | head`) ends the output, not the program with a trace.
  if (out === process.stdout)
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  const { model, config } = loadModel(o.ckpt);
  const generator = new Generator(model, config.strategy);
  const stream = !o.json && prompts.length === 1;
  const t0 = performance.now();
  let tFirst = 0;
  const results: Generation[] = generator.generate(prompts, {
    ...sampling,
    maxBytes,
    seed,
    stop: o.stop ?? [],
    onToken: () => {
      if (tFirst === 0) tFirst = performance.now();
    },
    onText: stream ? (_, text) => out.write(text) : undefined,
  });
  const t1 = performance.now();

  if (o.json)
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

  if (o.stats) {
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
