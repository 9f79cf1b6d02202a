// `aunet score`: log-likelihood and bits per byte of a text, through the same incremental path as generation.

import { UserError } from "../util/errors.js";
import { parseFlags, showHelp, str } from "./flags.js";
import { loadModel } from "./load-model.js";
import { argumentBytes, readInputFile } from "./prompts.js";
import { CHECKPOINT_FORMS_HELP } from "../io/checkpoint-resolver.js";
import { Generator } from "../generate/generator.js";
import { scoreText, type Score } from "../generate/score.js";

const HELP = `usage: aunet score --ckpt PATH --text TEXT [--prompt TEXT] [--json]

Log-likelihood (nats) and bits per byte of TEXT, after PROMPT if given (after a BOS in any case), computed
byte by byte through the incremental model exactly as generation would feed those bytes.

  --ckpt PATH         the model: ${CHECKPOINT_FORMS_HELP}
  --text TEXT        the text to score (or --text-file PATH, bytes as they are)
  --prompt TEXT      context before the text, not scored
  --escapes          read \\xNN (any byte), \\n, \\t, \\r, \\0 and \\\\ in --text and --prompt as bytes; without it
                     an argument holding U+FFFD (invalid UTF-8 from the shell) is refused
  --json             also list every byte with its level and log-probability`;

const SPEC = {
  ckpt: { kind: "string" },
  text: { kind: "string" },
  "text-file": { kind: "string" },
  prompt: { kind: "string" },
  escapes: { kind: "bool" },
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
  if (!ckpt) throw new UserError("score needs --ckpt PATH (see 'aunet score --help')");
  if ((textArg === undefined) === (textFile === undefined))
    throw new UserError(
      "score needs exactly one of --text TEXT and --text-file PATH (see 'aunet score --help')",
    );
  const escapes = f.has("escapes");
  const text =
    textArg !== undefined
      ? argumentBytes(textArg, "--text", escapes)
      : readInputFile(textFile!, "--text-file");
  if (text.length === 0) throw new UserError("the text to score is empty");
  const prompt = argumentBytes(str(f, "prompt") ?? "", "--prompt", escapes);

  const { model, config } = loadModel(ckpt);
  const s = scoreText(new Generator(model, config.strategy), text, prompt);
  checkFinite(s);
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

/** A NaN or infinite log-probability means the model's arithmetic overflowed: say so instead of "NaN bits". */
function checkFinite(s: Score): void {
  if (Number.isFinite(s.logLikelihood)) return;
  const at = s.bytes.findIndex((b) => !Number.isFinite(b.logProb));
  throw new UserError(
    `aunet score: the model's logits are not finite (NaN or infinity) at byte ${at + 1} of the text: ` +
      `its weights overflow float32 arithmetic (too large or corrupt)`,
  );
}
