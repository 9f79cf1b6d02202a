// `aunet score`: log-likelihood and bits per byte of a text, through the same incremental path as generation.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { UserError } from "./errors.js";
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

export async function scoreCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ckpt: { type: "string" },
        text: { type: "string" },
        "text-file": { type: "string" },
        prompt: { type: "string" },
        json: { type: "boolean" },
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
  if (!o.ckpt) throw new UserError(`score needs --ckpt DIR\n${HELP}`);
  if ((o.text === undefined) === (o["text-file"] === undefined))
    throw new UserError(`score needs exactly one of --text TEXT and --text-file PATH\n${HELP}`);
  let text: Uint8Array;
  if (o.text !== undefined) text = encodeText(o.text);
  else
    try {
      text = readFileSync(o["text-file"]!);
    } catch (e) {
      throw new UserError(`cannot read ${o["text-file"]}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  if (text.length === 0) throw new UserError("the text to score is empty");

  const { model, config } = loadModel(o.ckpt);
  const s = scoreText(new Generator(model, config.strategy), text, o.prompt ?? "");
  if (o.json)
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
