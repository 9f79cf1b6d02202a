// `aunet generate`: continue prompts with the incremental (KV-cached) AU-Net, streaming the text to stdout.

import { UserError } from "../util/errors.js";
import { SEED_MAX, intFlag, list, num, parseFlags, showHelp, str } from "./flags.js";
import { loadModel } from "./load-model.js";
import { argumentBytes, readInputFile, readStdin } from "./prompts.js";
import { CHECKPOINT_FORMS_HELP } from "../io/checkpoint-resolver.js";
import { Generator, type GeneratedToken, type Generation } from "../generate/generator.js";
import { checkSampling } from "../generate/sampling.js";

/** Generation beyond this would take hours and its caches gigabytes; a larger --max-bytes is a mistake. */
const MAX_GENERATE_BYTES = 1 << 24;

const HELP = `usage: aunet generate --ckpt PATH --prompt TEXT [options]

Continues the prompt byte by byte (each stage runs only at its own positions, with its own KV cache) and
streams the text to stdout as whole UTF-8 characters. One prompt streams as plain text (on a terminal it ends
with a newline; piped, it is exactly the generated text); several stream as whole lines, each labelled [i] with
its prompt's number, followed by a line [i] (stopped: REASON).

  --ckpt PATH        the model: ${CHECKPOINT_FORMS_HELP}
  --prompt TEXT      a prompt (a BOS is put in front; may be empty); '-' reads it from stdin; repeat it to
                     generate several prompts as one batch
  --prompt-file F    a prompt from a file, bytes as they are (repeatable; after the --prompt ones)
  --escapes          read \\xNN (any byte), \\n, \\t, \\r, \\0 and \\\\ in --prompt and --stop as bytes; without
                     it an argument holding U+FFFD (invalid UTF-8 from the shell) is refused
  --max-bytes N      most bytes to generate per prompt (default 256, at most ${MAX_GENERATE_BYTES})
  --temperature T    0 for greedy decoding (default 1)
  --top-k K          sample among the K most likely bytes only (default 0: all)
  --top-p P          sample from the smallest set of bytes with probability >= P (default 1: all)
  --seed S           random seed, an integer in [0, ${SEED_MAX}] (default 0); prompt i uses S + i
  --stop STR         stop when the output ends with STR, which is not printed; repeatable
                     (a newline: --stop $'\\n')
  --json             one JSON object per prompt: text, stop reason and every byte's id, level, log-probability
  --stats            print bytes/s and how often each stage ran to stderr`;

const SPEC = {
  ckpt: { kind: "string" },
  prompt: { kind: "list" },
  "prompt-file": { kind: "list" },
  escapes: { kind: "bool" },
  "max-bytes": intFlag(0, MAX_GENERATE_BYTES),
  temperature: { kind: "string", number: { min: 0 } },
  "top-k": intFlag(0),
  "top-p": { kind: "string", number: { min: 0, max: 1 } },
  seed: intFlag(0),
  stop: { kind: "list" },
  json: { kind: "bool" },
  stats: { kind: "bool" },
  help: { kind: "bool" },
} as const;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Stop strings are matched on the generated text, so they must be text themselves. */
function stopText(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new UserError("--stop must be valid UTF-8 text");
  }
}

/** The prompts in order: --prompt values ('-' is stdin), then --prompt-file contents. */
async function readPrompts(
  prompts: readonly string[],
  files: readonly string[],
  escapes: boolean,
): Promise<Uint8Array[]> {
  if (prompts.filter((p) => p === "-").length > 1)
    throw new UserError("generate: stdin can be read once: give --prompt - at most once");
  const out: Uint8Array[] = [];
  for (const p of prompts) out.push(p === "-" ? await readStdin() : argumentBytes(p, "--prompt", escapes));
  for (const file of files) out.push(readInputFile(file, "--prompt-file"));
  return out;
}

/**
 * Several prompts stream together (one batch): each prompt's text is held until a whole line is there, then
 * printed with the prompt's number, so that the output reads as lines, not as interleaved fragments.
 */
