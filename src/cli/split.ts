// `aunet split`: the splitter's view of some bytes, for inspecting strategies and for diffing against the
// official RegexPool (the --jsonl form reads and writes the same fields as fixtures/split_cases.jsonl).

import { readFile } from "node:fs/promises";
import { BOS, EOS, encodeText } from "../data/bytes.js";
import { IncrementalSplitter } from "../data/incremental.js";
import { documentLevelMask, levelMask, parseStrategy, type SplitStrategy } from "../data/splitter.js";
import { UserError } from "../util/errors.js";
import { parseFlags, showHelp, str } from "./flags.js";

export const SPLIT_HELP = `usage: aunet split --strategy S [--file F] [--jsonl]

Prints the level of every input byte: 0 for an ordinary byte, k for a boundary of the first k strategy
entries (the byte ends a unit that stages 1..k pool).

options:
  --strategy S   ordered splitter entries, as word1=1@1,word2=2@1 or as a JSON object
                 '{"word1":"1@1","word2":"2@1"}' (keys word*, pretok*, punct*; value "G@M" = G words per group)
  --file F       read the input from F instead of stdin
  --jsonl        one case per input line, {"bytes":[...]} (ids 0..257) or {"text":"..."}
  -h, --help     show this text

output:
  default        one line {"masks":[...]}: the whole-buffer levels of the raw input bytes
  --jsonl        one line per case {"masks":[...],"incremental":[...],"data":{"tokens":[...],"mask":[...]}}:
                 masks = whole-buffer levels (official get_levels_mask); incremental = the level each byte
                 gets during generation, when only the bytes before it are known; data = the training
                 document [BOS] + bytes + [EOS] with its levels (BOS at the document's top level), or null
                 when the bytes are not valid UTF-8 text
`;

const SPEC = {
  strategy: { kind: "string" },
  file: { kind: "string" },
  jsonl: { kind: "bool" },
  help: { kind: "bool" },
} as const;

/** Where the command reads and writes; tests pass their own. */
export interface SplitIO {
  stdin?: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;
  stdout?: { write(chunk: string): unknown };
}

async function readAll(
  src: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of src) parts.push(typeof chunk === "string" ? encodeText(chunk) : chunk);
  return Buffer.concat(parts);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function caseOf(line: string, lineNo: number): { bytes: ArrayLike<number>; text: string | null } {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    throw new UserError(`input line ${lineNo} is not valid JSON`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new UserError(`input line ${lineNo} must be an object {"bytes":[...]} or {"text":"..."}`);
  }
  const rec = obj as Record<string, unknown>;
  const hasBytes = rec.bytes !== undefined && rec.bytes !== null;
  const hasText = rec.text !== undefined && rec.text !== null;
  if (hasBytes) {
    const b = rec.bytes;
    if (!Array.isArray(b) || !b.every((v) => Number.isInteger(v) && v >= 0 && v <= EOS)) {
      throw new UserError(`input line ${lineNo}: "bytes" must be an array of integers 0..${EOS}`);
    }
    const ids = b as number[];
    // A bytes case is also a training document when it is text: no special ids and valid UTF-8.
    let text: string | null = null;
    if (ids.every((v) => v < BOS)) {
      try {
        text = strictUtf8.decode(Uint8Array.from(ids));
      } catch {
        text = null;
      }
    }
    return { bytes: ids, text };
  }
  if (hasText) {
    if (typeof rec.text !== "string") throw new UserError(`input line ${lineNo}: "text" must be a string`);
    return { bytes: encodeText(rec.text), text: rec.text };
  }
  throw new UserError(`input line ${lineNo} has neither "bytes" nor "text"`);
}

function caseOutput(bytes: ArrayLike<number>, text: string | null, strategy: SplitStrategy): string {
  const masks = Array.from(levelMask(bytes, strategy));
  const incremental = Array.from(new IncrementalSplitter(strategy).pushAll(bytes));
  let data: { tokens: number[]; mask: number[] } | null = null;
  if (text !== null) {
    const d = documentLevelMask(bytes, strategy);
    data = { tokens: Array.from(d.tokens), mask: Array.from(d.mask) };
  }
  return JSON.stringify({ masks, incremental, data });
}

export async function splitCommand(argv: string[], io: SplitIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const f = parseFlags("aunet split", argv, SPEC);
  if (showHelp(f, SPLIT_HELP, stdout)) return 0;
  const strategyText = str(f, "strategy");
  if (strategyText === undefined) {
    throw new UserError("split: --strategy is required, e.g. --strategy word1=1@1,word2=2@1");
  }
  const strategy = parseStrategy(strategyText);

  let input: Uint8Array;
  const file = str(f, "file");
  if (file !== undefined) {
    try {
      input = await readFile(file);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
      throw new UserError(`split: cannot read ${file} (${why})`);
    }
  } else {
    input = await readAll(io.stdin ?? process.stdin);
  }

  if (!f.has("jsonl")) {
    stdout.write(JSON.stringify({ masks: Array.from(levelMask(input, strategy)) }) + "\n");
    return 0;
  }
  const lines = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("utf8").split("\n");
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const { bytes, text } = caseOf(line, i + 1);
    out.push(caseOutput(bytes, text, strategy));
  });
  if (out.length > 0) stdout.write(out.join("\n") + "\n");
  return 0;
}
