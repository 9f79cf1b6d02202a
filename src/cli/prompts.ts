// Prompts and texts as bytes, from where a user has them: an argument, a file (--prompt-file), or stdin
// (`--prompt -`). Shell arguments are strings, so bytes that are not UTF-8 cannot arrive in one intact: Node
// has already turned them into U+FFFD. Such an argument is refused rather than silently changed, and
// `--escapes` offers the bytes form instead: \xNN (any byte), \n, \t, \r, \0 and \\.

import { readFileSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { encodeText } from "../data/bytes.js";

/** Bytes of `s` with \xNN, \n, \t, \r, \0 and \\ decoded (everything else is UTF-8). */
export function decodeEscapes(s: string, what: string): Uint8Array {
  const out: number[] = [];
  let plain = "";
  const flush = () => {
    for (const b of encodeText(plain)) out.push(b);
    plain = "";
  };
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== "\\") {
      plain += s[i];
      continue;
    }
    const c = s[i + 1];
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, "0": 0, "\\": 92 };
    if (c !== undefined && Object.hasOwn(simple, c)) {
      flush();
      out.push(simple[c]);
      i++;
    } else if (c === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      flush();
      out.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else
      throw new UserError(
        `${what}: unknown escape '\\${c ?? ""}' at character ${i + 1} (with --escapes: \\xNN, \\n, \\t, \\r, \\0, \\\\)`,
      );
  }
  flush();
  return Uint8Array.from(out);
}

/** The bytes of a text argument: escapes decoded when asked, else UTF-8, refusing what the shell mangled. */
export function argumentBytes(s: string, what: string, escapes: boolean): Uint8Array {
  if (escapes) return decodeEscapes(s, what);
  if (s.includes("\uFFFD"))
    throw new UserError(
      `${what} holds U+FFFD, which is what invalid UTF-8 becomes in an argument: pass raw bytes as \\xNN with --escapes, or in a file`,
    );
  return encodeText(s);
}

export function readInputFile(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** All of stdin, as bytes (for `--prompt -`). */
export async function readStdin(
  stdin: AsyncIterable<Uint8Array | string> = process.stdin,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stdin) parts.push(typeof chunk === "string" ? encodeText(chunk) : chunk);
  return Buffer.concat(parts);
}