class LabelledLines {
  private readonly pending: string[];

  constructor(
    n: number,
    private readonly out: NodeJS.WritableStream,
  ) {
    this.pending = new Array<string>(n).fill("");
  }

  push(i: number, text: string): void {
    const lines = (this.pending[i] + text).split("\n");
    this.pending[i] = lines.pop()!;
    for (const line of lines) this.out.write(`[${i + 1}] ${line}\n`);
  }

  end(i: number, reason: string): void {
    if (this.pending[i] !== "") this.out.write(`[${i + 1}] ${this.pending[i]}\n`);
    this.pending[i] = "";
    this.out.write(`[${i + 1}] (stopped: ${reason})\n`);
  }
}

/** Non-finite logits make every byte's probability meaningless: stop with the cause instead of printing noise. */
function checkFinite(prompt: number, token: GeneratedToken, n: number): void {
  if (!Number.isFinite(token.logProb))
    throw new UserError(
      `aunet generate: the model's logits are not finite (NaN or infinity) at byte ${n} of prompt ${prompt + 1}: ` +
        `its weights overflow float32 arithmetic (too large or corrupt)`,
    );
}

export async function generateCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const f = parseFlags("aunet generate", argv, SPEC);
  if (showHelp(f, HELP, out)) return 0;
  const ckpt = str(f, "ckpt");
  const promptArgs = list(f, "prompt") ?? [];
  const promptFiles = list(f, "prompt-file") ?? [];
  const escapes = f.has("escapes");
  if (!ckpt) throw new UserError("generate needs --ckpt PATH (see 'aunet generate --help')");
  if (promptArgs.length + promptFiles.length === 0)
    throw new UserError("generate needs --prompt TEXT or --prompt-file F (see 'aunet generate --help')");
  const stops = (list(f, "stop") ?? []).map((s) => stopText(argumentBytes(s, "--stop", escapes)));
  const maxBytes = num(f, "max-bytes", { int: true, min: 0, max: MAX_GENERATE_BYTES }) ?? 256;
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
  const seed = num(f, "seed", { int: true, min: 0 }) ?? 0;
  if (stops.some((s) => s.length === 0)) throw new UserError("--stop needs a non-empty string");
  const prompts = await readPrompts(promptArgs, promptFiles, escapes);
  if (seed + prompts.length - 1 > SEED_MAX)
    throw new UserError(
      `--seed ${seed}: prompt ${prompts.length} would use seed ${seed + prompts.length - 1}, past ${SEED_MAX}`,
    );

  const { model, config } = loadModel(ckpt);
  const generator = new Generator(model, config.strategy);
  const json = f.has("json");
  const stream = !json && prompts.length === 1;
  const labelled = !json && !stream ? new LabelledLines(prompts.length, out) : null;
  let last = "";
  const counts = new Array<number>(prompts.length).fill(0);
  const t0 = performance.now();
  let tFirst = 0;
  const results: Generation[] = generator.generate(prompts, {
    ...sampling,
    maxBytes,
    seed,
    stop: stops,
    onToken: (i, token) => {
      if (tFirst === 0) tFirst = performance.now();
      checkFinite(i, token, ++counts[i]);
    },
    onText: stream
      ? (_, text) => {
          out.write(text);
          last = text;
        }
      : labelled
        ? (i, text) => labelled.push(i, text)
        : undefined,
  });
  const t1 = performance.now();

  if (json)
    results.forEach((r, i) =>
      out.write(
        JSON.stringify({
          prompt: Buffer.from(prompts[i]).toString("utf8"),
          text: r.text,
          stop_reason: r.stopReason,
          bytes: r.tokens.map((t) => ({ id: t.id, level: t.level, logprob: t.logProb })),
        }) + "\n",
      ),
    );
  else if (stream) {
    // A shell prompt should not start on the generated text's last line; a pipe gets the text exactly.
    if ((out as { isTTY?: boolean }).isTTY && !last.endsWith("\n")) out.write("\n");
  } else results.forEach((r, i) => labelled!.end(i, r.stopReason));

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
