// `aunet score`: log-likelihood and bits per byte of a text, through the same incremental path as generation.

import { readFileSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { parseFlags, showHelp, str } from "./flags.js";
import { loadModel } from "./load-model.js";
import { Generator } from "../generate/generator.js";
import { scoreText } from "../generate/score.js";
import { encodeText } from "../data/bytes.js";

const HELP = `usage: aunet score --ckpt DIR --text TEXT [--prompt TEXT] [--json]

Log-likelihood (nats) and bits per byte of TEXT, after PROMPT if given (after a BOS in any case), computed
byte by byte through the incremental model exactly as generation would feed those bytes.

  --ckpt DIR         model directory: model.safetensors + params.json or config.json (a fixture dir works)
  --text TEXT        the text to score (or --text-file PATH)
  --prompt TEXT      context before the text, not scored
  --json             also list every byte with its level and log-probability`;

const SPEC = {
  ckpt: { kind: "string" },
  text: { kind: "string" },
  "text-file": { kind: "string" },
  prompt: { kind: "string" },
  json: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export async function scoreCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const f = parseFlags("aunet score", argv, SPEC);
  if (showHelp(f, HELP, out)) return 0;
  const ckpt = str(f, "ckpt");
  const textArg = str(f, "text");
  const textFile = str(f, "text-file");
  if (!ckpt) throw new UserError("score needs --ckpt DIR (see 'aunet score --help')");
  if ((textArg === undefined) === (textFile === undefined))
    throw new UserError(
      "score needs exactly one of --text TEXT and --text-file PATH (see 'aunet score --help')",
    );
  let text: Uint8Array;
  if (textArg !== undefined) text = encodeText(textArg);
  else
    try {
      text = readFileSync(textFile!);
    } catch (e) {
      throw new UserError(`cannot read ${textFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  if (text.length === 0) throw new UserError("the text to score is empty");

  const { model, config } = loadModel(ckpt);
  const s = scoreText(new Generator(model, config.strategy), text, str(f, "prompt") ?? "");
  if (f.has("json"))
    out.write(
      JSON.stringify({
        bytes: s.bytes.length,
        log_likelihood: s.logLikelihood,
        bits_per_byte: s.bitsPerByte,
        per_byte: s.bytes.map((b) => ({ byte: b.byte, level: b.level, logprob: b.logProb })),
      }) + "\n",
    );
  else
    out.write(
      `${s.bytes.length} bytes: log-likelihood ${s.logLikelihood.toFixed(4)} nats, ` +
        `${s.bitsPerByte.toFixed(4)} bits per byte\n`,
    );
  return 0;
}
